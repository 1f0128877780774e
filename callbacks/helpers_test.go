package callbacks

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/internal/testutil"
	"github.com/redoxygen/roxd/rox"
)

const (
	testToken   = "tok-3f9a1c2b5d7e"
	testAccount = "CI00000001"
)

// bundle is what each test works with.
type bundle struct {
	rdb  redis.UniversalClient
	recv *Receiver
	srv  *httptest.Server
	cfg  Config
	keys store.Keys
	stop func() // stops the server and Run; idempotent
}

// setup starts a Receiver on its own prefix and streams against rdb (the
// test Redis when nil), served by an httptest server, both stopped when the
// test ends.
func setup(t testing.TB, rdb redis.UniversalClient, mod func(*Config)) *bundle {
	t.Helper()
	if rdb == nil {
		rdb = testutil.Redis(t)
	}
	cfg := Config{
		Prefix:         testutil.Name("cb"),
		Token:          testToken,
		AccountID:      testAccount,
		ReceiptsStream: testutil.Name("receipts"),
		RepliesStream:  testutil.Name("replies"),
		SpoolDir:       t.TempDir(),
		StoreTimeout:   300 * time.Millisecond,
		ReplayInterval: 200 * time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	b := startReceiver(t, rdb, cfg)
	t.Cleanup(func() { cleanupKeys(rdb, b.cfg) })
	return b
}

func startReceiver(t testing.TB, rdb redis.UniversalClient, cfg Config) *bundle {
	t.Helper()
	recv, err := New(cfg, rdb, testLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- recv.Run(ctx) }()
	srv := httptest.NewServer(recv.Handler())
	var once sync.Once
	stop := func() {
		once.Do(func() {
			srv.Close()
			cancel()
			if err := <-runErr; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return &bundle{rdb: rdb, recv: recv, srv: srv, cfg: recv.cfg, keys: store.NewKeys(cfg.Prefix), stop: stop}
}

func cleanupKeys(rdb redis.UniversalClient, cfg Config) {
	ctx := context.Background()
	var keys []string
	iter := rdb.Scan(ctx, 0, "{"+cfg.Prefix+"}:*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	keys = append(keys, cfg.ReceiptsStream, cfg.RepliesStream)
	for _, k := range keys {
		rdb.Del(ctx, k)
	}
}

func (b *bundle) url(kind string) string { return b.srv.URL + "/rox/" + testToken + "/" + kind }

// post sends body and returns the status and the answer body.
func (b *bundle) post(t testing.TB, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// mustOK posts a callback and checks the answer is the right "0000".
func (b *bundle) mustOK(t testing.TB, kind, body string) {
	t.Helper()
	code, out := b.post(t, b.url(kind), body)
	if code != http.StatusOK {
		t.Fatalf("POST %s: status %d: %s", kind, code, out)
	}
	checkAnswer(t, kind, out)
}

func checkAnswer(t testing.TB, kind, out string) {
	t.Helper()
	resp, err := rox.DecodeCallbackResponse([]byte(out))
	if err != nil {
		t.Fatalf("answer %q: %v", out, err)
	}
	want := rox.NameReceiptResponse
	if kind == KindReply {
		want = rox.NameReplyResponse
	}
	if resp.Name != want || resp.Result != rox.CodeOK {
		t.Fatalf("answer %+v, want Name %s Result 0000", resp, want)
	}
}

func receiptBody(account, smsID, result, ts string) string {
	text := "Delivered"
	if result != "0000" {
		text = "Handset unreachable"
	}
	return fmt.Sprintf(`{
  "Name": "ROX_API_Receipt",
  "Version": 1.1,
  "Sender": {"AccountId": %q, "Username": "user@your_domain.com"},
  "Messages": {
    "RequestId": "req-1",
    "Receipt": {"SMSId": %q, "DestTn": "+61407555001", "Result": %q, "ResultText": %q, "Timestamp": %q}
  }
}`, account, smsID, result, text, ts)
}

func replyBody(name, account, smsID, from, text, ts string) string {
	return fmt.Sprintf(`{
  "Name": %q,
  "Version": 1.1,
  "Sender": {"AccountId": %q, "Username": "user@your_domain.com"},
  "Messages": {
    "RequestId": "req-1",
    "Reply": {"SMSId": %q, "ReplyFrom": %q, "ReplyText": %q, "SMSText": "Where the last SMS you sent was: ...", "Timestamp": %q,}
  },
}`, name, account, smsID, from, text, ts)
}

const ts1 = "01-Jan-2030 00:00:01 (UTC)"

// record writes a message record and its SMSId map as the worker does.
func (b *bundle) record(t testing.TB, msgID, smsID, status string, meta map[string]string) {
	t.Helper()
	ctx := context.Background()
	mj, _ := json.Marshal(meta)
	if err := b.rdb.HSet(ctx, b.keys.Msg(msgID), "to", "+61407555001", "text", "hi", "meta", string(mj),
		"status", status, "sms_id", smsID, "request_id", "req-1", "t_"+status, "1").Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.rdb.Set(ctx, b.keys.SMS(smsID), msgID, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
}

func (b *bundle) entries(t testing.TB, stream string) []redis.XMessage {
	t.Helper()
	msgs, err := b.rdb.XRange(context.Background(), stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

func (b *bundle) status(t testing.TB, msgID string) map[string]string {
	t.Helper()
	m, err := b.rdb.HGetAll(context.Background(), b.keys.Msg(msgID)).Result()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func testLogger(t testing.TB) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
}
