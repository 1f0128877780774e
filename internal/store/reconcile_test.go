package store

import (
	"fmt"
	"testing"
	"time"
)

func TestFlightNumber(t *testing.T) {
	for in, want := range map[string]string{
		"+61407555001": "61407555001", "61407555001": "61407555001", "0061 407 555 001": "61407555001",
		"+61 (407) 555-001": "61407555001", "": "",
	} {
		if got := FlightNumber(in); got != want {
			t.Errorf("FlightNumber(%q) = %q, want %q", in, got, want)
		}
	}
}

// The claim stamps recipients in flight (field and per-number index); the
// record script takes every answered recipient out of the index, clears
// the field of those it does not give an sms_id (a failed one may be
// revived, a retried one is claimed again), and drops the evidence of a
// number nobody is in flight to any more, so nothing is left behind by
// requests that were answered.
func TestFlightStampedAndCleared(t *testing.T) {
	bb := setupBatch(t)
	ids := bb.add(t, 3, "fl", nil)
	f := bb.form(t, FormParams{MaxBatch: 10, MaxWaiting: 1}, time.Now().Add(time.Second))
	now := time.Now()
	c, err := bb.b.Claim(bb.ctx, f[0].ID, "tok", time.Minute, now)
	if err != nil || len(c.Items) != 3 || c.Reconcile != (ReconcileCounts{}) {
		t.Fatalf("claim %+v %v", c, err)
	}
	for _, it := range c.Items {
		if got := bb.rdb.HGet(bb.ctx, bb.s.keys.Msg(it.ID), "flight").Val(); got == "" {
			t.Fatalf("%s: no flight stamp", it.ID)
		}
		fk := bb.s.keys.Flight(FlightNumber(it.To))
		if got := bb.rdb.HGet(bb.ctx, fk, it.ID).Val(); got == "" {
			t.Fatalf("%s: not in %s", it.ID, fk)
		}
		if ttl := bb.rdb.PTTL(bb.ctx, fk).Val(); ttl <= time.Minute {
			t.Fatalf("%s TTL %s, want > lock TTL", fk, ttl)
		}
	}
	// another recipient in flight to the number of ids[1], from a batch
	// that has not answered: that number's evidence must stay
	other := bb.add(t, 1, "flo", func(i int, r *Record) { r.To = "+61407550001" })
	fo := bb.form(t, FormParams{MaxBatch: 10, MaxWaiting: 1}, time.Now().Add(time.Second))
	if len(fo) != 1 {
		t.Fatalf("formed %+v", fo)
	}
	if c, err := bb.b.Claim(bb.ctx, fo[0].ID, "tok", time.Minute, now); err != nil || len(c.Items) != 1 {
		t.Fatalf("claim other %+v %v", c, err)
	}
	for i := 0; i < 2; i++ {
		if err := bb.rdb.HSet(bb.ctx, bb.s.keys.Evidence(FlightNumber(fmt.Sprintf("+6140755%04d", i))), "e1", "{}").Err(); err != nil {
			t.Fatal(err)
		}
	}
	out := []SendOutcome{
		{ID: ids[0], Kind: OutcomeSubmitted, Value: "s0"},
		{ID: ids[1], Kind: OutcomeFailed, Value: "rox_permanent: 2015"},
		{ID: ids[2], Kind: OutcomeRetry, Value: "2020"},
	}
	if _, err := bb.b.Record(bb.ctx, f[0].ID, "tok", "r1", out, now); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids[1:] {
		if bb.rdb.HExists(bb.ctx, bb.s.keys.Msg(id), "flight").Val() {
			t.Fatalf("%s: flight left after the record", id)
		}
	}
	if m := bb.rdb.HGetAll(bb.ctx, bb.s.keys.Msg(ids[0])).Val(); m["sms_id"] != "s0" || m["status"] != "submitted" {
		t.Fatalf("submitted record %v", m)
	}
	keys := bb.rdb.Keys(bb.ctx, bb.s.keys.Base()+"flight:*").Val()
	if len(keys) != 1 || keys[0] != bb.s.keys.Flight("61407550001") {
		t.Fatalf("in-flight index left: %v, want only the other batch's", keys)
	}
	if got := bb.rdb.HKeys(bb.ctx, keys[0]).Val(); len(got) != 1 || got[0] != other[0] {
		t.Fatalf("%s holds %v, want %v", keys[0], got, other)
	}
	if bb.rdb.Exists(bb.ctx, bb.s.keys.Evidence("61407550000")).Val() != 0 {
		t.Fatal("evidence of a number no longer in flight left after the record")
	}
	if bb.rdb.Exists(bb.ctx, bb.s.keys.Evidence("61407550001")).Val() != 1 {
		t.Fatal("evidence of a number still in flight deleted by the record")
	}
	// The retried one is claimed as an ordinary message: its outcome was
	// an answer, not unknown.
	c, err = bb.b.Claim(bb.ctx, f[0].ID, "tok2", time.Minute, now)
	if err != nil || len(c.Items) != 1 || c.Reconcile != (ReconcileCounts{}) {
		t.Fatalf("retry claim %+v %v", c, err)
	}
}

// A claim that finds recipients still in flight from a run that never
// recorded an answer puts them in reconciling (window counted from the
// first request) and sends nothing; cancel answers 409; an auth requeue
// keeps them reconciling; after the window they are sent again.
func TestClaimOfUnansweredRequestReconciles(t *testing.T) {
	bb := setupBatch(t)
	ids := bb.add(t, 2, "un", nil)
	f := bb.form(t, FormParams{MaxBatch: 10, MaxWaiting: 1}, time.Now().Add(time.Second))
	b := bb.b.WithReconcile(ReconcileParams{Window: time.Minute, MaxAttempts: 5})
	left := time.Now()
	if c, err := b.Claim(bb.ctx, f[0].ID, "dead", 50*time.Millisecond, left); err != nil || len(c.Items) != 2 {
		t.Fatalf("claim %+v %v", c, err)
	}
	// The run dies; its lock expires.
	bb.rdb.Del(bb.ctx, bb.s.keys.Lock(f[0].ID))
	c, err := b.Claim(bb.ctx, f[0].ID, "next", time.Minute, left.Add(10*time.Second))
	if err != nil || len(c.Items) != 0 || c.Reconcile.Entered != 2 || c.Reconcile.Waiting != 2 ||
		c.Reconcile.Until.UnixMilli() != left.Add(time.Minute).UnixMilli() {
		t.Fatalf("claim after the crash %+v %v, want 2 waiting until %s", c, err, left.Add(time.Minute))
	}
	if st, err := bb.s.Cancel(bb.ctx, ids[0]); err == nil || st != StatusReconciling {
		t.Fatalf("cancel of a reconciling message: %s %v, want an error", st, err)
	}
	if bi, err := bb.b.Batch(bb.ctx, f[0].ID); err != nil || len(bi.IDs) != 2 {
		t.Fatalf("batch %+v %v, want both kept", bi, err)
	}
	bb.rdb.Del(bb.ctx, bb.s.keys.Lock(f[0].ID))
	c, err = b.Claim(bb.ctx, f[0].ID, "later", time.Minute, left.Add(61*time.Second))
	if err != nil || len(c.Items) != 2 || c.Reconcile.Resent != 2 || c.Reconcile.Entered != 0 {
		t.Fatalf("claim after the window %+v %v, want both resent", c, err)
	}
	if st := bb.rdb.HGet(bb.ctx, bb.s.keys.Msg(ids[0]), "status").Val(); st != "sending" {
		t.Fatalf("status %s, want sending", st)
	}
}

// With receipts never and replies not over HTTP no evidence can come: the
// window is skipped and the policy applies at once (reconcile resends,
// fail fails).
func TestNoEvidencePossibleSkipsTheWindow(t *testing.T) {
	bb := setupBatch(t)
	ids := bb.add(t, 2, "nv", func(i int, r *Record) {
		r.Receipt, r.Reply = "never", "email"
		if i == 1 {
			r.OnAmbiguous = AmbiguousFail
		}
	})
	f := bb.form(t, FormParams{MaxBatch: 10, MaxWaiting: 1}, time.Now().Add(time.Second))
	b := bb.b.WithReconcile(ReconcileParams{Window: time.Hour})
	now := time.Now()
	if c, err := b.Claim(bb.ctx, f[0].ID, "dead", time.Minute, now); err != nil || len(c.Items) != 2 {
		t.Fatalf("claim %+v %v", c, err)
	}
	bb.rdb.Del(bb.ctx, bb.s.keys.Lock(f[0].ID))
	c, err := b.Claim(bb.ctx, f[0].ID, "next", time.Minute, now.Add(time.Second))
	if err != nil || len(c.Items) != 1 || c.Items[0].ID != ids[0] || c.Reconcile.Waiting != 0 ||
		c.Reconcile.Resent != 1 || c.Reconcile.Failed != 1 {
		t.Fatalf("claim %+v %v, want %s resent at once and %s failed", c, err, ids[0], ids[1])
	}
	if m := bb.rdb.HGetAll(bb.ctx, bb.s.keys.Msg(ids[1])).Val(); m["status"] != "failed" || m["err"] != ReasonOutcomeUnknown {
		t.Fatalf("%s: %v", ids[1], m)
	}
}
