package main

// `roxd bench priority`: a backlog of bulk messages drains while high
// messages are offered at a steady rate; it prints the high messages'
// enqueue → ROX request latency, the bulk throughput meanwhile, CPU per
// message (this process from getrusage, Redis from INFO) and the load
// average. docs/BENCHMARKS.md, "Priority".

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/internal/trace"
	"github.com/redoxygen/roxd/producer"
	"github.com/redoxygen/roxd/rox"
	"github.com/redoxygen/roxd/worker"
)

type priorityFlags struct {
	bulk        int
	rate        int
	duration    time.Duration
	stopAt      float64
	high        int
	concurrency int
	lanes       int
	highReserve int
	linger      time.Duration
	simLatency  time.Duration
	producers   int
	verbose     bool
}

func benchPriority(ctx context.Context, args []string, out io.Writer) error {
	var f priorityFlags
	fs := flag.NewFlagSet("roxd bench priority", flag.ContinueOnError)
	redisURL := envString(fs, "redis", "REDIS_URL", "redis://127.0.0.1:6379/0", "Redis URL", false)
	fs.IntVar(&f.bulk, "bulk", 200000, "bulk messages pre-loaded as the backlog")
	fs.IntVar(&f.rate, "rate", 50, "high messages offered per second while the backlog drains")
	fs.DurationVar(&f.duration, "duration", 60*time.Second, "longest time high messages are offered")
	fs.IntVar(&f.high, "high", 1500, "high messages to offer (30 s at 50/s): while they are offered the backlog is topped up (500 bulk messages at a time) whenever fewer than half of -bulk are left, so every one is offered behind a backlog; 0: no top-up, offer until -stop-at of the backlog was sent")
	fs.Float64Var(&f.stopAt, "stop-at", 0.95, "with -high 0: stop offering high messages once this share of the backlog was sent (so that every one was offered behind a backlog)")
	fs.IntVar(&f.concurrency, "concurrency", worker.DefaultSendConcurrency, "worker SendConcurrency")
	fs.IntVar(&f.lanes, "lanes", worker.DefaultDequeueLanes, "worker DequeueLanes")
	fs.DurationVar(&f.linger, "linger", worker.DefaultLinger, "worker Linger")
	fs.IntVar(&f.highReserve, "high-reserve", worker.DefaultHighReserve, "worker HighReserve (ROXD_HIGH_RESERVE)")
	fs.DurationVar(&f.simLatency, "sim-latency", 100*time.Millisecond, "latency the simulator adds to every send answer (ROX's own answer time)")
	fs.IntVar(&f.producers, "producers", 4, "producer goroutines that pre-load the backlog")
	fs.BoolVar(&f.verbose, "v", false, "log the worker's warnings")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if f.bulk < 1 || f.rate < 1 || f.duration <= 0 || f.stopAt <= 0 || f.stopAt > 1 || f.producers < 1 || f.high < 0 {
		return fmt.Errorf("-bulk, -rate, -duration, -producers must be positive, -high not negative and -stop-at in (0,1]: %w", errUsage)
	}
	url, err := redisURL()
	if err != nil {
		return err
	}
	opt, err := benchRedisOptions(url)
	if err != nil {
		return err
	}
	opt.PoolSize = 64
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	aopt := asynq.RedisClientOpt{Addr: opt.Addr, Username: opt.Username, Password: opt.Password, DB: opt.DB, TLSConfig: opt.TLSConfig, PoolSize: 64}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	tag := "bench-" + hex.EncodeToString(rnd[:])
	logLevel := zerolog.ErrorLevel
	if f.verbose {
		logLevel = zerolog.WarnLevel
	}
	b := &benchRun{
		f: pipelineFlags{concurrency: f.concurrency, lanes: f.lanes, linger: f.linger, highReserve: f.highReserve,
			maxWaiting: worker.DefaultMaxWaiting, simLatency: f.simLatency, producers: f.producers, chunk: 500},
		rdb: rdb, aopt: aopt, prefix: tag, queue: tag, out: out,
		log: zerolog.New(os.Stderr).Level(logLevel).With().Timestamp().Logger(),
	}
	defer b.cleanup()
	info, _ := rdb.Info(ctx, "server").Result()
	fmt.Fprintf(out, "roxd bench priority: redis %s, prefix/queue %s, %d cores, %s\n", infoField(info, "redis_version"), tag, runtime.NumCPU(), runtime.Version())

	e, err := b.startEnv(ctx, false)
	if err != nil {
		return err
	}
	defer func() { e.stop() }()

	// What leaves for ROX: high latencies (the enqueue time rides in the
	// text "high <unix nanos> <n>"), bulk counts, and any request mixing
	// the two.
	var (
		mu        sync.Mutex
		highLat   []time.Duration
		highAt    = map[int]time.Time{} // ROX request of high message i
		bulkSent  atomic.Int64
		highSent  atomic.Int64
		mixed     atomic.Int64
		bulkFirst atomic.Int64
		bulkLast  atomic.Int64
	)
	e.sender.observe = func(now time.Time, m rox.Messages) {
		var nb, nh int
		var lat []time.Duration
		for _, r := range m.Recipients {
			txt := r.SMSText
			if txt == "" {
				txt = m.GlobalText
			}
			fields := strings.Fields(txt)
			if len(fields) != 3 {
				continue
			}
			switch fields[0] {
			case "bulk":
				nb++
			case "high":
				nh++
				if ns, err := strconv.ParseInt(fields[1], 10, 64); err == nil {
					lat = append(lat, now.Sub(time.Unix(0, ns)))
				}
				if i, err := strconv.Atoi(fields[2]); err == nil {
					mu.Lock()
					highAt[i] = now
					mu.Unlock()
				}
			}
		}
		if nb > 0 && nh > 0 {
			mixed.Add(1)
		}
		if nb > 0 {
			bulkFirst.CompareAndSwap(0, now.UnixNano())
			bulkLast.Store(now.UnixNano())
			bulkSent.Add(int64(nb))
		}
		if nh > 0 {
			highSent.Add(int64(nh))
			mu.Lock()
			highLat = append(highLat, lat...)
			mu.Unlock()
		}
	}

	// The backlog: pre-loaded before the worker starts.
	t0 := time.Now()
	if err := producePriority(ctx, e.prod, f.producers, f.bulk); err != nil {
		return fmt.Errorf("pre-load: %w", err)
	}
	fmt.Fprintf(out, "\n%d bulk messages pre-loaded in %s; the worker starts (concurrency %d, lanes %d, high reserve %d, simulator latency %s)\n",
		f.bulk, time.Since(t0).Round(time.Millisecond), f.concurrency, f.lanes, f.highReserve, f.simLatency)
	load0 := loadAvg()
	steps := newBatchSteps()
	trace.Set(steps.mark)
	defer trace.Set(nil)
	if err := b.startWorker(ctx, e); err != nil {
		return err
	}
	// High messages at f.rate/s, each its own SendMany of one (as a
	// backend sending one-time codes), until the backlog is f.stopAt sent
	// or f.duration passed; with f.high, until f.high were offered, the
	// backlog topped up meanwhile.
	var produced atomic.Int64
	produced.Store(int64(f.bulk))
	refillCtx, stopRefill := context.WithCancel(ctx)
	defer stopRefill()
	refillDone := make(chan error, 1)
	if f.high > 0 {
		go func() { refillDone <- refillBulk(refillCtx, e.prod, &produced, &bulkSent, int64(f.bulk/2)) }()
	} else {
		refillDone <- nil
	}
	wStart := time.Now()
	cpu0, rcpu0, bulk0 := cbProcessCPU(), redisCPU(ctx, rdb), bulkSent.Load()
	tick := time.NewTicker(time.Second / time.Duration(f.rate))
	offered := 0
	var offeredAt, sentAt []time.Time
	stopBulk := int64(float64(f.bulk) * f.stopAt)
	if f.high > 0 {
		stopBulk = math.MaxInt64
	}
	for time.Since(wStart) < f.duration && bulkSent.Load() < stopBulk && (f.high == 0 || offered < f.high) {
		select {
		case <-ctx.Done():
			tick.Stop()
			return ctx.Err()
		case <-tick.C:
		}
		now := time.Now()
		m := producer.Message{
			ID:       "h" + strconv.Itoa(offered),
			To:       "+614" + fmt.Sprintf("%08d", 90000000+offered%10000000),
			Text:     "high " + strconv.FormatInt(now.UnixNano(), 10) + " " + strconv.Itoa(offered),
			Priority: producer.PriorityHigh,
		}
		if _, err := e.prod.Send(ctx, m); err != nil {
			tick.Stop()
			return fmt.Errorf("offer high: %w", err)
		}
		offeredAt = append(offeredAt, now)
		sentAt = append(sentAt, time.Now())
		offered++
	}
	tick.Stop()
	stopRefill()
	if err := <-refillDone; err != nil {
		return fmt.Errorf("top up the backlog: %w", err)
	}
	window := time.Since(wStart)
	bulkInWindow := bulkSent.Load() - bulk0
	// Every high message offered reaches ROX (they are few).
	deadline := time.Now().Add(time.Minute)
	for highSent.Load() < int64(offered) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cpu1, rcpu1 := cbProcessCPU(), redisCPU(ctx, rdb)
	msgs := bulkInWindow + highSent.Load()
	load1 := loadAvg()
	mu.Lock()
	lat := append([]time.Duration(nil), highLat...)
	mu.Unlock()
	p50, p99 := percentiles(lat)

	fmt.Fprintf(out, "\n[priority] %d high messages offered at %d/s for %s while the bulk backlog drained (%d of %d bulk sent meanwhile)\n",
		offered, f.rate, window.Round(time.Millisecond), bulkInWindow, produced.Load())
	fmt.Fprintf(out, "  high: enqueue → ROX request p50 %s, p99 %s, max %s (%d of %d reached ROX)\n",
		p50.Round(100*time.Microsecond), p99.Round(100*time.Microsecond), maxDur(lat).Round(100*time.Microsecond), len(lat), offered)
	// Where the time went: enqueue → claim (t_sending, written by the
	// claim script: forming, the asynq queue, a free handler) and the rest.
	if toClaim := highClaimDelays(ctx, rdb, b.prefix, offeredAt); len(toClaim) > 0 {
		c50, c99 := percentiles(toClaim)
		fmt.Fprintf(out, "  of which enqueue → claim (formed, queued in asynq, taken by a handler, claimed): p50 %s, p99 %s\n",
			c50.Round(100*time.Microsecond), c99.Round(100*time.Microsecond))
	}
	mu.Lock()
	steps.print(ctx, out, rdb, b.prefix, offeredAt, sentAt, highAt)
	mu.Unlock()
	fmt.Fprintf(out, "  bulk: %.0f msg/s sent meanwhile\n", float64(bulkInWindow)/window.Seconds())
	fmt.Fprintf(out, "  requests mixing bulk and high: %d\n", mixed.Load())
	if msgs > 0 {
		fmt.Fprintf(out, "  CPU per message sent in the window: this process (worker, simulator, producer) %.1f µs, Redis %.1f µs\n",
			float64((cpu1-cpu0).Microseconds())/float64(msgs), float64((rcpu1-rcpu0).Microseconds())/float64(msgs))
	}
	fmt.Fprintf(out, "  load average: %s at the start, %s at the end (%d cores)\n", load0, load1, runtime.NumCPU())
	fmt.Fprintf(out, "\ntarget: high p99 <= 100 ms from enqueue to ROX request behind a %d bulk backlog: %s  %s\n",
		f.bulk, p99.Round(100*time.Microsecond), pass(len(lat) == offered && offered > 0 && p99 <= 100*time.Millisecond && mixed.Load() == 0))
	// Let the rest of the backlog go, so the summary says how long it took.
	deadline = time.Now().Add(10 * time.Minute)
	total := produced.Load()
	for bulkSent.Load() < total && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	if first, last := bulkFirst.Load(), bulkLast.Load(); first > 0 && bulkSent.Load() == total {
		el := time.Duration(last - first)
		fmt.Fprintf(out, "bulk backlog: all %d sent in %s (%.0f msg/s)\n", total, el.Round(time.Millisecond), float64(total)/el.Seconds())
	}
	return nil
}

// producePriority pre-loads n bulk messages "bulk <unix nanos> <i>".
func producePriority(ctx context.Context, p *producer.Producer, producers, n int) error {
	const chunk = 500
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, producers)
	for g := 0; g < producers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msgs := make([]producer.Message, 0, chunk)
			for ctx.Err() == nil {
				lo := int(next.Add(chunk)) - chunk
				if lo >= n {
					return
				}
				hi := min(lo+chunk, n)
				now := time.Now()
				msgs = msgs[:0]
				for i := lo; i < hi; i++ {
					msgs = append(msgs, producer.Message{
						ID:       "b" + strconv.Itoa(i),
						To:       "+614" + fmt.Sprintf("%08d", i%90000000),
						Text:     "bulk " + strconv.FormatInt(now.UnixNano(), 10) + " " + strconv.Itoa(i),
						Priority: producer.PriorityBulk,
					})
				}
				res, err := p.SendMany(ctx, msgs)
				if err != nil {
					errc <- err
					return
				}
				for _, r := range res {
					if r.Err != nil {
						errc <- r.Err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	return <-errc
}

// refillBulk tops the backlog up, 500 bulk messages at a time numbered on
// from produced, whenever fewer than low are left to send, until ctx ends.
func refillBulk(ctx context.Context, p *producer.Producer, produced, sent *atomic.Int64, low int64) error {
	const chunk = 500
	msgs := make([]producer.Message, 0, chunk)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		for produced.Load()-sent.Load() < low && ctx.Err() == nil {
			lo := int(produced.Load())
			now := time.Now()
			msgs = msgs[:0]
			for i := lo; i < lo+chunk; i++ {
				msgs = append(msgs, producer.Message{
					ID:       "b" + strconv.Itoa(i),
					To:       "+614" + fmt.Sprintf("%08d", i%90000000),
					Text:     "bulk " + strconv.FormatInt(now.UnixNano(), 10) + " " + strconv.Itoa(i),
					Priority: producer.PriorityBulk,
				})
			}
			// A chunk started is finished, so that produced counts it.
			res, err := p.SendMany(context.WithoutCancel(ctx), msgs)
			if err != nil {
				return err
			}
			for _, r := range res {
				if r.Err != nil {
					return r.Err
				}
			}
			produced.Add(chunk)
		}
	}
}

// highClaimDelays reads t_sending (ms, set by the claim script) of the high
// messages h0..hN and returns, per message, the time from its enqueue.
func highClaimDelays(ctx context.Context, rdb *redis.Client, prefix string, at []time.Time) []time.Duration {
	k := store.NewKeys(prefix)
	cmds := make([]*redis.StringCmd, len(at))
	_, _ = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range at {
			cmds[i] = p.HGet(ctx, k.Msg("h"+strconv.Itoa(i)), "t_sending")
		}
		return nil
	})
	out := make([]time.Duration, 0, len(at))
	for i, c := range cmds {
		if ms, err := strconv.ParseInt(c.Val(), 10, 64); err == nil {
			out = append(out, time.UnixMilli(ms).Sub(at[i]))
		}
	}
	return out
}

// batchSteps keeps the time of each worker step (internal/trace) of every
// batch, to split a high message's latency.
type batchSteps struct {
	mu sync.Mutex
	at map[string]map[string]time.Time
}

func newBatchSteps() *batchSteps { return &batchSteps{at: map[string]map[string]time.Time{}} }

func (s *batchSteps) mark(step, batch string, t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.at[batch]
	if m == nil {
		m = map[string]time.Time{}
		s.at[batch] = m
	}
	if _, ok := m[step]; !ok { // the first run's, not a retry's
		m[step] = t
	}
}

// print splits each high message's enqueue → ROX request into the steps
// between: the producer's enqueue script, waiting for the former's call,
// the form script, the asynq enqueue, waiting for a handler, the claim
// script and the rest to the request. It prints p50 / p99 / max of each and
// the mean of each over the slowest 1 % of the messages.
func (s *batchSteps) print(ctx context.Context, out io.Writer, rdb *redis.Client, prefix string, offered, sent []time.Time, rox map[int]time.Time) {
	k := store.NewKeys(prefix)
	cmds := make([]*redis.StringCmd, len(offered))
	_, _ = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range offered {
			cmds[i] = p.HGet(ctx, k.Msg("h"+strconv.Itoa(i)), "batch")
		}
		return nil
	})
	names := []string{"enqueue script", "wait for a form call", "form script", "asynq enqueue (+ earlier tasks of the call)", "wait for a handler", "claim script", "claim → ROX request"}
	var rows [][]time.Duration
	var totals []time.Duration
	s.mu.Lock()
	for i, c := range cmds {
		m := s.at[c.Val()]
		r, ok := rox[i]
		if m == nil || !ok {
			continue
		}
		ts := []time.Time{offered[i], sent[i], m[trace.FormCall], m[trace.Formed], m[trace.Enqueued], m[trace.Handler], m[trace.Claimed], r}
		row := make([]time.Duration, len(ts)-1)
		full := true
		for j := 1; j < len(ts); j++ {
			if ts[j].IsZero() {
				full = false
				break
			}
			row[j-1] = ts[j].Sub(ts[j-1])
		}
		if full {
			rows = append(rows, row)
			totals = append(totals, r.Sub(offered[i]))
		}
	}
	s.mu.Unlock()
	if len(rows) == 0 {
		return
	}
	// The slowest 1 % (at least one).
	idx := make([]int, len(rows))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return totals[idx[a]] > totals[idx[b]] })
	slow := idx[:max(len(idx)/100, 1)]
	fmt.Fprintf(out, "  where the time went (%d high messages traced; slowest %d: their mean):\n", len(rows), len(slow))
	for j, name := range names {
		col := make([]time.Duration, len(rows))
		for i, r := range rows {
			col[i] = r[j]
		}
		var sum time.Duration
		for _, i := range slow {
			sum += rows[i][j]
		}
		p50, p99 := percentiles(col)
		fmt.Fprintf(out, "    %-44s p50 %8s  p99 %8s  max %8s  slowest %8s\n", name,
			p50.Round(100*time.Microsecond), p99.Round(100*time.Microsecond), maxDur(col).Round(100*time.Microsecond),
			(sum / time.Duration(len(slow))).Round(100*time.Microsecond))
	}
}
