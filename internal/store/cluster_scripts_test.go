package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/internal/redisconn"
	"github.com/redoxygen/roxd/internal/testutil"
)

// ranOnCluster fails t unless script name ran on the cluster without error.
func ranOnCluster(t *testing.T, log *testutil.ScriptLog, name string) {
	t.Helper()
	s, ok := Scripts()[name]
	if !ok {
		t.Fatalf("no script %s", name)
	}
	log.RequireRan(t, name, s.Hash())
}

// noSlotError fails t when err is a cluster slot error (CROSSSLOT, MOVED,
// ASK) or any other error.
func noSlotError(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s on the cluster: %v", what, err)
	}
}

// TestClusterScriptsStore runs, on the real 3-master test cluster, the
// store scripts TestClusterEndToEnd does not reach (see notInClusterFlow in
// internal/app), through the product functions that run them, with the keys
// of a non-zero shard of a 6-shard store: each runs without CROSSSLOT or
// MOVED and has its effect.
func TestClusterScriptsStore(t *testing.T) {
	c, err := redisconn.Parse(testutil.RedisClusterURL(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := c.Client()
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	log := testutil.NewScriptLog()
	rdb.AddHook(log)

	const shards = 6
	s, err := New(rdb, Config{Prefix: testutil.Name("cscr"), Shards: shards, ScheduleLead: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	// Ids of one non-zero shard (with its own slot on some master).
	var ids []string
	for i := 0; len(ids) < 3; i++ {
		id := fmt.Sprintf("cs-%d", i)
		if ShardOf(id, shards) == 3 {
			ids = append(ids, id)
		}
	}
	id, schedID := ids[0], ids[1]
	k := s.KeysOf(id)
	if k == s.Keys() {
		t.Fatal("KeysOf gave shard 0's keys")
	}
	b := NewBatches(rdb, k, s.cfg.StatusTTL)
	t.Cleanup(func() {
		cctx := context.Background()
		cc, ok := rdb.(*redis.ClusterClient)
		if !ok {
			return
		}
		_ = cc.ForEachMaster(cctx, func(cctx context.Context, m *redis.Client) error {
			keys, _ := m.Keys(cctx, k.Base()+"*").Result()
			for _, key := range keys {
				m.Del(cctx, key)
			}
			return nil
		})
	})
	now := time.Now()

	// store.transition: a queued message becomes failed.
	if _, _, err := s.Enqueue(ctx, []Record{rec(id, "+61407000001")}); err != nil {
		t.Fatal(err)
	}
	moved, st, err := s.Transition(ctx, id, StatusFailed, map[string]string{"err": "test"})
	noSlotError(t, "Transition", err)
	if !moved || st != StatusFailed {
		t.Fatalf("Transition: moved %v, status %s; want failed", moved, st)
	}
	ranOnCluster(t, log, "store.transition")

	// store.keepArchived then store.revive: the failed message is kept as
	// an archived batch, then revived (back to sending, batch live).
	bid := "b-" + id
	noSlotError(t, "KeepArchived", b.KeepArchived(ctx, bid, "g", "archived by test", []string{id}, now))
	if n, _ := rdb.ZCard(ctx, k.ArchivedBatches()).Result(); n != 1 {
		t.Fatalf("archived batches: %d, want 1", n)
	}
	ranOnCluster(t, log, "store.keepArchived")
	n, err := b.Revive(ctx, bid, now)
	noSlotError(t, "Revive", err)
	if r, _ := s.Get(ctx, id); n != 1 || r == nil || r.Status != StatusSending {
		t.Fatalf("Revive: %d revived, record %+v; want 1, sending", n, r)
	}
	ranOnCluster(t, log, "store.revive")

	// store.operatorFail: the operator archives the live batch's task.
	n, err = b.FailBatch(ctx, bid, "archived by operator", true, now)
	noSlotError(t, "FailBatch", err)
	if r, _ := s.Get(ctx, id); n != 1 || r == nil || r.Status != StatusFailed {
		t.Fatalf("FailBatch: %d failed, record %+v; want 1, failed", n, r)
	}
	ranOnCluster(t, log, "store.operatorFail")

	// store.requeue and store.unknown on a batch (gone: nothing to do, but
	// the script ran over the batch's keys).
	_, err = b.Requeue(ctx, bid, "tok")
	noSlotError(t, "Requeue", err)
	ranOnCluster(t, log, "store.requeue")
	_, _, _, err = b.Unknown(ctx, bid, "tok", "g", []string{id}, "timeout", false, time.Minute, now)
	noSlotError(t, "Unknown", err)
	ranOnCluster(t, log, "store.unknown")

	// store.unlock: releases the lock holding the token.
	if err := rdb.Set(ctx, k.Lock(bid), "tok", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	noSlotError(t, "Unlock", b.Unlock(ctx, bid, "tok"))
	if e, _ := rdb.Exists(ctx, k.Lock(bid)).Result(); e != 0 {
		t.Fatal("Unlock left the lock")
	}
	ranOnCluster(t, log, "store.unlock")

	// store.finish: drops the batch, its index entry and its lock.
	if err := rdb.HSet(ctx, k.Batch(bid), "group", "g", "ids", "[]").Err(); err != nil {
		t.Fatal(err)
	}
	rdb.ZAdd(ctx, k.Batches(), redis.Z{Score: 1, Member: bid})
	rdb.Set(ctx, k.Lock(bid), "tok", time.Minute)
	noSlotError(t, "Finish", b.Finish(ctx, bid, "tok"))
	if e, _ := rdb.Exists(ctx, k.Batch(bid), k.Lock(bid)).Result(); e != 0 {
		t.Fatal("Finish left the batch or its lock")
	}
	if _, err := rdb.ZScore(ctx, k.Batches(), bid).Result(); !errors.Is(err, redis.Nil) {
		t.Fatalf("Finish left the batch in %s: %v", k.Batches(), err)
	}
	ranOnCluster(t, log, "store.finish")

	// store.endGroup: a scheduled message's group is ended (cancelled).
	sr := rec(schedID, "+61407000002")
	sr.SendAt = now.Add(time.Hour)
	if _, _, err := s.Enqueue(ctx, []Record{sr}); err != nil {
		t.Fatal(err)
	}
	r, err := s.Get(ctx, schedID)
	if err != nil || r.Status != StatusScheduled {
		t.Fatalf("scheduled record %+v, %v", r, err)
	}
	n, err = b.EndGroup(ctx, r.Group, StatusCancelled, "task deleted", now)
	noSlotError(t, "EndGroup", err)
	if r, _ := s.Get(ctx, schedID); n != 1 || r == nil || r.Status != StatusCancelled {
		t.Fatalf("EndGroup: %d ended, record %+v; want 1, cancelled", n, r)
	}
	ranOnCluster(t, log, "store.endGroup")

	// store.expireDue: a batch waiting for its account holds a message
	// whose validity ran out: it ends expired.
	xr := rec(ids[2], "+61407000003")
	xr.ExpiresAt = now.Add(-time.Second)
	if _, _, err := s.Enqueue(ctx, []Record{xr}); err != nil {
		t.Fatal(err)
	}
	xbid := "bx-" + ids[2]
	if err := rdb.HSet(ctx, k.Batch(xbid), "group", "g", "ids", `["`+ids[2]+`"]`).Err(); err != nil {
		t.Fatal(err)
	}
	due, err := b.ExpireDue(ctx, xbid, now)
	noSlotError(t, "ExpireDue", err)
	if r, _ := s.Get(ctx, ids[2]); due.Expired != 1 || due.Live != 0 || r == nil || r.Status != StatusExpired {
		t.Fatalf("ExpireDue: %+v, record %+v; want 1 expired, none live", due, r)
	}
	ranOnCluster(t, log, "store.expireDue")
}
