package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/redoxygen/roxd/callbacks"
	"github.com/redoxygen/roxd/internal/metrics"
	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/internal/testutil"
	"github.com/redoxygen/roxd/rox"
	"github.com/redoxygen/roxd/rox/roxsim"
)

// Recipients whose ROX outcome is unknown (issue 8, fault 3): a run that
// dies after ROX accepted its request, and a ROX timeout on a request ROX
// took. The simulator posts its receipts and replies to a real callbacks
// Receiver on the same keyspace, so evidence flows as in production.

const rcToken = "rc-token-5e0c1f2a9b"

// withReceiver makes setup's callbacks go to a real Receiver on the test's
// prefix (started with the test, stopped at its end).
func withReceiver(t *testing.T, mod func(*Config)) func(*Config) {
	return func(c *Config) {
		if mod != nil {
			mod(c)
		}
		rdb := testutil.Redis(t)
		recv, err := callbacks.New(callbacks.Config{
			Prefix: c.Store.Prefix, Token: rcToken, AccountID: roxsim.DefaultAccountID,
			ReceiptsStream: c.Store.Prefix + ":receipts", RepliesStream: c.Store.Prefix + ":replies",
			// A loaded machine (-race, stress) must slow callbacks, not
			// lose them to ROX's email fallback.
			SpoolDir: t.TempDir(), StoreTimeout: 5 * time.Second,
		}, rdb, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- recv.Run(ctx) }()
		srv := httptest.NewServer(recv.Handler())
		t.Cleanup(func() {
			srv.Close()
			cancel()
			<-done
			rdb.Del(context.Background(), c.Store.Prefix+":receipts", c.Store.Prefix+":replies")
		})
		c.ReceiptCallbackURL = srv.URL + "/rox/" + rcToken + "/receipt"
		c.ReplyCallbackURL = srv.URL + "/rox/" + rcToken + "/reply"
	}
}

// dyingSender sends for real and then ends the calling goroutine, as a
// process killed between ROX's answer and the record script: the run
// writes nothing and its lock is left to expire.
type dyingSender struct {
	real Sender
	mu   sync.Mutex
	die  bool
}

func (d *dyingSender) Send(ctx context.Context, m rox.Messages) (*rox.SendResponse, error) {
	resp, err := d.real.Send(ctx, m)
	d.mu.Lock()
	die := d.die
	d.mu.Unlock()
	if die {
		runtime.Goexit()
	}
	return resp, err
}

func (d *dyingSender) setDie(v bool) { d.mu.Lock(); d.die = v; d.mu.Unlock() }

var _ Sender = (*dyingSender)(nil)

// crashRun runs one handler attempt of bid that dies right after ROX
// answered, and waits for it to be gone.
func crashRun(t *testing.T, w *Worker, ds *dyingSender, bid string) {
	t.Helper()
	ds.setDie(true)
	defer ds.setDie(false)
	done := make(chan struct{})
	go func() { defer close(done); _ = w.process(context.Background(), bid, false) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("crashing run did not end")
	}
}

func formOne(t *testing.T, b *bundle, w *Worker, pfx string) string {
	t.Helper()
	formed, err := w.b.Form(b.ctx, store.FormParams{MaxBatch: 500, MaxWaiting: 10, MaxForm: 4, IDPrefix: pfx}, time.Now().Add(time.Second))
	if err != nil || len(formed) != 1 {
		t.Fatalf("form %v %v", formed, err)
	}
	return formed[0].ID
}

// simSMSIDs maps each accepted text to its SMSIds at the simulator.
func (b *bundle) simSMSIDs() map[string][]string {
	out := map[string][]string{}
	for _, r := range b.sim.Recipients() {
		if r.SMSID != "" {
			out[r.Text] = append(out[r.Text], r.SMSID)
		}
	}
	return out
}

func (b *bundle) field(id, f string) string {
	return b.rdb.HGet(b.ctx, b.st.Keys().Msg(id), f).Val()
}

// TestCrashAfterAcceptReconcilesFromReceipts: a run dies after ROX
// accepted its 40 recipients; their receipts arrive while the dead run's
// lock is still held (parked as deferred). The redelivered run must not
// send again: every recipient is recorded from its receipt (SMSId, status
// delivered, {P}:sms:<smsid>), and the receipts' stream entries carry the
// message ids.
func TestCrashAfterAcceptReconcilesFromReceipts(t *testing.T) {
	b := setup(t, roxsim.Faults{ReceiptDelay: 100 * time.Millisecond}, withReceiver(t, func(c *Config) {
		c.TaskTimeout = 1500 * time.Millisecond // the dead run's lock
		c.ReconcileWindow = 20 * time.Second
	}))
	ds := &dyingSender{real: b.client}
	w, err := New(b.cfg, b.rdb, b.aopt, ds, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ids := b.enqueue(40, "crash", nil)
	bid := formOne(t, b, w, "cr-")
	crashRun(t, w, ds, bid)
	if n := b.sim.Stats().Queued; n != 40 {
		t.Fatalf("simulator accepted %d, want 40", n)
	}
	// Receipts arrive while the lock is held: nothing can be recorded yet.
	testutil.Eventually(t, 30*time.Second, func() bool { return b.sim.Stats().ReceiptsSent >= 40 }, "receipts posted")
	if st := b.sim.Stats(); st.ForwardedToEmail != 0 {
		t.Fatalf("%d receipts forwarded to email: %+v", st.ForwardedToEmail, st)
	}
	if n := b.countStatus(ids, "sending"); n != 40 {
		t.Fatalf("%d of 40 sending while the dead run's lock is held", n)
	}
	matched0 := promtest.ToFloat64(metrics.AmbiguousRecipients.WithLabelValues(metrics.AmbiguousMatched))
	// The redelivery after the lock expired.
	testutil.Eventually(t, 30*time.Second, func() bool { return b.rdb.Exists(b.ctx, b.st.Keys().Lock(bid)).Val() == 0 }, "lock expired")
	if err := w.process(b.ctx, bid, false); err != nil {
		t.Fatalf("redelivered run: %v", err)
	}
	b.checkExactlyOnce("crash", 40)
	if n := b.sim.Stats().Requests; n != 1 {
		t.Fatalf("%d requests, want 1: the redelivery sent again", n)
	}
	sms := b.simSMSIDs()
	for i, id := range ids {
		want := sms[fmt.Sprintf("crash %d", i)][0]
		if got := b.field(id, "sms_id"); got != want {
			t.Fatalf("%s: sms_id %q, want ROX's %q", id, got, want)
		}
		if got := b.rdb.Get(b.ctx, b.st.Keys().SMS(want)).Val(); got != id {
			t.Fatalf("sms map %s → %q, want %s", want, got, id)
		}
	}
	testutil.Eventually(t, 30*time.Second, func() bool { return b.countStatus(ids, "delivered") == 40 },
		"delivered from the receipts (have %d)", b.countStatus(ids, "delivered"))
	if got := promtest.ToFloat64(metrics.AmbiguousRecipients.WithLabelValues(metrics.AmbiguousMatched)) - matched0; got != 40 {
		t.Fatalf("matched metric grew by %v, want 40", got)
	}
	// The deferred receipts were correlated: one entry per message, with
	// its id.
	testutil.Eventually(t, 30*time.Second, func() bool {
		return b.rdb.XLen(b.ctx, b.cfg.Store.Prefix+":receipts").Val() >= 40
	}, "receipt entries")
	entries := b.rdb.XRange(b.ctx, b.cfg.Store.Prefix+":receipts", "-", "+").Val()
	seen := map[string]int{}
	for _, e := range entries {
		seen[fmt.Sprint(e.Values["message_id"])]++
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Fatalf("%s has %d receipt entries, want 1 (entries %d)", id, seen[id], len(entries))
		}
	}
}

// TestCrashReceiptsDuringWindow: the receipts come after the redelivered
// run put the recipients in `reconciling`; each is matched as it arrives,
// the window's re-check finds nothing left to send.
func TestCrashReceiptsDuringWindow(t *testing.T) {
	b := setup(t, roxsim.Faults{ReceiptDelay: 5 * time.Second}, withReceiver(t, func(c *Config) {
		c.TaskTimeout = 500 * time.Millisecond
		c.ReconcileWindow = 10 * time.Second
	}))
	ds := &dyingSender{real: b.client}
	w, err := New(b.cfg, b.rdb, b.aopt, ds, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ids := b.enqueue(25, "late", nil)
	bid := formOne(t, b, w, "lt-")
	crashRun(t, w, ds, bid)
	testutil.Eventually(t, 30*time.Second, func() bool { return b.rdb.Exists(b.ctx, b.st.Keys().Lock(bid)).Val() == 0 }, "lock expired")
	err = w.process(b.ctx, bid, false)
	var rw *reconcileWait
	if !errors.As(err, &rw) || rw.Waiting != 25 {
		t.Fatalf("redelivered run returned %v, want a reconcileWait for 25", err)
	}
	if d := w.retryDelay(3, err, nil); d < 3*time.Second || d > 10*time.Second {
		t.Fatalf("retry delay %s, want the rest of the 10s window", d)
	}
	if isFailure(err) {
		t.Fatal("a reconcile wait counts as a failure")
	}
	if n := b.countStatus(ids, "reconciling"); n != 25 {
		t.Fatalf("%d reconciling, want 25", n)
	}
	testutil.Eventually(t, 30*time.Second, func() bool { return b.countStatus(ids, "delivered") == 25 },
		"matched from receipts during the window (delivered %d)", b.countStatus(ids, "delivered"))
	testutil.Eventually(t, 30*time.Second, func() bool { return time.Now().After(rw.Until) }, "window")
	if err := w.process(b.ctx, bid, false); err != nil {
		t.Fatalf("re-check after the window: %v", err)
	}
	b.checkExactlyOnce("late", 25)
	if _, err := w.b.Batch(b.ctx, bid); !errors.Is(err, store.ErrNoBatch) {
		t.Fatalf("batch left after the re-check: %v", err)
	}
}

// TestCrashPolicies: with no evidence (receipts never come), reconcile
// resends after the window, fail ends outcome_unknown and never resends,
// resend resends at once; on_ambiguous overrides the deployment default.
func TestCrashPolicies(t *testing.T) {
	b := setup(t, roxsim.Faults{ReceiptDelay: time.Hour}, withReceiver(t, func(c *Config) {
		c.TaskTimeout = 400 * time.Millisecond
		c.ReconcileWindow = 4 * time.Second
	}))
	ds := &dyingSender{real: b.client}
	w, err := New(b.cfg, b.rdb, b.aopt, ds, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	pol := []string{"", store.AmbiguousResend, store.AmbiguousFail, store.AmbiguousReconcile}
	ids := b.enqueue(8, "pol", func(i int, r *store.Record) { r.OnAmbiguous = pol[i%4] })
	bid := formOne(t, b, w, "po-")
	start := time.Now() // the window counts from the request leaving
	crashRun(t, w, ds, bid)
	testutil.Eventually(t, 30*time.Second, func() bool { return b.rdb.Exists(b.ctx, b.st.Keys().Lock(bid)).Val() == 0 }, "lock expired")
	err = w.process(b.ctx, bid, false)
	var rw *reconcileWait
	if !errors.As(err, &rw) || rw.Waiting != 4 {
		t.Fatalf("redelivered run returned %v, want a reconcileWait for the 4 reconcile ones", err)
	}
	if n := b.sim.Stats().Requests; n != 1 {
		t.Fatalf("%d requests: nothing may be sent while some recipients wait", n)
	}
	for i, id := range ids {
		st := b.field(id, "status")
		if pol[i%4] == store.AmbiguousFail {
			if st != "failed" || b.field(id, "err") != store.ReasonOutcomeUnknown {
				t.Fatalf("%s (fail): status %s err %q", id, st, b.field(id, "err"))
			}
		} else if st != "reconciling" && pol[i%4] != store.AmbiguousResend {
			t.Fatalf("%s (%q): status %s, want reconciling", id, pol[i%4], st)
		}
	}
	testutil.Eventually(t, 30*time.Second, func() bool { return time.Now().After(rw.Until) }, "window")
	if err := w.process(b.ctx, bid, false); err != nil {
		t.Fatalf("re-check after the window: %v", err)
	}
	if took := time.Since(start); took < 3900*time.Millisecond {
		t.Fatalf("resent after %s, before the window closed", took)
	}
	acc := b.accepted()
	for i := range ids {
		want := 2 // no evidence: resent after the window (or by the resend policy)
		if pol[i%4] == store.AmbiguousFail {
			want = 1
		}
		if got := acc[fmt.Sprintf("pol %d", i)]; got != want {
			t.Fatalf("pol %d (%q) accepted %d times, want %d", i, pol[i%4], got, want)
		}
	}
	if n := b.countStatus(ids, "submitted"); n != 6 {
		t.Fatalf("%d submitted after the resend, want 6", n)
	}
}

// TestTimeoutAmbiguity: ROX accepts 40% of the requests and answers them
// after 2 s, past the client's 800 ms timeout. Reconcile: every message
// accepted exactly once and delivered. Resend: the honest count of
// duplicates (every recipient of a late request). Fail: those recipients
// end failed outcome_unknown and nothing is sent twice.
func TestTimeoutAmbiguity(t *testing.T) {
	for _, policy := range []string{store.AmbiguousReconcile, store.AmbiguousResend, store.AmbiguousFail} {
		t.Run(policy, func(t *testing.T) {
			const n = 200
			b := setup(t, roxsim.Faults{LateAnswer: 0.4, LateAnswerDelay: 2 * time.Second, ReceiptDelay: 50 * time.Millisecond},
				withReceiver(t, func(c *Config) {
					c.Ambiguous = policy
					c.ReconcileWindow = 15 * time.Second
					c.MaxBatch = 10
					c.Linger = 50 * time.Millisecond
				}))
			client, err := rox.NewClient(rox.ClientConfig{
				URL: b.simURL + roxsim.SendPath, AccountID: roxsim.DefaultAccountID,
				Username: roxsim.DefaultUsername, Password: roxsim.DefaultPassword, Timeout: 800 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			b.client = client
			ids := b.enqueue(n, "to", nil)
			b.start()
			settled := func() bool {
				c := 0
				for _, s := range b.statuses(ids) {
					if s == "delivered" || s == "failed" {
						c++
					}
				}
				return c == n
			}
			testutil.Eventually(t, 90*time.Second, settled, "every message delivered or failed")
			late := 0
			for _, rq := range b.sim.Requests() {
				if rq.Fault == "late_answer" {
					late += rq.Recipients
				}
			}
			if late == 0 {
				t.Fatal("no request was answered late: the test proves nothing")
			}
			acc := b.accepted()
			extra, total := 0, 0
			for i := 0; i < n; i++ {
				c := acc[fmt.Sprintf("to %d", i)]
				total += c
				if c > 1 {
					extra += c - 1
				}
				if c == 0 {
					t.Fatalf("to %d never accepted", i)
				}
			}
			failed := b.countStatus(ids, "failed")
			t.Logf("%s: %d recipients in late requests, %d extra SMS, %d failed", policy, late, extra, failed)
			switch policy {
			case store.AmbiguousReconcile:
				if extra != 0 || failed != 0 {
					t.Fatalf("reconcile: %d extra SMS and %d failed, want 0 and 0", extra, failed)
				}
			case store.AmbiguousResend:
				// Every recipient of a late request was sent again (and a
				// resend answered late was sent once more); on a loaded
				// machine an ordinary answer may miss the timeout too.
				if extra < late {
					t.Fatalf("resend: %d extra SMS, want at least %d (the recipients of late requests)", extra, late)
				}
			case store.AmbiguousFail:
				if extra != 0 || failed < late {
					t.Fatalf("fail: %d extra SMS and %d failed, want 0 and at least %d", extra, failed, late)
				}
				if s := b.field(firstWith(b, ids, "failed"), "err"); s != store.ReasonOutcomeUnknown {
					t.Fatalf("err %q, want %s", s, store.ReasonOutcomeUnknown)
				}
			}
		})
	}
}

// TestSameNumberInTwoBatches: two messages to one number in flight in two
// batches at once, both runs die. A receipt fits either: it is never
// attributed (the metric counts it) and both follow the policy at the
// window's end. Replies carry the original text and so are attributed to
// the right one.
func TestSameNumberInTwoBatches(t *testing.T) {
	b := setup(t, roxsim.Faults{ReceiptDelay: 100 * time.Millisecond}, withReceiver(t, func(c *Config) {
		c.TaskTimeout = 400 * time.Millisecond
		c.ReconcileWindow = 8 * time.Second
	}))
	ds := &dyingSender{real: b.client}
	w, err := New(b.cfg, b.rdb, b.aopt, ds, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	const num = "+61400000777"
	a := b.enqueue(1, "twoA", func(i int, r *store.Record) { r.To = num })
	bidA := formOne(t, b, w, "ta-")
	bb := b.enqueue(1, "twoB", func(i int, r *store.Record) { r.To = num })
	bidB := formOne(t, b, w, "tb-")
	amb0 := promtest.ToFloat64(metrics.ReconcileAmbiguousEvidence)
	crashRun(t, w, ds, bidA)
	crashRun(t, w, ds, bidB)
	testutil.Eventually(t, 30*time.Second, func() bool { return b.sim.Stats().ReceiptsSent >= 2 }, "receipts posted")
	testutil.Eventually(t, 30*time.Second, func() bool {
		return b.rdb.Exists(b.ctx, b.st.Keys().Lock(bidA), b.st.Keys().Lock(bidB)).Val() == 0
	}, "locks expired")
	for _, bid := range []string{bidA, bidB} {
		var rw *reconcileWait
		if err := w.process(b.ctx, bid, false); !errors.As(err, &rw) {
			t.Fatalf("%s: %v, want a reconcileWait (the receipts fit both)", bid, err)
		}
	}
	if got := promtest.ToFloat64(metrics.ReconcileAmbiguousEvidence) - amb0; got < 2 {
		t.Fatalf("ambiguous evidence metric grew by %v, want >= 2", got)
	}
	for _, id := range []string{a[0], bb[0]} {
		if s := b.field(id, "sms_id"); s != "" {
			t.Fatalf("%s got sms_id %s from a receipt that fits two messages", id, s)
		}
	}
	// A reply names the text: it settles B at once.
	sms := b.simSMSIDs()
	if _, err := b.sim.Reply(b.ctx, sms["twoB 0"][0], "", "yes"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, func() bool { return b.field(bb[0], "sms_id") == sms["twoB 0"][0] },
		"the reply's text matched B (sms_id %q)", b.field(bb[0], "sms_id"))
	if s := b.field(a[0], "sms_id"); s != "" {
		t.Fatalf("A got sms_id %s from B's reply", s)
	}
	// With B settled, A's receipt fits A alone: the re-check uses it.
	for _, bid := range []string{bidA, bidB} {
		for {
			err := w.process(b.ctx, bid, false)
			var rw *reconcileWait
			if !errors.As(err, &rw) {
				if err != nil {
					t.Fatalf("%s: %v", bid, err)
				}
				break
			}
			testutil.Eventually(t, 30*time.Second, func() bool { return time.Now().After(rw.Until) }, "window")
		}
	}
	if s := b.field(a[0], "sms_id"); s != sms["twoA 0"][0] {
		t.Fatalf("A sms_id %q, want %q", s, sms["twoA 0"][0])
	}
	b.checkExactlyOnce("twoA", 1)
	b.checkExactlyOnce("twoB", 1)
	if !strings.HasPrefix(b.field(a[0], "status"), "deliver") && b.field(a[0], "status") != "submitted" {
		t.Fatalf("A status %s", b.field(a[0], "status"))
	}
}
