package callbacks

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/internal/redisconn"
	"github.com/redoxygen/roxd/internal/testutil"
)

// TestCallbacksWaitForReplicas (ROXD_REDIS_MIN_REPLICAS=1): a receipt
// answered "0000" is on the replica already; while the replica is stalled
// the receipts are stored on the master but not confirmed, so they go to
// the spool (answered "0000", ROX does not email them) and the replay,
// once the replica is back, leaves each on the stream once.
func TestCallbacksWaitForReplicas(t *testing.T) {
	master := testutil.NewServer(t)
	replica := testutil.NewReplica(t, master)
	rdb := redis.NewClient(&redis.Options{Addr: master.Addr()})
	rep := redis.NewClient(&redis.Options{Addr: replica.Addr()})
	t.Cleanup(func() { rdb.Close(); rep.Close() })
	ctx := context.Background()
	b := setup(t, rdb, func(c *Config) {
		c.DeferDelays = noDefer // unknown SMSIds, pushed at once
		c.StoreTimeout = 3 * time.Second
		c.Replicas = redisconn.Replicas{Min: 1, Timeout: 2 * time.Second}
	})
	post := func(from, to int) {
		for i := from; i < to; i++ {
			b.mustOK(t, KindReceipt, receiptBody(testAccount, fmt.Sprintf("w-%04d", i), "0000", ts1))
		}
	}
	post(0, 5)
	if n := rep.XLen(ctx, b.cfg.ReceiptsStream).Val(); n != 5 {
		t.Fatalf("replica has %d entries right after five answers, want 5", n)
	}
	replica.Pause()
	post(5, 10)
	if d := b.recv.SpoolDepth(); d == 0 {
		t.Fatalf("nothing spooled while the replica was stalled")
	}
	replica.Resume()
	testutil.Eventually(t, 30*time.Second, func() bool { return b.recv.SpoolDepth() == 0 }, "spool not drained")
	post(10, 12)
	msgs := b.entries(t, b.cfg.ReceiptsStream)
	seen := map[any]int{}
	for _, m := range msgs {
		seen[m.Values["sms_id"]]++
	}
	for i := range 12 {
		if id := fmt.Sprintf("w-%04d", i); seen[id] != 1 {
			t.Errorf("%s on the stream %d times, want once", id, seen[id])
		}
	}
	if len(msgs) != 12 {
		t.Errorf("%d entries, want 12", len(msgs))
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		return rep.XLen(ctx, b.cfg.ReceiptsStream).Val() == 12
	}, "replica does not hold the 12 entries")
}
