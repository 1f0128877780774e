package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/redoxygen/roxd/internal/metrics"
	"github.com/redoxygen/roxd/internal/store"
	rtest "github.com/redoxygen/roxd/internal/testutil"
	"github.com/redoxygen/roxd/rox/roxsim"
)

// Two workers on one Redis share the account's bucket: the rate the
// simulator sees stays within 5% of ROXD_RATE_LIMIT, batches are never
// larger than one second of it, and nothing is sent twice. (The same with
// two real processes: cmd/roxd TestRateLimitTwoProcesses.)
func TestRateLimitTwoWorkersShareTheBucket(t *testing.T) {
	// 1,000/s: two buckets would give 2,000/s, and two workers under -race
	// keep up with it on a loaded 2-core machine (at 2,000/s they fell to
	// 1,240-1,377/s at load 5 on a slower instance of the machine kind).
	const limit, n = 1000, 13000
	b := setup(t, roxsim.Faults{}, func(c *Config) {
		c.RateLimit = limit
		// Keep the hot asynq lanes running between enqueues (each worker
		// enqueues about once a second here): their cold start would show
		// as arrival jitter at the simulator, not as a limiter error.
		c.HotLinger = time.Minute
	})
	ids := b.enqueue(n, "rate", nil) // a backlog from the start: the limit is the bottleneck
	b.start()
	// A second worker, its own journal directory, same Redis and keys.
	cfg := b.cfg
	cfg.JournalDir = t.TempDir()
	w2, err := New(cfg, b.rdb, b.aopt, b.client, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w2.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	rtest.Eventually(t, 60*time.Second, func() bool { return b.countStatus(ids, "submitted")+b.countStatus(ids, "delivered") == n },
		"all submitted")
	b.checkExactlyOnce("rate", n)
	remotes := map[string]bool{}
	for _, r := range b.sim.Requests() {
		if r.Recipients > limit {
			t.Fatalf("a request of %d recipients: more than one second of the limit", r.Recipients)
		}
		remotes[r.RemoteAddr] = true
	}
	if os.Getenv("ROXD_TEST_RATE_TRACE") != "" {
		for _, r := range b.sim.Requests() {
			t.Logf("%s %s %d", r.ReceivedAt.Format("05.000"), r.RemoteAddr, r.Recipients)
		}
	}
	f := roxsim.AcceptedRate(b.sim.Requests(), 2) // the bucket starts full
	t.Logf("limit %d/s: measured %.0f/s (ends of the window: %.0f/s) over %s (%d requests, %d recipients)",
		limit, f.PerSecond, f.Endpoints, f.Span.Round(time.Millisecond), f.Requests, f.Recipients)
	// Over the limit by 10% at most (two buckets would give twice it). An
	// under-run is the workers not keeping up under -race on a loaded
	// machine (seen: 1,428/s at load 10), not a limiter error: 25% of
	// slack below. The 5% figure both ways is cmd/roxd's
	// TestRateLimitTwoProcesses (real processes, no -race).
	if f.PerSecond > limit*1.10 || f.PerSecond < limit*0.75 {
		t.Fatalf("measured %.0f/s, want %d/s: at most 10%% over, at most 25%% under", f.PerSecond, limit)
	}
	if v := testutil.ToFloat64(metrics.RateTokens.WithLabelValues(DefaultAccount, rateKindMessages)); v < n {
		t.Fatalf("roxd_rate_tokens_total{kind=messages} = %v, want >= %d", v, n)
	}
}

// HTTP 429 pauses the whole account: the batch that got it and batches
// formed later all wait at least Retry-After from the 429 (never a second
// early, though asynq keeps retry times in whole seconds).
func TestThrottlePausesTheAccountForRetryAfter(t *testing.T) {
	b := setup(t, roxsim.Faults{Throttle: 1, ThrottleRetryAfter: 2 * time.Second}, func(c *Config) {
		c.DelayedTaskCheckInterval = 20 * time.Millisecond
	})
	before := testutil.ToFloat64(metrics.ROXThrottled.WithLabelValues(DefaultAccount))
	// Queued before the worker starts: one batch, one request in flight
	// when the 429 comes (a request already on its way when the pause is
	// set is not called back).
	first := b.enqueue(500, "t1", nil)
	b.start()
	rtest.Eventually(t, 10*time.Second, func() bool { return b.sim.Stats().Throttled >= 1 }, "a 429")
	if err := b.sim.SetFaults(roxsim.Faults{}); err != nil {
		t.Fatal(err)
	}
	rtest.Eventually(t, 5*time.Second, func() bool {
		return b.rdb.PTTL(b.ctx, b.st.Keys().RatePause(DefaultAccount)).Val() > 0
	}, "the account's pause key")
	second := b.enqueue(500, "t2", nil)
	rtest.Eventually(t, 20*time.Second, func() bool {
		return b.countStatus(first, "submitted")+b.countStatus(first, "delivered") == 500 &&
			b.countStatus(second, "submitted")+b.countStatus(second, "delivered") == 500
	}, "all submitted after the pause")
	b.checkExactlyOnce("t1", 500)
	b.checkExactlyOnce("t2", 500)

	var throttledAt time.Time
	for _, r := range b.sim.Requests() {
		if r.Fault == "429" && r.ReceivedAt.After(throttledAt) {
			throttledAt = r.ReceivedAt
		}
	}
	for _, r := range b.sim.Requests() {
		if r.HTTPStatus == 200 && r.ReceivedAt.Before(throttledAt.Add(2*time.Second)) {
			t.Fatalf("a request %s after the 429 with Retry-After 2s", r.ReceivedAt.Sub(throttledAt))
		}
	}
	if got := testutil.ToFloat64(metrics.ROXThrottled.WithLabelValues(DefaultAccount)) - before; got < 1 {
		t.Fatalf("roxd_rox_throttled_total rose by %v", got)
	}
}

// Without Retry-After the account still pauses (1 s, doubling while 429s
// follow each other).
func TestThrottleWithoutRetryAfterPauses(t *testing.T) {
	b := setup(t, roxsim.Faults{Throttle: 1}, nil)
	b.start()
	ids := b.enqueue(10, "t0", nil)
	rtest.Eventually(t, 10*time.Second, func() bool { return b.sim.Stats().Throttled >= 1 }, "a 429")
	// No hot loop: RetryInitial is 20 ms here, the pause 1 s then 2 s.
	time.Sleep(1500 * time.Millisecond) // observing the absence of traffic needs real time
	if st := b.sim.Stats(); st.Throttled > 3 {
		t.Fatalf("%d requests answered 429 within 1.5 s: the account did not pause", st.Throttled)
	}
	if err := b.sim.SetFaults(roxsim.Faults{}); err != nil {
		t.Fatal(err)
	}
	rtest.Eventually(t, 20*time.Second, func() bool { return b.countStatus(ids, "submitted")+b.countStatus(ids, "delivered") == 10 }, "sent after the pause")
}

func TestRateLimitConfigNamesField(t *testing.T) {
	for _, c := range []Config{{RateLimit: -1}, {RequestRateLimit: -5}, {RateLimit: MaxRateLimit + 1}} {
		err := c.WithDefaults().Validate()
		if err == nil || !errors.Is(err, ErrConfig) || !(strings.Contains(err.Error(), "RateLimit") || strings.Contains(err.Error(), "RequestRateLimit")) {
			t.Fatalf("%+v: %v", c, err)
		}
	}
}

func TestCeilToSecond(t *testing.T) {
	now := time.Unix(100, 300_000_000)
	for _, d := range []time.Duration{0, time.Millisecond, 700 * time.Millisecond, 2 * time.Second, 2700 * time.Millisecond} {
		got := ceilToSecond(now, d)
		at := now.Add(got)
		if at.Nanosecond() != 0 || at.Before(now.Add(d)) || got-d >= time.Second {
			t.Fatalf("ceilToSecond(%s) = %s: lands at %s", d, got, at)
		}
	}
}

// ROXD_REQUEST_RATE_LIMIT spaces ROX requests whatever their size.
func TestRequestRateLimit(t *testing.T) {
	b := setup(t, roxsim.Faults{}, func(c *Config) { c.RequestRateLimit = 4; c.MaxBatch = 10 })
	ids := b.enqueue(60, "req", nil) // six requests of ten
	b.start()
	rtest.Eventually(t, 60*time.Second, func() bool { return b.countStatus(ids, "submitted")+b.countStatus(ids, "delivered") == 60 }, "all sent")
	reqs := b.sim.Requests()
	if len(reqs) != 6 {
		t.Fatalf("%d requests, want 6", len(reqs))
	}
	// Burst 1 at 4/s: the sixth leaves at least 5 x 250 ms after the first
	// (less a little for the arrival jitter).
	if span := reqs[len(reqs)-1].ReceivedAt.Sub(reqs[0].ReceivedAt); span < 1150*time.Millisecond {
		t.Fatalf("6 requests within %s at a limit of 4/s", span)
	}
	if v := testutil.ToFloat64(metrics.RateWait.WithLabelValues(DefaultAccount, rateKindRequests)); v <= 0 {
		t.Fatalf("roxd_rate_wait_seconds_total{kind=requests} = %v", v)
	}
}

// With shards, every shard's worker sends for the same ROX account: the
// account's bucket is one for the deployment, not one per shard (the
// combined rate would be the limit times the shards).
func TestRateLimitSharedAcrossShards(t *testing.T) {
	const limit, shards, n = 1000, 2, 14000
	b := setup(t, roxsim.Faults{}, func(c *Config) {
		c.RateLimit = limit
		c.HotLinger = time.Minute
	})
	prefix, queue := b.cfg.Store.Prefix, b.cfg.Queue
	// Messages spread over the shards as the API places them (by id).
	sst, err := store.New(b.rdb, store.Config{Prefix: prefix, Shards: shards})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		for i := 0; i < shards; i++ {
			keys, _ := b.rdb.Keys(ctx, store.NewKeys(store.ShardPrefix(prefix, shards, i)).Base()+"*").Result()
			for lo := 0; lo < len(keys); lo += 1000 {
				b.rdb.Del(ctx, keys[lo:min(lo+1000, len(keys))]...)
			}
			insp := asynq.NewInspector(b.aopt)
			for _, q := range store.PriorityQueues(store.ShardQueue(queue, shards, i)) {
				_ = insp.DeleteQueue(q, true)
				if keys, _ := b.rdb.Keys(ctx, "asynq:{"+q+"}:*").Result(); len(keys) > 0 {
					b.rdb.Del(ctx, keys...)
				}
			}
			_ = insp.Close()
		}
	})
	for lo := 0; lo < n; lo += 1000 {
		recs := make([]store.Record, 0, 1000)
		for i := lo; i < lo+1000; i++ {
			recs = append(recs, store.Record{ID: fmt.Sprintf("shr-%d", i), To: fmt.Sprintf("+614%08d", i),
				Text: fmt.Sprintf("shr %d", i), Receipt: "never", Reply: "email"})
		}
		if _, _, err := sst.Enqueue(b.ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < shards; i++ {
		cfg := b.cfg
		cfg.Store.Prefix = store.ShardPrefix(prefix, shards, i)
		cfg.RatePrefix = prefix
		cfg.Queue = store.ShardQueue(queue, shards, i)
		cfg.JournalDir = t.TempDir()
		w, err := New(cfg, b.rdb, b.aopt, b.client, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	rtest.Eventually(t, 120*time.Second, func() bool { return b.sim.Stats().Queued >= n }, "all %d at the simulator", n)
	b.checkExactlyOnce("shr", n)
	f := roxsim.AcceptedRate(b.sim.Requests(), 2) // the bucket starts full
	t.Logf("limit %d/s over %d shards: measured %.0f/s (ends of the window: %.0f/s) over %s (%d requests, %d recipients)",
		limit, shards, f.PerSecond, f.Endpoints, f.Span.Round(time.Millisecond), f.Requests, f.Recipients)
	// As in TestRateLimitTwoWorkersShareTheBucket: a bucket per shard gave
	// twice the limit; an under-run under -race is the workers' pace.
	if dev := f.PerSecond/limit - 1; dev > 0.05 || dev < -0.25 {
		t.Fatalf("measured %.0f/s over %d shards, want %d/s: at most 5%% over, at most 25%% under", f.PerSecond, shards, limit)
	}
}
