package callbacks

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/redoxygen/roxd/internal/metrics"
	"github.com/redoxygen/roxd/internal/testutil"
	"github.com/redoxygen/roxd/rox"
	"github.com/redoxygen/roxd/rox/roxsim"
)

// The simulator delivers, posts receipts (each twice), and replies; the
// receiver turns them into stream entries carrying the producer's message id
// and metadata, once each.
func TestSimulatorCallbacksBecomeEntries(t *testing.T) {
	b := setup(t, nil, func(c *Config) { c.AccountID = roxsim.DefaultAccountID })
	ctx := context.Background()
	sim, err := roxsim.New(roxsim.Config{Seed: 7, Faults: roxsim.Faults{
		ReceiptDelay: 500 * time.Millisecond, Duplicates: 1,
	}}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	simSrv := httptest.NewServer(sim)
	t.Cleanup(func() {
		simSrv.Close()
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = sim.Close(cctx)
	})
	client, err := rox.NewClient(rox.ClientConfig{URL: simSrv.URL + roxsim.SendPath, AccountID: roxsim.DefaultAccountID,
		Username: roxsim.DefaultUsername, Password: roxsim.DefaultPassword})
	if err != nil {
		t.Fatal(err)
	}
	// Hold the simulator's deliveries until the records exist, as the
	// worker's record script would have written them.
	resp, err := client.Send(ctx, rox.Messages{
		ReceiptFlag: rox.ReceiptAlways, ReceiptCallbackURL: b.url(KindReceipt),
		ReplyType: rox.ReplyHTTP, ReplyCallbackURL: b.url(KindReply),
		Recipients: []rox.Recipient{{DestTn: "+61407555001", SMSText: "one"}, {DestTn: "+61407555002", SMSText: "two"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	smsIDs := map[string]string{} // sms id -> message id
	for i, r := range resp.Messages.Results {
		id := fmt.Sprintf("msg-%d", i+1)
		b.record(t, id, r.SMSID, "submitted", map[string]string{"order": fmt.Sprint(1000 + i + 1)})
		smsIDs[r.SMSID] = id
	}
	testutil.Eventually(t, 20*time.Second, func() bool {
		st := sim.Stats()
		return st.ReceiptsSent >= 4
	}, "simulator's receipts not answered: %+v", sim.Stats())
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := sim.WaitIdle(wctx); err != nil {
		t.Fatal(err)
	}
	if st := sim.Stats(); st.ForwardedToEmail != 0 || st.Duplicates < 2 {
		t.Errorf("simulator: %d forwarded to email (want 0), %d duplicates posted (want >= 2)", st.ForwardedToEmail, st.Duplicates)
	}
	msgs := b.entries(t, b.cfg.ReceiptsStream)
	if len(msgs) != 2 {
		t.Fatalf("%d receipt entries for 2 messages (each posted twice), want 2", len(msgs))
	}
	for _, m := range msgs {
		v := m.Values
		id := smsIDs[v["sms_id"].(string)]
		if id == "" || v["message_id"] != id || v["status"] != "delivered" || v["request_id"] != resp.Messages.RequestID ||
			!strings.Contains(v["metadata"].(string), `"order":"100`) {
			t.Errorf("receipt entry %v", v)
		}
		if s := b.status(t, id)["status"]; s != "delivered" {
			t.Errorf("%s: status %s after its receipt", id, s)
		}
	}

	// A reply, through the simulator's control endpoint.
	first := resp.Messages.Results[0]
	r, err := http.Post(simSrv.URL+roxsim.ReplyPath, "application/json",
		strings.NewReader(fmt.Sprintf(`{"sms_id":%q,"text":"Stop"}`, first.SMSID)))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /sim/reply: %d", r.StatusCode)
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		return b.rdb.XLen(ctx, b.cfg.RepliesStream).Val() >= 1 && b.rdb.SIsMember(ctx, b.keys.Suppressed(), first.DestTn).Val()
	}, "reply not stored or number not suppressed")
	if err := sim.WaitIdle(wctx); err != nil {
		t.Fatal(err)
	}
	replies := b.entries(t, b.cfg.RepliesStream)
	if len(replies) != 1 {
		t.Fatalf("%d reply entries (posted twice), want 1", len(replies))
	}
	if v := replies[0].Values; v["message_id"] != "msg-1" || v["reply_text"] != "Stop" || v["reply_from"] != first.DestTn ||
		!strings.Contains(v["metadata"].(string), "1001") {
		t.Errorf("reply entry %v", v)
	}
}

// With the simulator's default receipt delay of 0, receipts race the
// worker's record script: ROX posts them while the request is still being
// answered. The records are claimed before the send and their SMSIds
// recorded only after it, as the worker does; every receipt entry must
// still carry its message id, and every message end delivered.
func TestSimulatorReceiptDelayZeroCorrelated(t *testing.T) {
	b := setup(t, nil, func(c *Config) { c.AccountID = roxsim.DefaultAccountID })
	ctx := context.Background()
	sim, err := roxsim.New(roxsim.Config{Seed: 11}, testLogger(t)) // ReceiptDelay 0
	if err != nil {
		t.Fatal(err)
	}
	simSrv := httptest.NewServer(sim)
	t.Cleanup(func() {
		simSrv.Close()
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = sim.Close(cctx)
	})
	client, err := rox.NewClient(rox.ClientConfig{URL: simSrv.URL + roxsim.SendPath, AccountID: roxsim.DefaultAccountID,
		Username: roxsim.DefaultUsername, Password: roxsim.DefaultPassword})
	if err != nil {
		t.Fatal(err)
	}
	deferred := metrics.Callbacks.WithLabelValues(KindReceipt, OutcomeDeferred)
	deferredBefore := promtest.ToFloat64(deferred)
	const rounds, per = 5, 20
	want := map[string]string{} // sms id -> message id
	for r := 0; r < rounds; r++ {
		var recips []rox.Recipient
		for i := 0; i < per; i++ {
			id := fmt.Sprintf("z%d-%02d", r, i)
			b.claim(t, id, fmt.Sprintf(`{"id":%q}`, id))
			recips = append(recips, rox.Recipient{DestTn: fmt.Sprintf("+614075%05d", r*per+i), SMSText: id})
		}
		resp, err := client.Send(ctx, rox.Messages{ReceiptFlag: rox.ReceiptAlways, ReceiptCallbackURL: b.url(KindReceipt),
			ReplyType: rox.ReplyHTTP, ReplyCallbackURL: b.url(KindReply), Recipients: recips})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Messages.Results) != per {
			t.Fatalf("%d results for %d recipients", len(resp.Messages.Results), per)
		}
		for i, res := range resp.Messages.Results {
			id := fmt.Sprintf("z%d-%02d", r, i)
			b.recordSent(t, id, res.SMSID)
			want[res.SMSID] = id
		}
	}
	testutil.Eventually(t, 20*time.Second, func() bool {
		return b.rdb.XLen(ctx, b.cfg.ReceiptsStream).Val() >= rounds*per && b.deferredLen(t) == 0
	}, "receipts not all stored: %d entries, %d deferred", lazy(func() string {
		return fmt.Sprint(b.rdb.XLen(ctx, b.cfg.ReceiptsStream).Val())
	}), lazy(func() string { return fmt.Sprint(b.deferredLen(t)) }))
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := sim.WaitIdle(wctx); err != nil {
		t.Fatal(err)
	}
	msgs := b.entries(t, b.cfg.ReceiptsStream)
	if len(msgs) != rounds*per {
		t.Errorf("%d receipt entries, want %d", len(msgs), rounds*per)
	}
	for _, m := range msgs {
		v := m.Values
		id := want[v["sms_id"].(string)]
		if id == "" || v["message_id"] != id || v["metadata"] != fmt.Sprintf(`{"id":%q}`, id) {
			t.Errorf("receipt entry %v: want message_id %q and its metadata", v, id)
		}
	}
	for _, id := range want {
		if s := b.status(t, id)["status"]; s != "delivered" {
			t.Errorf("%s: status %s", id, s)
		}
	}
	t.Logf("%v of %d receipts arrived before their SMSId was recorded (deferred)",
		promtest.ToFloat64(deferred)-deferredBefore, rounds*per)
}
