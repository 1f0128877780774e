package redisconn_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/internal/redisconn"
	"github.com/redoxygen/roxd/internal/testutil"
)

var setScript = redis.NewScript(`redis.call('SET', KEYS[1], ARGV[1]) return 1`)
var readScript = redis.NewScript(`return redis.call('GET', KEYS[1])`)

// TestReplicasRunScript: with Min 1 a script's write is on the replica when
// RunScript returns; with the replica paused the write lands on the master
// and RunScript says ErrNotReplicated within about the timeout.
func TestReplicasRunScript(t *testing.T) {
	master := testutil.NewServer(t)
	replica := testutil.NewReplica(t, master)
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: master.Addr()})
	t.Cleanup(func() { rdb.Close() })
	rep := redis.NewClient(&redis.Options{Addr: replica.Addr()})
	t.Cleanup(func() { rep.Close() })
	r := redisconn.Replicas{Min: 1, Timeout: 2 * time.Second}

	for i := range 20 {
		cmd, err := r.RunScript(ctx, rdb, setScript, []string{"k"}, i)
		if err != nil || cmd.Err() != nil {
			t.Fatalf("RunScript %d: %v / %v", i, err, cmd.Err())
		}
		// WAIT came back 1: the replica has it now, not eventually.
		if got, _ := rep.Get(ctx, "k").Int(); got != i {
			t.Fatalf("replica has k=%d right after RunScript set %d", got, i)
		}
	}
	// The script cache is empty on a fresh start: EVAL stands in.
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if cmd, err := r.RunScript(ctx, rdb, setScript, []string{"k"}, "after-flush"); err != nil || cmd.Err() != nil {
		t.Fatalf("RunScript after SCRIPT FLUSH: %v / %v", err, cmd.Err())
	}

	// other holds a pooled connection that last wrote before what follows.
	other := redis.NewClient(&redis.Options{Addr: master.Addr(), PoolSize: 1})
	t.Cleanup(func() { other.Close() })
	if err := other.Set(ctx, "other", 1, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := other.Wait(ctx, 1, 5*time.Second).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT on other: %v %v", n, err)
	}

	replica.Pause()
	began := time.Now()
	cmd, err := r.RunScript(ctx, rdb, setScript, []string{"k"}, "unreplicated")
	if !errors.Is(err, redisconn.ErrNotReplicated) {
		t.Fatalf("RunScript with the replica paused: %v, want ErrNotReplicated", err)
	}
	if took := time.Since(began); took < 1500*time.Millisecond {
		t.Fatalf("WAIT answered in %s, before its timeout", took)
	}
	if n, cerr := cmd.Int(); cerr != nil || n != 1 {
		t.Fatalf("the script's answer is kept: %v %v", n, cerr)
	}
	if v, _ := rdb.Get(ctx, "k").Result(); v != "unreplicated" {
		t.Fatalf("master has k=%q: the write must land", v)
	}

	// A read-only script (an idempotent replay that writes nothing) on a
	// connection whose last write is older still waits for the replica to
	// hold the write it found (Redis 7 by itself, Redis 6 thanks to the
	// marker: see Replicas).
	fresh := other
	if _, err := r.RunScript(ctx, fresh, readScript, []string{"k"}); !errors.Is(err, redisconn.ErrNotReplicated) {
		t.Fatalf("replay on a fresh connection with the replica paused: %v, want ErrNotReplicated", err)
	}
	replica.Resume()
	testutil.Eventually(t, 20*time.Second, func() bool {
		_, err := r.RunScript(ctx, fresh, readScript, []string{"k"})
		return err == nil
	}, "replica never caught up")
	if v, _ := rep.Get(ctx, "k").Result(); v != "unreplicated" {
		t.Fatalf("replica has k=%q after the read-only replay passed", v)
	}

	// Min 0 adds nothing: a script error comes back in the command.
	var off redisconn.Replicas
	cmd, err = off.RunScript(ctx, rdb, redis.NewScript(`return redis.error_reply('boom')`), []string{"k"})
	if err != nil || cmd.Err() == nil {
		t.Fatalf("Min 0: err %v, script err %v", err, cmd.Err())
	}
}

// TestReplicasWithoutReplica: Min 1 against a server with no replica never
// passes: each write answers ErrNotReplicated (the operator asked for a
// replica that is not there).
func TestReplicasWithoutReplica(t *testing.T) {
	rdb := testutil.Redis(t)
	r := redisconn.Replicas{Min: 1, Timeout: 50 * time.Millisecond}
	key := testutil.Name("norep")
	_, err := r.RunScript(context.Background(), rdb, setScript, []string{key}, 1)
	if !errors.Is(err, redisconn.ErrNotReplicated) {
		t.Fatalf("got %v, want ErrNotReplicated", err)
	}
}
