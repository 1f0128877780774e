package rox

import (
	"bytes"
	"encoding/json"
	"testing"
)

// The fuzz targets check that no decoder of outside input panics, and that
// whatever decodes re-encodes stably: decode → encode → decode → encode
// gives the same bytes twice.

func addSeeds(f *testing.F, files ...string) {
	for _, name := range files {
		f.Add(readTestdata(f, name))
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"Messages":{"Count":1,"1":{}},}`))
	f.Add([]byte(`{"Messages":null}`))
	f.Add([]byte(`[,]`))
}

func FuzzDecodeSendRequest(f *testing.F) {
	addSeeds(f, "request.json", "request.golden.json")
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := DecodeSendRequest(body)
		if err != nil {
			return
		}
		_ = r.Validate()
		b1, err := EncodeSendRequest(r)
		if err != nil {
			return // e.g. a Version json.Marshal would refuse too
		}
		if !json.Valid(b1) {
			t.Fatalf("invalid JSON encoded: %s", b1)
		}
		r2, err := DecodeSendRequest(b1)
		if err != nil {
			t.Fatalf("re-decode: %v\n%s", err, b1)
		}
		b2, err := EncodeSendRequest(r2)
		if err != nil || !bytes.Equal(b1, b2) {
			t.Fatalf("unstable: %v\n%s\n%s", err, b1, b2)
		}
	})
}

func FuzzDecodeSendResponse(f *testing.F) {
	addSeeds(f, "response.json")
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := DecodeSendResponse(body)
		if err != nil {
			return
		}
		b1, err := EncodeSendResponse(r)
		if err != nil {
			return
		}
		if !json.Valid(b1) {
			t.Fatalf("invalid JSON encoded: %s", b1)
		}
		r2, err := DecodeSendResponse(b1)
		if err != nil {
			t.Fatalf("re-decode: %v\n%s", err, b1)
		}
		b2, err := EncodeSendResponse(r2)
		if err != nil || !bytes.Equal(b1, b2) {
			t.Fatalf("unstable: %v\n%s\n%s", err, b1, b2)
		}
	})
}

func FuzzDecodeReceipt(f *testing.F) {
	addSeeds(f, "receipt.json", "receipt_response.json")
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := DecodeReceipt(body)
		if err != nil {
			return
		}
		b1, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := DecodeReceipt(b1)
		if err != nil {
			t.Fatalf("re-decode: %v\n%s", err, b1)
		}
		if *r2 != *r {
			t.Fatalf("unstable:\n%+v\n%+v", r, r2)
		}
	})
}

func FuzzDecodeReply(f *testing.F) {
	addSeeds(f, "reply.json", "reply_response.json")
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := DecodeReply(body)
		if err != nil {
			return
		}
		b1, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := DecodeReply(b1)
		if err != nil {
			t.Fatalf("re-decode: %v\n%s", err, b1)
		}
		if *r2 != *r {
			t.Fatalf("unstable:\n%+v\n%+v", r, r2)
		}
	})
}

func FuzzDecodeCallbackResponse(f *testing.F) {
	addSeeds(f, "receipt_response.json", "reply_response.json")
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := DecodeCallbackResponse(body)
		if err != nil {
			return
		}
		b1, err := json.Marshal(r)
		if err != nil {
			return // NaN cannot come out of JSON, but be safe
		}
		r2, err := DecodeCallbackResponse(b1)
		if err != nil || *r2 != *r {
			t.Fatalf("unstable: %v\n%+v\n%+v", err, r, r2)
		}
	})
}
