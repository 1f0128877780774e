package rox

// The encoding/json-based callback decoders this package used before the
// jscan readers of callbacks.go, kept as the reference for the
// differential fuzz tests: on any input both agree on success, on the
// result, and on the field an error names.

import (
	"errors"
	"reflect"
	"testing"
)

func stdDecodeReceipt(body []byte) (*Receipt, error) {
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

func stdDecodeReply(body []byte) (*Reply, error) {
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

func stdDecodeCallbackResponse(body []byte) (*CallbackResponse, error) {
	var r CallbackResponse
	if err := unmarshalTolerant(body, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// sameOutcome fails t unless got and want agree: both nil errors and equal
// results, or both *FieldError on the same field.
func sameOutcome[T any](t *testing.T, what string, body []byte, got *T, errGot error, want *T, errWant error) {
	t.Helper()
	if (errGot == nil) != (errWant == nil) {
		t.Fatalf("%s %q: new %v, std %v", what, body, errGot, errWant)
	}
	if errGot == nil {
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s %q:\nnew %+v\nstd %+v", what, body, *got, *want)
		}
		return
	}
	var fg, fw *FieldError
	if !errors.As(errGot, &fg) || !errors.As(errWant, &fw) {
		t.Fatalf("%s %q: errors not *FieldError: new %T %v, std %T %v", what, body, errGot, errGot, errWant, errWant)
	}
	if fg.Field != fw.Field {
		t.Fatalf("%s %q: error on %s, std on %s (new %v; std %v)", what, body, fg.Field, fw.Field, errGot, errWant)
	}
}

// callbackSeeds are bodies on the edges of encoding/json's rules.
var callbackSeeds = []string{
	`null`, ` null `, `null,`, `[]`, `"x"`, `1`, `{}`, `{,}`, `{"Name":"x",}`, `{"Name":"x"} {}`, `{"Name":"x"}]`,
	`{"Name":"ROX_API_Receipt","Messages":{"Receipt":{"SMSId":"a",},},}`,
	`{"Name":"ROX_API_Receipt","Messages":{"Receipt":{"SMSId":"a","Result":0,},},}`,
	`{"Name":"ROX_API_Receipt","Messages":{"Receipt":{"SMSId":"a","Result":0}},"x":[,]}`,
	`{"Name":1,"Name":"ROX_API_Receipt","Messages":{"Receipt":{"SMSId":"a"}}}`,
	`{"name":"ROX_API_Receipt","MESSAGES":{"receipt":{"smsid":"a","ſmsid":"b"}}}`,
	`{"Name":"ROX_API_Receipt","Messages":{"Receipt":{"SMSId":"a"}},"Messages":{"RequestId":"r"}}`,
	`{"Name":"ROX_API_Receipt","Messages":{"Receipt":{"SMSId":"a"},"Receipt":null}}`,
	`{"Name":"ROX_API_Receipt","Messages":{"Receipt":{"SMSId":"\ud800\u00e9\/"}},"Version":1e999}`,
	`{"Name":"ROX_API_Receipt","Messages":{"Receipt":{"SMSId":"a"}},"Version":"1.1"}`,
	`{"Name":"ROX_API_Receipt","Messages":{"Receipt":{"SMSId":"a"}},"Version":-0.5e-3,"Sender":{"AccountId":7}}`,
	`{"Name":"ROX_API_Receipt","Messages":{"Receipt":[]}}`,
	`{"Name":"ROX_API_Receipt","Messages":5}`,
	`{"Name":"ROX_API_Receipt","Sender":null,"Messages":{"Receipt":{"SMSId":"a","x":{"y":[1,{}]}}}}`,
	`{"Name":"ROX_API_Reply","Messages":{"Reply":{"SMSId":"a","ReplyText":"STOP","SMSText":null,},}}`,
	`{"Name":"ROX_API_Reply_Response","Messages":{"Reply":{"SMSId":"a","ReplyFrom":61400000000}}}`,
	`{"Name":"ROX_API_Receipt_Response","Version":1.1,"Result":"0000","ResultText":"OK",}`,
	"{\"Name\":\"\xff\xfe\",\"Result\":\"\\u0030000\"}",
}

func FuzzCallbackDecodeDifferential(f *testing.F) {
	for _, name := range []string{"receipt.json", "reply.json", "receipt_response.json", "reply_response.json"} {
		f.Add(readTestdata(f, name))
	}
	for _, s := range callbackSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rc, err := DecodeReceipt(body)
		rcStd, errStd := stdDecodeReceipt(body)
		sameOutcome(t, "receipt", body, rc, err, rcStd, errStd)
		rp, err := DecodeReply(body)
		rpStd, errStd := stdDecodeReply(body)
		sameOutcome(t, "reply", body, rp, err, rpStd, errStd)
		cr, err := DecodeCallbackResponse(body)
		crStd, errStd := stdDecodeCallbackResponse(body)
		sameOutcome(t, "callback response", body, cr, err, crStd, errStd)
	})
}

func BenchmarkDecodeReceipt(b *testing.B) {
	body := readTestdata(b, "receipt.json")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeReceipt(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeReceiptStd(b *testing.B) {
	body := readTestdata(b, "receipt.json")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := stdDecodeReceipt(body); err != nil {
			b.Fatal(err)
		}
	}
}
