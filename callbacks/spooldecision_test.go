package callbacks

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/internal/metrics"
	"github.com/redoxygen/roxd/internal/redisconn"
	tu "github.com/redoxygen/roxd/internal/testutil"
)

// prodClient is a client of srv with the options roxd serve uses.
func prodClient(t *testing.T, srv *tu.Server) *redis.Client {
	t.Helper()
	conn, err := redisconn.Parse(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	c := conn.Client().(*redis.Client)
	t.Cleanup(func() { c.Close() })
	return c
}

func spooled(reason string) float64 {
	return testutil.ToFloat64(metrics.CallbacksSpooled.WithLabelValues(reason))
}

// postTimed posts a receipt and returns the status and how long it took.
func postTimed(t *testing.T, b *bundle, smsID string) (int, time.Duration) {
	t.Helper()
	began := time.Now()
	code, out := b.post(t, b.url(KindReceipt), receiptBody(testAccount, smsID, "0000", ts1))
	took := time.Since(began)
	if code == http.StatusOK {
		checkAnswer(t, KindReceipt, out)
	}
	return code, took
}

// spoolFiles lists the spool's data files (not rejected.log).
func spoolFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.Name() != rejectedName && !e.IsDir() {
			if fi, err := e.Info(); err == nil && fi.Size() > 0 {
				out = append(out, e.Name())
			}
		}
	}
	return out
}

// TestSlowRedisSlowsTheAnswer is issue 8 fault 5: Redis blocked for 1.5 s
// (DEBUG SLEEP, three times the old 500 ms store timeout) is slow, not down:
// the callback waits and lands in the stream; nothing is spooled.
func TestSlowRedisSlowsTheAnswer(t *testing.T) {
	srv := tu.NewServerArgs(t, "--enable-debug-command", "yes")
	rdb := prodClient(t, srv)
	b := setup(t, rdb, func(c *Config) { c.StoreTimeout = 0; c.DeferDelays = noDefer }) // the default budget
	b.mustOK(t, KindReceipt, receiptBody(testAccount, "warm-up", "0000", ts1))

	before := map[string]float64{}
	for _, r := range metrics.SpoolReasons {
		before[r] = spooled(r)
	}
	for i := 0; i < 3; i++ {
		blocker := redis.NewClient(&redis.Options{Addr: srv.Addr(), ReadTimeout: 10 * time.Second})
		slept := make(chan error, 1)
		go func() { slept <- blocker.Do(context.Background(), "DEBUG", "SLEEP", "1.5").Err() }()
		// Wait until Redis is really blocked: a ping gets no answer.
		probe := redis.NewClient(&redis.Options{Addr: srv.Addr(), ReadTimeout: 100 * time.Millisecond, MaxRetries: -1})
		tu.Eventually(t, 5*time.Second, func() bool {
			return probe.Ping(context.Background()).Err() != nil
		}, "DEBUG SLEEP did not block redis")
		probe.Close()
		code, took := postTimed(t, b, fmt.Sprintf("slow-%d", i))
		t.Logf("receipt with Redis blocked: %d after %s", code, took.Round(time.Millisecond))
		if code != http.StatusOK {
			t.Fatalf("status %d, want 200", code)
		}
		if err := <-slept; err != nil {
			t.Fatalf("DEBUG SLEEP: %v", err)
		}
		blocker.Close()
	}
	for _, r := range metrics.SpoolReasons {
		if d := spooled(r) - before[r]; d != 0 {
			t.Errorf("roxd_callbacks_spooled_total{reason=%q} grew by %v with Redis only slow", r, d)
		}
	}
	if f := spoolFiles(t, b.cfg.SpoolDir); len(f) > 0 || b.recv.SpoolDepth() != 0 {
		t.Errorf("spool used with Redis only slow: files %v, depth %d", f, b.recv.SpoolDepth())
	}
	if n := len(b.entries(t, b.cfg.ReceiptsStream)); n != 4 {
		t.Errorf("%d receipts on the stream, want 4", n)
	}
}

// A dead Redis (connection refused) spools at once, counted as
// "connection", and the spool is replayed when Redis is back.
func TestDeadRedisSpoolsAtOnce(t *testing.T) {
	srv := tu.NewServer(t)
	rdb := prodClient(t, srv)
	b := setup(t, rdb, func(c *Config) { c.StoreTimeout = 0; c.DeferDelays = noDefer })
	srv.Stop()
	before := spooled(SpoolConnection)
	code, took := postTimed(t, b, "dead-1")
	t.Logf("receipt with Redis dead: %d after %s", code, took.Round(time.Millisecond))
	if code != http.StatusOK {
		t.Fatalf("status %d, want 200 (spooled)", code)
	}
	if took > DefaultStoreTimeout {
		t.Errorf("a refused connection took %s to spool, want well under the %s budget", took, DefaultStoreTimeout)
	}
	if d := spooled(SpoolConnection) - before; d != 1 {
		t.Errorf("spooled{reason=connection} grew by %v, want 1", d)
	}
	srv.Start()
	tu.Eventually(t, 30*time.Second, func() bool {
		return len(b.entries(t, b.cfg.ReceiptsStream)) == 1 && b.recv.SpoolDepth() == 0
	}, "the spooled receipt was not replayed into redis")
}

// A hung Redis (SIGSTOP) spools after the store budget, counted as
// "timeout", and ROX still gets its answer within its 5 s.
func TestHungRedisSpoolsAfterBudget(t *testing.T) {
	srv := tu.NewServer(t)
	rdb := prodClient(t, srv)
	b := setup(t, rdb, func(c *Config) { c.StoreTimeout = 0; c.DeferDelays = noDefer })
	b.mustOK(t, KindReceipt, receiptBody(testAccount, "warm-up", "0000", ts1))
	srv.Pause()
	before := spooled(SpoolTimeout)
	code, took := postTimed(t, b, "hung-1")
	t.Logf("receipt with Redis hung: %d after %s", code, took.Round(time.Millisecond))
	if code != http.StatusOK {
		t.Fatalf("status %d, want 200 (spooled)", code)
	}
	if took < DefaultStoreTimeout-100*time.Millisecond || took > DefaultStoreTimeout+1500*time.Millisecond {
		t.Errorf("answered after %s, want the %s budget (+ margin)", took, DefaultStoreTimeout)
	}
	if d := spooled(SpoolTimeout) - before; d != 1 {
		t.Errorf("spooled{reason=timeout} grew by %v, want 1", d)
	}
	srv.Resume()
	tu.Eventually(t, 30*time.Second, func() bool {
		return len(b.entries(t, b.cfg.ReceiptsStream)) == 2 && b.recv.SpoolDepth() == 0
	}, "the spooled receipt was not replayed into redis")
}

// Refused writes: OOM and READONLY are states that pass, so the callback is
// spooled (by reason) and replayed once Redis takes writes again; WRONGTYPE
// can never succeed, so it goes to rejected.log at once.
func TestRefusedWrites(t *testing.T) {
	srv := tu.NewServer(t)
	rdb := prodClient(t, srv)
	b := setup(t, rdb, func(c *Config) { c.StoreTimeout = 0; c.DeferDelays = noDefer })
	ctx := context.Background()
	b.mustOK(t, KindReceipt, receiptBody(testAccount, "warm-up", "0000", ts1))

	for _, tc := range []struct {
		reason    string
		break_    []any
		fix       []any
		wantInLog bool
	}{
		{SpoolOOM, []any{"CONFIG", "SET", "maxmemory", "1"}, []any{"CONFIG", "SET", "maxmemory", "0"}, false},
		{SpoolReadOnly, []any{"REPLICAOF", "127.0.0.1", "1"}, []any{"REPLICAOF", "NO", "ONE"}, false},
	} {
		before := spooled(tc.reason)
		if err := rdb.Do(ctx, tc.break_...).Err(); err != nil {
			t.Fatal(err)
		}
		id := "refused-" + tc.reason
		if code, _ := postTimed(t, b, id); code != http.StatusOK {
			t.Fatalf("%s: status %d, want 200 (spooled)", tc.reason, code)
		}
		if d := spooled(tc.reason) - before; d != 1 {
			t.Errorf("spooled{reason=%s} grew by %v, want 1", tc.reason, d)
		}
		if err := rdb.Do(ctx, tc.fix...).Err(); err != nil {
			t.Fatal(err)
		}
		tu.Eventually(t, 30*time.Second, func() bool {
			for _, e := range b.entries(t, b.cfg.ReceiptsStream) {
				if e.Values["sms_id"] == id {
					return b.recv.SpoolDepth() == 0
				}
			}
			return false
		}, "%s: the spooled receipt was not replayed", tc.reason)
	}

	// WRONGTYPE: the stream key holds a string.
	if err := rdb.Set(ctx, b.cfg.ReceiptsStream+"-x", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	before := spooled(SpoolRefused)
	if err := rdb.Rename(ctx, b.cfg.ReceiptsStream, b.cfg.ReceiptsStream+"-saved").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Rename(ctx, b.cfg.ReceiptsStream+"-x", b.cfg.ReceiptsStream).Err(); err != nil {
		t.Fatal(err)
	}
	if code, _ := postTimed(t, b, "wrongtype-1"); code != http.StatusOK {
		t.Fatalf("WRONGTYPE: status %d, want 200 (kept in rejected.log)", code)
	}
	if d := spooled(SpoolRefused) - before; d != 1 {
		t.Errorf("spooled{reason=refused} grew by %v, want 1", d)
	}
	data, err := os.ReadFile(filepath.Join(b.cfg.SpoolDir, rejectedName))
	if err != nil || !strings.Contains(string(data), "wrongtype-1") {
		t.Errorf("rejected.log: %q, %v", data, err)
	}
	if b.recv.SpoolDepth() != 0 {
		t.Errorf("a refused callback entered the replay spool")
	}
	rdb.Del(ctx, b.cfg.ReceiptsStream)
	_ = rdb.Rename(ctx, b.cfg.ReceiptsStream+"-saved", b.cfg.ReceiptsStream)
}

func TestSpoolReason(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{redis.ErrPoolTimeout, SpoolConnection},
		{redis.ErrClosed, SpoolConnection},
		{fmt.Errorf("x: %w", errNoAnswer), SpoolTimeout},
		{context.DeadlineExceeded, SpoolTimeout},
		{errStopped, SpoolStopped},
		{fmt.Errorf("callbacks: store: %w", redisconn.ErrNotReplicated), SpoolReplicas},
		{errors.New("redis: all sentinels specified in configuration are unreachable"), SpoolConnection},
		{errors.New("callbacks: store: unexpected script reply"), SpoolRefused},
	} {
		if got := spoolReason(tc.err); got != tc.want {
			t.Errorf("spoolReason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
