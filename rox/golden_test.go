package rox

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The document's request example, with "..." removed and its 500th entry
// renumbered "3" (Count 3).
func TestGoldenDecodeRequest(t *testing.T) {
	r, err := DecodeSendRequest(readTestdata(t, "request.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Validate(); err != nil {
		t.Fatalf("document example does not validate: %v", err)
	}
	m := r.Messages
	want := Sender{AccountID: "CI00000001", Username: "user@your_domain.com", Password: "myPassword"}
	if r.Name != NameRequest || r.Version != 1.1 || r.Product != "YourProductName" || r.Sender != want {
		t.Fatalf("header: %+v", r)
	}
	if m.ReceiptFlag != ReceiptAlways || m.ReceiptCallbackURL != "http://www.your_domain.com/Receipt" ||
		m.ReplyType != ReplyHTTP || m.ReplyCallbackURL != "http://www.your_domain.com/Reply" ||
		m.TimeZoneOffset != -600 || m.Count != 3 || len(m.Recipients) != 3 ||
		m.GlobalText != "When the same message text is to be sent to all recipients" {
		t.Fatalf("control fields: %+v", m)
	}
	// "01-Jan-2030 00:00:01" at UTC+10:00 is 14:00:01 UTC the day before.
	if wantT := time.Date(2029, 12, 31, 14, 0, 1, 0, time.UTC); !m.SendLater.Equal(wantT) {
		t.Fatalf("SendLater = %v, want %v", m.SendLater, wantT)
	}
	last := m.Recipients[2]
	if last.DestTn != "+61407555500" || last.DestName != "MyFiveHundredthCustomersName" ||
		last.DestEmail != "MyFiveHundredthCustomersEmail" ||
		last.SMSText != "When you wish to taylor individual messages to each recipient." {
		t.Fatalf("recipient 3: %+v", last)
	}
}

// Encoding is byte-for-byte stable: control fields in document order, then
// "1".."N".
func TestGoldenEncodeRequest(t *testing.T) {
	r, err := DecodeSendRequest(readTestdata(t, "request.json"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := EncodeSendRequest(r)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "request.golden.json")
	if *update {
		if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := bytes.TrimSuffix(readTestdata(t, "request.golden.json"), []byte("\n"))
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding differs from %s:\n got %s\nwant %s", golden, got, want)
	}
	// The golden file is the document's example, compacted.
	var doc bytes.Buffer
	if err := json.Compact(&doc, readTestdata(t, "request.json")); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, doc.Bytes()) {
		t.Fatalf("encoding differs from the compacted document example:\n got %s\nwant %s", got, doc.Bytes())
	}
	// json.Marshal goes through the same encoder.
	viaJSON, err := json.Marshal(r)
	if err != nil || !bytes.Equal(viaJSON, got) {
		t.Fatalf("json.Marshal = %s, %v", viaJSON, err)
	}
}

func TestGoldenResponse(t *testing.T) {
	raw := readTestdata(t, "response.json")
	r, err := DecodeSendResponse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != NameResponse || r.Version != 1.1 || r.Result != CodeOK || r.ResultText != "Success" {
		t.Fatalf("header: %+v", r)
	}
	m := r.Messages
	if m.Count != 3 || m.RequestID != "123e4567-e89b-12d3-a456-426614174000" || len(m.Results) != 3 {
		t.Fatalf("messages: %+v", m)
	}
	// The document's last entry repeats entry 2's DestTn and uses the
	// RequestId as SMSId: results are mapped by key, not by DestTn.
	if m.Results[2].DestTn != m.Results[1].DestTn || m.Results[2].SMSID != m.RequestID {
		t.Fatalf("entry 3 not read by key: %+v", m.Results[2])
	}
	want := RecipientResult{SMSID: "123e4567-e89b-12d3-a456-426614174001", DestTn: "+61407555001",
		Result: CodeOK, ResultText: "Queued", Timestamp: "01-Jan-2030 00:00:01 (UTC)"}
	if m.Results[0] != want {
		t.Fatalf("entry 1 = %+v", m.Results[0])
	}
	ts, err := ParseTimestamp(m.Results[0].Timestamp)
	if err != nil || !ts.Equal(time.Date(2030, 1, 1, 0, 0, 1, 0, time.UTC)) {
		t.Fatalf("ParseTimestamp = %v, %v", ts, err)
	}
	if FormatTimestamp(ts) != m.Results[0].Timestamp {
		t.Fatalf("FormatTimestamp = %q", FormatTimestamp(ts))
	}
	got, err := EncodeSendResponse(r)
	if err != nil {
		t.Fatal(err)
	}
	var doc bytes.Buffer
	if err := json.Compact(&doc, raw); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, doc.Bytes()) {
		t.Fatalf("response encoding:\n got %s\nwant %s", got, doc.Bytes())
	}
}

func TestGoldenReceipt(t *testing.T) {
	r, err := DecodeReceipt(readTestdata(t, "receipt.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := Receipt{Name: NameReceipt, Version: 1.1,
		Sender: CallbackSender{AccountID: "CI00000001", Username: "user@your_domain.com"},
		Messages: ReceiptMessages{RequestID: "123e4567-e89b-12d3-a456-426614174000",
			Receipt: ReceiptDetail{SMSID: "123e4567-e89b-12d3-a456-426614174001", DestTn: "+61407555001",
				Result: CodeOK, ResultText: "Delivered", Timestamp: "01-Jan-2030 00:00:01 (UTC)"}}}
	if *r != want {
		t.Fatalf("receipt = %+v", *r)
	}
}

func TestGoldenReply(t *testing.T) {
	r, err := DecodeReply(readTestdata(t, "reply.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := Reply{Name: NameReplyResponse, Version: 1.1,
		Sender: CallbackSender{AccountID: "CI00000001", Username: "user@your_domain.com"},
		Messages: ReplyMessages{RequestID: "123e4567-e89b-12d3-a456-426614174000",
			Reply: ReplyDetail{SMSID: "123e4567-e89b-12d3-a456-426614174001", ReplyFrom: "+61407555001",
				ReplyText: "Thanks No Problem", SMSText: "Where the last SMS you sent was: ...",
				Timestamp: "01-Jan-2030 00:00:01 (UTC)"}}}
	if *r != want {
		t.Fatalf("reply = %+v", *r)
	}
}

// The document's callback answers end in a trailing comma; we read them,
// and our own answers are valid JSON with the same fields.
func TestGoldenCallbackResponses(t *testing.T) {
	for _, tt := range []struct {
		file string
		ours CallbackResponse
	}{
		{"receipt_response.json", ReceiptResponse()},
		{"reply_response.json", ReplyResponse()},
	} {
		raw := readTestdata(t, tt.file)
		if json.Valid(raw) {
			t.Fatalf("%s: expected the document's trailing comma", tt.file)
		}
		doc, err := DecodeCallbackResponse(raw)
		if err != nil {
			t.Fatalf("%s: %v", tt.file, err)
		}
		if *doc != tt.ours {
			t.Fatalf("%s: document %+v, ours %+v", tt.file, *doc, tt.ours)
		}
		b, err := json.Marshal(tt.ours)
		if err != nil || !json.Valid(b) {
			t.Fatalf("our answer: %s %v", b, err)
		}
		if !strings.Contains(string(b), `"Result":"0000"`) || !strings.Contains(string(b), `"Version":1.1`) {
			t.Fatalf("our answer: %s", b)
		}
	}
}

func TestSendLaterTimeZoneOffset(t *testing.T) {
	aest := time.FixedZone("AEST", 10*3600)
	nst := time.FixedZone("NST", -(3*3600 + 30*60))
	tests := []struct {
		name   string
		at     time.Time
		offset int
		wire   string
	}{
		{"UTC+10 (-600)", time.Date(2030, 1, 1, 0, 0, 1, 0, aest), -600, "01-Jan-2030 00:00:01"},
		{"UTC instant, -600 on the wire", time.Date(2029, 12, 31, 14, 0, 1, 0, time.UTC), -600, "01-Jan-2030 00:00:01"},
		{"UTC (0)", time.Date(2030, 6, 15, 23, 59, 59, 0, time.UTC), 0, "15-Jun-2030 23:59:59"},
		{"UTC-03:30 (210)", time.Date(2030, 2, 28, 22, 0, 0, 0, nst), 210, "28-Feb-2030 22:00:00"},
		{"sub-second truncated", time.Date(2030, 1, 1, 0, 0, 1, 999e6, time.UTC), 0, "01-Jan-2030 00:00:01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FormatSendLater(tt.at, tt.offset); got != tt.wire {
				t.Fatalf("FormatSendLater = %q, want %q", got, tt.wire)
			}
			back, err := ParseSendLater(tt.wire, tt.offset)
			if err != nil || !back.Equal(tt.at.Truncate(time.Second)) {
				t.Fatalf("ParseSendLater = %v, %v; want %v", back, err, tt.at)
			}
			m := Messages{SendLater: tt.at, TimeZoneOffset: tt.offset,
				Recipients: []Recipient{{DestTn: "+61407555001", SMSText: "x"}}}
			b, err := json.Marshal(m)
			if err != nil || !strings.Contains(string(b), `"SendLater":"`+tt.wire+`"`) {
				t.Fatalf("encoded %s, %v", b, err)
			}
			var out Messages
			if err := json.Unmarshal(b, &out); err != nil {
				t.Fatal(err)
			}
			if !out.SendLater.Equal(tt.at.Truncate(time.Second)) || out.TimeZoneOffset != tt.offset {
				t.Fatalf("round trip: %v %d", out.SendLater, out.TimeZoneOffset)
			}
		})
	}
	if got := TimeZoneOffsetOf(time.Date(2030, 1, 1, 0, 0, 0, 0, aest)); got != -600 {
		t.Fatalf("TimeZoneOffsetOf(UTC+10) = %d, want -600", got)
	}
	if got := TimeZoneOffsetOf(time.Date(2030, 1, 1, 0, 0, 0, 0, nst)); got != 210 {
		t.Fatalf("TimeZoneOffsetOf(UTC-03:30) = %d, want 210", got)
	}
}
