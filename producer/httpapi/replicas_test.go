package httpapi

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/internal/redisconn"
	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/internal/testutil"
	"github.com/redoxygen/roxd/producer"
)

// TestSendNotReplicated503 (ROXD_REDIS_MIN_REPLICAS=1): with the replica
// stalled, POST /v1/messages answers 503 not_replicated with Retry-After;
// the same request after the replica is back answers the same message
// (200, a replay), and only one message exists.
func TestSendNotReplicated503(t *testing.T) {
	master := testutil.NewServer(t)
	replica := testutil.NewReplica(t, master)
	rdb := redis.NewClient(&redis.Options{Addr: master.Addr()})
	t.Cleanup(func() { rdb.Close() })
	p, err := producer.New(rdb, producer.Config{Store: store.Config{Prefix: "rep",
		Replicas: redisconn.Replicas{Min: 1, Timeout: 2 * time.Second}}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(p, Config{Token: token}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	b := &bundle{ctx: context.Background(), rdb: rdb, p: p, srv: srv}
	msg := map[string]any{"id": "rep-1", "to": "+61412345678", "text": "hi"}

	if r := b.do(t, "POST", "/v1/messages", map[string]any{"id": "rep-0", "to": "+61412345678", "text": "hi"}); r.code != 202 {
		t.Fatalf("with the replica up: %d %s", r.code, r.raw)
	}
	replica.Pause()
	r := b.do(t, "POST", "/v1/messages", msg)
	if code, _ := r.errField(); r.code != 503 || code != "not_replicated" {
		t.Fatalf("with the replica stalled: %d %s, want 503 not_replicated", r.code, r.raw)
	}
	if ra := r.hdr.Get("Retry-After"); ra != "1" {
		t.Fatalf("Retry-After %q, want 1", ra)
	}
	replica.Resume()
	testutil.Eventually(t, 20*time.Second, func() bool {
		r = b.do(t, "POST", "/v1/messages", msg)
		return r.code != 503
	}, "still 503 after the replica came back")
	if r.code != 200 || r.body["id"] != "rep-1" {
		t.Fatalf("retry: %d %s, want 200 (the same message)", r.code, r.raw)
	}
	if n := rdb.LLen(b.ctx, p.Store().Keys().Ready("now|always|http")).Val(); n != 2 {
		t.Fatalf("%d messages queued, want 2", n)
	}
}
