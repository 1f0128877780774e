package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/internal/testutil"
	"github.com/redoxygen/roxd/producer"
	"github.com/redoxygen/roxd/rox/roxsim"
)

// TestServeSIGTERMUnderLoad is issue 3's shutdown check on the real binary:
// `roxd serve` receives SIGTERM while messages keep arriving and ROX is slow,
// exits 0 within the shutdown timeout, and a second process started
// afterwards finishes the work: every message reaches the simulator exactly
// once and ends submitted.
func TestServeSIGTERMUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	rdb := testutil.Redis(t)
	redisURL := testutil.RedisURL(t)
	bin := roxdBinary(t)

	sim, simSrv := startSim(t, roxsim.Faults{
		Latency:      150 * time.Millisecond, // ROX is slow: requests are in flight at SIGTERM
		ReceiptDelay: time.Hour,              // no callbacks in this test
	})

	prefix, queue := testutil.Name("sigterm"), testutil.Name("q")
	env := append(os.Environ(),
		"REDIS_URL="+redisURL, "ROX_API_URL="+simSrv.URL+"/smsapi/send",
		"ROX_ACCOUNT_ID="+roxsim.DefaultAccountID, "ROX_USERNAME="+roxsim.DefaultUsername,
		"ROX_PASSWORD="+roxsim.DefaultPassword, "ROXD_ROLES=worker",
		"ROXD_CALLBACK_TOKEN=callback-token-0123456789", "ROXD_HTTP_ADDR=127.0.0.1:0",
		"ROXD_KEY_PREFIX="+prefix, "ROXD_QUEUE="+queue, "ROXD_SHUTDOWN_TIMEOUT=10s",
		"ROXD_SEND_CONCURRENCY=4", "ROXD_SPOOL_DIR="+t.TempDir(), "ROXD_JOURNAL_DIR="+t.TempDir(), "LOG_LEVEL=warn")

	prod, err := producer.New(rdb, producer.Config{Store: store.Config{Prefix: prefix}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		sent int
	)
	send := func(n int) {
		msgs := make([]producer.Message, n)
		mu.Lock()
		for i := range msgs {
			msgs[i] = producer.Message{To: "+61412345678", Text: fmt.Sprintf("sigterm %d", sent+i)}
		}
		sent += n
		mu.Unlock()
		res, err := prod.SendMany(context.Background(), msgs)
		if err != nil {
			t.Error(err)
			return
		}
		for _, r := range res {
			if r.Err != nil {
				t.Error(r.Err)
			}
		}
	}
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "serve")
		cmd.Env = env
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	stop := func(cmd *exec.Cmd) {
		t.Helper()
		began := time.Now()
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("roxd serve after SIGTERM: %v, want exit status 0", err)
			}
			t.Logf("exited 0, %s after SIGTERM", time.Since(began).Round(time.Millisecond))
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatal("roxd serve did not exit within 30s of SIGTERM")
		}
	}

	send(3000)
	first := start()
	testutil.Eventually(t, 30*time.Second, func() bool { return len(sim.Requests()) >= 2 },
		"the first process sent nothing")
	// SIGTERM while messages still arrive and requests are in flight.
	var load sync.WaitGroup
	load.Add(1)
	go func() {
		defer load.Done()
		for i := 0; i < 10; i++ {
			send(200)
		}
	}()
	stop(first)
	load.Wait()
	before := len(sim.Recipients())
	mu.Lock()
	total := sent
	mu.Unlock()
	if before >= total {
		t.Logf("the first process sent all %d before stopping; the restart has nothing left to do", total)
	}

	second := start()
	testutil.Eventually(t, 60*time.Second, func() bool { return len(sim.Recipients()) >= total },
		"after the restart the simulator has %d of %d", len(sim.Recipients()), total)
	stop(second)

	seen := map[string]int{}
	for _, r := range sim.Recipients() {
		seen[r.Text]++
	}
	for i := 0; i < total; i++ {
		if n := seen[fmt.Sprintf("sigterm %d", i)]; n != 1 {
			t.Errorf("message %d reached the simulator %d times, want exactly once", i, n)
		}
	}
	// Every record ended submitted: nothing stuck in sending or queued.
	ids := rdb.Keys(context.Background(), store.NewKeys(prefix).Msg("*")).Val()
	if len(ids) != total {
		t.Errorf("%d message records, want %d", len(ids), total)
	}
	for _, key := range ids {
		if st := rdb.HGet(context.Background(), key, "status").Val(); st != string(store.StatusSubmitted) {
			t.Errorf("%s: status %q, want submitted", key, st)
			break
		}
	}
	if len(seen) != total {
		t.Errorf("%d distinct texts at the simulator, want %d", len(seen), total)
	}
	t.Logf("%d messages: %d sent before SIGTERM, the rest after the restart", total, before)
}
