package callbacks

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/internal/testutil"
)

// keyCounter counts the commands a client sends that name key.
type keyCounter struct {
	key string
	n   atomic.Int64
}

func (c *keyCounter) note(cmd redis.Cmder) {
	for _, a := range cmd.Args() {
		if s, ok := a.(string); ok && s == c.key {
			c.n.Add(1)
			return
		}
	}
}

func (c *keyCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *keyCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.note(cmd)
		return next(ctx, cmd)
	}
}

func (c *keyCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			c.note(cmd)
		}
		return next(ctx, cmds)
	}
}

// An idle receiver does not poll the deferred zset every 100 ms (it was
// 10 commands/s, the largest share of an idle roxd's Redis commands): it
// looks once per resolveIdle when nothing is deferred, and a callback
// deferred by another receiver sharing Redis is still resolved (its own
// receiver's resolver is not running here).
func TestResolverIdleDoesNotPoll(t *testing.T) {
	rdb := testutil.Redis(t)
	prefix := testutil.Name("cb")
	kc := &keyCounter{key: "{" + prefix + "}:cb:deferred"}
	rdb.AddHook(kc)
	b := setup(t, rdb, func(c *Config) {
		c.Prefix = prefix
		c.DeferDelays = []time.Duration{250 * time.Millisecond, time.Second}
	})

	const idle = 3 * time.Second
	before := kc.n.Load()
	time.Sleep(idle)
	polls := kc.n.Load() - before
	// One look per resolveIdle (1 s), +2 for the edges; it was 30.
	if max := int64(idle/time.Second) + 2; polls > max {
		t.Errorf("%d commands on the deferred zset in %s of idle, want at most %d", polls, idle, max)
	}

	// Another receiver (not running: no resolver of its own) defers a
	// receipt whose SMSId is not recorded yet.
	other, err := New(b.cfg, testutil.Redis(t), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ev := &event{Kind: KindReceipt, EventID: "idle-ev-1", SMSID: "sms-idle-1", Status: "delivered",
		ReceivedMS: time.Now().UnixMilli(), AccountID: testAccount, Result: "0000", Shard: 1}
	res := other.st.exec(context.Background(), []*event{ev})
	if len(res) != 1 || res[0].err != nil || !res[0].deferred {
		t.Fatalf("other receiver's store: %+v, want deferred", res)
	}
	b.claim(t, "m-idle", `{}`)
	b.recordSent(t, "m-idle", "sms-idle-1")
	testutil.Eventually(t, 15*time.Second, func() bool {
		r := b.entries(t, b.cfg.ReceiptsStream)
		return len(r) == 1 && r[0].Values["message_id"] == "m-idle"
	}, "the running receiver did not resolve the other's deferred receipt: %s", b.dump(t, "m-idle"))
}
