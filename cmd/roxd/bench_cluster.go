package main

// `roxd bench cluster` measures how the Redis work of the pipeline spreads
// over the masters of a Redis Cluster: producer → Redis → one worker per
// shard → simulator, with ROXD_SHARDS shards, and per master the Redis CPU
// (INFO cpu) and commands (INFO commandstats) it spent per message.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/internal/redisconn"
	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/producer"
	"github.com/redoxygen/roxd/worker"
)

type masterStat struct {
	cpu  time.Duration
	cmds int64
}

// masterStats reads every master's CPU and command count.
func masterStats(ctx context.Context, cc *redis.ClusterClient) (map[string]masterStat, error) {
	var mu sync.Mutex
	out := map[string]masterStat{}
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		cmds, _ := commandCalls(ctx, c)
		st := masterStat{cpu: redisCPU(ctx, c), cmds: cmds}
		mu.Lock()
		out[c.Options().Addr] = st
		mu.Unlock()
		return nil
	})
	return out, err
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func benchCluster(ctx context.Context, args []string, out io.Writer) error {
	var f pipelineFlags
	var shards int
	fs := flag.NewFlagSet("roxd bench cluster", flag.ContinueOnError)
	redisURL := envString(fs, "redis", "REDIS_URL", "", "Redis Cluster URL (redis-cluster://host:port,...)", true)
	fs.IntVar(&shards, "shards", 1, "ROXD_SHARDS: shards of the keyspace (1..64)")
	fs.IntVar(&f.n, "n", 50000, "messages")
	fs.IntVar(&f.lanes, "lanes", worker.DefaultDequeueLanes, "worker DequeueLanes (split over the shards)")
	fs.IntVar(&f.concurrency, "concurrency", worker.DefaultSendConcurrency, "worker SendConcurrency (split over the shards)")
	fs.DurationVar(&f.linger, "linger", worker.DefaultLinger, "worker Linger")
	fs.IntVar(&f.maxWaiting, "max-waiting", worker.DefaultMaxWaiting, "worker MaxWaiting")
	fs.IntVar(&f.producers, "producers", 4, "producer goroutines")
	fs.IntVar(&f.chunk, "chunk", 500, "messages per producer SendMany call")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if f.n < 1 || f.producers < 1 || f.chunk < 1 || shards < 1 || shards > store.MaxShards {
		return fmt.Errorf("-n, -producers, -chunk must be positive and -shards 1..%d: %w", store.MaxShards, errUsage)
	}
	raw, err := redisURL()
	if err != nil {
		return err
	}
	conn, err := redisconn.Parse(raw)
	if err != nil {
		return err
	}
	if conn.Kind() != redisconn.KindCluster {
		return fmt.Errorf("roxd bench cluster: REDIS_URL must be a redis-cluster:// URL: %w", errUsage)
	}
	opts := conn.Options()
	opts.PoolSize = 64
	cc := redis.NewClusterClient(opts.Cluster())
	defer cc.Close()
	if err := cc.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	tag := "benchc-" + hex.EncodeToString(rnd[:])
	b := &benchRun{f: f, prefix: tag, queue: tag, out: out}
	b.log = zerolog.New(os.Stderr).Level(zerolog.ErrorLevel).With().Timestamp().Logger()
	defer clusterCleanup(cc, tag, shards)

	e, err := b.startEnvOn(cc, shards)
	if err != nil {
		return err
	}
	queues := make([]string, shards)
	var workers []*worker.Worker
	for i := range shards {
		jdir, err := os.MkdirTemp("", "roxd-bench-journal-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(jdir)
		queues[i] = store.ShardQueue(tag, shards, i)
		w, err := worker.New(worker.Config{
			Store:              store.Config{Prefix: store.ShardPrefix(tag, shards, i)},
			RatePrefix:         tag,
			Queue:              queues[i],
			Linger:             f.linger,
			MaxWaiting:         f.maxWaiting,
			SendConcurrency:    (f.concurrency + shards - 1) / shards,
			DequeueLanes:       max(1, f.lanes/shards),
			ReceiptCallbackURL: "http://127.0.0.1:9/bench/receipt",
			ReplyCallbackURL:   "http://127.0.0.1:9/bench/reply",
			AccountID:          "CI00000001",
			JournalDir:         jdir,
		}, cc, conn.Asynq(), e.sender, b.log)
		if err != nil {
			return err
		}
		workers = append(workers, w)
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() { _ = w.Run(wctx) })
	}
	defer func() { cancel(); wg.Wait(); e.stop() }()

	fmt.Fprintf(out, "roxd bench cluster: %s, %d shards, %d messages, prefix/queue %s, load average %s\n",
		conn, shards, f.n, tag, loadAverage())
	perMaster := map[string]int{}
	for i := range shards {
		if c, err := cc.MasterForKey(ctx, "{"+store.ShardPrefix(tag, shards, i)+"}"); err == nil {
			perMaster[c.Options().Addr]++
		}
	}
	fmt.Fprintf(out, "shards per master: %v\n", perMaster)
	e.sender.target.Store(int64(f.n))
	s0, err := masterStats(ctx, cc)
	if err != nil {
		return err
	}
	t0 := time.Now()
	perr := make(chan error, 1)
	go func() { perr <- b.produce(ctx, e, 1_000_000_000, 1_000_000_000+f.n) }()
	select {
	case <-e.sender.done:
	case err := <-perr:
		if err != nil {
			return err
		}
		select {
		case <-e.sender.done:
		case <-time.After(10 * time.Minute):
			return fmt.Errorf("timed out with %d of %d accepted", e.sender.accepted.Load(), f.n)
		}
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(10 * time.Minute):
		return fmt.Errorf("timed out with %d of %d accepted", e.sender.accepted.Load(), f.n)
	}
	el := time.Duration(e.sender.lastAt.Load() - t0.UnixNano())
	s1, err := masterStats(ctx, cc)
	if err != nil {
		return err
	}
	var totCPU time.Duration
	var totCmds int64
	addrs := make([]string, 0, len(s1))
	for a := range s1 {
		addrs = append(addrs, a)
		totCPU += s1[a].cpu - s0[a].cpu
		totCmds += s1[a].cmds - s0[a].cmds
	}
	sort.Strings(addrs)
	n := float64(f.n)
	fmt.Fprintf(out, "%d messages accepted by the simulator in %.2fs: %.0f msg/s (one process, this machine); load average after %s\n",
		f.n, el.Seconds(), n/el.Seconds(), loadAverage())
	fmt.Fprintf(out, "%-22s %12s %10s %14s %12s\n", "master", "cpu µs/msg", "cpu share", "commands/msg", "cmd share")
	for _, a := range addrs {
		d := s1[a].cpu - s0[a].cpu
		c := s1[a].cmds - s0[a].cmds
		fmt.Fprintf(out, "%-22s %12.1f %9.1f%% %14.3f %11.1f%%\n", a, float64(d.Microseconds())/n,
			100*float64(d)/float64(max(totCPU, 1)), float64(c)/n, 100*float64(c)/float64(max(totCmds, 1)))
	}
	fmt.Fprintf(out, "%-22s %12.1f %9.1f%% %14.3f %11.1f%%\n", "all masters", float64(totCPU.Microseconds())/n, 100.0,
		float64(totCmds)/n, 100.0)
	return nil
}

// startEnvOn is startEnv for a cluster client and shards (no worker).
func (b *benchRun) startEnvOn(rdb redis.UniversalClient, shards int) (*env, error) {
	e, err := b.newSimEnv()
	if err != nil {
		return nil, err
	}
	e.prod, err = producer.New(rdb, producer.Config{Store: store.Config{Prefix: b.prefix, Shards: shards}}, b.log)
	if err != nil {
		e.stop()
		return nil, err
	}
	return e, nil
}

// clusterCleanup removes the run's keys (roxd's and asynq's) from every
// master.
func clusterCleanup(cc *redis.ClusterClient, tag string, shards int) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_ = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		for _, pat := range []string{"{" + tag + "*", "asynq:{" + tag + "*"} {
			iter := c.Scan(ctx, 0, pat, 5000).Iterator()
			for iter.Next(ctx) {
				c.Unlink(ctx, iter.Val())
			}
		}
		return nil
	})
	// asynq:queues lives in one slot: remove the shard queues through the
	// cluster client.
	for i := range shards {
		cc.SRem(ctx, "asynq:queues", store.ShardQueue(tag, shards, i))
	}
}
