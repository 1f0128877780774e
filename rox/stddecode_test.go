package rox

// The encoding/json-based decoders this package used before jsonscan.go,
// kept as the reference for the differential fuzz tests.

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

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

// UnmarshalJSON reads control fields and numbered recipients. The keys must
// run "1".."Count" without gaps, and Count must equal their number; errors
// are *FieldError naming the field. It does not validate contents (see
// Validate).
func stdDecodeMessages(data []byte, m *Messages) error {
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

// UnmarshalJSON reads a response's Messages. Results[i] holds key i+1.
// A failed request may carry no Messages at all; that decodes as empty.
func stdDecodeResponseMessages(data []byte, r *ResponseMessages) error {
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

// FuzzMessagesDifferential checks the one-pass readers against the
// encoding/json ones: on any valid JSON object they agree on success and,
// when both succeed, on the result.
func FuzzMessagesDifferential(f *testing.F) {
	for _, name := range []string{"request.json", "response.json"} {
		var doc map[string]json.RawMessage
		if err := json.Unmarshal(readTestdata(f, name), &doc); err != nil {
			f.Fatal(err)
		}
		f.Add([]byte(doc["Messages"]))
	}
	f.Add([]byte(`{"Count":1,"1":{"DestTn":"+1\u0032","desttn":"x"},"count":1}`))
	f.Add([]byte(`{"Count":2,"2":{},"1":null,"Count":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) || hasDuplicateKeys(data) {
			// encoding/json never hands invalid JSON to UnmarshalJSON;
			// only check that the reader does not panic. With duplicate
			// keys, the readers may differ on a wrong-typed earlier
			// duplicate (ours rejects it, a map keeps only the last).
			var m Messages
			_ = m.UnmarshalJSON(data)
			var r ResponseMessages
			_ = r.UnmarshalJSON(data)
			return
		}
		var got, want Messages
		errGot, errWant := got.UnmarshalJSON(data), stdDecodeMessages(data, &want)
		if (errGot == nil) != (errWant == nil) {
			t.Fatalf("request: new %v, std %v", errGot, errWant)
		}
		if errGot == nil && !sameMessages(&got, &want) {
			t.Fatalf("request:\nnew %+v\nstd %+v", got, want)
		}
		var gotR, wantR ResponseMessages
		errGot, errWant = gotR.UnmarshalJSON(data), stdDecodeResponseMessages(data, &wantR)
		if (errGot == nil) != (errWant == nil) {
			t.Fatalf("response: new %v, std %v", errGot, errWant)
		}
		if len(gotR.Results) == 0 && len(wantR.Results) == 0 {
			gotR.Results, wantR.Results = nil, nil
		}
		if errGot == nil && !reflect.DeepEqual(gotR, wantR) {
			t.Fatalf("response:\nnew %+v\nstd %+v", gotR, wantR)
		}
	})
}

func sameMessages(a, b *Messages) bool {
	if !a.SendLater.Equal(b.SendLater) {
		return false
	}
	x, y := *a, *b
	x.SendLater, y.SendLater = time.Time{}, time.Time{}
	if len(x.Recipients) == 0 && len(y.Recipients) == 0 {
		x.Recipients, y.Recipients = nil, nil
	}
	return reflect.DeepEqual(x, y)
}

// hasDuplicateKeys reports whether any object in data (valid JSON) repeats
// a key, compared case-insensitively as encoding/json matches fields.
func hasDuplicateKeys(data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	type frame struct {
		obj    bool
		keys   map[string]bool
		expect bool // next string token in an object is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		isKey := top != nil && top.obj && top.expect
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				if top != nil && top.obj {
					top.expect = true
				}
				stack = append(stack, &frame{obj: v == '{', keys: map[string]bool{}, expect: true})
			case '}', ']':
				stack = stack[:len(stack)-1]
			}
			continue
		case string:
			if isKey {
				k := strings.ToLower(v)
				if top.keys[k] {
					return true
				}
				top.keys[k] = true
				top.expect = false
				continue
			}
		}
		if top != nil && top.obj {
			top.expect = true
		}
	}
}

type stdMessages struct{ m Messages }

func (s *stdMessages) UnmarshalJSON(b []byte) error { return stdDecodeMessages(b, &s.m) }

type stdResponseMessages struct{ m ResponseMessages }

func (s *stdResponseMessages) UnmarshalJSON(b []byte) error {
	return stdDecodeResponseMessages(b, &s.m)
}

// FuzzDecodeDifferential checks DecodeSendRequest and DecodeSendResponse
// against encoding/json on valid JSON without duplicate keys.
func FuzzDecodeDifferential(f *testing.F) {
	f.Add(readTestdata(f, "request.json"))
	f.Add(readTestdata(f, "response.json"))
	f.Add([]byte(`{"name":"x","VERSION":1e0,"Sender":null,"Messages":{"Count":0}}`))
	f.Add([]byte(`{"Name":"x","Foo":[1,{"a":[],},],"Messages":{"Count":1,"1":{"DestTn":"\u00e9\ud800",},},}`))
	f.Add([]byte(`{"Version":-0.5e-3,"Foo":[true,false,null,"\/"],"Bar":{,}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		// The oracle reads the body with trailing commas removed.
		std := data
		if !json.Valid(std) {
			std, _ = stripTrailingCommas(data)
		}
		if !json.Valid(std) {
			// Invalid even without trailing commas: both must refuse it.
			if r, err := DecodeSendRequest(data); err == nil {
				t.Fatalf("request: accepted invalid JSON: %+v", r)
			}
			if r, err := DecodeSendResponse(data); err == nil {
				t.Fatalf("response: accepted invalid JSON: %+v", r)
			}
			return
		}
		if hasDuplicateKeys(std) || bytes.Equal(bytes.TrimSpace(std), []byte("null")) {
			// encoding/json accepts a null body as an empty struct; we do
			// not. Duplicates: see FuzzMessagesDifferential.
			_, _ = DecodeSendRequest(data)
			_, _ = DecodeSendResponse(data)
			return
		}
		var want struct {
			Name     string
			Version  float64
			Product  string
			Sender   Sender
			Messages stdMessages
		}
		got, errGot := DecodeSendRequest(data)
		errWant := json.Unmarshal(std, &want)
		if (errGot == nil) != (errWant == nil) {
			t.Fatalf("request: new %v, std %v", errGot, errWant)
		}
		if errGot == nil {
			w := SendRequest{Name: want.Name, Version: want.Version, Product: want.Product, Sender: want.Sender, Messages: want.Messages.m}
			if got.Name != w.Name || got.Version != w.Version || got.Product != w.Product || got.Sender != w.Sender ||
				!sameMessages(&got.Messages, &w.Messages) {
				t.Fatalf("request:\nnew %#v\nstd %#v", got, w)
			}
		}
		var wantR struct {
			Name       string
			Version    float64
			Result     Code
			ResultText string
			Messages   stdResponseMessages
		}
		gotR, errGot := DecodeSendResponse(data)
		errWant = json.Unmarshal(std, &wantR)
		if (errGot == nil) != (errWant == nil) {
			t.Fatalf("response: new %v, std %v", errGot, errWant)
		}
		if errGot == nil {
			w := SendResponse{Name: wantR.Name, Version: wantR.Version, Result: wantR.Result, ResultText: wantR.ResultText, Messages: wantR.Messages.m}
			if len(w.Messages.Results) == 0 && len(gotR.Messages.Results) == 0 {
				w.Messages.Results, gotR.Messages.Results = nil, nil
			}
			if !reflect.DeepEqual(*gotR, w) {
				t.Fatalf("response:\nnew %#v\nstd %#v", *gotR, w)
			}
		}
	})
}

// stdEncodeMessages is the encoding/json-per-recipient encoder this package
// used first; the reference for TestEncoderMatchesStd and the baseline of
// the *Std benchmarks.
func stdEncodeMessages(m *Messages) ([]byte, error) {
	ctl := struct {
		ReceiptFlag        ReceiptFlag
		ReceiptCallbackURL string    `json:",omitempty"`
		ReplyType          ReplyType `json:",omitempty"`
		ReplyCallbackURL   string    `json:",omitempty"`
		TimeZoneOffset     int
		SendLater          string `json:",omitempty"`
		Count              int
		GlobalText         string `json:",omitempty"`
	}{m.ReceiptFlag, m.ReceiptCallbackURL, m.ReplyType, m.ReplyCallbackURL, m.TimeZoneOffset, "", len(m.Recipients), m.GlobalText}
	if !m.SendLater.IsZero() {
		ctl.SendLater = FormatSendLater(m.SendLater, m.TimeZoneOffset)
	}
	b, err := json.Marshal(ctl)
	if err != nil {
		return nil, err
	}
	b = b[:len(b)-1]
	for i := range m.Recipients {
		r, err := json.Marshal(&m.Recipients[i])
		if err != nil {
			return nil, err
		}
		b = append(b, `,"`...)
		b = strconv.AppendInt(b, int64(i+1), 10)
		b = append(b, `":`...)
		b = append(b, r...)
	}
	return append(b, '}'), nil
}

func TestEncoderMatchesStd(t *testing.T) {
	r := request500()
	r.Messages.Recipients[7].SMSText = "<&> \u2028 \x01 \xff é"
	r.Messages.GlobalText = "global \"quoted\""
	got, err := r.Messages.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want, err := stdEncodeMessages(&r.Messages)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encoder differs from encoding/json:\n got %.300s\nwant %.300s", got, want)
	}
}

func BenchmarkEncodeRequest500Std(b *testing.B) {
	r := request500()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := stdEncodeMessages(&r.Messages); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeRequest500Std(b *testing.B) {
	body, err := EncodeSendRequest(request500())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var v struct {
			Name     string
			Version  float64
			Product  string
			Sender   Sender
			Messages stdMessages
		}
		if err := json.Unmarshal(body, &v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeResponse500Std(b *testing.B) {
	body, err := EncodeSendResponse(response500())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var v struct {
			Name       string
			Version    float64
			Result     Code
			ResultText string
			Messages   stdResponseMessages
		}
		if err := json.Unmarshal(body, &v); err != nil {
			b.Fatal(err)
		}
	}
}
