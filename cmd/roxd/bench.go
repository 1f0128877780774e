package main

// `roxd bench [pipeline]` measures producer → Redis → worker → simulator on
// loopback, plus a bare asynq Server on the same Redis for comparison.
// `roxd bench callbacks` is the callbacks benchmark (bench_callbacks.go).

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/internal/redisconn"
	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/producer"
	"github.com/redoxygen/roxd/rox"
	"github.com/redoxygen/roxd/rox/roxsim"
	"github.com/redoxygen/roxd/worker"
)

func init() {
	register("bench", "benchmark: `bench` (pipeline, then whole), `bench pipeline`, `bench callbacks`, `bench whole`, `bench cluster` or `bench priority`", runBench)
}

func runBench(ctx context.Context, args []string) error {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "pipeline":
			return benchPipeline(ctx, args[1:], os.Stdout)
		case "callbacks":
			return benchCallbacks(ctx, args[1:])
		case "whole":
			return benchWhole(ctx, args[1:], os.Stdout)
		case "cluster":
			return benchCluster(ctx, args[1:], os.Stdout)
		case "priority":
			return benchPriority(ctx, args[1:], os.Stdout)
		default:
			fmt.Fprintf(os.Stderr, "roxd bench: unknown benchmark %q (want pipeline, callbacks, whole, cluster or priority)\n", args[0])
			return errUsage
		}
	}
	if err := benchPipeline(ctx, args, os.Stdout); err != nil {
		return err
	}
	if len(args) > 0 {
		return nil // flags of the pipeline benchmark: that one only
	}
	// The default run: the pipeline, then the whole life of a message.
	return benchWhole(ctx, nil, os.Stdout)
}

type pipelineFlags struct {
	redisURL    string
	mode        string
	n           int
	bareN       int
	rate        int
	duration    time.Duration
	lanes       int
	concurrency int
	linger      time.Duration
	maxWaiting  int
	highReserve int // 0: the worker's default
	producers   int
	chunk       int
	simLatency  time.Duration
	verbose     bool
	cpuProfile  string
	minReplicas int
	waitTimeout time.Duration
}

// benchRedisOptions reads REDIS_URL (-redis) for a benchmark that drives
// one server with go-redis's options: internal/redisconn first, whose
// errors never quote the URL (go-redis's ParseURL error does, password
// included), then the options.
func benchRedisOptions(raw string) (*redis.Options, error) {
	if _, err := redisconn.Parse(raw); err != nil {
		return nil, fmt.Errorf("-redis: %w", err)
	}
	opt, err := redis.ParseURL(raw)
	if err != nil {
		// a form only redisconn reads (Sentinel, Cluster)
		return nil, errors.New("-redis: this benchmark needs the redis:// or rediss:// URL of one server")
	}
	return opt, nil
}

func benchPipeline(ctx context.Context, args []string, out io.Writer) error {
	var f pipelineFlags
	fs := flag.NewFlagSet("roxd bench pipeline", flag.ContinueOnError)
	redisURL := envString(fs, "redis", "REDIS_URL", "redis://127.0.0.1:6379/0", "Redis URL", false)
	fs.StringVar(&f.mode, "mode", "all", "what to run: all (= bare,drain,saturation,latency), or a comma-separated list of those")
	fs.IntVar(&f.n, "n", 200000, "messages in the saturation and drain runs")
	fs.IntVar(&f.bareN, "bare-n", 100000, "tasks for the bare asynq server run")
	fs.IntVar(&f.rate, "rate", 1000, "offered messages/s in the latency run")
	fs.DurationVar(&f.duration, "duration", 10*time.Second, "length of the latency run")
	fs.IntVar(&f.lanes, "lanes", worker.DefaultDequeueLanes, "worker DequeueLanes")
	fs.IntVar(&f.concurrency, "concurrency", worker.DefaultSendConcurrency, "worker SendConcurrency")
	fs.DurationVar(&f.linger, "linger", worker.DefaultLinger, "worker Linger")
	fs.IntVar(&f.maxWaiting, "max-waiting", worker.DefaultMaxWaiting, "worker MaxWaiting")
	fs.IntVar(&f.producers, "producers", 4, "producer goroutines in the saturation run")
	fs.IntVar(&f.chunk, "chunk", 500, "messages per producer SendMany call in the saturation run")
	fs.DurationVar(&f.simLatency, "sim-latency", 0, "latency the simulator adds to every send answer")
	fs.BoolVar(&f.verbose, "v", false, "log the worker's warnings")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	fs.IntVar(&f.minReplicas, "min-replicas", 0, "ROXD_REDIS_MIN_REPLICAS of the producer and the worker (WAIT after every enqueue, claim and record)")
	fs.DurationVar(&f.waitTimeout, "wait-timeout", redisconn.DefaultWaitTimeout, "ROXD_REDIS_WAIT_TIMEOUT with -min-replicas")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if f.n < 1 || f.bareN < 1 || f.rate < 1 || f.duration <= 0 || f.producers < 1 || f.chunk < 1 {
		return fmt.Errorf("-n, -bare-n, -rate, -duration, -producers and -chunk must be positive: %w", errUsage)
	}
	modes := map[string]bool{}
	for _, m := range strings.Split(f.mode, ",") {
		switch m = strings.TrimSpace(m); m {
		case "all":
			modes["bare"], modes["drain"], modes["saturation"], modes["latency"] = true, true, true, true
		case "bare", "saturation", "drain", "latency":
			modes[m] = true
		default:
			return fmt.Errorf("-mode %q: want all, bare, saturation, drain or latency: %w", m, errUsage)
		}
	}

	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var err error
	if f.redisURL, err = redisURL(); err != nil {
		return err
	}
	opt, err := benchRedisOptions(f.redisURL)
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
	b := &benchRun{f: f, rdb: rdb, aopt: aopt, prefix: tag, queue: tag, out: out}
	defer b.cleanup()

	info, _ := rdb.Info(ctx, "server").Result()
	fmt.Fprintf(out, "roxd bench pipeline: redis %s, prefix/queue %s\n", infoField(info, "redis_version"), tag)
	logLevel := zerolog.ErrorLevel
	if f.verbose {
		logLevel = zerolog.WarnLevel
	}
	b.log = zerolog.New(os.Stderr).Level(logLevel).With().Timestamp().Logger()

	if modes["bare"] {
		if err := b.bare(ctx); err != nil {
			return err
		}
	}
	if modes["drain"] {
		if err := b.throughput(ctx, true); err != nil {
			return err
		}
	}
	if modes["saturation"] {
		if err := b.throughput(ctx, false); err != nil {
			return err
		}
	}
	if modes["latency"] {
		if err := b.latency(ctx); err != nil {
			return err
		}
	}
	b.summary()
	return nil
}

type benchRun struct {
	f      pipelineFlags
	rdb    *redis.Client
	aopt   asynq.RedisClientOpt
	prefix string
	queue  string
	out    io.Writer
	log    zerolog.Logger

	bareRate   float64
	satRate    float64
	drainRt    float64
	satSizes   []int
	drainSizes []int
	p50, p99   time.Duration
	latSizes   []int
}

// storeConfig is the store of the producer and the worker (-min-replicas).
func (b *benchRun) storeConfig() store.Config {
	return store.Config{Prefix: b.prefix, Replicas: redisconn.Replicas{Min: b.f.minReplicas, Timeout: b.f.waitTimeout}}
}

// selfCPU is this process's CPU time (user + sys) so far: the producer and
// the worker run in it.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (b *benchRun) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := store.NewKeys(b.prefix).Base()
	var cursor uint64
	for {
		keys, next, err := b.rdb.Scan(ctx, cursor, base+"*", 5000).Result()
		if err != nil {
			break
		}
		if len(keys) > 0 {
			b.rdb.Unlink(ctx, keys...)
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	insp := asynq.NewInspector(b.aopt)
	defer insp.Close()
	for _, q := range append(store.PriorityQueues(b.queue), b.queue+"-bare") {
		_ = insp.DeleteQueue(q, true)
		// DeleteQueue leaves the processed/failed counters behind.
		if keys, err := b.rdb.Keys(ctx, "asynq:{"+q+"}:*").Result(); err == nil && len(keys) > 0 {
			b.rdb.Unlink(ctx, keys...)
		}
	}
}

// bare measures one asynq Server with a no-op handler: N tasks enqueued
// first, then processed.
func (b *benchRun) bare(ctx context.Context) error {
	q := b.queue + "-bare"
	c := asynq.NewClient(b.aopt)
	defer c.Close()
	n := b.f.bareN
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, 32)
	t0 := time.Now()
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if _, err := c.EnqueueContext(ctx, asynq.NewTask("bench:noop", nil), asynq.Queue(q)); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return fmt.Errorf("bare: enqueue: %w", err)
	}
	enqRate := float64(n) / time.Since(t0).Seconds()

	var done atomic.Int64
	finished := make(chan struct{})
	srv := asynq.NewServer(b.aopt, asynq.Config{
		Concurrency: 500, Queues: map[string]int{q: 1}, TaskCheckInterval: 5 * time.Millisecond,
		LogLevel: asynq.ErrorLevel,
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc("bench:noop", func(context.Context, *asynq.Task) error {
		if done.Add(1) == int64(n) {
			close(finished)
		}
		return nil
	})
	t1 := time.Now()
	if err := srv.Start(mux); err != nil {
		return fmt.Errorf("bare: start: %w", err)
	}
	select {
	case <-finished:
	case <-ctx.Done():
	case <-time.After(5 * time.Minute):
	}
	el := time.Since(t1)
	srv.Shutdown()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	b.bareRate = float64(done.Load()) / el.Seconds()
	fmt.Fprintf(b.out, "\n[bare asynq] %d no-op tasks, one Server (concurrency 500): %.0f tasks/s processed (enqueue %.0f/s, 32 goroutines)\n",
		n, b.bareRate, enqRate)
	return nil
}

// benchSender wraps the ROX client: it measures enqueue → request latency
// (the enqueue time rides in the text) and recipients per request, and
// counts accepted recipients.
type benchSender struct {
	inner    worker.Sender
	mu       sync.Mutex
	lat      []time.Duration
	sizes    []int
	accepted atomic.Int64
	target   atomic.Int64
	done     chan struct{}
	once     sync.Once
	lastAt   atomic.Int64
	// observe, when set, sees each request as it leaves (bench priority).
	observe func(now time.Time, m rox.Messages)
}

func newBenchSender(inner worker.Sender) *benchSender {
	return &benchSender{inner: inner, done: make(chan struct{})}
}

func (s *benchSender) Send(ctx context.Context, m rox.Messages) (*rox.SendResponse, error) {
	now := time.Now()
	if s.observe != nil {
		s.observe(now, m)
	}
	lat := make([]time.Duration, 0, len(m.Recipients))
	for _, r := range m.Recipients {
		txt := r.SMSText
		if txt == "" {
			txt = m.GlobalText
		}
		// "bench <unix nanos of enqueue> <n>"
		if f := strings.Fields(txt); len(f) == 3 {
			if ns, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				lat = append(lat, now.Sub(time.Unix(0, ns)))
			}
		}
	}
	s.mu.Lock()
	s.lat = append(s.lat, lat...)
	s.sizes = append(s.sizes, len(m.Recipients))
	s.mu.Unlock()
	resp, err := s.inner.Send(ctx, m)
	if err == nil && resp != nil {
		ok := 0
		for _, r := range resp.Messages.Results {
			if r.Result.OK() {
				ok++
			}
		}
		s.lastAt.Store(time.Now().UnixNano())
		if s.accepted.Add(int64(ok)) >= s.target.Load() && s.target.Load() > 0 {
			s.once.Do(func() { close(s.done) })
		}
	}
	return resp, err
}

// env is a simulator on a loopback server, a ROX client and a worker.
type env struct {
	sim    *roxsim.Sim
	srv    *httptest.Server
	sender *benchSender
	prod   *producer.Producer
	stop   func()
}

func (b *benchRun) startEnv(ctx context.Context, startWorker bool) (*env, error) {
	e, err := b.newSimEnv()
	if err != nil {
		return nil, err
	}
	e.prod, err = producer.New(b.rdb, producer.Config{Store: b.storeConfig()}, b.log)
	if err != nil {
		e.stop()
		return nil, err
	}
	if startWorker {
		if err := b.startWorker(ctx, e); err != nil {
			e.stop()
			return nil, err
		}
	}
	return e, nil
}

// newSimEnv starts the simulator and the ROX client of an env.
func (b *benchRun) newSimEnv() (*env, error) {
	sim, err := roxsim.New(roxsim.Config{CountOnly: true, Faults: roxsim.Faults{
		Latency: b.f.simLatency,
		// Keep the simulator's receipts out of the measurement: they would
		// be delivered a day later (never, in a benchmark).
		ReceiptDelay: 24 * time.Hour,
	}}, zerolog.Nop())
	if err != nil {
		return nil, err
	}
	srv := httptest.NewServer(sim)
	client, err := rox.NewClient(rox.ClientConfig{URL: srv.URL + roxsim.SendPath, AccountID: roxsim.DefaultAccountID,
		Username: roxsim.DefaultUsername, Password: roxsim.DefaultPassword, Timeout: 30 * time.Second})
	if err != nil {
		srv.Close()
		return nil, err
	}
	e := &env{sim: sim, srv: srv, sender: newBenchSender(client)}
	e.stop = func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = sim.Close(cctx)
		srv.Close()
	}
	return e, nil
}

func (b *benchRun) startWorker(ctx context.Context, e *env) error {
	// A journal directory per worker (one process may run several here).
	jdir, err := os.MkdirTemp("", "roxd-bench-journal-")
	if err != nil {
		return err
	}
	w, err := worker.New(worker.Config{
		Store:              b.storeConfig(),
		Queue:              b.queue,
		Linger:             b.f.linger,
		MaxWaiting:         b.f.maxWaiting,
		SendConcurrency:    b.f.concurrency,
		DequeueLanes:       b.f.lanes,
		HighReserve:        b.f.highReserve,
		ReceiptCallbackURL: "http://127.0.0.1:9/bench/receipt",
		ReplyCallbackURL:   "http://127.0.0.1:9/bench/reply",
		AccountID:          roxsim.DefaultAccountID,
		JournalDir:         jdir,
	}, b.rdb, b.aopt, e.sender, b.log)
	if err != nil {
		os.RemoveAll(jdir)
		return err
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	prev := e.stop
	e.stop = func() {
		cancel()
		<-done
		os.RemoveAll(jdir)
		prev()
	}
	return nil
}

func benchMessage(i int, at time.Time) producer.Message {
	return producer.Message{
		ID:   "m" + strconv.Itoa(i),
		To:   "+614" + fmt.Sprintf("%08d", i%100000000),
		Text: "bench " + strconv.FormatInt(at.UnixNano(), 10) + " " + strconv.Itoa(i),
	}
}

// produce offers msgs [from, to) as fast as the producers go.
func (b *benchRun) produce(ctx context.Context, e *env, from, to int) error {
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	errc := make(chan error, b.f.producers)
	for g := 0; g < b.f.producers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msgs := make([]producer.Message, 0, b.f.chunk)
			for ctx.Err() == nil {
				lo := int(next.Add(int64(b.f.chunk))) - b.f.chunk
				if lo >= to {
					return
				}
				hi := min(lo+b.f.chunk, to)
				now := time.Now()
				msgs = msgs[:0]
				for i := lo; i < hi; i++ {
					msgs = append(msgs, benchMessage(i, now))
				}
				res, err := e.prod.SendMany(ctx, msgs)
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

// redisCPU is the Redis server's CPU time (user + sys) so far.
func redisCPU(ctx context.Context, rdb *redis.Client) time.Duration {
	s, err := rdb.Info(ctx, "cpu").Result()
	if err != nil {
		return 0
	}
	var sec float64
	for _, f := range []string{"used_cpu_user", "used_cpu_sys"} {
		v, _ := strconv.ParseFloat(infoField(s, f), 64)
		sec += v
	}
	return time.Duration(sec * float64(time.Second))
}

func commandCalls(ctx context.Context, rdb *redis.Client) (total, evals int64) {
	s, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return 0, 0
	}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "cmdstat_") {
			continue
		}
		name, rest, _ := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":")
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				total += n
				if strings.HasPrefix(name, "eval") {
					evals += n
				}
			}
		}
	}
	return total, evals
}

// throughput runs the saturation run (producers and worker at once) or,
// with drain, pre-loads every message and then times the worker alone.
func (b *benchRun) throughput(ctx context.Context, drain bool) error {
	n := b.f.n
	name := "saturation"
	if drain {
		name = "drain"
	}
	e, err := b.startEnv(ctx, !drain)
	if err != nil {
		return err
	}
	defer func() { e.stop() }()
	e.sender.target.Store(int64(n))
	base := 1_000_000_000
	if drain {
		base = 2_000_000_000
	}
	cmd0, ev0 := commandCalls(ctx, b.rdb)
	cpu0 := redisCPU(ctx, b.rdb)
	self0 := selfCPU()
	t0 := time.Now()
	var prodDone time.Duration
	if drain {
		if err := b.produce(ctx, e, base, base+n); err != nil {
			return fmt.Errorf("%s: produce: %w", name, err)
		}
		prodDone = time.Since(t0)
		t0 = time.Now()
		cmd0, ev0 = commandCalls(ctx, b.rdb)
		cpu0 = redisCPU(ctx, b.rdb)
		self0 = selfCPU()
		if err := b.startWorker(ctx, e); err != nil {
			return err
		}
	} else {
		perr := make(chan error, 1)
		go func() {
			err := b.produce(ctx, e, base, base+n)
			prodDone = time.Since(t0)
			perr <- err
		}()
		defer func() { <-perr }()
	}
	select {
	case <-e.sender.done:
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(10 * time.Minute):
		return fmt.Errorf("%s: timed out with %d of %d accepted", name, e.sender.accepted.Load(), n)
	}
	el := time.Duration(e.sender.lastAt.Load() - t0.UnixNano())
	cmd1, ev1 := commandCalls(ctx, b.rdb)
	cpu1 := redisCPU(ctx, b.rdb)
	self1 := selfCPU()
	rate := float64(n) / el.Seconds()
	e.sender.mu.Lock()
	sizes := append([]int(nil), e.sender.sizes...)
	lat := append([]time.Duration(nil), e.sender.lat...)
	e.sender.mu.Unlock()
	mean, p10 := sizeStats(sizes)
	p50, p99 := percentiles(lat)
	if drain {
		b.drainRt, b.drainSizes = rate, sizes
		fmt.Fprintf(b.out, "\n[drain] %d messages pre-loaded by %d producers in %s (%.0f msg/s), then the worker alone:\n",
			n, b.f.producers, prodDone.Round(time.Millisecond), float64(n)/prodDone.Seconds())
	} else {
		b.satRate, b.satSizes = rate, sizes
		fmt.Fprintf(b.out, "\n[saturation] %d messages offered by %d producers (SendMany of %d) while the worker runs (producers done after %s):\n",
			n, b.f.producers, b.f.chunk, prodDone.Round(time.Millisecond))
	}
	fmt.Fprintf(b.out, "  %.0f msg/s sustained (%d accepted by the simulator in %s)\n", rate, n, el.Round(time.Millisecond))
	fmt.Fprintf(b.out, "  ROX requests %d, recipients per request mean %.1f, p10 %d\n", len(sizes), mean, p10)
	fmt.Fprintf(b.out, "  enqueue → ROX request p50 %s, p99 %s (queueing under saturation)\n", p50.Round(time.Millisecond), p99.Round(time.Millisecond))
	what := "producer + worker"
	if drain {
		what = "worker only"
	}
	fmt.Fprintf(b.out, "  Redis commands per message %.2f (of which EVAL/EVALSHA %.3f), %s; whole-server INFO commandstats delta, commands run by scripts included\n",
		float64(cmd1-cmd0)/float64(n), float64(ev1-ev0)/float64(n), what)
	fmt.Fprintf(b.out, "  Redis CPU %.1f µs per message, busy %.0f%% of one core during the run\n",
		float64((cpu1-cpu0).Microseconds())/float64(n), 100*(cpu1-cpu0).Seconds()/time.Since(t0).Seconds())
	fmt.Fprintf(b.out, "  roxd CPU (%s, one process) %.1f µs per message; load average %s\n",
		what, float64((self1-self0).Microseconds())/float64(n), loadAvg())
	return nil
}

// latency offers rate messages/s for duration and reports enqueue → ROX
// request percentiles.
func (b *benchRun) latency(ctx context.Context) error {
	e, err := b.startEnv(ctx, true)
	if err != nil {
		return err
	}
	defer func() { e.stop() }()
	total := int(float64(b.f.rate) * b.f.duration.Seconds())
	e.sender.target.Store(int64(total))
	base := 3_000_000_000
	t0 := time.Now()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	sent := 0
	cmd0, _ := commandCalls(ctx, b.rdb)
	cpu0, self0 := redisCPU(ctx, b.rdb), selfCPU()
	var answers []time.Duration // SendMany call: what the API's answer waits for
	for sent < total {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		due := min(int(time.Since(t0).Seconds()*float64(b.f.rate)), total)
		if due <= sent {
			continue
		}
		now := time.Now()
		msgs := make([]producer.Message, 0, due-sent)
		for i := sent; i < due; i++ {
			msgs = append(msgs, benchMessage(base+i, now))
		}
		c0 := time.Now()
		if _, err := e.prod.SendMany(ctx, msgs); err != nil {
			return fmt.Errorf("latency: produce: %w", err)
		}
		answers = append(answers, time.Since(c0))
		sent = due
	}
	select {
	case <-e.sender.done:
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Minute):
		return fmt.Errorf("latency: timed out with %d of %d accepted", e.sender.accepted.Load(), total)
	}
	cmd1, _ := commandCalls(ctx, b.rdb)
	cpu1, self1 := redisCPU(ctx, b.rdb), selfCPU()
	e.sender.mu.Lock()
	lat := append([]time.Duration(nil), e.sender.lat...)
	sizes := append([]int(nil), e.sender.sizes...)
	e.sender.mu.Unlock()
	b.p50, b.p99 = percentiles(lat)
	b.latSizes = sizes
	mean, _ := sizeStats(sizes)
	fmt.Fprintf(b.out, "\n[latency] %d msg/s offered for %s (%d messages, SendMany every 2 ms):\n", b.f.rate, b.f.duration, total)
	fmt.Fprintf(b.out, "  enqueue → ROX request p50 %s, p99 %s, max %s\n", b.p50.Round(100*time.Microsecond),
		b.p99.Round(100*time.Microsecond), maxDur(lat).Round(time.Millisecond))
	fmt.Fprintf(b.out, "  ROX requests %d, recipients per request mean %.1f; Redis commands per message %.2f (idle polling included)\n",
		len(sizes), mean, float64(cmd1-cmd0)/float64(total))
	a50, a99 := percentiles(answers)
	fmt.Fprintf(b.out, "  enqueue call (SendMany: the API's answer) p50 %s, p99 %s; min replicas %d\n",
		a50.Round(10*time.Microsecond), a99.Round(10*time.Microsecond), b.f.minReplicas)
	fmt.Fprintf(b.out, "  Redis CPU %.1f µs, roxd CPU %.1f µs per message (producer + worker, idle polling included); load average %s\n",
		float64((cpu1-cpu0).Microseconds())/float64(total), float64((self1-self0).Microseconds())/float64(total), loadAvg())
	return nil
}

func (b *benchRun) summary() {
	fmt.Fprintf(b.out, "\ntargets (drain = pre-loaded backlog, the worker saturated; offered = producers and worker at once):\n")
	for _, r := range []struct {
		name  string
		rate  float64
		sizes []int
	}{{"drain", b.drainRt, b.drainSizes}, {"offered", b.satRate, b.satSizes}} {
		if r.rate == 0 {
			continue
		}
		fmt.Fprintf(b.out, "  [%s] >= 25,000 msg/s sustained: %.0f  %s\n", r.name, r.rate, pass(r.rate >= 25000))
		if b.bareRate > 0 {
			fmt.Fprintf(b.out, "  [%s] >= 1.5x bare single-server asynq (%.0f/s): %.2fx  %s\n", r.name, b.bareRate, r.rate/b.bareRate, pass(r.rate >= 1.5*b.bareRate))
		}
		mean, p10 := sizeStats(r.sizes)
		fmt.Fprintf(b.out, "  [%s] >= 450 recipients per request: mean %.1f, p10 %d  %s\n", r.name, mean, p10, pass(mean >= 450))
	}
	if b.p50 > 0 {
		fmt.Fprintf(b.out, "  p50 <= 30 ms at %d msg/s: %s  %s\n", b.f.rate, b.p50.Round(100*time.Microsecond), pass(b.p50 <= 30*time.Millisecond))
		fmt.Fprintf(b.out, "  p99 <= 150 ms at %d msg/s: %s  %s\n", b.f.rate, b.p99.Round(100*time.Microsecond), pass(b.p99 <= 150*time.Millisecond))
	}
}

func pass(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

func sizeStats(sizes []int) (mean float64, p10 int) {
	if len(sizes) == 0 {
		return 0, 0
	}
	s := append([]int(nil), sizes...)
	sort.Ints(s)
	sum := 0
	for _, v := range s {
		sum += v
	}
	return float64(sum) / float64(len(s)), s[len(s)/10]
}

func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2], s[min(len(s)-1, len(s)*99/100)]
}

func maxDur(d []time.Duration) time.Duration {
	var m time.Duration
	for _, v := range d {
		m = max(m, v)
	}
	return m
}

func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return "?"
}
