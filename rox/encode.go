package rox

import (
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// The encoders below write the same bytes encoding/json would (HTML-safe
// string escaping, ES6 float formatting, struct field order), without
// reflection or an allocation per recipient. The numbered keys come in
// order "1".."N".

// EncodeSendRequest returns the JSON of r as sent to ROX. Count is written
// as len(Recipients). The result holds the password: never log it.
func EncodeSendRequest(r *SendRequest) ([]byte, error) {
	return appendSendRequest(make([]byte, 0, 256+len(r.Messages.Recipients)*160), r)
}

// EncodeSendResponse returns the JSON of r. Count is written as len(Results).
func EncodeSendResponse(r *SendResponse) ([]byte, error) {
	return appendSendResponse(make([]byte, 0, 160+len(r.Messages.Results)*192), r)
}

// MarshalJSON is EncodeSendRequest.
func (r SendRequest) MarshalJSON() ([]byte, error) { return EncodeSendRequest(&r) }

// MarshalJSON is EncodeSendResponse.
func (r SendResponse) MarshalJSON() ([]byte, error) { return EncodeSendResponse(&r) }

// MarshalJSON writes the control fields, then the recipients under "1".."N"
// in order. Count is len(Recipients), whatever m.Count says.
func (m Messages) MarshalJSON() ([]byte, error) {
	return appendMessages(make([]byte, 0, 128+len(m.Recipients)*160), &m), nil
}

// MarshalJSON writes Count and RequestId, then the results under "1".."N".
func (r ResponseMessages) MarshalJSON() ([]byte, error) {
	return appendResponseMessages(make([]byte, 0, 96+len(r.Results)*192), &r), nil
}

func appendSendRequest(b []byte, r *SendRequest) ([]byte, error) {
	var err error
	b = append(b, `{"Name":`...)
	b = appendString(b, r.Name)
	b = append(b, `,"Version":`...)
	if b, err = appendFloat(b, r.Version); err != nil {
		return nil, err
	}
	b = append(b, `,"Product":`...)
	b = appendString(b, r.Product)
	b = append(b, `,"Sender":{"AccountId":`...)
	b = appendString(b, r.Sender.AccountID)
	b = append(b, `,"Username":`...)
	b = appendString(b, r.Sender.Username)
	b = append(b, `,"Password":`...)
	b = appendString(b, r.Sender.Password)
	b = append(b, `},"Messages":`...)
	b = appendMessages(b, &r.Messages)
	return append(b, '}'), nil
}

func appendMessages(b []byte, m *Messages) []byte {
	b = append(b, `{"ReceiptFlag":`...)
	b = strconv.AppendInt(b, int64(m.ReceiptFlag), 10)
	if m.ReceiptCallbackURL != "" {
		b = append(b, `,"ReceiptCallbackURL":`...)
		b = appendString(b, m.ReceiptCallbackURL)
	}
	if m.ReplyType != "" {
		b = append(b, `,"ReplyType":`...)
		b = appendString(b, string(m.ReplyType))
	}
	if m.ReplyCallbackURL != "" {
		b = append(b, `,"ReplyCallbackURL":`...)
		b = appendString(b, m.ReplyCallbackURL)
	}
	b = append(b, `,"TimeZoneOffset":`...)
	b = strconv.AppendInt(b, int64(m.TimeZoneOffset), 10)
	if !m.SendLater.IsZero() {
		b = append(b, `,"SendLater":"`...)
		b = m.SendLater.In(offsetZone(m.TimeZoneOffset)).AppendFormat(b, SendLaterLayout)
		b = append(b, '"')
	}
	b = append(b, `,"Count":`...)
	b = strconv.AppendInt(b, int64(len(m.Recipients)), 10)
	if m.GlobalText != "" {
		b = append(b, `,"GlobalText":`...)
		b = appendString(b, m.GlobalText)
	}
	for i := range m.Recipients {
		b = appendRecipient(b, i+1, &m.Recipients[i])
	}
	return append(b, '}')
}

// appendRecipient appends recipient r under its key n: ,"n":{...}.
func appendRecipient(b []byte, n int, r *Recipient) []byte {
	b = append(b, `,"`...)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, `":{"DestTn":`...)
	b = appendString(b, r.DestTn)
	if r.DestName != "" {
		b = append(b, `,"DestName":`...)
		b = appendString(b, r.DestName)
	}
	if r.DestEmail != "" {
		b = append(b, `,"DestEmail":`...)
		b = appendString(b, r.DestEmail)
	}
	if r.SMSText != "" {
		b = append(b, `,"SMSText":`...)
		b = appendString(b, r.SMSText)
	}
	return append(b, '}')
}

// RecipientBytesBound is an upper bound of RecipientBytes(r) that reads
// only the lengths of r's fields: appendString writes at most 6 bytes per
// byte of a string (\u00XX), and the keys and punctuation of an entry with
// every field are 60 bytes. Callers that only compare against a limit use
// it first and encode only when it is not enough.
func RecipientBytesBound(r Recipient) int {
	return 60 + 6*(len(r.DestTn)+len(r.DestName)+len(r.DestEmail)+len(r.SMSText))
}

// RecipientBytes is the number of bytes r adds to the body of a send
// request as EncodeSendRequest writes it, its key ("500" at most) included:
// the unit by which roxd sizes its requests (MaxRequestBytes).
func RecipientBytes(r Recipient) int {
	var buf [512]byte
	return len(appendRecipient(buf[:0], MaxRecipients, &r))
}

func appendSendResponse(b []byte, r *SendResponse) ([]byte, error) {
	var err error
	b = append(b, `{"Name":`...)
	b = appendString(b, r.Name)
	b = append(b, `,"Version":`...)
	if b, err = appendFloat(b, r.Version); err != nil {
		return nil, err
	}
	b = append(b, `,"Result":`...)
	b = appendString(b, string(r.Result))
	b = append(b, `,"ResultText":`...)
	b = appendString(b, r.ResultText)
	b = append(b, `,"Messages":`...)
	b = appendResponseMessages(b, &r.Messages)
	return append(b, '}'), nil
}

func appendResponseMessages(b []byte, r *ResponseMessages) []byte {
	b = append(b, `{"Count":`...)
	b = strconv.AppendInt(b, int64(len(r.Results)), 10)
	b = append(b, `,"RequestId":`...)
	b = appendString(b, r.RequestID)
	for i := range r.Results {
		x := &r.Results[i]
		b = append(b, `,"`...)
		b = strconv.AppendInt(b, int64(i+1), 10)
		b = append(b, `":{"SMSId":`...)
		b = appendString(b, x.SMSID)
		b = append(b, `,"DestTn":`...)
		b = appendString(b, x.DestTn)
		b = append(b, `,"Result":`...)
		b = appendString(b, string(x.Result))
		b = append(b, `,"ResultText":`...)
		b = appendString(b, x.ResultText)
		b = append(b, `,"Timestamp":`...)
		b = appendString(b, x.Timestamp)
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendFloat formats f as encoding/json does (ES6 number formatting).
func appendFloat(b []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, fmt.Errorf("rox: encode: Version %v is not a JSON number", f)
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s to b as a JSON string, exactly as encoding/json
// writes it. Other packages that hand-write JSON (the simulator) use it.
func AppendJSONString(b []byte, s string) []byte { return appendString(b, s) }

// appendString quotes s as encoding/json does with HTML escaping: <, > and
// & as \u003c.., control characters escaped, invalid UTF-8 as \ufffd, and
// U+2028/U+2029 escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
