package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
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
	sim, simSrv := startSim(t, roxsim.Faults{})

	prefix, queue := testutil.Name("rate"), testutil.Name("q")
	// The whole backlog is queued before the workers start: the limit, not
	// the producer, is the bottleneck from the first request to the last.
	n := limit * (seconds + 2)
	queueRateBacklog(t, rdb, prefix, nil, "r", "", n)

	base := rateWorkerEnv(redisURL, simSrv.URL, prefix, queue, "ROXD_RATE_LIMIT="+strconv.Itoa(limit))
	for i := 1; i <= 2; i++ {
		// ROX_PRODUCT tells the two processes' requests apart at the simulator.
		startRateWorker(t, bin, i, append(append([]string(nil), base...), fmt.Sprintf("ROX_PRODUCT=worker-%d", i)))
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
	fmt.Printf("rate limit %d/s, two worker processes: measured %.0f/s (%.1f%% of the limit; window ends %.0f/s) over %s, %d requests, %d recipients; worker-1 %d, worker-2 %d recipients; all %d sent in %s; load average %s\n",
		limit, f.PerSecond, 100*f.PerSecond/float64(limit), f.Endpoints, f.Span.Round(time.Millisecond), f.Requests, f.Recipients,
		per["worker-1"], per["worker-2"], n, took.Round(time.Millisecond), loadAverage())
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

// TestRateLimitTwoProcessesTwoAccounts: two worker processes on one Redis,
// ROX_ACCOUNTS with a second account ("mkt") whose rate_limit differs from
// the default account's ROXD_RATE_LIMIT, a backlog of both: each account's
// rate at the simulator, both processes together, stays within 5% of its
// own limit, and no ROX request mixes the accounts. The figures go to
// docs/BENCHMARKS.md. ROXD_RATE_TEST_LIMIT (the default account's; mkt has
// half) and ROXD_RATE_TEST_SECONDS change the run.
func TestRateLimitTwoProcessesTwoAccounts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs two workers for ~25 s")
	}
	limDef, seconds := envInt(t, "ROXD_RATE_TEST_LIMIT", 1200), envInt(t, "ROXD_RATE_TEST_SECONDS", 20)
	limMkt := limDef / 2
	rdb := testutil.Redis(t)
	redisURL := testutil.RedisURL(t)
	bin := roxdBinary(t)
	// The simulator knows one set of credentials: both accounts use it,
	// and the product tells account and process apart ("<account>-<i>").
	sim, simSrv := startSim(t, roxsim.Faults{})

	prefix, queue := testutil.Name("rate2"), testutil.Name("q")
	nDef, nMkt := limDef*(seconds+2), limMkt*(seconds+2)
	queueRateBacklog(t, rdb, prefix, []string{"mkt"}, "d", "", nDef)
	queueRateBacklog(t, rdb, prefix, []string{"mkt"}, "m", "mkt", nMkt)

	base := rateWorkerEnv(redisURL, simSrv.URL, prefix, queue, "ROXD_RATE_LIMIT="+strconv.Itoa(limDef))
	for i := 1; i <= 2; i++ {
		accounts := filepath.Join(t.TempDir(), "accounts.json")
		body := fmt.Sprintf(`{"accounts": [{"name": "mkt", "account_id": %q, "username": %q, "password": %q,
  "product": "mkt-%d", "rate_limit": %d, "callback_token": "mkt-callback-token-0123456789"}]}`,
			roxsim.DefaultAccountID, roxsim.DefaultUsername, roxsim.DefaultPassword, i, limMkt)
		if err := os.WriteFile(accounts, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		startRateWorker(t, bin, i, append(append([]string(nil), base...),
			fmt.Sprintf("ROX_PRODUCT=default-%d", i), "ROX_ACCOUNTS="+accounts))
	}
	began := time.Now()
	testutil.Eventually(t, time.Duration(seconds)*4*time.Second+60*time.Second, func() bool { return sim.Stats().Queued >= int64(nDef+nMkt) },
		"the simulator did not get all %d messages", nDef+nMkt)
	took := time.Since(began)

	reqs := sim.Requests()
	account := map[string]string{} // request id -> account
	byAccount := map[string][]roxsim.RecordedRequest{}
	per := map[string]int{}
	for _, r := range reqs {
		if r.Request == nil {
			continue
		}
		a, _, _ := strings.Cut(r.Request.Product, "-")
		account[r.RequestID] = a
		byAccount[a] = append(byAccount[a], r)
		per[r.Request.Product] += r.Recipients
	}
	// No request mixes accounts: every recipient's text names the account
	// of the request that carried it ("d ..." default, "m ..." mkt).
	want := map[string]string{"default": "d ", "mkt": "m "}
	for _, rc := range sim.Recipients() {
		if a := account[rc.RequestID]; !strings.HasPrefix(rc.Text, want[a]) {
			t.Fatalf("request %s of account %q carried %q", rc.RequestID, a, rc.Text)
		}
	}
	load := loadAverage()
	for _, tc := range []struct {
		name  string
		limit int
	}{{"default", limDef}, {"mkt", limMkt}} {
		f := roxsim.AcceptedRate(byAccount[tc.name], 4) // the bucket starts full: skip its burst
		fmt.Printf("rate limits, two accounts, two worker processes: account %s limit %d/s: measured %.0f/s (%.1f%% of the limit; window ends %.0f/s) over %s, %d requests, %d recipients; process 1 %d, process 2 %d recipients; all %d of both accounts sent in %s; load average %s\n",
			tc.name, tc.limit, f.PerSecond, 100*f.PerSecond/float64(tc.limit), f.Endpoints, f.Span.Round(time.Millisecond), f.Requests, f.Recipients,
			per[tc.name+"-1"], per[tc.name+"-2"], nDef+nMkt, took.Round(time.Millisecond), load)
		if dev := f.PerSecond/float64(tc.limit) - 1; dev > 0.05 || dev < -0.05 {
			t.Errorf("account %s: measured %.0f/s, want %d/s within 5%%", tc.name, f.PerSecond, tc.limit)
		}
		if per[tc.name+"-1"] == 0 || per[tc.name+"-2"] == 0 {
			t.Errorf("account %s: one process sent nothing (%v): the test shows no sharing", tc.name, per)
		}
	}
}

// queueRateBacklog queues n messages "<idp>-<i>" of account (empty: the
// default) under prefix (accounts: the producer's further accounts) and
// deletes the prefix's keys when the test ends.
func queueRateBacklog(t *testing.T, rdb *redis.Client, prefix string, accounts []string, idp, account string, n int) {
	t.Helper()
	prod, err := producer.New(rdb, producer.Config{Store: store.Config{Prefix: prefix}, Accounts: accounts}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	for lo := 0; lo < n; lo += 500 {
		msgs := make([]producer.Message, 0, 500)
		for i := lo; i < min(lo+500, n); i++ {
			msgs = append(msgs, producer.Message{ID: fmt.Sprintf("%s-%d", idp, i), To: fmt.Sprintf("+614%08d", i),
				Text: idp + " rate limit " + strconv.Itoa(i), Receipt: producer.ReceiptNever, Reply: producer.ReplyEmail,
				Account: account})
		}
		res, err := prod.SendMany(context.Background(), msgs)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
		}
	}
	t.Cleanup(func() {
		keys, _ := rdb.Keys(context.Background(), store.NewKeys(prefix).Base()+"*").Result()
		for lo := 0; lo < len(keys); lo += 1000 {
			rdb.Del(context.Background(), keys[lo:min(lo+1000, len(keys))]...)
		}
	})
}

// rateWorkerEnv is the environment of a `roxd serve --roles worker` of the
// rate tests: the simulator's default credentials, the test's prefix and
// queue, and extra.
func rateWorkerEnv(redisURL, simURL, prefix, queue string, extra ...string) []string {
	return append(append(os.Environ(),
		"REDIS_URL="+redisURL, "ROX_API_URL="+simURL+"/smsapi/send",
		"ROX_ACCOUNT_ID="+roxsim.DefaultAccountID, "ROX_USERNAME="+roxsim.DefaultUsername,
		"ROX_PASSWORD="+roxsim.DefaultPassword, "ROXD_CALLBACK_TOKEN=callback-token-0123456789",
		"ROXD_HTTP_ADDR=127.0.0.1:0", "ROXD_KEY_PREFIX="+prefix, "ROXD_QUEUE="+queue,
		"ROXD_SHUTDOWN_TIMEOUT=10s", "LOG_LEVEL=warn"), extra...)
}

// startRateWorker starts worker process i (`roxd serve --roles worker`,
// its own journal directory) with env; it is stopped (SIGTERM) when the
// test ends, and its stderr shown if the test failed.
func startRateWorker(t *testing.T, bin string, i int, env []string) {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--roles", "worker")
	cmd.Env = append(env, "ROXD_JOURNAL_DIR="+t.TempDir())
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
