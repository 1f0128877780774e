package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/internal/redisconn"
	"github.com/redoxygen/roxd/internal/testutil"
)

// replicaBundle is a store on a private master with one replica and
// ROXD_REDIS_MIN_REPLICAS=1.
type replicaBundle struct {
	ctx             context.Context
	master, replica *testutil.Server
	rdb, rep        *redis.Client
	s               *Store
	b               *Batches
}

func setupReplicas(t *testing.T) *replicaBundle {
	t.Helper()
	master := testutil.NewServer(t)
	replica := testutil.NewReplica(t, master)
	rb := &replicaBundle{ctx: context.Background(), master: master, replica: replica,
		rdb: redis.NewClient(&redis.Options{Addr: master.Addr()}),
		rep: redis.NewClient(&redis.Options{Addr: replica.Addr()})}
	t.Cleanup(func() { rb.rdb.Close(); rb.rep.Close() })
	s, err := New(rb.rdb, Config{Prefix: "rep", Replicas: redisconn.Replicas{Min: 1, Timeout: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	rb.s, rb.b = s, s.Batches()
	return rb
}

// TestEnqueueWaitsForReplicas: an accepted message is on the replica when
// Enqueue returns; with the replica stalled Enqueue answers ErrNotReplicated
// (the API's 503) though the master took the record, a replay while stalled
// says so again, and the replay once the replica is back answers the same
// message (Existing), not a second one.
func TestEnqueueWaitsForReplicas(t *testing.T) {
	rb := setupReplicas(t)
	for _, id := range []string{"r1", "r2", "r3"} {
		o, _, err := rb.s.Enqueue(rb.ctx, []Record{rec(id, "+61412345678")})
		if err != nil || o[0] != Created {
			t.Fatalf("enqueue %s: %v %v", id, o, err)
		}
		if st := rb.rep.HGet(rb.ctx, rb.s.keys.Msg(id), FieldStatus).Val(); st != string(StatusQueued) {
			t.Fatalf("replica has %s status %q right after Enqueue, want queued", id, st)
		}
	}

	rb.replica.Pause()
	_, _, err := rb.s.Enqueue(rb.ctx, []Record{rec("late", "+61412345678")})
	if !errors.Is(err, redisconn.ErrNotReplicated) {
		t.Fatalf("enqueue with the replica stalled: %v, want ErrNotReplicated", err)
	}
	if st := rb.rdb.HGet(rb.ctx, rb.s.keys.Msg("late"), FieldStatus).Val(); st != string(StatusQueued) {
		t.Fatalf("master has late status %q: the write must land", st)
	}
	if _, _, err := rb.s.Enqueue(rb.ctx, []Record{rec("late", "+61412345678")}); !errors.Is(err, redisconn.ErrNotReplicated) {
		t.Fatalf("replay with the replica stalled: %v, want ErrNotReplicated", err)
	}
	rb.replica.Resume()
	var o []EnqueueOutcome
	testutil.Eventually(t, 20*time.Second, func() bool {
		o, _, err = rb.s.Enqueue(rb.ctx, []Record{rec("late", "+61412345678")})
		return err == nil
	}, "replay after the replica came back: %v", err)
	if o[0] != Existing {
		t.Fatalf("replay outcome %v, want Existing (the same message)", o[0])
	}
	if n := rb.rdb.LLen(rb.ctx, rb.s.keys.Ready("now|always|http")).Val(); n != 4 {
		t.Fatalf("ready list holds %d ids, want 4 (no duplicate)", n)
	}
	if st := rb.rep.HGet(rb.ctx, rb.s.keys.Msg("late"), FieldStatus).Val(); st != string(StatusQueued) {
		t.Fatalf("replica has late status %q after the replay passed", st)
	}
}

// TestRecordWaitsForReplicasAndReplays: a claim and a record of ROX's
// answer are on the replica when they return; a record short of replicas
// says ErrNotReplicated (the worker journals it) and its second run keeps
// what a receipt changed since.
func TestRecordWaitsForReplicasAndReplays(t *testing.T) {
	rb := setupReplicas(t)
	if _, _, err := rb.s.Enqueue(rb.ctx, []Record{rec("a", "+61412345678"), rec("b", "+61412345679")}); err != nil {
		t.Fatal(err)
	}
	f, err := rb.b.Form(rb.ctx, FormParams{MaxBatch: 500, MaxWaiting: 10, MaxForm: 10, IDPrefix: "rb-"}, time.Now().Add(time.Second))
	if err != nil || len(f) != 1 {
		t.Fatalf("form %v %v", f, err)
	}
	bid := f[0].ID
	c, err := rb.b.Claim(rb.ctx, bid, "tok", time.Minute, time.Now())
	if err != nil || len(c.Items) != 2 {
		t.Fatalf("claim %+v %v", c, err)
	}
	if st := rb.rep.HGet(rb.ctx, rb.s.keys.Msg("a"), FieldStatus).Val(); st != "sending" {
		t.Fatalf("replica has a %q right after the claim, want sending", st)
	}

	rb.replica.Pause()
	out := []SendOutcome{{ID: "a", Kind: OutcomeSubmitted, Value: "sms-a"}, {ID: "b", Kind: OutcomeSubmitted, Value: "sms-b"}}
	if _, err := rb.b.Record(rb.ctx, bid, "tok", "req", out, time.Now()); !errors.Is(err, redisconn.ErrNotReplicated) {
		t.Fatalf("record with the replica stalled: %v, want ErrNotReplicated", err)
	}
	if st := rb.rdb.HGet(rb.ctx, rb.s.keys.Msg("a"), FieldStatus).Val(); st != string(StatusSubmitted) {
		t.Fatalf("master has a %q, want submitted", st)
	}
	// A failed receipt for b arrives before the journal applies again.
	rb.rdb.HSet(rb.ctx, rb.s.keys.Msg("b"), FieldStatus, "failed", "err", "receipt 2110")
	rb.replica.Resume()
	var rec Recorded
	testutil.Eventually(t, 20*time.Second, func() bool {
		rec, err = rb.b.Record(rb.ctx, bid, "tok", "req", out, time.Now())
		return err == nil
	}, "record replay: %v", err)
	if rec.Submitted != 2 {
		t.Fatalf("replay recorded %+v", rec)
	}
	m := rb.rep.HGetAll(rb.ctx, rb.s.keys.Msg("b")).Val()
	if m["status"] != "failed" || m["err"] != "receipt 2110" || m["sms_id"] != "sms-b" {
		t.Fatalf("b on the replica after the replay: %v, want the receipt's failed kept", m)
	}
	if st := rb.rep.HGet(rb.ctx, rb.s.keys.Msg("a"), FieldStatus).Val(); st != string(StatusSubmitted) {
		t.Fatalf("replica has a %q, want submitted", st)
	}
}
