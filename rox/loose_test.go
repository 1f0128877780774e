package rox

import (
	"testing"
)

func TestDecodeReplyLoose(t *testing.T) {
	cases := []struct {
		name, body string
		want       LooseReply
		ok         bool
	}{
		{"valid", `{"Name":"ROX_API_Reply","Messages":{"Reply":{"SMSId":"s1","ReplyFrom":"+61400000001","ReplyText":"STOP"}}}`,
			LooseReply{"s1", "+61400000001", "STOP"}, true},
		{"wrong name, trailing commas", `{"Name":"x","Messages":{"Reply":{"SMSId":"s2","ReplyFrom":"0400000002","ReplyText":"Stop.",},},}`,
			LooseReply{"s2", "0400000002", "Stop."}, true},
		{"number ReplyFrom", `{"Messages":{"Reply":{"ReplyFrom":61400000003,"ReplyText":"stop"}}}`,
			LooseReply{"", "61400000003", "stop"}, true},
		{"odd types elsewhere", `{"Name":7,"Version":"1.1","Sender":[],"Messages":{"RequestId":{},"Reply":{"SMSId":null,"ReplyFrom":"+1","ReplyText":"STOP","Timestamp":5}}}`,
			LooseReply{"", "+1", "STOP"}, true},
		{"case of keys", `{"messages":{"reply":{"replyfrom":"+2","replytext":"STOP"}}}`, LooseReply{"", "+2", "STOP"}, true},
		{"object text", `{"Messages":{"Reply":{"ReplyFrom":"+3","ReplyText":{"a":1}}}}`, LooseReply{"", "+3", ""}, true},
		{"no reply", `{"Messages":{"Receipt":{"SMSId":"x"}}}`, LooseReply{}, false},
		{"messages a string", `{"Messages":"x"}`, LooseReply{}, false},
		{"not json", `STOP`, LooseReply{}, false},
		{"array", `[1]`, LooseReply{}, false},
	}
	for _, c := range cases {
		got, ok := DecodeReplyLoose([]byte(c.body))
		if ok != c.ok || got != c.want {
			t.Errorf("%s: %+v %v, want %+v %v", c.name, got, ok, c.want, c.ok)
		}
	}
}

// FuzzDecodeReplyLoose: never panics, and agrees with DecodeReply on every
// body DecodeReply accepts.
func FuzzDecodeReplyLoose(f *testing.F) {
	f.Add([]byte(`{"Name":"ROX_API_Reply","Messages":{"Reply":{"SMSId":"s1","ReplyFrom":"+61400000001","ReplyText":"STOP"}}}`))
	f.Add([]byte(`{"Messages":{"Reply":{"ReplyFrom":61400000003,"ReplyText":"stop",}}}`))
	f.Add([]byte(`{"Messages":{"Reply":null}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, ok := DecodeReplyLoose(body)
		r, err := DecodeReply(body)
		if err != nil {
			return
		}
		d := r.Messages.Reply
		if !ok || got.SMSID != d.SMSID || got.ReplyFrom != d.ReplyFrom || got.ReplyText != d.ReplyText {
			t.Fatalf("loose %+v %v, strict %+v", got, ok, d)
		}
	})
}
