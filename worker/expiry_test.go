package worker

import (
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/internal/metrics"
	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/producer"
	"github.com/redoxygen/roxd/rox/roxsim"
)

func (b *bundle) streamEntries(t *testing.T) []map[string]any {
	t.Helper()
	xs, err := b.rdb.XRange(b.ctx, b.cfg.ReceiptsStream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]map[string]any, len(xs))
	for i, x := range xs {
		out[i] = x.Values
	}
	return out
}

func setupExpiry(t *testing.T, f roxsim.Faults, mod func(*Config)) *bundle {
	return setup(t, f, func(c *Config) {
		// Under the prefix's hash tag: removed with the test's keys.
		c.ReceiptsStream = store.NewKeys(c.Store.Prefix).Base() + "receipts"
		if mod != nil {
			mod(c)
		}
	})
}

// A message whose validity ran out before the worker reached it ends
// expired: never sent, a stream entry, the metric.
func TestExpiredBeforeSendIsNeverSent(t *testing.T) {
	b := setupExpiry(t, roxsim.Faults{}, nil)
	before := promtest.ToFloat64(metrics.MessagesExpired)
	exp := b.enqueue(3, "late", func(i int, r *store.Record) {
		r.ExpiresAt = time.Now().Add(-time.Millisecond) // waited too long (a worker outage, a backlog)
		r.Metadata = map[string]string{"n": "x"}
	})
	ok := b.enqueue(2, "fresh", func(i int, r *store.Record) { r.ExpiresAt = time.Now().Add(time.Hour) })
	b.start()
	waitFor(t, 30*time.Second, "the valid messages to be submitted", func() bool { return b.countStatus(ok, "submitted") == 2 })
	waitFor(t, 30*time.Second, "the expired ones to end expired", func() bool { return b.countStatus(exp, "expired") == 3 })
	for txt, n := range b.accepted() {
		if len(txt) >= 4 && txt[:4] == "late" {
			t.Fatalf("%q reached ROX %d times: an expired message was sent", txt, n)
		}
	}
	if got := promtest.ToFloat64(metrics.MessagesExpired) - before; got != 3 {
		t.Fatalf("roxd_messages_expired_total grew by %v, want 3", got)
	}
	seen := map[string]bool{}
	for _, e := range b.streamEntries(t) {
		if e["kind"] == store.KindExpired && e["status"] == "expired" && e["metadata"] == `{"n":"x"}` {
			seen[e["message_id"].(string)] = true
		}
	}
	if len(seen) != 3 {
		t.Fatalf("stream announces %v, want the 3 expired messages", seen)
	}
}

// Retries stop at expiry: a recipient ROX keeps refusing with a retryable
// code is retried until its validity runs out, then ends expired and is
// never sent again.
func TestExpiryEndsRetries(t *testing.T) {
	// Attempts enough to outlast the validity (retries every 20-200 ms).
	b := setupExpiry(t, roxsim.Faults{RecipientErrors: 1}, func(c *Config) { c.MaxAttempts = 1000 })
	ids := b.enqueue(1, "retry", func(_ int, r *store.Record) { r.ExpiresAt = time.Now().Add(1500 * time.Millisecond) })
	b.start()
	waitFor(t, 60*time.Second, "the message to expire during its retries", func() bool {
		if st := b.statuses(ids)[ids[0]]; st != "sending" && st != "queued" && st != "expired" {
			r, _ := b.st.Get(b.ctx, ids[0])
			t.Fatalf("status %s (err %q, attempts %d), want expired", st, r.Err, r.Attempts)
		}
		return b.countStatus(ids, "expired") == 1
	})
	rec, err := b.st.Get(b.ctx, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if rec.Attempts < 2 {
		t.Fatalf("attempts %d: the message was not retried before it expired", rec.Attempts)
	}
	n := len(b.sim.FindRecipients(roxsim.RecipientFilter{Text: "retry 0"}))
	time.Sleep(500 * time.Millisecond) // well past several retry delays (20-200 ms)
	if m := len(b.sim.FindRecipients(roxsim.RecipientFilter{Text: "retry 0"})); m != n {
		t.Fatalf("ROX got the message %d more times after it expired", m-n)
	}
	// The check is at the claim: a request claimed just before the expiry
	// reaches ROX a few ms after it (building and posting it), never a
	// retry claimed later.
	for _, r := range b.sim.FindRecipients(roxsim.RecipientFilter{Text: "retry 0"}) {
		if r.ReceivedAt.After(rec.ExpiresAt.Add(time.Second)) {
			t.Fatalf("a request at %s carried it after its expiry %s", r.ReceivedAt, rec.ExpiresAt)
		}
	}
}

// A scheduled message's validity counts from its send_at: one handed over
// (ahead, with SendLater) after "now + valid_for" but before "send_at +
// valid_for" is sent.
func TestScheduledValidityCountsFromSendAt(t *testing.T) {
	b := setupExpiry(t, roxsim.Faults{}, nil)
	p, err := producer.New(b.rdb, producer.Config{Store: b.cfg.Store.WithDefaults()}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	sendAt := now.Add(4 * time.Second) // within the 1m lead: handed over at once, with SendLater
	res, err := p.SendMany(b.ctx, []producer.Message{
		{ID: "sched", To: "+61412345678", Text: "sched", SendAt: sendAt, ValidFor: time.Second},
		{ID: "now", To: "+61412345679", Text: "now", ValidFor: time.Second},
	})
	if err != nil || res[0].Err != nil || res[1].Err != nil {
		t.Fatalf("send: %v %+v", err, res)
	}
	if want := sendAt.Add(time.Second).Truncate(time.Millisecond); !res[0].ExpiresAt.Equal(want) {
		t.Fatalf("expires_at %s, want send_at + 1s = %s", res[0].ExpiresAt, want)
	}
	// The worker comes later than now + valid_for.
	time.Sleep(time.Until(now.Add(1500 * time.Millisecond)))
	b.start()
	waitFor(t, 30*time.Second, "both to end", func() bool {
		st := b.statuses([]string{"sched", "now"})
		return st["sched"] == "submitted" && st["now"] == "expired"
	})
	rs := b.sim.FindRecipients(roxsim.RecipientFilter{Text: "sched"})
	if len(rs) != 1 || rs[0].SendLater.IsZero() {
		t.Fatalf("scheduled message reached ROX as %+v, want once with SendLater", rs)
	}
}

// expiredAt is when message id ended expired (t_expired), or the test
// fails.
func (b *bundle) expiredAt(id string) (expiredAt, expiresAt time.Time) {
	b.t.Helper()
	r, err := b.st.Get(b.ctx, id)
	if err != nil {
		b.t.Fatal(err)
	}
	for _, e := range r.History {
		if e.Status == store.StatusExpired {
			return e.At, r.ExpiresAt
		}
	}
	b.t.Fatalf("%s: no expired event in %+v", id, r.History)
	return
}

// The retry after a failed attempt is cut short at the batch's earliest
// expiry: a message whose validity ends long before the backoff would
// retry it ends expired just after its expiry, not when the backoff ends
// (here at least 5 s later).
func TestRetryDelayStopsAtExpiry(t *testing.T) {
	b := setupExpiry(t, roxsim.Faults{RecipientErrors: 1}, func(c *Config) {
		c.RetryInitial = 10 * time.Second // 5 to 15 s with the jitter
		c.RetryMaxInterval = 10 * time.Minute
	})
	ids := b.enqueue(3, "rdx", func(i int, r *store.Record) { r.ExpiresAt = time.Now().Add(1500 * time.Millisecond) })
	b.start()
	waitFor(t, 60*time.Second, "the messages to end expired", func() bool { return b.countStatus(ids, "expired") == 3 })
	for _, id := range ids {
		at, exp := b.expiredAt(id)
		// Whole seconds (asynq) and a loaded machine: well under the 5 s
		// the shortest backoff would take.
		if late := at.Sub(exp); late < 0 || late > 3500*time.Millisecond {
			t.Fatalf("%s ended expired %s after its expiry, want just after it", id, late)
		}
	}
	if n := len(b.sim.FindRecipients(roxsim.RecipientFilter{Text: "rdx 0"})); n != 1 {
		t.Fatalf("ROX got the message %d times, want once (the attempt before it expired)", n)
	}
}

// The same when the wait is a 429's Retry-After (the account's pause): a
// message that expires during the pause ends expired when it expires, not
// when the pause ends, and is never sent.
func TestThrottlePauseStopsAtExpiry(t *testing.T) {
	b := setupExpiry(t, roxsim.Faults{Throttle: 1, ThrottleRetryAfter: 30 * time.Second}, nil)
	ids := b.enqueue(3, "t429x", func(i int, r *store.Record) { r.ExpiresAt = time.Now().Add(1500 * time.Millisecond) })
	b.start()
	waitFor(t, 60*time.Second, "the messages to end expired", func() bool { return b.countStatus(ids, "expired") == 3 })
	for _, id := range ids {
		at, exp := b.expiredAt(id)
		if late := at.Sub(exp); late < 0 || late > 3500*time.Millisecond {
			t.Fatalf("%s ended expired %s after its expiry (the pause is 30 s), want just after it", id, late)
		}
	}
	if len(b.accepted()) != 0 {
		t.Fatalf("ROX accepted %v during a 429 pause", b.accepted())
	}
}

// A rate-limited backlog: messages that expire while their batch waits for
// tokens are never sent, and end expired.
func TestRateLimitedWaitSendsNothingExpired(t *testing.T) {
	b := setupExpiry(t, roxsim.Faults{}, func(c *Config) { c.RateLimit = 20 })
	ids := b.enqueue(120, "rlx", func(i int, r *store.Record) { r.ExpiresAt = time.Now().Add(2 * time.Second) })
	b.start()
	waitFor(t, 60*time.Second, "every message to end", func() bool {
		return b.countStatus(ids, "submitted")+b.countStatus(ids, "delivered")+b.countStatus(ids, "expired") == len(ids)
	})
	exp, _ := b.st.Get(b.ctx, ids[0])
	sent := 0
	for _, r := range b.sim.Recipients() {
		sent++
		// A request claimed just before the expiry reaches ROX a few ms
		// after it; never one claimed later.
		if r.ReceivedAt.After(exp.ExpiresAt.Add(500 * time.Millisecond)) {
			t.Fatalf("%q reached ROX %s after its expiry", r.Text, r.ReceivedAt.Sub(exp.ExpiresAt))
		}
	}
	if n := b.countStatus(ids, "expired"); n == 0 || sent+n != len(ids) {
		t.Fatalf("%d sent, %d expired of %d: want the backlog cut by the expiry, nothing lost", sent, n, len(ids))
	}
}

// Under a rate limit the former pays tokens only for messages still valid:
// a backlog that expired while it waited (a worker outage, a long
// throttle) ends expired without taking the account's tokens, so it
// neither delays the valid messages behind it by its own size nor is
// announced expired one batch per token.
func TestRateLimitedFormerPaysNothingForExpired(t *testing.T) {
	b := setupExpiry(t, roxsim.Faults{}, func(c *Config) { c.RateLimit = 2 })
	// 60 dead messages cost 30 s of a 2 msg/s bucket when paid for.
	dead := b.enqueue(60, "dead", func(i int, r *store.Record) { r.ExpiresAt = time.Now().Add(-time.Millisecond) })
	live := b.enqueue(2, "live", func(i int, r *store.Record) { r.ExpiresAt = time.Now().Add(time.Hour) })
	began := time.Now()
	b.start()
	waitFor(t, 60*time.Second, "the valid messages to be submitted", func() bool {
		return b.countStatus(live, "submitted")+b.countStatus(live, "delivered") == len(live)
	})
	if took := time.Since(began); took > 10*time.Second {
		t.Fatalf("the 2 valid messages behind 60 expired ones took %s at 2 msg/s: the expired ones were paid for", took.Round(time.Millisecond))
	}
	waitFor(t, 30*time.Second, "the expired ones to end expired", func() bool { return b.countStatus(dead, "expired") == len(dead) })
	for txt := range b.accepted() {
		if len(txt) >= 4 && txt[:4] == "dead" {
			t.Fatalf("%q reached ROX: an expired message was sent", txt)
		}
	}
}
