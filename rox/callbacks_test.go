package rox

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestStripTrailingCommas(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"a":1}`, `{"a":1}`},
		{`{"a":1,}`, `{"a":1}`},
		{`{"a":[1,2,],}`, `{"a":[1,2]}`},
		{"{\"a\":1,\n\t }", "{\"a\":1\n\t }"},
		{`{"a":",}",}`, `{"a":",}"}`},           // comma inside a string stays
		{`{"a":"\",}",}`, `{"a":"\",}"}`},       // escaped quote does not end the string
		{`{"a":"\\",}`, `{"a":"\\"}`},           // escaped backslash does
		{`{"a":"x\\\",]",}`, `{"a":"x\\\",]"}`}, // \\ then \" inside
		{`[,]`, `[]`},                           // not ours to judge: JSON decides
		{`{"a":1,"b":2}`, `{"a":1,"b":2}`},      // inner commas untouched
		{`{"a":"unterminated,}`, `{"a":"unterminated,}`},
	}
	for _, tt := range tests {
		got, changed := stripTrailingCommas([]byte(tt.in))
		if string(got) != tt.want || changed != (tt.in != tt.want) {
			t.Errorf("stripTrailingCommas(%s) = %s, %v; want %s", tt.in, got, changed, tt.want)
		}
	}
}

func TestDecodeReceiptErrors(t *testing.T) {
	good := string(readTestdata(t, "receipt.json"))
	tests := []struct {
		name, body, field string
	}{
		{"wrong name", strings.Replace(good, NameReceipt, NameReply, 1), "Name"},
		{"no name", strings.Replace(good, `"Name": "ROX_API_Receipt",`, "", 1), "Name"},
		{"no SMSId", strings.Replace(good, `"SMSId": "123e4567-e89b-12d3-a456-426614174001",`, "", 1), "Messages.Receipt.SMSId"},
		{"empty SMSId", strings.Replace(good, `"123e4567-e89b-12d3-a456-426614174001"`, `""`, 1), "Messages.Receipt.SMSId"},
		{"wrong type", strings.Replace(good, `"Result": "0000"`, `"Result": 0`, 1), "Messages.Receipt.Result"},
		{"version string", strings.Replace(good, `"Version": 1.1`, `"Version": "1.1"`, 1), "Version"},
		{"not json", `{"Name": `, "body"},
		{"array", `[]`, "body"},
	}
	for _, tt := range tests {
		_, err := DecodeReceipt([]byte(tt.body))
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("%s: err = %v, want *FieldError on %s", tt.name, err, tt.field)
		}
	}
	// Trailing commas as in the document's own answers.
	trailing := strings.Replace(good, `"(UTC)"`, `"(UTC)",`, 1)
	trailing = strings.Replace(trailing, `"user@your_domain.com"`, `"user@your_domain.com",`, 1)
	if json.Valid([]byte(trailing)) {
		t.Fatal("test body should be invalid JSON")
	}
	r, err := DecodeReceipt([]byte(trailing))
	if err != nil || r.Messages.Receipt.Timestamp != "01-Jan-2030 00:00:01 (UTC)" {
		t.Fatalf("trailing commas: %+v, %v", r, err)
	}
}

func TestDecodeReplyNames(t *testing.T) {
	good := string(readTestdata(t, "reply.json"))
	for _, name := range []string{NameReply, NameReplyResponse} {
		body := strings.Replace(good, NameReplyResponse, name, 1)
		if r, err := DecodeReply([]byte(body)); err != nil || r.Name != name {
			t.Errorf("name %s: %v", name, err)
		}
	}
	for _, tt := range []struct{ name, body, field string }{
		{"receipt name", strings.Replace(good, NameReplyResponse, NameReceipt, 1), "Name"},
		{"no SMSId", strings.Replace(good, `"SMSId": "123e4567-e89b-12d3-a456-426614174001",`, "", 1), "Messages.Reply.SMSId"},
		{"garbage", `nope`, "body"},
	} {
		_, err := DecodeReply([]byte(tt.body))
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("%s: err = %v, want *FieldError on %s", tt.name, err, tt.field)
		}
	}
}

func TestDecodeSendRequestErrors(t *testing.T) {
	good := string(readTestdata(t, "request.json"))
	tests := []struct{ name, body, field string }{
		{"count too high", strings.Replace(good, `"Count": 3`, `"Count": 4`, 1), "Messages.Count"},
		{"count missing", strings.Replace(good, `"Count": 3,`, ``, 1), "Messages.Count"},
		{"gap", strings.Replace(good, `"2": {`, `"4": {`, 1), "Messages.2"},
		{"zero key", strings.Replace(good, `"1": {`, `"0": {`, 1), "Messages.0"},
		{"leading zero key", strings.Replace(good, `"1": {`, `"01": {`, 1), "Messages.01"},
		{"recipient not object", strings.Replace(good, `"3": {`, `"3": 7, "x": {`, 1), "Messages.3"},
		{"flag as string", strings.Replace(good, `"ReceiptFlag": 1`, `"ReceiptFlag": "1"`, 1), "Messages.ReceiptFlag"},
		{"bad SendLater", strings.Replace(good, `01-Jan-2030`, `2030-01-01`, 1), "Messages.SendLater"},
		{"DestTn number", strings.Replace(good, `"+61407555002"`, `61407555002`, 1), "Messages.2.DestTn"},
		{"messages array", `{"Name":"ROX_API_Request","Messages":[]}`, "Messages"},
		{"truncated", good[:100], "Sender"},
		{"trailing garbage", good + "x", "body"},
		{"two objects", good + good, "body"},
	}
	for _, tt := range tests {
		_, err := DecodeSendRequest([]byte(tt.body))
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("%s: err = %v, want *FieldError on %s", tt.name, err, tt.field)
		}
		if err != nil && strings.Contains(err.Error(), "myPassword") {
			t.Errorf("%s: error quotes the password: %v", tt.name, err)
		}
	}
	many := `{"Name":"ROX_API_Request","Messages":{"Count":501`
	for i := 1; i <= 501; i++ {
		many += `,"` + itoa(i) + `":{"DestTn":"+61407555001"}`
	}
	many += `}}`
	_, err := DecodeSendRequest([]byte(many))
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "Messages.Count" {
		t.Errorf("501 recipients: %v", err)
	}
}

func TestDecodeSendResponseFailure(t *testing.T) {
	// A failed request may carry no Messages, or null.
	for _, body := range []string{
		`{"Name":"ROX_API_Response","Version":1.1,"Result":"2001","ResultText":"Invalid login"}`,
		`{"Name":"ROX_API_Response","Version":1.1,"Result":"2001","ResultText":"Invalid login","Messages":null,}`,
	} {
		r, err := DecodeSendResponse([]byte(body))
		if err != nil || r.Result != "2001" || r.Result.Class() != ClassAuth || len(r.Messages.Results) != 0 {
			t.Errorf("%s: %+v %v", body, r, err)
		}
	}
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{
		"", "plain", `quote " backslash \ slash /`, "<script>&amp;</script>", "\x00\x01\x1f\x7f",
		"\b\f\n\r\t", "é中文🙂", "\u2028\u2029", "bad \xff utf8 \xc3", "\xed\xa0\x80 surrogate",
	} {
		want, _ := json.Marshal(s)
		if got := appendString(nil, s); string(got) != string(want) {
			t.Errorf("appendString(%q) = %s, want %s", s, got, want)
		}
	}
	for _, f := range []float64{0, 1.1, -2.5, 1e21, 1e-7, 123456789, 0.000001} {
		want, _ := json.Marshal(f)
		got, err := appendFloat(nil, f)
		if err != nil || string(got) != string(want) {
			t.Errorf("appendFloat(%v) = %s, want %s", f, got, want)
		}
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }
