package rox

import (
	"bytes"
	"encoding/json"
)

// LooseReply is what DecodeReplyLoose could read of a reply.
type LooseReply struct {
	SMSID     string
	ReplyFrom string
	ReplyText string
}

// DecodeReplyLoose reads Messages.Reply's SMSId, ReplyFrom and ReplyText
// from a body that DecodeReply refuses (wrong Name, a field missing or of
// another type, trailing commas): each of the three is read when it is a
// JSON string or number, whatever the rest holds. ok is false when the body
// is not a JSON object with Messages.Reply. The callbacks receiver uses it
// so that a STOP opts its number out even when the callback is refused.
func DecodeReplyLoose(body []byte) (r LooseReply, ok bool) {
	var v struct {
		Messages struct {
			Reply *struct {
				SMSID     json.RawMessage `json:"SMSId"`
				ReplyFrom json.RawMessage `json:"ReplyFrom"`
				ReplyText json.RawMessage `json:"ReplyText"`
			} `json:"Reply"`
		} `json:"Messages"`
	}
	if err := unmarshalTolerant(body, &v); err != nil || v.Messages.Reply == nil {
		return LooseReply{}, false
	}
	p := v.Messages.Reply
	return LooseReply{SMSID: looseString(p.SMSID), ReplyFrom: looseString(p.ReplyFrom), ReplyText: looseString(p.ReplyText)}, true
}

// looseString is a JSON string's value or a JSON number's text; "" for
// anything else.
func looseString(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		return n.String()
	}
	return ""
}
