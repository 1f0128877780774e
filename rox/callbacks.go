package rox

import (
	"encoding/json"
	"errors"
)

// ReceiptResponse is our answer to a receipt: ROX_API_Receipt_Response,
// Result "0000".
func ReceiptResponse() CallbackResponse {
	return CallbackResponse{Name: NameReceiptResponse, Version: Version, Result: CodeOK, ResultText: "OK"}
}

// ReplyResponse is our answer to a reply: ROX_API_Reply_Response, Result
// "0000".
func ReplyResponse() CallbackResponse {
	return CallbackResponse{Name: NameReplyResponse, Version: Version, Result: CodeOK, ResultText: "OK"}
}

// DecodeReceipt reads the body ROX posts to ReceiptCallbackURL. It accepts
// trailing commas before } or ] (the document's own examples carry them),
// requires Name ROX_API_Receipt and a Messages.Receipt.SMSId, and returns
// problems as *FieldError.
func DecodeReceipt(body []byte) (*Receipt, error) {
	var r Receipt
	if err := unmarshalTolerant(body, &r); err != nil {
		return nil, err
	}
	if r.Name != NameReceipt {
		return nil, fieldErr("Name", "is %s, want %s", quoteShort(r.Name), NameReceipt)
	}
	if r.Messages.Receipt.SMSID == "" {
		return nil, fieldErr("Messages.Receipt.SMSId", "missing")
	}
	return &r, nil
}

// DecodeReply reads the body ROX posts to ReplyCallbackURL. It accepts
// trailing commas, requires Name ROX_API_Reply or ROX_API_Reply_Response
// (the document uses both) and a Messages.Reply.SMSId, and returns problems
// as *FieldError.
func DecodeReply(body []byte) (*Reply, error) {
	var r Reply
	if err := unmarshalTolerant(body, &r); err != nil {
		return nil, err
	}
	if r.Name != NameReply && r.Name != NameReplyResponse {
		return nil, fieldErr("Name", "is %s, want %s or %s", quoteShort(r.Name), NameReply, NameReplyResponse)
	}
	if r.Messages.Reply.SMSID == "" {
		return nil, fieldErr("Messages.Reply.SMSId", "missing")
	}
	return &r, nil
}

// DecodeCallbackResponse reads a ROX_API_Receipt_Response or
// ROX_API_Reply_Response (trailing commas accepted, as in the document).
func DecodeCallbackResponse(body []byte) (*CallbackResponse, error) {
	var r CallbackResponse
	if err := unmarshalTolerant(body, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// unmarshalTolerant decodes strictly first; only if the body is not valid
// JSON does it retry with trailing commas removed. Errors are *FieldError.
func unmarshalTolerant(body []byte, v any) error {
	err := json.Unmarshal(body, v)
	if err == nil {
		return nil
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		if fixed, changed := stripTrailingCommas(body); changed {
			if err2 := json.Unmarshal(fixed, v); err2 == nil {
				return nil
			}
		}
	}
	return asFieldError(err)
}

// asFieldError turns an encoding/json error into a *FieldError naming the
// field. Values are never quoted.
func asFieldError(err error) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			field = "body"
		}
		return fieldErr(field, "wrong type: JSON %s where %s is expected", te.Value, te.Type)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fieldErr("body", "not valid JSON at byte %d: %v", se.Offset, se)
	}
	return fieldErr("body", "%v", err)
}

// stripTrailingCommas removes every comma that is followed (after optional
// whitespace) by } or ], outside strings. It returns the body unchanged and
// false when there is none.
func stripTrailingCommas(body []byte) ([]byte, bool) {
	var out []byte // allocated at the first comma dropped
	inString, escaped := false, false
	last := 0 // body[last:i] not yet copied to out
	for i := 0; i < len(body); i++ {
		c := body[i]
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case ',':
			j := i + 1
			for j < len(body) && (body[j] == ' ' || body[j] == '\t' || body[j] == '\n' || body[j] == '\r') {
				j++
			}
			if j < len(body) && (body[j] == '}' || body[j] == ']') {
				if out == nil {
					out = make([]byte, 0, len(body))
				}
				out = append(out, body[last:i]...)
				last = i + 1
			}
		}
	}
	if out == nil {
		return body, false
	}
	return append(out, body[last:]...), true
}
