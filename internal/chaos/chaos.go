package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/config"
	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/rox/roxsim"
)

// Fault names, as in Config.Faults and the --faults flag.
const (
	FaultKill     = "kill"     // SIGKILL the worker while ROX requests are in flight
	FaultTerm     = "term"     // SIGTERM the worker, then start it again
	FaultRestart  = "restart"  // SHUTDOWN Redis (AOF flushed) and start it again
	FaultOOM      = "oom"      // CONFIG SET maxmemory 1 (noeviction) for WriteBlock
	FaultReadOnly = "readonly" // REPLICAOF 127.0.0.1 1 for WriteBlock, then REPLICAOF NO ONE
	FaultAllRoles = "allroles" // one all-roles process, SIGTERMed with receipts in flight
	// FaultFailover runs the whole run on a Sentinel group (master,
	// replica, three sentinels) and asks SENTINEL FAILOVER Failovers times
	// while ROX requests are in flight. Not in AllFaults: it replaces the
	// single Redis, so it does not mix with restart, oom and readonly.
	FaultFailover = "failover"
)

// AllFaults lists every fault of a single-Redis run, in the order of the
// issue.
var AllFaults = []string{FaultKill, FaultTerm, FaultRestart, FaultOOM, FaultReadOnly, FaultAllRoles}

// knownFaults are AllFaults and FaultFailover.
var knownFaults = append(slices.Clone(AllFaults), FaultFailover)

// Defaults of Config.
const (
	DefaultMessages     = 20_000
	DefaultRate         = 400
	DefaultBatch        = 200
	DefaultKills        = 5
	DefaultTerms        = 2
	DefaultLatency      = 200 * time.Millisecond
	DefaultJitter       = 100 * time.Millisecond
	DefaultReceiptDelay = time.Second
	DefaultWriteBlock   = 3 * time.Second
	DefaultSettle       = 10 * time.Minute
	DefaultFinalShare   = 0.1
	DefaultFailovers    = 2
)

// Config of a run. Zero fields take the defaults above.
type Config struct {
	// Binary is the roxd executable started as `roxd sim` and `roxd serve`.
	Binary string
	// RedisServer is the redis-server executable (default: from PATH).
	RedisServer string
	// Messages offered through the API, Batch per POST, at Rate per second.
	Messages, Batch, Rate int
	// Faults to inject (names above); nil means AllFaults, empty none.
	Faults []string
	// Kills and Terms: how many SIGKILLs and SIGTERMs of the worker.
	Kills, Terms int
	// Failovers: how many SENTINEL FAILOVERs (fault failover).
	Failovers int
	// Latency + random Jitter of every ROX answer; ReceiptDelay from
	// acceptance to the receipt.
	Latency, Jitter, ReceiptDelay time.Duration
	// WriteBlock is how long Redis refuses writes in the oom and readonly
	// faults.
	WriteBlock time.Duration
	// Settle bounds the wait for the work to finish after the last fault.
	Settle time.Duration
	// FinalShare of the messages goes through the all-roles process.
	FinalShare float64
	// Env is added to the environment of every `roxd serve` (KEY=VALUE),
	// after the run's own settings, e.g. ROXD_AMBIGUOUS=resend.
	Env []string
	// InjectDuplicates (self-check of the count): after the load, send this
	// many of the accepted SMS to the simulator once more, as a blind
	// resend would. The tally must count each as sent twice.
	InjectDuplicates int
	// Seed of the fault schedule and the simulator (0: random).
	Seed uint64
	// Keep leaves the temporary directory (logs, AOF) in place.
	Keep bool
	// Log receives one line per step (with a timestamp).
	Log zerolog.Logger
}

func (c Config) withDefaults() Config {
	d := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	dd := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	d(&c.Messages, DefaultMessages)
	d(&c.Batch, DefaultBatch)
	d(&c.Rate, DefaultRate)
	d(&c.Failovers, DefaultFailovers)
	dd(&c.Latency, DefaultLatency)
	dd(&c.Jitter, DefaultJitter)
	dd(&c.ReceiptDelay, DefaultReceiptDelay)
	dd(&c.WriteBlock, DefaultWriteBlock)
	dd(&c.Settle, DefaultSettle)
	if c.FinalShare == 0 {
		c.FinalShare = DefaultFinalShare
	}
	if c.Faults == nil {
		c.Faults = AllFaults
	}
	if c.RedisServer == "" {
		c.RedisServer = "redis-server"
	}
	if c.Seed == 0 {
		c.Seed = rand.Uint64() | 1
	}
	return c
}

// ErrConfig is wrapped by Config validation errors.
var ErrConfig = errors.New("chaos: invalid config")

func (c Config) validate() error {
	switch {
	case c.Binary == "":
		return fmt.Errorf("%w: Binary (the roxd executable) is required", ErrConfig)
	case c.Messages < 1 || c.Messages > 1_000_000:
		return fmt.Errorf("%w: Messages is %d, want 1..1000000", ErrConfig, c.Messages)
	case c.Batch < 1 || c.Batch > 10_000:
		return fmt.Errorf("%w: Batch is %d, want 1..10000", ErrConfig, c.Batch)
	case c.Rate < 1:
		return fmt.Errorf("%w: Rate is %d, want >= 1", ErrConfig, c.Rate)
	case c.Kills < 0 || c.Terms < 0 || c.InjectDuplicates < 0:
		return fmt.Errorf("%w: Kills, Terms and InjectDuplicates must be >= 0", ErrConfig)
	case c.FinalShare <= 0 || c.FinalShare >= 1:
		return fmt.Errorf("%w: FinalShare is %g, want 0 < x < 1", ErrConfig, c.FinalShare)
	}
	for _, f := range c.Faults {
		if !slices.Contains(knownFaults, f) {
			return fmt.Errorf("%w: unknown fault %q (want %s)", ErrConfig, f, strings.Join(knownFaults, ", "))
		}
		if c.has(FaultFailover) && (f == FaultRestart || f == FaultOOM || f == FaultReadOnly) {
			return fmt.Errorf("%w: fault %s runs on a Sentinel group and does not mix with %s", ErrConfig, FaultFailover, f)
		}
	}
	for _, kv := range c.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("%w: Env entry %q is not KEY=VALUE", ErrConfig, kv)
		}
	}
	return nil
}

func (c Config) has(f string) bool { return slices.Contains(c.Faults, f) }

// Names of the run's keyspace and secrets (loopback only, throw-away).
const (
	keyPrefix     = "chaos"
	queueName     = "chaos"
	apiToken      = "chaos-api-token-0123456789"
	callbackToken = "chaos-callback-token-0123456789"
	receipts      = "rox:receipts"
)

// run is the state of one run.
type run struct {
	cfg   Config
	log   zerolog.Logger
	dir   string
	p     *procs
	rng   *rand.Rand
	msgs  []Message
	sim   *simClient
	rdb   *redis.Client
	redis struct {
		port int
		c    *child
	}
	sg                        *sentinelGroup // fault failover
	failovers, readyzReported int
	mu                        sync.Mutex // guards worker, api, callbacks
	worker                    *child
	api                       *node
	cbNode                    *node
	ld                        *loader
}

// node is a running `roxd serve` and its addresses.
type node struct {
	c        *child
	httpAddr string
}

// Run runs the chaos and returns its tally. An error means the run itself
// could not be carried out (a child did not start, ctx ended): the tally is
// then incomplete.
func Run(ctx context.Context, cfg Config) (Tally, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return Tally{}, err
	}
	if _, err := exec.LookPath(cfg.RedisServer); err != nil {
		return Tally{}, fmt.Errorf("chaos: redis-server: %w", err)
	}
	dir, err := os.MkdirTemp("", "roxd-chaos-")
	if err != nil {
		return Tally{}, err
	}
	r := &run{cfg: cfg, log: cfg.Log, dir: dir, p: newProcs(dir),
		rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x5bd1e995))}
	defer func() {
		r.p.killAll(15 * time.Second)
		if r.rdb != nil {
			r.rdb.Close()
		}
		if cfg.Keep {
			r.log.Info().Str("dir", dir).Msg("kept the run's directory")
		} else {
			os.RemoveAll(dir)
		}
	}()
	r.log.Info().Str("dir", dir).Int("messages", cfg.Messages).Strs("faults", cfg.Faults).
		Int("kills", cfg.Kills).Int("terms", cfg.Terms).Uint64("seed", cfg.Seed).Msg("chaos starting")
	return r.run(ctx)
}

func (r *run) step(what string) *zerolog.Event {
	// zerolog's "time" has second precision: "at" has milliseconds.
	return r.log.Info().Str("step", what).Str("at", time.Now().UTC().Format("2006-01-02T15:04:05.000Z"))
}

func (r *run) run(ctx context.Context) (Tally, error) {
	if r.usesSentinel() {
		if err := r.startSentinel(ctx); err != nil {
			return Tally{}, err
		}
	} else if err := r.startRedis(ctx); err != nil {
		return Tally{}, err
	}
	if err := r.startSim(ctx); err != nil {
		return Tally{}, err
	}
	cb, err := r.startServe(ctx, "callbacks", config.RoleCallbacks)
	if err != nil {
		return Tally{}, err
	}
	r.cbNode = cb
	if r.api, err = r.startServe(ctx, "api", config.RoleAPI); err != nil {
		return Tally{}, err
	}
	wn, err := r.startServe(ctx, "worker", config.RoleWorker)
	if err != nil {
		return Tally{}, err
	}
	r.worker = wn.c

	// The messages: one DestTn and one text each.
	r.msgs = make([]Message, r.cfg.Messages)
	for i := range r.msgs {
		r.msgs[i] = Message{ID: fmt.Sprintf("chaos-%07d", i), DestTn: fmt.Sprintf("+614%08d", 10_000_000+i)}
	}
	final := 0
	if r.cfg.has(FaultAllRoles) {
		final = max(1, int(float64(len(r.msgs))*r.cfg.FinalShare))
	}
	mainPart := len(r.msgs) - final

	// Phase 1: the split processes take the load while the faults happen.
	ld := newLoader(r, "http://"+r.api.httpAddr)
	r.ld = ld
	loadDone := make(chan struct{})
	go func() { defer close(loadDone); ld.offer(ctx, 0, mainPart) }()
	span := time.Duration(float64(mainPart) / float64(r.cfg.Rate) * float64(time.Second))
	if err := r.faults(ctx, span); err != nil {
		return Tally{}, err
	}
	<-loadDone
	if err := ctx.Err(); err != nil {
		return Tally{}, err
	}

	// Phase 2: one all-roles process, stopped with receipts in flight.
	if final > 0 {
		if err := r.allRoles(ctx, ld, mainPart); err != nil {
			return Tally{}, err
		}
	}
	r.step("load done").Int("accepted", ld.accepted()).Int("offered", len(r.msgs)).Send()

	if r.cfg.InjectDuplicates > 0 {
		if err := r.injectDuplicates(ctx); err != nil {
			return Tally{}, err
		}
	}
	r.settle(ctx)
	if err := ctx.Err(); err != nil {
		return Tally{}, err
	}
	return r.count(ctx)
}

// env is the environment of a `roxd serve` child: the parent's, minus
// every roxd variable, plus the run's settings and Config.Env.
func (r *run) env(roles, httpAddr, cbAddr, publicAddr string) []string {
	own := map[string]bool{}
	for _, v := range config.Table() {
		own[v.Name] = true
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !own[k] {
			env = append(env, kv)
		}
	}
	env = append(env,
		"REDIS_URL="+r.redisURL(),
		"ROX_API_URL="+r.sim.base+roxsim.SendPath,
		"ROX_ACCOUNT_ID="+roxsim.DefaultAccountID,
		"ROX_USERNAME="+roxsim.DefaultUsername,
		"ROX_PASSWORD="+roxsim.DefaultPassword,
		"ROX_TIMEOUT=5s",
		"ROXD_ROLES="+roles,
		"ROXD_HTTP_ADDR="+httpAddr,
		"ROXD_API_TOKEN="+apiToken,
		"ROXD_CALLBACK_TOKEN="+callbackToken,
		"ROXD_KEY_PREFIX="+keyPrefix,
		"ROXD_QUEUE="+queueName,
		"ROXD_RECEIPTS_STREAM="+receipts,
		"ROXD_RECEIPT=always",
		"ROXD_RETRY_INITIAL=1s",
		"ROXD_RETRY_MAX_INTERVAL=5s",
		"ROXD_SHUTDOWN_TIMEOUT=10s",
		// Windows of the fixes (unknown variables are ignored by a roxd
		// that predates them): short, so that a run ends in minutes.
		"ROXD_RECONCILE_WINDOW=20s",
		"LOG_LEVEL=warn",
		"LOG_FORMAT=json",
	)
	if cbAddr != "" {
		env = append(env, "ROXD_CALLBACK_ADDR="+cbAddr)
	}
	// ROX calls back where the process that sent the request says: the
	// split worker names the callbacks process, the all-roles one itself.
	env = append(env, "ROXD_PUBLIC_URL=http://"+publicAddr)
	return append(env, r.cfg.Env...)
}

// startServe starts `roxd serve` with roles in its own working directory
// (so ./var/spool and the like are per role and survive its restarts) and
// waits until /readyz answers 200.
func (r *run) startServe(ctx context.Context, name, roles string) (*node, error) {
	hp, err := freePort()
	if err != nil {
		return nil, err
	}
	httpAddr := loopback(hp)
	// The callback addresses are fixed per process name: ROX was told them.
	cbAddr, public := "", r.cbAddr("callbacks")
	if strings.Contains(roles, config.RoleCallbacks) {
		cbAddr = r.cbAddr(name)
		public = cbAddr
	}
	if public == "" {
		return nil, fmt.Errorf("chaos: no free port for the callbacks of %s", name)
	}
	c, err := r.p.start(name, filepath.Join(r.dir, "run", name), r.env(roles, httpAddr, cbAddr, public), r.cfg.Binary, "serve")
	if err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, c, "http://"+httpAddr+"/readyz", 60*time.Second); err != nil {
		return nil, err
	}
	r.step("started").Str("process", name).Str("roles", roles).Int("pid", c.pid()).Send()
	return &node{c: c, httpAddr: httpAddr}, nil
}

var cbPorts = struct {
	sync.Mutex
	m map[string]int
}{m: map[string]int{}}

func (r *run) cbAddr(name string) string {
	cbPorts.Lock()
	defer cbPorts.Unlock()
	key := r.dir + "|" + name
	if p, ok := cbPorts.m[key]; ok {
		return loopback(p)
	}
	p, err := freePort()
	if err != nil {
		return ""
	}
	cbPorts.m[key] = p
	return loopback(p)
}

// restartWorker starts the split worker again after pause.
func (r *run) restartWorker(ctx context.Context, pause time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(pause):
	}
	n, err := r.startServe(ctx, "worker", config.RoleWorker)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.worker = n.c
	r.mu.Unlock()
	return nil
}

// faults runs the chosen faults at random moments spread over span (the
// time the load takes), each once its turn comes, one at a time.
func (r *run) faults(ctx context.Context, span time.Duration) error {
	var steps []string
	if r.cfg.has(FaultKill) {
		for range r.cfg.Kills {
			steps = append(steps, FaultKill)
		}
	}
	if r.cfg.has(FaultTerm) {
		for range r.cfg.Terms {
			steps = append(steps, FaultTerm)
		}
	}
	for _, f := range []string{FaultRestart, FaultOOM, FaultReadOnly} {
		if r.cfg.has(f) {
			steps = append(steps, f)
		}
	}
	if r.cfg.has(FaultFailover) {
		for range r.cfg.Failovers {
			steps = append(steps, FaultFailover)
		}
	}
	r.rng.Shuffle(len(steps), func(i, j int) { steps[i], steps[j] = steps[j], steps[i] })
	start := time.Now()
	slot := span / time.Duration(len(steps)+1)
	for i, f := range steps {
		// Fault i comes at a random moment of its slot.
		at := slot*time.Duration(i) + slot/2 + time.Duration(r.rng.Int64N(int64(slot)+1))
		if d := time.Until(start.Add(at)); d > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(d):
			}
		}
		if err := r.fault(ctx, f); err != nil {
			return fmt.Errorf("chaos: fault %s: %w", f, err)
		}
	}
	return nil
}

func (r *run) fault(ctx context.Context, f string) error {
	r.mu.Lock()
	w := r.worker
	r.mu.Unlock()
	switch f {
	case FaultKill:
		// Wait (bounded) for a ROX request in flight, so that the kill
		// lands between the request and the record of its answer.
		inflight := r.waitInFlight(ctx)
		took, _ := w.stop(syscall.SIGKILL, 10*time.Second)
		r.step("kill -9 worker").Int("pid", w.pid()).Int("requests_in_flight", inflight).
			Dur("exit_after", took).Send()
		return r.restartWorker(ctx, time.Duration(500+r.rng.IntN(1500))*time.Millisecond)
	case FaultTerm:
		inflight := r.waitInFlight(ctx)
		r.step("SIGTERM worker").Int("pid", w.pid()).Int("requests_in_flight", inflight).Send()
		took, killed := w.stop(syscall.SIGTERM, 40*time.Second)
		r.step("worker exited").Int("pid", w.pid()).Dur("after", took).Bool("needed_kill", killed).
			Str("exit", fmt.Sprint(w.err)).Send()
		return r.restartWorker(ctx, 500*time.Millisecond)
	case FaultRestart:
		return r.restartRedis(ctx)
	case FaultFailover:
		return r.failover(ctx)
	case FaultOOM:
		// Redis refuses the record of a request ROX accepts.
		return r.blockWrites(ctx, "oom", r.waitInFlight(ctx),
			func(c context.Context) error {
				if err := r.rdb.ConfigSet(c, "maxmemory-policy", "noeviction").Err(); err != nil {
					return err
				}
				return r.rdb.ConfigSet(c, "maxmemory", "1").Err()
			},
			func(c context.Context) error { return r.rdb.ConfigSet(c, "maxmemory", "0").Err() })
	case FaultReadOnly:
		return r.blockWrites(ctx, "readonly", r.waitInFlight(ctx),
			func(c context.Context) error { return r.rdb.Do(c, "REPLICAOF", "127.0.0.1", "1").Err() },
			func(c context.Context) error { return r.rdb.Do(c, "REPLICAOF", "NO", "ONE").Err() })
	}
	return nil
}

// waitInFlight waits (at most 10 s) until the worker has a ROX request in
// flight and returns how many it has.
func (r *run) waitInFlight(ctx context.Context) int {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if n := r.sim.inFlight(ctx); n > 0 {
			return n
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0
}

// blockWrites makes Redis refuse writes for WriteBlock.
func (r *run) blockWrites(ctx context.Context, name string, inflight int, on, off func(context.Context) error) error {
	if err := on(ctx); err != nil {
		return err
	}
	r.step("redis refuses writes").Str("how", name).Dur("for", r.cfg.WriteBlock).
		Int("requests_in_flight", inflight).Send()
	select {
	case <-ctx.Done():
	case <-time.After(r.cfg.WriteBlock):
	}
	// Always undo, even when ctx ended: the deferred cleanup stops Redis.
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := off(octx); err != nil {
		return err
	}
	r.step("redis takes writes again").Str("how", name).Send()
	return ctx.Err()
}

// allRoles stops the split worker, runs the last messages (from index
// from) through one all-roles process, SIGTERMs it once the simulator has
// accepted some of them and has receipts to post, then starts the split
// worker again.
func (r *run) allRoles(ctx context.Context, ld *loader, from int) error {
	r.mu.Lock()
	w := r.worker
	r.mu.Unlock()
	took, _ := w.stop(syscall.SIGTERM, 40*time.Second)
	r.step("SIGTERM worker before the all-roles process").Int("pid", w.pid()).Dur("exit_after", took).Send()
	all, err := r.startServe(ctx, "all", config.RoleWorker+","+config.RoleCallbacks+","+config.RoleAPI)
	if err != nil {
		return err
	}
	before, err := r.sim.stats(ctx)
	if err != nil {
		return err
	}
	ld2 := ld.with("http://" + all.httpAddr)
	ctx2, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	done := make(chan struct{})
	go func() { defer close(done); ld2.offer(ctx2, from, len(r.msgs)) }()
	// Receipts in flight: the simulator accepted at least half of the last
	// messages and has deliveries or callbacks pending.
	want := int64((len(r.msgs) - from + 1) / 2)
	deadline := time.Now().Add(60 * time.Second)
	var st roxsim.Stats
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if st, err = r.sim.stats(ctx); err == nil && st.Queued-before.Queued >= want && st.Pending > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.step("SIGTERM all-roles process").Int("pid", all.c.pid()).Int64("accepted_since_start", st.Queued-before.Queued).
		Int64("sim_pending", st.Pending).Send()
	took, killed := all.c.stop(syscall.SIGTERM, 60*time.Second)
	r.step("all-roles process exited").Dur("after", took).Bool("needed_kill", killed).Str("exit", fmt.Sprint(all.c.err)).Send()
	// What the all-roles API did not take goes to the split API.
	stopLoad()
	<-done
	if err := r.restartWorker(ctx, 0); err != nil {
		return err
	}
	ld.offer(ctx, from, len(r.msgs)) // offers only what is not accepted yet
	return ctx.Err()
}

// settle waits until no work is left anywhere, bounded by Config.Settle.
func (r *run) settle(ctx context.Context) {
	began := time.Now()
	deadline := began.Add(r.cfg.Settle)
	insp := asynq.NewInspector(r.asynqOpt())
	defer insp.Close()
	quiet := 0
	last := ""
	for ctx.Err() == nil {
		left := r.workLeft(ctx, insp)
		if left != last {
			r.step("waiting for the work to finish").Str("left", left).Send()
			last = left
		}
		if left == "" {
			quiet++
			if quiet >= 3 { // three polls, >= 4 s apart: nothing moves
				r.step("settled").Dur("after", time.Since(began).Round(time.Second)).Send()
				return
			}
		} else {
			quiet = 0
		}
		if time.Now().After(deadline) {
			r.step("settle deadline reached").Dur("after", r.cfg.Settle).Str("left", left).Send()
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
}

// workLeft describes the work still to do ("" when none).
func (r *run) workLeft(ctx context.Context, insp *asynq.Inspector) string {
	keys := store.NewKeys(keyPrefix)
	var left []string
	add := func(name string, n int64) {
		if n > 0 {
			left = append(left, fmt.Sprintf("%s=%d", name, n))
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	b, err1 := r.rdb.ZCard(cctx, keys.Batches()).Result()
	d, err2 := r.rdb.ZCard(cctx, keys.Base()+"cb:deferred").Result()
	if err := errors.Join(err1, err2); err != nil {
		return "redis: " + err.Error()
	}
	add("batches", b)
	add("deferred_callbacks", d)
	if qi, err := insp.GetQueueInfo(queueName); err == nil {
		add("tasks", int64(qi.Pending+qi.Active+qi.Scheduled+qi.Retry+qi.Aggregating))
	} else if !errors.Is(err, asynq.ErrQueueNotFound) {
		return "asynq: " + err.Error()
	}
	st, err := r.statuses(cctx)
	if err != nil {
		return "redis: " + err.Error()
	}
	var waiting int64
	for _, s := range st {
		if s.Rank() >= 0 && s.Rank() < 2 {
			waiting++
		}
	}
	add("messages_not_sent", waiting)
	if s, err := r.sim.stats(cctx); err == nil {
		add("sim_pending", s.Pending)
	} else {
		return "sim: " + err.Error()
	}
	return strings.Join(left, " ")
}

// statuses reads the status of every message record.
func (r *run) statuses(ctx context.Context) (map[string]store.Status, error) {
	keys := store.NewKeys(keyPrefix)
	out := make(map[string]store.Status, len(r.msgs))
	const chunk = 1000
	for i := 0; i < len(r.msgs); i += chunk {
		pipe := r.rdb.Pipeline()
		cmds := make([]*redis.StringCmd, 0, chunk)
		for _, m := range r.msgs[i:min(i+chunk, len(r.msgs))] {
			cmds = append(cmds, pipe.HGet(ctx, keys.Msg(m.ID), store.FieldStatus))
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, err
		}
		for j, c := range cmds {
			if v, err := c.Result(); err == nil {
				out[r.msgs[i+j].ID] = store.Status(v)
			}
		}
	}
	return out, nil
}

// count gathers the evidence and tallies it.
func (r *run) count(ctx context.Context) (Tally, error) {
	var ev Evidence
	for i := range r.msgs {
		r.msgs[i].Accepted = r.ld.ok[i].Load()
	}
	ev.Messages = r.msgs
	recips, err := r.sim.recipients(ctx)
	if err != nil {
		return Tally{}, err
	}
	for _, x := range recips {
		ev.Recipients = append(ev.Recipients, SimRecipient{DestTn: x.DestTn, SMSID: x.SMSID, Queued: x.Result.OK()})
	}
	cbs, err := r.sim.callbacks(ctx)
	if err != nil {
		return Tally{}, err
	}
	for _, c := range cbs {
		ev.Callbacks = append(ev.Callbacks, SimCallback{Kind: c.Kind, SMSID: c.SMSID,
			ForwardedToEmail: c.Outcome == roxsim.OutcomeForwardedToEmail})
	}
	entries, err := r.rdb.XRange(ctx, receipts, "-", "+").Result()
	if err != nil {
		return Tally{}, fmt.Errorf("chaos: read %s: %w", receipts, err)
	}
	for _, e := range entries {
		s, _ := e.Values["sms_id"].(string)
		m, _ := e.Values["message_id"].(string)
		ev.Receipts = append(ev.Receipts, StreamReceipt{SMSID: s, MessageID: m})
	}
	if ev.Statuses, err = r.statuses(ctx); err != nil {
		return Tally{}, err
	}
	st, err := r.sim.stats(ctx)
	if err != nil {
		return Tally{}, err
	}
	if st.RecordsDropped > 0 {
		return Tally{}, fmt.Errorf("chaos: the simulator dropped %d records: the count would be wrong", st.RecordsDropped)
	}
	t := Count(ev)
	t.Failovers, t.ReadyzNotReady = r.failovers, r.readyzReported
	return t, nil
}
