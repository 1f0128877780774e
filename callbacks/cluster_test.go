package callbacks

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/internal/redisconn"
	"github.com/redoxygen/roxd/internal/testutil"
)

// clusterClient connects to the test Redis Cluster (TEST_REDIS_CLUSTER_URL).
func clusterClient(t testing.TB) redis.UniversalClient {
	t.Helper()
	c, err := redisconn.Parse(testutil.RedisClusterURL(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := c.Client()
	t.Cleanup(func() { _ = rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping cluster: %v", err)
	}
	return rdb
}

// On a real 3-master cluster with the default stream names (other slots
// than {P}), receipts and replies reach their streams once each: posted
// twice, replayed from the outbox, with the message's id and metadata.
func TestClusterStreamsInOtherSlots(t *testing.T) {
	rdb := clusterClient(t)
	ctx := context.Background()
	b := setup(t, rdb, func(c *Config) {
		c.ReceiptsStream, c.RepliesStream = "rox:receipts:"+testutil.Name("r"), "rox:replies:"+testutil.Name("p")
	})
	if !b.recv.st.split {
		t.Fatalf("streams %s, %s and prefix %s: expected the outbox path on a cluster", b.cfg.ReceiptsStream, b.cfg.RepliesStream, b.keys.Base())
	}
	if redisconn.Slot(b.cfg.ReceiptsStream) == redisconn.Slot(b.keys.Base()) {
		t.Skip("random names share a slot; rerun")
	}
	b.record(t, "m1", "sms-c1", "submitted", map[string]string{"order": "7"})
	b.mustOK(t, KindReceipt, receiptBody(testAccount, "sms-c1", "0000", ts1))
	b.mustOK(t, KindReceipt, receiptBody(testAccount, "sms-c1", "0000", ts1)) // ROX posts again
	b.mustOK(t, KindReply, replyBody("ROX_API_Reply", testAccount, "sms-c1", "+61407555001", "STOP", ts1))
	rec := b.entries(t, b.cfg.ReceiptsStream)
	if len(rec) != 1 || rec[0].Values["message_id"] != "m1" || rec[0].Values["status_after"] != "delivered" ||
		!strings.Contains(rec[0].Values["metadata"].(string), `"order":"7"`) {
		t.Fatalf("receipt entries %v", rec)
	}
	rep := b.entries(t, b.cfg.RepliesStream)
	if len(rep) != 1 || rep[0].Values["message_id"] != "m1" || rep[0].Values["optout"] != "stop" {
		t.Fatalf("reply entries %v", rep)
	}
	if s := b.status(t, "m1")["status"]; s != "delivered" {
		t.Fatalf("status %s", s)
	}
	if n := rdb.HLen(ctx, b.recv.st.outbox).Val(); n != 0 {
		t.Fatalf("outbox holds %d entries after the pushes", n)
	}
	if r := b.recv.Unready(); r != "" {
		t.Fatalf("Unready = %q", r)
	}

	// A push Redis refuses (the stream key has the wrong type): the
	// callback is stored (answered 0000, record moved), its entry waits in
	// the outbox, /readyz's reason is set; once the key is fixed the drain
	// pushes it and the next store clears the reason.
	bad := b.cfg.ReceiptsStream
	rdb.Del(ctx, bad)
	rdb.Set(ctx, bad, "not a stream", time.Hour)
	b.record(t, "m2", "sms-c2", "submitted", nil)
	b.mustOK(t, KindReceipt, receiptBody(testAccount, "sms-c2", "2011", ts1))
	if s := b.status(t, "m2")["status"]; s != "failed" {
		t.Fatalf("m2 status %s after a refused push, want failed (stored)", s)
	}
	if r := b.recv.Unready(); !strings.Contains(r, "WRONGTYPE") {
		t.Fatalf("Unready = %q after a refused push, want WRONGTYPE", r)
	}
	if n := rdb.HLen(ctx, b.recv.st.outbox).Val(); n != 1 {
		t.Fatalf("outbox holds %d entries, want 1", n)
	}
	rdb.Del(ctx, bad)
	testutil.Eventually(t, 3*(outboxGrace+outboxInterval), func() bool {
		return rdb.XLen(ctx, bad).Val() == 1 && rdb.HLen(ctx, b.recv.st.outbox).Val() == 0
	}, "the outbox was not drained into the stream")
	if e := b.entries(t, bad); e[0].Values["message_id"] != "m2" || e[0].Values["status"] != "failed" {
		t.Fatalf("drained entry %v", e[0].Values)
	}
	b.record(t, "m3", "sms-c3", "submitted", nil)
	b.mustOK(t, KindReceipt, receiptBody(testAccount, "sms-c3", "0000", ts1))
	if r := b.recv.Unready(); r != "" {
		t.Fatalf("Unready = %q after a good store", r)
	}

	// The drain and a late push of the same entry add it once (marker in
	// the stream's slot).
	e := outboxEntry{T: time.Now().Add(-time.Minute).UnixMilli(), Kind: KindReceipt, Fields: []string{"event_id", "ev-x", "kind", "receipt"}, eventID: "ev-x", outbox: b.recv.st.outbox}
	for range 2 {
		if _, err := b.recv.st.push(ctx, []outboxEntry{e}); err != nil {
			t.Fatal(err)
		}
	}
	if n := rdb.XLen(ctx, bad).Val(); n != 3 {
		t.Fatalf("stream length %d after pushing one entry twice, want 3", n)
	}
}

// A stream given {P}'s hash tag shares its slot: the store script appends
// to it directly, in one round trip, as on a single Redis.
func TestClusterStreamInPrefixSlot(t *testing.T) {
	rdb := clusterClient(t)
	prefix := testutil.Name("cb")
	b := setup(t, rdb, func(c *Config) {
		c.Prefix = prefix
		c.ReceiptsStream, c.RepliesStream = "{"+prefix+"}:receipts", "{"+prefix+"}:replies"
	})
	if b.recv.st.split {
		t.Fatal("outbox path for streams in the prefix's slot")
	}
	b.record(t, "m1", "sms-d1", "submitted", nil)
	b.mustOK(t, KindReceipt, receiptBody(testAccount, "sms-d1", "0000", ts1))
	if e := b.entries(t, b.cfg.ReceiptsStream); len(e) != 1 || e[0].Values["message_id"] != "m1" {
		t.Fatalf("entries %v", e)
	}
}

// With shards, a callback is stored in the shard its URL names (s=<n>, as
// the worker sets it); one without s= is found by its SMSId; either way
// the entry carries the message id, and a STOP is copied to every shard.
func TestShardedCallbacks(t *testing.T) {
	b := setup(t, nil, func(c *Config) { c.Shards = 3 })
	ctx := context.Background()
	all := b.recv.st.shards
	sb := &bundle{rdb: b.rdb, keys: all[2].keys}
	sb.record(t, "m1", "sms-s1", "submitted", map[string]string{"k": "1"})
	sb.record(t, "m2", "sms-s2", "submitted", nil)
	b.mustOK(t, KindReceipt, receiptBody(testAccount, "sms-s1", "0000", ts1)) // no s=: looked up
	code, out := b.post(t, b.url(KindReceipt)+"?s=2", receiptBody(testAccount, "sms-s2", "0000", ts1))
	if code != 200 {
		t.Fatalf("POST ?s=2: %d %s", code, out)
	}
	code, out = b.post(t, b.url(KindReply)+"?s=2", replyBody("ROX_API_Reply", testAccount, "sms-s2", "+61407555001", "STOP", ts1))
	if code != 200 {
		t.Fatalf("POST reply ?s=2: %d %s", code, out)
	}
	for _, id := range []string{"m1", "m2"} {
		if s := sb.status(t, id)["status"]; s != "delivered" {
			t.Errorf("%s: %s, want delivered", id, s)
		}
	}
	e := b.entries(t, b.cfg.ReceiptsStream)
	if len(e) != 2 || e[0].Values["message_id"] != "m1" || e[1].Values["message_id"] != "m2" {
		t.Fatalf("entries %v", e)
	}
	if b.rdb.Exists(ctx, all[2].keys.CallbackSeen(e[0].Values["event_id"].(string))).Val() != 1 {
		t.Error("dedup marker not in the message's shard")
	}
	for i, sk := range all {
		if !b.rdb.SIsMember(ctx, sk.keys.Suppressed(), "+61407555001").Val() {
			t.Errorf("STOP not copied to shard %d", i)
		}
	}
	t.Cleanup(func() {
		for _, sk := range all {
			cleanupKeys(b.rdb, Config{Prefix: strings.TrimSuffix(strings.TrimPrefix(sk.keys.Base(), "{"), "}:")})
		}
	})
}

// The outbox path (streams in other slots than {P}) trims like the direct
// XADD: pushScript's MAXLEN ~ (checkTrimmed).
func TestClusterStreamsAreTrimmedToMaxLen(t *testing.T) {
	rdb := clusterClient(t)
	b := setup(t, rdb, func(c *Config) {
		c.ReceiptsStream, c.RepliesStream = "rox:receipts:"+testutil.Name("r"), "rox:replies:"+testutil.Name("p")
		c.StreamMaxLen = 10
	})
	if !b.recv.st.split || redisconn.Slot(b.cfg.ReceiptsStream) == redisconn.Slot(b.keys.Base()) ||
		redisconn.Slot(b.cfg.RepliesStream) == redisconn.Slot(b.keys.Base()) {
		t.Skip("random names share a slot with the prefix; rerun")
	}
	checkTrimmed(t, b)
}
