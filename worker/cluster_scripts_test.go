package worker

import (
	"context"
	"testing"
	"time"

	"github.com/redoxygen/roxd/internal/journal"
	"github.com/redoxygen/roxd/internal/redisconn"
	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/internal/testutil"
)

// ranOnCluster fails t unless script name ran on the cluster without error.
func ranOnCluster(t *testing.T, log *testutil.ScriptLog, name string) {
	t.Helper()
	s, ok := store.Scripts()[name]
	if !ok {
		t.Fatalf("no script %s", name)
	}
	log.RequireRan(t, name, s.Hash())
}

// TestClusterScriptsWorker runs, on the real 3-master test cluster, the
// worker scripts TestClusterEndToEnd does not reach (see notInClusterFlow
// in internal/app), through the functions that run them, with the keys and
// asynq queue of a non-zero shard of a 6-shard store: each runs without
// CROSSSLOT or MOVED and has its effect.
func TestClusterScriptsWorker(t *testing.T) {
	c, err := redisconn.Parse(testutil.RedisClusterURL(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := c.Client()
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	log := testutil.NewScriptLog()
	rdb.AddHook(log)

	const shards, shard = 6, 4
	prefix, queue := testutil.Name("cswk"), testutil.Name("cswq")
	s, err := store.New(rdb, store.Config{Prefix: prefix, Shards: shards})
	if err != nil {
		t.Fatal(err)
	}
	k := s.Shards()[shard]
	q := store.ShardQueue(queue, shards, shard)
	if k == s.Keys() || q == queue {
		t.Fatalf("shard %d: keys %s, queue %s: not a shard's own", shard, k.Base(), q)
	}
	var toDel []string
	t.Cleanup(func() {
		for _, key := range toDel {
			rdb.Del(context.Background(), key)
		}
	})

	// worker.throttle: ROX answered 429 with Retry-After 30s: the
	// account's pause is set for 30 s.
	l := newRateLimiter(rdb, k, "acct1", 0, 0, 500)
	toDel = append(toDel, k.RatePause("acct1"))
	if _, err := l.throttled(ctx, 30*time.Second); err != nil {
		t.Fatalf("throttled on the cluster: %v", err)
	}
	if left, _ := rdb.PTTL(ctx, k.RatePause("acct1")).Result(); left < 20*time.Second {
		t.Fatalf("pause key %s: PTTL %s, want about 30s", k.RatePause("acct1"), left)
	}
	ranOnCluster(t, log, "worker.throttle")

	// worker.keepLock: the lock still holding the token is extended to
	// TaskTimeout.
	bid := "cs-batch"
	toDel = append(toDel, k.Lock(bid))
	if err := rdb.Set(ctx, k.Lock(bid), "tok", time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	w := &Worker{rdb: rdb, b: store.NewBatches(rdb, k, time.Hour), cfg: Config{TaskTimeout: time.Minute}}
	w.keepLock(ctx, &held{e: journal.Entry{Batch: bid, Token: "tok"}})
	if left, _ := rdb.PTTL(ctx, k.Lock(bid)).Result(); left < 30*time.Second {
		t.Fatalf("lock %s: PTTL %s after keepLock, want about 1m", k.Lock(bid), left)
	}
	ranOnCluster(t, log, "worker.keepLock")

	// worker.repairTask: an active task missing from the active list and
	// lease goes back to pending.
	p := "asynq:{" + q + "}:"
	id := "cs-task"
	toDel = append(toDel, p+"t:"+id, p+"pending", p+"active", p+"lease", p+"retry", p+"scheduled")
	if err := rdb.HSet(ctx, p+"t:"+id, "msg", "x", "state", "active").Err(); err != nil {
		t.Fatal(err)
	}
	got, err := repairTask(ctx, rdb, q, id, time.Now())
	if err != nil {
		t.Fatalf("repairTask on the cluster: %v", err)
	}
	if pending, _ := rdb.LRange(ctx, p+"pending", 0, -1).Result(); got != "active" || len(pending) != 1 || pending[0] != id {
		t.Fatalf("repairTask: %q, pending %v; want active, [%s]", got, pending, id)
	}
	ranOnCluster(t, log, "worker.repairTask")

	// worker.dropZombie: a task hash without its message is deleted.
	zid := "cs-zombie"
	toDel = append(toDel, p+"t:"+zid)
	if err := rdb.HSet(ctx, p+"t:"+zid, "state", "pending").Err(); err != nil {
		t.Fatal(err)
	}
	if err := dropZombie(ctx, rdb, q, zid); err != nil {
		t.Fatalf("dropZombie on the cluster: %v", err)
	}
	if e, _ := rdb.Exists(ctx, p+"t:"+zid).Result(); e != 0 {
		t.Fatal("dropZombie left the task hash")
	}
	ranOnCluster(t, log, "worker.dropZombie")
}
