package store

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/internal/redisconn"
)

// Shards spread one deployment over several Redis Cluster slots (and so
// masters). Shard i of prefix P owns every key under the hash tag
// {ShardTag(P, n, i)}, e.g. {roxd:0-3} (with one shard: {P}, today's names,
// so existing data keeps working): its
// message records, ready lists, schedule, batches, callbacks' dedup and
// deferral, in-flight index, and (worker) its own asynq queue. A message
// lives its whole life in one shard: ShardOf(id) places it by its id (the
// caller's idempotency key when given), so GET and DELETE by id find it
// without a lookup. The suppression list is kept whole in every shard (the
// enqueue and claim scripts read it in their own slot); writes go to all.

// MaxShards bounds ROXD_SHARDS: every worker process runs one asynq server
// per shard (worker per shard), so shards cost goroutines and Redis polls.
const MaxShards = 64

// ShardPrefix is the key prefix of shard i of n: prefix itself when n <= 1,
// else ShardTag(prefix, n, i).
func ShardPrefix(prefix string, n, i int) string {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return ShardTag(prefix, n, i)
}

// ShardQueue is the asynq queue of shard i of n: queue itself when n <= 1,
// else ShardTag(queue, n, i) (asynq's keys then hash like the shard's).
func ShardQueue(queue string, n, i int) string { return ShardTag(queue, n, i) }

// ShardTag is name when n <= 1, else "name:i-k" with k the smallest
// number >= 0 that puts the tag's Redis Cluster slot in the i-th of n equal
// slices of the slot space. Plain "name:i" tags would not spread: CRC16 is
// linear, so names that differ in their last characters land in nearby
// slots ({roxd:0}..{roxd:5} put four of six shards on one master of three
// whose slots redis-cli --cluster create split evenly). With the slices,
// n shards spread over m masters that own equal contiguous slot ranges as
// evenly as n and m allow (exactly when m divides n). Deterministic: every
// process computes the same names.
func ShardTag(name string, n, i int) string {
	if n <= 1 {
		return name
	}
	lo, hi := i*redisconn.SlotCount/n, (i+1)*redisconn.SlotCount/n
	base := name + ":" + strconv.Itoa(i) + "-"
	for k := 0; ; k++ {
		tag := base + strconv.Itoa(k)
		if s := redisconn.Slot(tag); s >= lo && s < hi {
			return tag
		}
	}
}

// ShardOf is the shard of message id among n: FNV-1a (32 bits) of the id
// modulo n; 0 when n <= 1. It never changes for an id, which is why the
// shard count of a live Redis cannot change (CheckShards).
func ShardOf(id string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return int(h.Sum32() % uint32(n))
}

// ShardKeys returns the key builders of the n shards of prefix.
func ShardKeys(prefix string, n int) []Keys {
	n = max(n, 1)
	ks := make([]Keys, n)
	for i := range ks {
		ks[i] = NewKeys(ShardPrefix(prefix, n, i))
	}
	return ks
}

// ShardsKey is {P}:shards: the shard count the deployment of prefix P was
// started with (absent on one made before shards existed: 1).
func ShardsKey(prefix string) string { return NewKeys(prefix).Base() + "shards" }

// ErrShardsChanged is wrapped by CheckShards when Redis holds a deployment
// with another shard count.
var ErrShardsChanged = errors.New("shard count differs from the one this Redis was started with")

// CheckShards records n as prefix's shard count on first use and refuses a
// different one later: messages are placed by ShardOf(id, n), so another
// count would look for them in the wrong shard. A deployment that predates
// shards (roxd's marker key {P}:redis-marker exists, no {P}:shards) counts
// as 1.
func CheckShards(ctx context.Context, rdb redis.UniversalClient, prefix string, n int) error {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	n = max(n, 1)
	key := ShardsKey(prefix)
	ok, err := rdb.SetNX(ctx, key, n, 0).Result()
	if err != nil {
		return fmt.Errorf("store: shards: %w", err)
	}
	if ok {
		if n > 1 {
			// A deployment from before shards left its keys under {P}.
			old, err := rdb.Exists(ctx, NewKeys(prefix).RedisMarker(), NewKeys(prefix).Scheduled()).Result()
			if err == nil && old > 0 {
				_ = rdb.Set(ctx, key, 1, 0).Err()
				return fmt.Errorf("store: %w: ROXD_SHARDS=%d, but this Redis holds a deployment of prefix %q with 1 shard (keys {%s}:...): set ROXD_SHARDS=1, or start the new count on an empty Redis or another ROXD_KEY_PREFIX",
					ErrShardsChanged, n, prefix, prefix)
			}
		}
		return nil
	}
	got, err := rdb.Get(ctx, key).Int()
	if err != nil {
		return fmt.Errorf("store: shards: read %s: %w", key, err)
	}
	if got != n {
		return fmt.Errorf("store: %w: ROXD_SHARDS=%d, but this Redis holds a deployment of prefix %q with %d shards (%s): set ROXD_SHARDS=%d, or start the new count on an empty Redis or another ROXD_KEY_PREFIX",
			ErrShardsChanged, n, prefix, got, key, got)
	}
	return nil
}
