package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/internal/testutil"
	"github.com/redoxygen/roxd/producer"
	"github.com/redoxygen/roxd/rox/roxsim"
)

// TestRateLimitTwoProcesses: two worker processes (`roxd serve --roles
// worker`) on one Redis, ROXD_RATE_LIMIT=2000, a backlog that outlasts the
// run: the rate the simulator sees, both processes together, stays within
// 5% of the limit, and each process sends part of it. The figures go to
// docs/BENCHMARKS.md. ROXD_RATE_TEST_LIMIT and ROXD_RATE_TEST_SECONDS
// change the limit and the length of the run.
func TestRateLimitTwoProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs two workers for ~25 s")
	}
	limit, seconds := envInt(t, "ROXD_RATE_TEST_LIMIT", 2000), envInt(t, "ROXD_RATE_TEST_SECONDS", 20)
	rdb := testutil.Redis(t)
	redisURL := testutil.RedisURL(t)
	bin := roxdBinary(t)
	sim, err := roxsim.New(roxsim.Config{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	simSrv := httptest.NewServer(sim)
	t.Cleanup(func() { simSrv.Close(); _ = sim.Close(context.Background()) })

	prefix, queue := testutil.Name("rate"), testutil.Name("q")
	// The whole backlog is queued before the workers start: the limit, not
	// the producer, is the bottleneck from the first request to the last.
	n := limit * (seconds + 2)
	prod, err := producer.New(rdb, producer.Config{Store: store.Config{Prefix: prefix}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	for lo := 0; lo < n; lo += 500 {
		msgs := make([]producer.Message, 0, 500)
		for i := lo; i < min(lo+500, n); i++ {
			msgs = append(msgs, producer.Message{ID: fmt.Sprintf("r-%d", i), To: fmt.Sprintf("+614%08d", i),
				Text: "rate limit " + strconv.Itoa(i), Receipt: producer.ReceiptNever, Reply: producer.ReplyEmail})
		}
		if _, err := prod.SendMany(context.Background(), msgs); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		keys, _ := rdb.Keys(context.Background(), store.NewKeys(prefix).Base()+"*").Result()
		for lo := 0; lo < len(keys); lo += 1000 {
			rdb.Del(context.Background(), keys[lo:min(lo+1000, len(keys))]...)
		}
	})

	base := append(os.Environ(),
		"REDIS_URL="+redisURL, "ROX_API_URL="+simSrv.URL+"/smsapi/send",
		"ROX_ACCOUNT_ID="+roxsim.DefaultAccountID, "ROX_USERNAME="+roxsim.DefaultUsername,
		"ROX_PASSWORD="+roxsim.DefaultPassword, "ROXD_CALLBACK_TOKEN=callback-token-0123456789",
		"ROXD_HTTP_ADDR=127.0.0.1:0", "ROXD_KEY_PREFIX="+prefix, "ROXD_QUEUE="+queue,
		"ROXD_RATE_LIMIT="+strconv.Itoa(limit), "ROXD_SHUTDOWN_TIMEOUT=10s", "LOG_LEVEL=warn")
	for i := 1; i <= 2; i++ {
		// ROX_PRODUCT tells the two processes' requests apart at the simulator.
		cmd := exec.Command(bin, "serve", "--roles", "worker")
		cmd.Env = append(append([]string(nil), base...), "ROXD_JOURNAL_DIR="+t.TempDir(), fmt.Sprintf("ROX_PRODUCT=worker-%d", i))
		out := &syncBuffer{}
		cmd.Stderr = out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
			if t.Failed() {
				t.Logf("worker %d stderr (tail):\n%s", i, lastBytes(out.String(), 3000))
			}
		})
	}
	began := time.Now()
	testutil.Eventually(t, time.Duration(seconds)*4*time.Second+60*time.Second, func() bool { return sim.Stats().Queued >= int64(n) },
		"the simulator did not get all %d messages", n)
	took := time.Since(began)

	reqs := sim.Requests()
	per := map[string]int{}
	for _, r := range reqs {
		if r.Request != nil {
			per[r.Request.Product] += r.Recipients
		}
		if r.Recipients > limit {
			t.Fatalf("a request of %d recipients: more than one second of the limit", r.Recipients)
		}
	}
	if os.Getenv("ROXD_TEST_RATE_TRACE") != "" {
		for _, r := range reqs {
			if r.Request != nil {
				t.Logf("%s %s %d", r.ReceivedAt.Format("05.000"), r.Request.Product, r.Recipients)
			}
		}
	}
	f := roxsim.AcceptedRate(reqs, 4) // the bucket starts full: skip its burst
	load, _ := os.ReadFile("/proc/loadavg")
	fields := strings.Fields(string(load))
	if len(fields) > 3 {
		fields = fields[:3]
	}
	fmt.Printf("rate limit %d/s, two worker processes: measured %.0f/s (%.1f%% of the limit; window ends %.0f/s) over %s, %d requests, %d recipients; worker-1 %d, worker-2 %d recipients; all %d sent in %s; load average %s\n",
		limit, f.PerSecond, 100*f.PerSecond/float64(limit), f.Endpoints, f.Span.Round(time.Millisecond), f.Requests, f.Recipients,
		per["worker-1"], per["worker-2"], n, took.Round(time.Millisecond), strings.Join(fields, " "))
	if dev := f.PerSecond/float64(limit) - 1; dev > 0.05 || dev < -0.05 {
		t.Fatalf("measured %.0f/s, want %d/s within 5%%", f.PerSecond, limit)
	}
	if per["worker-1"] == 0 || per["worker-2"] == 0 {
		t.Fatalf("one process sent nothing (%v): the test shows no sharing", per)
	}
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return v
}
