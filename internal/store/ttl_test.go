package store

import (
	"testing"
	"time"

	"github.com/redoxygen/roxd/internal/testutil"
)

// The TTL rule (docs/LIFECYCLE.md): a record has no TTL while its message
// can still be sent (queued, scheduled, sending, reconciling) and gets
// StatusTTL when it reaches an end state (submitted, delivered, failed,
// cancelled, expired, suppressed); an operator's revive (failed -> sending)
// takes it away again.

const ttlTestTTL = time.Hour

func setupTTL(t *testing.T) *batchBundle {
	t.Helper()
	return setupBatchWith(t, Config{Prefix: testutil.Name("ttl"), StatusTTL: ttlTestTTL, ScheduleLead: time.Minute})
}

// pttl is the record's PTTL in ms (-1: none, -2: no record).
func (bb *batchBundle) pttl(t *testing.T, id string) int64 {
	t.Helper()
	v, err := bb.rdb.Do(bb.ctx, "PTTL", bb.s.keys.Msg(id)).Int64()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// sendable fails unless id is in status st with no TTL.
func (bb *batchBundle) sendable(t *testing.T, id string, st Status) {
	t.Helper()
	if got := bb.rdb.HGet(bb.ctx, bb.s.keys.Msg(id), FieldStatus).Val(); got != string(st) {
		t.Fatalf("%s: status %q, want %s", id, got, st)
	}
	if v := bb.pttl(t, id); v != -1 {
		t.Fatalf("%s (%s): PTTL %d ms, want -1 (no TTL while it can be sent)", id, st, v)
	}
}

// ended fails unless id is in status st with a TTL of about StatusTTL.
func (bb *batchBundle) ended(t *testing.T, id string, st Status) {
	t.Helper()
	if got := bb.rdb.HGet(bb.ctx, bb.s.keys.Msg(id), FieldStatus).Val(); got != string(st) {
		t.Fatalf("%s: status %q, want %s", id, got, st)
	}
	v := time.Duration(bb.pttl(t, id)) * time.Millisecond
	if v <= ttlTestTTL-time.Minute || v > ttlTestTTL {
		t.Fatalf("%s (%s): PTTL %s, want about StatusTTL %s", id, st, v, ttlTestTTL)
	}
}

func (bb *batchBundle) formOne(t *testing.T) string {
	t.Helper()
	f := bb.form(t, FormParams{MaxBatch: 500, MaxWaiting: 10}, time.Now().Add(time.Hour))
	if len(f) != 1 {
		t.Fatalf("formed %+v, want one batch", f)
	}
	return f[0].ID
}

func (bb *batchBundle) claim(t *testing.T, b *Batches, bid, tok string, now time.Time) Claim {
	t.Helper()
	c, err := b.Claim(bb.ctx, bid, tok, time.Minute, now)
	if err != nil || c.State != ClaimOK {
		t.Fatalf("claim %s: %+v %v", bid, c, err)
	}
	return c
}

func TestTTLEnqueueAndCancel(t *testing.T) {
	bb := setupTTL(t)
	now := time.Now()
	if err := bb.s.Suppress(bb.ctx, "+61400000009"); err != nil {
		t.Fatal(err)
	}
	bb.add(t, 5, "e", func(i int, r *Record) {
		switch i {
		case 1:
			r.SendAt = now.Add(30 * 24 * time.Hour) // scheduled
		case 2:
			r.SendAt = now.Add(30 * time.Second) // within the lead: queued
		case 3:
			r.To = "+61400000009" // suppressed
		}
	})
	bb.sendable(t, "e-0", StatusQueued)
	bb.sendable(t, "e-1", StatusScheduled)
	bb.sendable(t, "e-2", StatusQueued)
	bb.ended(t, "e-3", StatusSuppressed)
	bb.sendable(t, "e-4", StatusQueued)
	for _, id := range []string{"e-0", "e-1"} {
		if _, err := bb.s.Cancel(bb.ctx, id); err != nil {
			t.Fatal(err)
		}
		bb.ended(t, id, StatusCancelled)
	}
	// scheduled -> queued by the scheduler: still no TTL
	bb.add(t, 1, "m", func(_ int, r *Record) { r.SendAt = now.Add(2 * time.Minute) })
	bb.sendable(t, "m-0", StatusScheduled)
	if _, moved, err := bb.b.MoveDue(bb.ctx, now.Add(time.Hour), 100); err != nil || moved != 1 {
		t.Fatalf("move due: %d %v", moved, err)
	}
	bb.sendable(t, "m-0", StatusQueued)
}

func TestTTLClaimRecordRequeue(t *testing.T) {
	bb := setupTTL(t)
	now := time.Now()
	bb.add(t, 6, "c", func(i int, r *Record) {
		if i == 5 {
			r.ExpiresAt = now.Add(time.Minute)
		}
	})
	bb.rdb.SAdd(bb.ctx, bb.s.keys.Suppressed(), "+61407550004") // c-4: suppressed at the claim
	bid := bb.formOne(t)
	c := bb.claim(t, bb.b, bid, "tok", now.Add(2*time.Minute)) // c-5 expired at the claim
	if len(c.Items) != 4 || c.Suppressed != 1 || c.Expired != 1 {
		t.Fatalf("claim %+v", c)
	}
	for _, id := range []string{"c-0", "c-1", "c-2", "c-3"} {
		bb.sendable(t, id, StatusSending)
	}
	bb.ended(t, "c-4", StatusSuppressed)
	bb.ended(t, "c-5", StatusExpired)
	out := []SendOutcome{
		{ID: "c-0", Kind: OutcomeSubmitted, Value: "sms-0"},
		{ID: "c-1", Kind: OutcomeFailed, Value: "rox_permanent: 2012"},
		{ID: "c-2", Kind: OutcomeRetry, Value: "2015 busy"},
		{ID: "c-3", Kind: OutcomeRetry, Value: "2015 busy"},
	}
	if _, err := bb.b.Record(bb.ctx, bid, "tok", "req-1", out, now); err != nil {
		t.Fatal(err)
	}
	bb.ended(t, "c-0", StatusSubmitted)
	bb.ended(t, "c-1", StatusFailed)
	bb.sendable(t, "c-2", StatusSending)
	// An auth requeue: back to queued, no TTL.
	bb.claim(t, bb.b, bid, "tok2", now)
	if _, err := bb.b.Requeue(bb.ctx, bid, "tok2"); err != nil {
		t.Fatal(err)
	}
	bb.sendable(t, "c-2", StatusQueued)
	bb.sendable(t, "c-3", StatusQueued)
}

func TestTTLUnknownOutcome(t *testing.T) {
	bb := setupTTL(t)
	bb.add(t, 3, "u", func(i int, r *Record) {
		switch i {
		case 1:
			r.OnAmbiguous = AmbiguousFail
		case 2:
			r.OnAmbiguous = AmbiguousResend
		}
	})
	b := bb.b.WithReconcile(ReconcileParams{Window: time.Minute})
	bid := bb.formOne(t)
	now := time.Now()
	c := bb.claim(t, b, bid, "tok", now)
	ids := []string{"u-0", "u-1", "u-2"}
	if len(c.Items) != 3 {
		t.Fatalf("claim %+v", c)
	}
	if _, _, _, err := b.Unknown(bb.ctx, bid, "tok", c.Group, ids, "timeout", true, time.Minute, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	bb.sendable(t, "u-0", StatusReconciling)
	bb.ended(t, "u-1", StatusFailed) // outcome_unknown
	bb.ended(t, "u-2", StatusFailed) // retries_exhausted
	// The window closes without evidence: sent again (sending, no TTL).
	c = bb.claim(t, b, bid, "tok2", now.Add(2*time.Minute))
	if len(c.Items) != 1 {
		t.Fatalf("claim after the window %+v", c)
	}
	bb.sendable(t, "u-0", StatusSending)
}

func TestTTLExpireDue(t *testing.T) {
	bb := setupTTL(t)
	now := time.Now()
	bb.add(t, 2, "x", func(i int, r *Record) {
		if i == 0 {
			r.ExpiresAt = now.Add(time.Minute)
		}
	})
	bid := bb.formOne(t)
	d, err := bb.b.ExpireDue(bb.ctx, bid, now.Add(2*time.Minute))
	if err != nil || d.Expired != 1 {
		t.Fatalf("expire due %+v %v", d, err)
	}
	bb.ended(t, "x-0", StatusExpired)
	bb.sendable(t, "x-1", StatusQueued)
}

// An operator's archive fails the batch's messages (TTL); running the
// archived task again revives them (no TTL) until their next end state.
func TestTTLOperatorArchiveAndRevive(t *testing.T) {
	bb := setupTTL(t)
	ids := bb.add(t, 3, "o", nil)
	bid := bb.formOne(t)
	c := bb.claim(t, bb.b, bid, "tok", time.Now())
	if len(c.Items) != 3 {
		t.Fatalf("claim %+v", c)
	}
	bb.rdb.Del(bb.ctx, bb.s.keys.Lock(bid))
	if n, err := bb.b.FailBatch(bb.ctx, bid, ReasonArchivedByOperator, true, time.Now()); err != nil || n != 3 {
		t.Fatalf("fail batch: %d %v", n, err)
	}
	for _, id := range ids {
		bb.ended(t, id, StatusFailed)
	}
	if n, err := bb.b.Revive(bb.ctx, bid, time.Now()); err != nil || n != 3 {
		t.Fatalf("revive: %d %v", n, err)
	}
	for _, id := range ids {
		bb.sendable(t, id, StatusSending)
	}
	// (their first request was never answered: resend them)
	c = bb.claim(t, bb.b.WithReconcile(ReconcileParams{Default: AmbiguousResend}), bid, "tok2", time.Now())
	if len(c.Items) != 3 {
		t.Fatalf("claim of the revived batch %+v", c)
	}
	for _, id := range ids {
		bb.sendable(t, id, StatusSending)
	}
	out := []SendOutcome{
		{ID: ids[0], Kind: OutcomeSubmitted, Value: "sms-r0"},
		{ID: ids[1], Kind: OutcomeFailed, Value: "rox_permanent: 2012"},
		{ID: ids[2], Kind: OutcomeRetry, Value: "busy"},
	}
	if _, err := bb.b.Record(bb.ctx, bid, "tok2", "req", out, time.Now()); err != nil {
		t.Fatal(err)
	}
	bb.ended(t, ids[0], StatusSubmitted)
	bb.ended(t, ids[1], StatusFailed)
	bb.sendable(t, ids[2], StatusSending)
}

// A reconciling message whose batch an operator deletes can no longer be
// sent by anything: it keeps its status and gets the TTL (as before).
func TestTTLOperatorDeleteOfReconciling(t *testing.T) {
	bb := setupTTL(t)
	bb.add(t, 1, "r", nil)
	b := bb.b.WithReconcile(ReconcileParams{Window: time.Minute})
	bid := bb.formOne(t)
	now := time.Now()
	c := bb.claim(t, b, bid, "tok", now)
	if _, _, _, err := b.Unknown(bb.ctx, bid, "tok", c.Group, []string{"r-0"}, "timeout", false, time.Minute, now); err != nil {
		t.Fatal(err)
	}
	bb.sendable(t, "r-0", StatusReconciling)
	if _, err := bb.b.FailBatch(bb.ctx, bid, ReasonDeletedByOperator, false, now); err != nil {
		t.Fatal(err)
	}
	bb.ended(t, "r-0", StatusReconciling)
}

func TestTTLEndScheduleGroup(t *testing.T) {
	bb := setupTTL(t)
	at := time.Now().Add(24 * time.Hour)
	bb.add(t, 2, "g", func(_ int, r *Record) { r.SendAt = at })
	r, err := bb.s.Get(bb.ctx, "g-0")
	if err != nil {
		t.Fatal(err)
	}
	bb.sendable(t, "g-0", StatusScheduled)
	if n, err := bb.b.EndGroup(bb.ctx, r.Group, StatusCancelled, ReasonDeletedByOperator, time.Now()); err != nil || n != 2 {
		t.Fatalf("end group: %d %v", n, err)
	}
	bb.ended(t, "g-0", StatusCancelled)
	bb.ended(t, "g-1", StatusCancelled)
	// HandOver (the group's task ran): queued, no TTL.
	bb.add(t, 1, "h", func(_ int, r *Record) { r.SendAt = at })
	if n, err := bb.b.HandOver(bb.ctx, r.Group, ""); err != nil || n != 1 {
		t.Fatalf("hand over: %d %v", n, err)
	}
	bb.sendable(t, "h-0", StatusScheduled)
}

func TestTTLTransition(t *testing.T) {
	bb := setupTTL(t)
	bb.add(t, 2, "t", nil)
	for _, step := range []struct {
		id string
		to Status
	}{{"t-0", StatusSending}, {"t-0", StatusSubmitted}, {"t-1", StatusFailed}} {
		if ok, _, err := bb.s.Transition(bb.ctx, step.id, step.to, nil); !ok || err != nil {
			t.Fatalf("transition %s to %s: %v %v", step.id, step.to, ok, err)
		}
		if step.to.Rank() <= StatusSending.Rank() {
			bb.sendable(t, step.id, step.to)
		} else {
			bb.ended(t, step.id, step.to)
		}
	}
}
