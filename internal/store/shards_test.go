package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/redoxygen/roxd/internal/redisconn"
	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/internal/testutil"
)

func TestShardNames(t *testing.T) {
	if p := store.ShardPrefix("roxd", 1, 0); p != "roxd" {
		t.Fatalf("one shard keeps the prefix: %q", p)
	}
	if k := store.ShardKeys("roxd", 1)[0].Msg("x"); k != "{roxd}:msg:x" {
		t.Fatalf("one shard keeps today's keys: %q", k)
	}
	if k := store.ShardKeys("roxd", 6)[5].Msg("x"); !strings.HasPrefix(k, "{roxd:5-") || !strings.HasSuffix(k, "}:msg:x") {
		t.Fatalf("shard 5 of 6: %q", k)
	}
	if q := store.ShardQueue("roxd", 6, 2); q != store.ShardPrefix("roxd", 6, 2) {
		t.Fatalf("queue %q: want the shard's tag", q)
	}
	// Each shard's slot is in its own slice of the slot space, so shards
	// spread over masters owning equal ranges ({roxd:i} would not).
	for _, n := range []int{2, 3, 6, 12, 64} {
		for i := range n {
			s := redisconn.Slot(store.ShardPrefix("roxd", n, i))
			if s < i*redisconn.SlotCount/n || s >= (i+1)*redisconn.SlotCount/n {
				t.Fatalf("shard %d of %d in slot %d", i, n, s)
			}
		}
	}
	// Stable (a fixed id keeps its shard across releases) and spread.
	if s := store.ShardOf("order-42", 6); s != store.ShardOf("order-42", 6) || store.ShardOf("order-42", 1) != 0 {
		t.Fatal("ShardOf not stable")
	}
	counts := make([]int, 6)
	for i := range 6000 {
		counts[store.ShardOf(fmt.Sprintf("m%d", i), 6)]++
	}
	for i, c := range counts {
		if c < 800 || c > 1200 {
			t.Fatalf("shard %d holds %d of 6000 ids: %v", i, c, counts)
		}
	}
}

// The shard count is fixed once Redis holds a deployment: another count
// is refused with an error naming both, and a deployment from before
// shards counts as one.
func TestCheckShards(t *testing.T) {
	rdb := testutil.Redis(t)
	ctx := context.Background()
	p := testutil.Name("sh")
	t.Cleanup(func() { rdb.Del(ctx, store.ShardsKey(p), store.NewKeys(p).RedisMarker()) })
	if err := store.CheckShards(ctx, rdb, p, 6); err != nil {
		t.Fatal(err)
	}
	if err := store.CheckShards(ctx, rdb, p, 6); err != nil {
		t.Fatalf("same count again: %v", err)
	}
	err := store.CheckShards(ctx, rdb, p, 1)
	if !errors.Is(err, store.ErrShardsChanged) || !strings.Contains(err.Error(), "ROXD_SHARDS=6") {
		t.Fatalf("changed count: %v", err)
	}

	old := testutil.Name("sh")
	t.Cleanup(func() { rdb.Del(ctx, store.ShardsKey(old), store.NewKeys(old).RedisMarker()) })
	rdb.Set(ctx, store.NewKeys(old).RedisMarker(), "x", 0)
	if err := store.CheckShards(ctx, rdb, old, 4); !errors.Is(err, store.ErrShardsChanged) || !strings.Contains(err.Error(), "set ROXD_SHARDS=1") {
		t.Fatalf("4 shards over a deployment from before shards: %v", err)
	}
	if err := store.CheckShards(ctx, rdb, old, 1); err != nil {
		t.Fatalf("1 shard over a deployment from before shards: %v", err)
	}
}

// A store with shards places, reads and cancels each message in its own
// shard, and keeps the suppression list whole in every shard.
func TestShardedStore(t *testing.T) {
	rdb := testutil.Redis(t)
	ctx := context.Background()
	p := testutil.Name("sh")
	st, err := store.New(rdb, store.Config{Prefix: p, Shards: 4})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Suppress(ctx, "+61407000001"); err != nil {
		t.Fatal(err)
	}
	for i, k := range st.Shards() {
		if !rdb.SIsMember(ctx, k.Suppressed(), "+61407000001").Val() || !rdb.SIsMember(ctx, k.SuppressedByOperator(), "+61407000001").Val() {
			t.Fatalf("shard %d lacks the suppression", i)
		}
	}
	for i := range 8 {
		id := fmt.Sprintf("id-%d", i)
		to := "+61407000002"
		if i == 7 {
			to = "+61407000001"
		}
		out, _, err := st.Enqueue(ctx, []store.Record{{ID: id, To: to, Text: "x", Receipt: "always", Reply: "http"}})
		if err != nil || len(out) != 1 {
			t.Fatal(err)
		}
		k := st.KeysOf(id)
		if k != st.Shards()[store.ShardOf(id, 4)] || rdb.Exists(ctx, k.Msg(id)).Val() != 1 {
			t.Fatalf("%s not in its shard", id)
		}
		rec, err := st.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if i == 7 && rec.Status != store.StatusSuppressed {
			t.Fatalf("send to a suppressed number in shard %d: %s", store.ShardOf(id, 4), rec.Status)
		}
		if i == 3 {
			if s, err := st.Cancel(ctx, id); err != nil || s != store.StatusCancelled {
				t.Fatalf("cancel: %s %v", s, err)
			}
		}
	}
	if err := st.Unsuppress(ctx, "+61407000001"); err != nil {
		t.Fatal(err)
	}
	for i, k := range st.Shards() {
		if rdb.SIsMember(ctx, k.Suppressed(), "+61407000001").Val() {
			t.Fatalf("shard %d still suppresses", i)
		}
	}
}
