package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/internal/testutil"
	"github.com/redoxygen/roxd/producer"
	"github.com/redoxygen/roxd/rox/roxsim"
)

// TestSIGTERMKeepsReceipts is issue 8 fault 1 on the real binary: 5,000
// messages in flight to a ROX that answers after 1.5 s and posts receipts
// 1 s later, then SIGTERM to an all-roles `roxd serve`. The callback
// listener must keep answering until the worker has drained and
// ROXD_CALLBACK_DRAIN has passed: the simulator records no failed receipt
// post, and after a second process finished the rest every receipt is on the
// stream exactly once.
func TestSIGTERMKeepsReceipts(t *testing.T) {
	rdb := testutil.Redis(t)
	sim, simSrv := startSim(t, roxsim.Faults{
		Latency:      1500 * time.Millisecond,
		ReceiptDelay: time.Second,
	})

	prefix, receipts := testutil.Name("cbdrain"), testutil.Name("receipts")
	httpAddr, cbAddr := freeAddr(t), freeAddr(t)
	env := []string{
		"REDIS_URL=" + testutil.RedisURL(t), "ROX_API_URL=" + simSrv.URL + "/smsapi/send",
		"ROX_ACCOUNT_ID=" + roxsim.DefaultAccountID, "ROX_USERNAME=" + roxsim.DefaultUsername,
		"ROX_PASSWORD=" + roxsim.DefaultPassword, "ROXD_ROLES=worker,callbacks,api",
		"ROXD_API_TOKEN=" + budgetToken, "ROXD_CALLBACK_TOKEN=callback-token-0123456789",
		"ROXD_HTTP_ADDR=" + httpAddr, "ROXD_CALLBACK_ADDR=" + cbAddr, "ROXD_PUBLIC_URL=http://" + cbAddr,
		"ROXD_KEY_PREFIX=" + prefix, "ROXD_QUEUE=" + testutil.Name("q"), "ROXD_RECEIPTS_STREAM=" + receipts,
		"ROXD_SHUTDOWN_TIMEOUT=25s", "ROXD_CALLBACK_DRAIN=5s",
		"ROXD_SPOOL_DIR=" + t.TempDir(), "ROXD_ALLOW_VOLATILE_REDIS=true", "LOG_LEVEL=warn",
	}

	const total = 5000
	prod, err := producer.New(rdb, producer.Config{Store: store.Config{Prefix: prefix}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	msgs := make([]producer.Message, total)
	for i := range msgs {
		msgs[i] = producer.Message{To: fmt.Sprintf("+614%08d", i), Text: fmt.Sprintf("drain %d", i)}
	}
	for i := 0; i < total; i += 1000 {
		res, err := prod.SendMany(context.Background(), msgs[i:i+1000])
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
		}
	}

	first := startServe(t, env, httpAddr)
	testutil.Eventually(t, 60*time.Second, func() bool { return len(sim.Requests()) >= 1 },
		"the first process sent nothing")
	termAt := time.Now()
	took, err := first.sigterm(40 * time.Second)
	if err != nil {
		t.Errorf("first process after SIGTERM: %v, want exit status 0", err)
	}
	st := sim.Stats()
	t.Logf("first process exited %s after SIGTERM; simulator: %d requests, %d receipts posted, %d failed",
		took.Round(time.Millisecond), len(sim.Requests()), st.ReceiptsSent, st.ReceiptsFailed)
	shown := 0
	for _, cb := range sim.Callbacks() {
		if cb.Outcome == roxsim.OutcomeFailed && shown < 5 {
			shown++
			t.Logf("failed receipt post %s after SIGTERM (took %s): %s", cb.At.Sub(termAt).Round(time.Millisecond), cb.Duration, cb.Error)
		}
	}
	if took > 25*time.Second+3*time.Second {
		t.Errorf("shutdown took %s, ROXD_SHUTDOWN_TIMEOUT=25s", took)
	}

	second := startServe(t, env, httpAddr)
	testutil.Eventually(t, 120*time.Second, func() bool {
		return len(sim.Recipients()) >= total && sim.Stats().ReceiptsSent+sim.Stats().ReceiptsFailed >= total
	}, "after the restart the simulator did not reach %d recipients and receipts", total)
	if _, err := second.sigterm(40 * time.Second); err != nil {
		t.Errorf("second process after SIGTERM: %v, want exit status 0", err)
	}

	st = sim.Stats()
	if st.ReceiptsFailed != 0 || st.ForwardedToEmail != 0 {
		t.Errorf("simulator: %d receipt posts failed, %d forwarded to email; want 0", st.ReceiptsFailed, st.ForwardedToEmail)
	}
	sent := map[string]int{}
	for _, r := range sim.Recipients() {
		sent[r.Text]++
	}
	for i := 0; i < total; i++ {
		if n := sent[fmt.Sprintf("drain %d", i)]; n != 1 {
			t.Fatalf("message %d reached the simulator %d times, want once", i, n)
		}
	}
	// Every receipt on the stream exactly once (the spool, if used, is
	// replayed by the second process).
	var onStream map[string]int
	testutil.Eventually(t, 30*time.Second, func() bool {
		entries, err := rdb.XRange(context.Background(), receipts, "-", "+").Result()
		if err != nil {
			return false
		}
		onStream = map[string]int{}
		for _, e := range entries {
			id, _ := e.Values["sms_id"].(string)
			onStream[id]++
		}
		return len(entries) >= total
	}, "fewer than %d receipts on the stream", total)
	for _, r := range sim.Recipients() {
		if n := onStream[r.SMSID]; n != 1 {
			t.Errorf("receipt of %s on the stream %d times, want once", r.SMSID, n)
		}
	}
	if len(onStream) != total {
		t.Errorf("%d distinct receipts on the stream, want %d", len(onStream), total)
	}
}
