package callbacks

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/rox"
)

// fuzzReceiver is a Receiver for the decode path only: no Redis is used.
func fuzzReceiver(t testing.TB) *Receiver {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { rdb.Close() })
	r, err := New(Config{Token: testToken, AccountID: testAccount}, rdb, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var fuzzNow = time.Date(2031, 2, 3, 4, 5, 6, 0, time.UTC)

// checkEvent holds for every event the receiver would store or spool.
func checkEvent(t *testing.T, r *Receiver, kind string, body []byte, ev *event) {
	t.Helper()
	if ev.Kind != kind {
		t.Fatalf("kind %q, want %q", ev.Kind, kind)
	}
	if b, err := hex.DecodeString(ev.EventID); err != nil || len(b) != 16 {
		t.Fatalf("event id %q is not 32 hex digits", ev.EventID)
	}
	if _, err := time.Parse(time.RFC3339, ev.Timestamp); err != nil || !strings.HasSuffix(ev.Timestamp, "Z") {
		t.Fatalf("timestamp %q is not RFC 3339 UTC", ev.Timestamp)
	}
	if ev.SMSID == "" {
		t.Fatal("accepted without an SMSId")
	}
	switch kind {
	case KindReceipt:
		if want := receiptStatus(rox.Code(ev.Result)); ev.Status != want {
			t.Fatalf("status %q for result %q, want %q", ev.Status, ev.Result, want)
		}
		if (ev.Status == StatusDelivered) != (strings.TrimSpace(ev.Result) == "0000") {
			t.Fatalf("status %q for result %q", ev.Status, ev.Result)
		}
	case KindReply:
		if ev.OptOut != "" && ev.OptOut != KeywordStop && ev.OptOut != KeywordStart {
			t.Fatalf("opt-out %q", ev.OptOut)
		}
	}
	// Deterministic: ROX calling twice gives the same event id.
	again, _, err := r.decode(kind, body, fuzzNow.Add(time.Hour))
	if err != nil || again.EventID != ev.EventID {
		t.Fatalf("second decode: %v, id %q vs %q", err, again.EventID, ev.EventID)
	}
	// The spool's JSON line reads back to the same event.
	line, err := json.Marshal(ev)
	if err != nil {
		t.Fatalf("spool encode: %v", err)
	}
	var back event
	if err := json.Unmarshal(line, &back); err != nil || !reflect.DeepEqual(&back, ev) {
		t.Fatalf("spool round trip: %v\n%+v\n%+v", err, back, *ev)
	}
	keys, argv := r.st.scriptArgs(ev)
	names := receiptFields
	if kind == KindReply {
		names = replyFields
	}
	if len(keys) != 2 || len(argv) != scriptFixedArgs+len(names) {
		t.Fatalf("script args: %d keys, %d argv", len(keys), len(argv))
	}
}

func FuzzReceiptDecode(f *testing.F) {
	f.Add([]byte(receiptBody(testAccount, "123e4567-e89b-12d3-a456-426614174001", "0000", ts1)))
	f.Add([]byte(receiptBody(testAccount, "x", "2015", "garbage")))
	f.Add([]byte(`{"Name":"ROX_API_Receipt","Version":1.1,"Sender":{"AccountId":"CI00000001",},"Messages":{"RequestId":"r","Receipt":{"SMSId":"s","Result":"0000","Timestamp":"01-Jan-2030 00:00:01 (UTC)",},},}`))
	f.Add([]byte(`{"Name":"ROX_API_Receipt","Messages":{"Receipt":{"SMSId":"\u0000\"","Result":5}}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(``))
	r := fuzzReceiver(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, _, err := r.decode(KindReceipt, body, fuzzNow)
		if err != nil {
			if ev != nil {
				t.Fatal("event and error")
			}
			return
		}
		checkEvent(t, r, KindReceipt, body, ev)
	})
}

func FuzzReplyDecode(f *testing.F) {
	f.Add([]byte(replyBody("ROX_API_Reply_Response", testAccount, "123e4567-e89b-12d3-a456-426614174001", "+61407555001", "Thanks No Problem", ts1)))
	f.Add([]byte(replyBody("ROX_API_Reply", testAccount, "s", "61407555001", " STOP ", ts1)))
	f.Add([]byte(replyBody("ROX_API_Reply", testAccount, "s", "+61 407", "unstop", "")))
	f.Add([]byte(`{"Name":"ROX_API_Reply","Messages":{"Reply":{"SMSId":"s","ReplyText":"\ud800"}}}`))
	f.Add([]byte(`{"Name":"ROX_API_Reply_Response",,}`))
	r := fuzzReceiver(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, _, err := r.decode(KindReply, body, fuzzNow)
		if err != nil {
			if ev != nil {
				t.Fatal("event and error")
			}
			return
		}
		checkEvent(t, r, KindReply, body, ev)
		if ev.OptOut != "" && ev.OptOut != ev.Keyword {
			t.Fatalf("opt-out %q for keyword %q", ev.OptOut, ev.Keyword)
		}
		if n := ev.OptOutNumber; n != "" && (ev.OptOut == "" || n[0] != '+' || strings.Trim(n[1:], "0123456789") != "") {
			t.Fatalf("opt-out number %q (action %q) is not E.164", n, ev.OptOut)
		}
	})
}

// FuzzRoute: only the exact token opens the door, whatever the path.
func FuzzRoute(f *testing.F) {
	for _, p := range []string{"/rox/" + testToken + "/receipt", "/rox/" + testToken + "/reply", "/rox//receipt",
		"/rox/" + testToken + "x/reply", "/rox/a/b/" + testToken + "/reply", "/", "/rox/"} {
		f.Add(p)
	}
	r := fuzzReceiver(f)
	f.Fuzz(func(t *testing.T, path string) {
		kind, ok := r.route(path)
		want := path == "/rox/"+testToken+"/receipt" || path == "/rox/"+testToken+"/reply"
		if ok != want {
			t.Fatalf("route(%q) ok=%v, want %v", path, ok, want)
		}
		if ok && !strings.HasSuffix(path, "/"+kind) {
			t.Fatalf("route(%q) kind %q", path, kind)
		}
	})
}

// BenchmarkDecodeReceipt is the receiver's CPU per receipt before Redis:
// decode, event id, timestamp, script arguments.
func BenchmarkDecodeReceipt(b *testing.B) {
	r := fuzzReceiver(b)
	body := []byte(receiptBody(testAccount, "123e4567-e89b-12d3-a456-426614174001", "0000", ts1))
	b.ReportAllocs()
	for b.Loop() {
		ev, _, err := r.decode(KindReceipt, body, fuzzNow)
		if err != nil {
			b.Fatal(err)
		}
		r.st.scriptArgs(ev)
	}
}

// fuzzHandler posts bodies through the whole handler against the test
// Redis: the answer is 200 with the right "0000" body (and at most one new
// entry), or 400/403/413 with nothing stored.
func fuzzHandler(f *testing.F, kind string) {
	b := setup(f, nil, nil)
	stream := b.cfg.ReceiptsStream
	if kind == KindReply {
		stream = b.cfg.RepliesStream
	}
	h := b.recv.Handler()
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, body []byte) {
		before := b.rdb.XLen(ctx, stream).Val()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/rox/"+testToken+"/"+kind, bytes.NewReader(body)))
		after := b.rdb.XLen(ctx, stream).Val()
		switch rec.Code {
		case http.StatusOK:
			checkAnswer(t, kind, rec.Body.String())
			if after-before > 1 {
				t.Fatalf("%d entries for one callback", after-before)
			}
		case http.StatusBadRequest, http.StatusForbidden, http.StatusRequestEntityTooLarge:
			if after != before {
				t.Fatalf("answered %d but stored %d entries", rec.Code, after-before)
			}
			// Every refusal is a JSON ROX_API_*_Response, Result not 0000.
			r, err := rox.DecodeCallbackResponse(rec.Body.Bytes())
			if err != nil || r.Name != answerName(kind) || r.Result == rox.CodeOK || r.Result == "" || r.ResultText == "" ||
				!strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
				t.Fatalf("refusal %d %q (%s): %+v %v", rec.Code, rec.Body.String(), rec.Header().Get("Content-Type"), r, err)
			}
		default:
			t.Fatalf("answered %d: %s", rec.Code, rec.Body.String())
		}
	})
}

func FuzzReceiptHandler(f *testing.F) {
	f.Add([]byte(receiptBody(testAccount, "123e4567-e89b-12d3-a456-426614174001", "0000", ts1)))
	f.Add([]byte(receiptBody("CI99999999", "s", "2015", ts1)))
	f.Add([]byte(`{"Name":"ROX_API_Receipt","Sender":{"AccountId":"CI00000001"},"Messages":{"Receipt":{"SMSId":"s",},},}`))
	f.Add([]byte(`{"Name":"ROX_API_Reply"}`))
	fuzzHandler(f, KindReceipt)
}

func FuzzReplyHandler(f *testing.F) {
	f.Add([]byte(replyBody("ROX_API_Reply_Response", testAccount, "s", "+61407555001", "STOP", ts1)))
	f.Add([]byte(replyBody("ROX_API_Reply", testAccount, "s", "+61407555001", "hello", "")))
	f.Add([]byte(`{"Name":"ROX_API_Reply","Sender":{"AccountId":"ci00000001 "},"Messages":{"Reply":{"SMSId":"x"}}}`))
	fuzzHandler(f, KindReply)
}
