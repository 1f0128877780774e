package rox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// FieldError says which field of a ROX message is wrong and why. Field is a
// dotted path as it appears on the wire, e.g. "Messages.3.DestTn".
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return "rox: " + e.Field + ": " + e.Reason }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// wire form of the control fields of Messages. Pointers tell "absent" from
// zero where the document makes a field optional.
type messagesControl struct {
	ReceiptFlag        *ReceiptFlag `json:"ReceiptFlag,omitempty"`
	ReceiptCallbackURL string       `json:"ReceiptCallbackURL,omitempty"`
	ReplyType          ReplyType    `json:"ReplyType,omitempty"`
	ReplyCallbackURL   string       `json:"ReplyCallbackURL,omitempty"`
	TimeZoneOffset     *int         `json:"TimeZoneOffset,omitempty"`
	SendLater          string       `json:"SendLater,omitempty"`
	Count              *int         `json:"Count,omitempty"`
	GlobalText         string       `json:"GlobalText,omitempty"`
}

// MarshalJSON writes the control fields, then the recipients under "1".."N"
// in order. Count is len(Recipients), whatever m.Count says.
func (m Messages) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(128 + len(m.Recipients)*160)
	buf.WriteString(`{"ReceiptFlag":`)
	buf.WriteString(strconv.Itoa(int(m.ReceiptFlag)))
	if m.ReceiptCallbackURL != "" {
		buf.WriteString(`,"ReceiptCallbackURL":`)
		writeString(&buf, m.ReceiptCallbackURL)
	}
	if m.ReplyType != "" {
		buf.WriteString(`,"ReplyType":`)
		writeString(&buf, string(m.ReplyType))
	}
	if m.ReplyCallbackURL != "" {
		buf.WriteString(`,"ReplyCallbackURL":`)
		writeString(&buf, m.ReplyCallbackURL)
	}
	buf.WriteString(`,"TimeZoneOffset":`)
	buf.WriteString(strconv.Itoa(m.TimeZoneOffset))
	if !m.SendLater.IsZero() {
		buf.WriteString(`,"SendLater":`)
		writeString(&buf, FormatSendLater(m.SendLater, m.TimeZoneOffset))
	}
	buf.WriteString(`,"Count":`)
	buf.WriteString(strconv.Itoa(len(m.Recipients)))
	if m.GlobalText != "" {
		buf.WriteString(`,"GlobalText":`)
		writeString(&buf, m.GlobalText)
	}
	for i := range m.Recipients {
		buf.WriteString(`,"`)
		buf.WriteString(strconv.Itoa(i + 1))
		buf.WriteString(`":`)
		r, err := json.Marshal(&m.Recipients[i])
		if err != nil {
			return nil, fmt.Errorf("rox: encode Messages.%d: %w", i+1, err)
		}
		buf.Write(r)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// UnmarshalJSON reads control fields and numbered recipients. The keys must
// run "1".."Count" without gaps, and Count must equal their number; errors
// are *FieldError naming the field. It does not validate contents (see
// Validate).
func (m *Messages) UnmarshalJSON(data []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return fieldErr("Messages", "not a JSON object: %v", err)
	}
	var ctl messagesControl
	if err := json.Unmarshal(data, &ctl); err != nil {
		return controlFieldError(err)
	}
	*m = Messages{
		ReceiptCallbackURL: ctl.ReceiptCallbackURL,
		ReplyType:          ctl.ReplyType,
		ReplyCallbackURL:   ctl.ReplyCallbackURL,
		GlobalText:         ctl.GlobalText,
	}
	if ctl.ReceiptFlag != nil {
		m.ReceiptFlag = *ctl.ReceiptFlag
	}
	if ctl.TimeZoneOffset != nil {
		m.TimeZoneOffset = *ctl.TimeZoneOffset
	}
	if ctl.SendLater != "" {
		t, err := ParseSendLater(ctl.SendLater, m.TimeZoneOffset)
		if err != nil {
			return fieldErr("Messages.SendLater", "%q is not dd-Mon-yyyy HH:MM:SS", ctl.SendLater)
		}
		m.SendLater = t
	}
	n, err := countNumbered(raw, "Messages")
	if err != nil {
		return err
	}
	if ctl.Count == nil {
		return fieldErr("Messages.Count", "missing")
	}
	m.Count = *ctl.Count
	if m.Count != n {
		return fieldErr("Messages.Count", "is %d but %d recipients follow", m.Count, n)
	}
	if n > MaxRecipients {
		return fieldErr("Messages.Count", "%d recipients, at most %d allowed", n, MaxRecipients)
	}
	m.Recipients = make([]Recipient, n)
	for i := 0; i < n; i++ {
		key := strconv.Itoa(i + 1)
		if err := json.Unmarshal(raw[key], &m.Recipients[i]); err != nil {
			return fieldErr("Messages."+key, "not a recipient object: %v", err)
		}
	}
	return nil
}

// MarshalJSON writes Count and RequestId, then the results under "1".."N".
func (r ResponseMessages) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(96 + len(r.Results)*192)
	buf.WriteString(`{"Count":`)
	buf.WriteString(strconv.Itoa(len(r.Results)))
	buf.WriteString(`,"RequestId":`)
	writeString(&buf, r.RequestID)
	for i := range r.Results {
		buf.WriteString(`,"`)
		buf.WriteString(strconv.Itoa(i + 1))
		buf.WriteString(`":`)
		b, err := json.Marshal(&r.Results[i])
		if err != nil {
			return nil, fmt.Errorf("rox: encode Messages.%d: %w", i+1, err)
		}
		buf.Write(b)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// UnmarshalJSON reads a response's Messages. Results[i] holds key i+1.
// A failed request may carry no Messages at all; that decodes as empty.
func (r *ResponseMessages) UnmarshalJSON(data []byte) error {
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		*r = ResponseMessages{}
		return nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return fieldErr("Messages", "not a JSON object: %v", err)
	}
	var ctl struct {
		Count     *int   `json:"Count"`
		RequestID string `json:"RequestId"`
	}
	if err := json.Unmarshal(data, &ctl); err != nil {
		return controlFieldError(err)
	}
	n, err := countNumbered(raw, "Messages")
	if err != nil {
		return err
	}
	*r = ResponseMessages{RequestID: ctl.RequestID, Count: n}
	if ctl.Count != nil {
		r.Count = *ctl.Count
	}
	if r.Count != n {
		return fieldErr("Messages.Count", "is %d but %d results follow", r.Count, n)
	}
	r.Results = make([]RecipientResult, n)
	for i := 0; i < n; i++ {
		key := strconv.Itoa(i + 1)
		if err := json.Unmarshal(raw[key], &r.Results[i]); err != nil {
			return fieldErr("Messages."+key, "not a result object: %v", err)
		}
	}
	return nil
}

// countNumbered counts the keys "1".."N" of obj and checks there is no gap
// and no other numeric key (such as "0", "01" or N+2).
func countNumbered(raw map[string]json.RawMessage, path string) (int, error) {
	n := 0
	for k := range raw {
		if k == "" || k[0] < '0' || k[0] > '9' {
			continue
		}
		i, err := strconv.Atoi(k)
		if err != nil || i < 1 || strconv.Itoa(i) != k {
			return 0, fieldErr(path+"."+k, "not a recipient key: keys run \"1\"..\"N\"")
		}
		n++
	}
	for i := 1; i <= n; i++ {
		if _, ok := raw[strconv.Itoa(i)]; !ok {
			return 0, fieldErr(path+"."+strconv.Itoa(i), "missing: recipient keys must run \"1\"..\"%d\" without gaps", n)
		}
	}
	return n, nil
}

func controlFieldError(err error) error {
	if te, ok := err.(*json.UnmarshalTypeError); ok {
		return fieldErr("Messages."+te.Field, "wrong type: %s where %s is expected", te.Value, te.Type)
	}
	return fieldErr("Messages", "%v", err)
}

func writeString(buf *bytes.Buffer, s string) {
	b, _ := json.Marshal(s) // a string always encodes
	buf.Write(b)
}

// FormatSendLater writes t as SendLater in the zone of tzOffset (minutes,
// sign inverted: UTC+10:00 is -600), truncated to the second.
func FormatSendLater(t time.Time, tzOffset int) string {
	return t.In(offsetZone(tzOffset)).Format(SendLaterLayout)
}

// ParseSendLater reads s (dd-Mon-yyyy HH:MM:SS) in the zone of tzOffset.
func ParseSendLater(s string, tzOffset int) (time.Time, error) {
	return time.ParseInLocation(SendLaterLayout, s, offsetZone(tzOffset))
}

// TimeZoneOffsetOf returns the ROX TimeZoneOffset of t's zone at t:
// UTC+10:00 gives -600.
func TimeZoneOffsetOf(t time.Time) int {
	_, secs := t.Zone()
	return -secs / 60
}

func offsetZone(tzOffset int) *time.Location {
	if tzOffset == 0 {
		return time.UTC
	}
	return time.FixedZone("", -tzOffset*60)
}

// FormatTimestamp writes t as ROX does: "01-Jan-2030 00:00:01 (UTC)".
func FormatTimestamp(t time.Time) string {
	return t.UTC().Format(timestampLayoutNoTZ) + timestampZoneSuffix
}

// ParseTimestamp reads a ROX timestamp such as "01-Jan-2030 00:00:01 (UTC)".
// The zone suffix is optional; the time is UTC either way.
func ParseTimestamp(s string) (time.Time, error) {
	s = string(bytes.TrimSuffix([]byte(s), []byte(timestampZoneSuffix)))
	return time.ParseInLocation(timestampLayoutNoTZ, s, time.UTC)
}
