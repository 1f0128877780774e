package main

// `roxd bench whole` measures a message's whole life as a user deploys
// roxd: a private redis-server, `roxd sim` and `roxd serve` (all roles in
// one process, and split roles) as child processes, a load generator
// POSTing batches to the HTTP API, and the simulator posting one receipt
// per message back over HTTP. Figures are per message CPU (from /proc and
// Redis INFO), so that they hold on a shared machine.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/nyaruka/phonenumbers"
	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/config"
	"github.com/redoxygen/roxd/internal/redisconn"
	"github.com/redoxygen/roxd/rox/roxsim"
)

// wholeSimWorkers is the simulator's default number of concurrent receipt
// posts in this bench: with roxd sim's own default (64) each post waits
// for its group commit and the 64 posters, not roxd, set the receipt rate
// (7,361 msg/s with receipt stored against 8,314 with 256 in back-to-back
// runs at load 1-2).
const wholeSimWorkers = 256

const (
	wholeAPIToken      = "bench-whole-api-token-0123456789"
	wholeCallbackToken = "bench-whole-callback-token-0123456789"
	wholeReceipts      = "rox:receipts"
)

type wholeFlags struct {
	binary, redisServer string
	mode                string
	n, bareN            int
	batch, posters      int
	simWorkers          int
	textLen             int
	recipients          int
	rate                int
	duration            time.Duration
	idle                time.Duration
	profileDir          string
	profileSeconds      int
	env                 multiFlag
	redisArgs           multiFlag
	asJSON              bool
	keep                bool
	byScript            bool
	redisKeys           int
}

// wholeResult is one run's figures (also printed as JSON with -json).
type wholeResult struct {
	Run       string  `json:"run"`
	Messages  int     `json:"messages"`
	Accepted  int64   `json:"accepted"`
	Sent      int64   `json:"sent"`
	Stored    int64   `json:"stored"`
	AcceptedS float64 `json:"accepted_per_s"`
	SentS     float64 `json:"sent_per_s"`
	StoredS   float64 `json:"stored_per_s"`
	// CPU per message, µs.
	RoxdCPU  float64 `json:"roxd_cpu_us"`
	RedisCPU float64 `json:"redis_cpu_us"`
	SimCPU   float64 `json:"sim_cpu_us"`
	Commands float64 `json:"redis_commands_per_msg"`
	// Latency run.
	P50ms float64 `json:"p50_ms,omitempty"`
	P99ms float64 `json:"p99_ms,omitempty"`
	MaxMs float64 `json:"max_ms,omitempty"`
	// Idle run: share of one core, commands per second.
	RoxdIdleCore  float64 `json:"roxd_idle_core,omitempty"`
	RedisIdleCore float64 `json:"redis_idle_core,omitempty"`
	IdleCmdS      float64 `json:"idle_commands_per_s,omitempty"`
	// Memory run: used_memory delta per queued message, bytes.
	MemPerMsg float64 `json:"memory_per_msg,omitempty"`
	// Throughput runs with -redis-by-script: Redis's logged time by
	// script (bench_slowlog.go), most first.
	RedisByScript []scriptTime `json:"redis_by_script,omitempty"`
	Load          string       `json:"loadavg"`
}

type wholeSummary struct {
	Machine  machineRef    `json:"machine"`
	BareRate float64       `json:"bare_asynq_per_s"`
	Runs     []wholeResult `json:"runs"`
}

// machineRef is the speed of this machine on three fixed pieces of work,
// measured as CPU time: instances of one machine kind differ (the figures
// of two sessions can differ 2-3x), so figures from two machines compare
// only through these.
type machineRef struct {
	// NumberUS: one libphonenumber Parse + IsValidNumber of a fixed number
	// (the API's biggest cost per message), µs of this thread's CPU.
	NumberUS float64 `json:"go_number_us"`
	// RoundTripUS: Redis's CPU per unpipelined PING (a round trip: read,
	// parse, reply, write); PipelinedUS: per PING in pipelines of 100.
	RoundTripUS float64 `json:"redis_round_trip_us"`
	PipelinedUS float64 `json:"redis_pipelined_us"`
	// LuaCallUS: Redis's CPU per redis.call('EXISTS') inside a script
	// (the floor of every command the scripts run).
	LuaCallUS float64 `json:"redis_lua_call_us"`
}

// threadCPU is the calling OS thread's CPU time (the caller locks it).
func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// calibrate measures machineRef on rdb (a private Redis nobody else uses).
func calibrate(ctx context.Context, rdb *redis.Client) (machineRef, error) {
	var m machineRef
	runtime.LockOSThread()
	const nums = 2000
	c0 := threadCPU()
	for range nums {
		n, err := phonenumbers.Parse("+61407555001", "AU")
		if err != nil || !phonenumbers.IsValidNumber(n) {
			runtime.UnlockOSThread()
			return m, fmt.Errorf("calibrate: reference number refused: %v", err)
		}
	}
	m.NumberUS = float64((threadCPU() - c0).Microseconds()) / nums
	runtime.UnlockOSThread()
	const pings = 3000
	r0 := redisCPU(ctx, rdb)
	for range pings {
		if err := rdb.Ping(ctx).Err(); err != nil {
			return m, err
		}
	}
	r1 := redisCPU(ctx, rdb)
	for range pings / 100 {
		if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for range 100 {
				p.Ping(ctx)
			}
			return nil
		}); err != nil {
			return m, err
		}
	}
	r2 := redisCPU(ctx, rdb)
	const calls = 500
	// A benchmark's probe on its private Redis, not a product script (those
	// are made with store.NewScript and run on a cluster by the tests): a
	// plain EVAL, compiled once by Redis and cached.
	const lua = `for i = 1, 500 do redis.call('EXISTS', KEYS[1]) end return 0`
	if err := rdb.Eval(ctx, lua, []string{"calibrate"}).Err(); err != nil {
		return m, err
	}
	r3 := redisCPU(ctx, rdb)
	for range 40 {
		if err := rdb.Eval(ctx, lua, []string{"calibrate"}).Err(); err != nil {
			return m, err
		}
	}
	r4 := redisCPU(ctx, rdb)
	m.RoundTripUS = float64((r1 - r0).Microseconds()) / pings
	m.PipelinedUS = float64((r2 - r1).Microseconds()) / pings
	m.LuaCallUS = float64((r4 - r3).Microseconds()) / (40 * calls)
	return m, nil
}

func benchWhole(ctx context.Context, args []string, out io.Writer) error {
	var f wholeFlags
	fs := flag.NewFlagSet("roxd bench whole", flag.ContinueOnError)
	fs.StringVar(&f.binary, "binary", "", "roxd executable started as `roxd serve` and `roxd sim` (default: this one)")
	fs.StringVar(&f.redisServer, "redis-server", "redis-server", "redis-server executable (a private one is started on a free port)")
	fs.StringVar(&f.mode, "mode", "all", "all (= bare,all-roles,split,ingest,latency,idle), or a comma list of those")
	fs.IntVar(&f.n, "n", 100000, "messages per throughput run")
	fs.IntVar(&f.bareN, "bare-n", 100000, "tasks of the bare asynq run")
	fs.IntVar(&f.batch, "batch", 500, "messages per POST /v1/messages/batch")
	fs.IntVar(&f.posters, "posters", 4, "concurrent load generator connections")
	fs.IntVar(&f.simWorkers, "sim-workers", wholeSimWorkers, "the simulator's concurrent receipt posts (roxd sim --workers; ROX's own concurrency is not documented)")
	fs.IntVar(&f.textLen, "text-len", 160, "characters per text")
	fs.IntVar(&f.recipients, "recipients", 0, "distinct numbers the messages go to, in turn (0: every message to its own number)")
	fs.IntVar(&f.rate, "rate", 1000, "single-message POSTs per second in the latency run")
	fs.DurationVar(&f.duration, "duration", 10*time.Second, "length of the latency run")
	fs.DurationVar(&f.idle, "idle", 30*time.Second, "length of the idle measurement (a 10 s window moves by ~0.5% of a core between runs: a GC cycle, asynq's timers)")
	fs.StringVar(&f.profileDir, "profile-dir", "", "write CPU profiles of roxd serve (all-roles run, API of the ingest run) here (sets ROXD_PPROF)")
	fs.IntVar(&f.profileSeconds, "profile-seconds", 5, "length of each CPU profile")
	fs.Var(&f.redisArgs, "redis-arg", "argument added to the private redis-server's command line (repeatable), e.g. -redis-arg=--hash-max-listpack-value -redis-arg=64 (Redis's default; the bench starts it with 256, as docker-compose.yml)")
	fs.Var(&f.env, "env", "KEY=VALUE added to the environment of every roxd serve (repeatable)")
	fs.BoolVar(&f.asJSON, "json", false, "print the figures as one JSON object at the end")
	fs.BoolVar(&f.keep, "keep", false, "keep the temporary directory (child logs)")
	fs.IntVar(&f.redisKeys, "redis-keys", 0, "before each run, fill the private Redis with this many other keys, half of them with a TTL, as a deployment's Redis holds days of records, SMSId maps and dedup markers (finding a key costs more in a bigger keyspace)")
	fs.BoolVar(&f.byScript, "redis-by-script", false, "in the throughput runs, log every Redis command (SLOWLOG at 0 µs) and print Redis's time per message by script; logging slows Redis, read the figures as shares")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if f.redisKeys < 0 {
		return fmt.Errorf("-redis-keys must not be negative: %w", errUsage)
	}
	if f.n < 1 || f.bareN < 1 || f.batch < 1 || f.posters < 1 || f.simWorkers < 1 || f.rate < 1 || f.duration <= 0 || f.idle <= 0 || f.textLen < 1 {
		return fmt.Errorf("-n, -bare-n, -batch, -posters, -rate, -duration, -idle and -text-len must be positive: %w", errUsage)
	}
	modes := map[string]bool{}
	all := []string{"bare", "all-roles", "split", "ingest", "latency", "idle"}
	for _, m := range strings.Split(f.mode, ",") {
		switch m = strings.TrimSpace(m); m {
		case "all":
			for _, a := range all {
				modes[a] = true
			}
		case "bare", "all-roles", "split", "ingest", "latency", "idle":
			modes[m] = true
		default:
			return fmt.Errorf("-mode %q: want all or a comma list of %s: %w", m, strings.Join(all, ", "), errUsage)
		}
	}
	if f.binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		f.binary = exe
	}
	dir, err := os.MkdirTemp("", "roxd-bench-whole-")
	if err != nil {
		return err
	}
	w := &wholeRun{f: f, dir: dir, out: out, procs: map[*wproc]bool{}}
	defer func() {
		w.killAll()
		if f.keep {
			fmt.Fprintf(out, "kept %s\n", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	if err := w.startRedis(ctx); err != nil {
		return err
	}
	defer w.rdb.Close()
	info, _ := w.rdb.Info(ctx, "server").Result()
	fmt.Fprintf(out, "roxd bench whole: redis %s (private, no persistence), %d cores, load average %s\n",
		infoField(info, "redis_version"), numCPU(), loadAvg())

	var sum wholeSummary
	mref, err := calibrate(ctx, w.rdb)
	if err != nil {
		return err
	}
	sum.Machine = mref
	fmt.Fprintf(out, "[machine] CPU per fixed piece of work (compare figures of two machines through these): libphonenumber Parse+IsValidNumber %.1f µs; Redis %.1f µs per round trip (PING), %.2f µs per pipelined PING, %.2f µs per redis.call from Lua\n",
		mref.NumberUS, mref.RoundTripUS, mref.PipelinedUS, mref.LuaCallUS)
	if err := w.flush(ctx); err != nil {
		return err
	}
	if f.redisKeys > 0 {
		fmt.Fprintf(out, "[keyspace] %d other keys in Redis before each run (half with a TTL)\n", f.redisKeys)
	}
	if modes["bare"] {
		b := &benchRun{f: pipelineFlags{bareN: f.bareN}, rdb: w.rdb, aopt: w.aopt, prefix: "bare", queue: "bare", out: out}
		if err := b.bare(ctx); err != nil {
			return err
		}
		sum.BareRate = b.bareRate
		fmt.Fprintf(out, "  load average %s\n", loadAvg())
		if err := w.flush(ctx); err != nil {
			return err
		}
	}
	for _, run := range []struct {
		name string
		fn   func(context.Context) (wholeResult, error)
	}{
		{"all-roles", func(ctx context.Context) (wholeResult, error) { return w.throughput(ctx, false) }},
		{"split", func(ctx context.Context) (wholeResult, error) { return w.throughput(ctx, true) }},
		{"ingest", w.ingest},
		{"latency", w.latency},
		{"idle", w.idleRun},
	} {
		if !modes[run.name] {
			continue
		}
		r, err := run.fn(ctx)
		w.stopServes()
		if err != nil {
			return fmt.Errorf("%s: %w", run.name, err)
		}
		r.Run = run.name
		sum.Runs = append(sum.Runs, r)
		if err := w.flush(ctx); err != nil {
			return err
		}
	}
	w.summary(sum)
	if f.asJSON {
		b, _ := json.Marshal(sum)
		fmt.Fprintf(out, "JSON %s\n", b)
	}
	return nil
}

type wholeRun struct {
	f     wholeFlags
	dir   string
	out   io.Writer
	rdb   *redis.Client
	aopt  asynq.RedisClientOpt
	redis *wproc
	sim   *wproc
	simAt string
	mu    sync.Mutex
	procs map[*wproc]bool
	serve []*wproc
}

// wproc is one child process.
type wproc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	http string // roxd serve: its API/metrics listener
}

func (w *wholeRun) start(name string, env []string, bin string, args ...string) (*wproc, error) {
	logPath := filepath.Join(w.dir, name+".log")
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	wd := filepath.Join(w.dir, "run-"+name)
	if err := os.MkdirAll(wd, 0o755); err != nil {
		lf.Close()
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = wd, env, lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &wproc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	w.mu.Lock()
	w.procs[p] = true
	w.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		lf.Close()
		w.mu.Lock()
		delete(w.procs, p)
		w.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

func (p *wproc) stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *wproc) tail() string {
	b, _ := os.ReadFile(p.log)
	return lastN(string(b), 2000)
}

func lastN(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (w *wholeRun) killAll() {
	w.mu.Lock()
	ps := make([]*wproc, 0, len(w.procs))
	for p := range w.procs {
		ps = append(ps, p)
	}
	w.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(func() { p.stop(15 * time.Second) })
	}
	wg.Wait()
}

func (w *wholeRun) stopServes() {
	var wg sync.WaitGroup
	for _, p := range w.serve {
		wg.Go(func() { p.stop(30 * time.Second) })
	}
	wg.Wait()
	w.serve = nil
	if w.sim != nil {
		w.sim.stop(15 * time.Second)
		w.sim = nil
	}
}

func freeLoopback() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func (w *wholeRun) startRedis(ctx context.Context) error {
	addr, err := freeLoopback()
	if err != nil {
		return err
	}
	_, port, _ := net.SplitHostPort(addr)
	data := filepath.Join(w.dir, "redis")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return err
	}
	args := append([]string{"--port", port, "--bind", "127.0.0.1", "--dir", data,
		"--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction", "--daemonize", "no",
		// As docker-compose.yml deploys it (README, "Memory"); -redis-arg
		// may set it back, a later argument wins.
		"--hash-max-listpack-value", strconv.Itoa(redisconn.CompactRecordBytes)}, w.f.redisArgs...)
	if w.f.redisKeys > 0 {
		// DEBUG POPULATE for -redis-keys, from loopback only (Redis >= 7).
		args = append(args, "--enable-debug-command", "local")
	}
	p, err := w.start("redis", nil, w.f.redisServer, args...)
	if err != nil {
		return err
	}
	w.redis = p
	w.rdb = redis.NewClient(&redis.Options{Addr: addr, PoolSize: 64})
	w.aopt = asynq.RedisClientOpt{Addr: addr, PoolSize: 64}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := w.rdb.Ping(ctx).Err(); err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("redis-server exited: %s", p.tail())
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("redis-server did not answer: %s", p.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// flush empties the private Redis between runs, fills it with
// -redis-keys keys, and resets its statistics.
func (w *wholeRun) flush(ctx context.Context) error {
	_ = w.rdb.FlushAll(ctx).Err()
	if err := fillKeyspace(ctx, w.rdb, w.f.redisKeys); err != nil {
		return err
	}
	return w.rdb.ConfigResetStat(ctx).Err()
}

// fillKeyspace adds n keys of 100 bytes (DEBUG POPULATE: bench:keyspace:0
// ... n-1), the first half with a 7-day TTL (so that the expires dict,
// which every key lookup also searches, is as big as a deployment's).
func fillKeyspace(ctx context.Context, rdb *redis.Client, n int) error {
	if n == 0 {
		return nil
	}
	if err := rdb.Do(ctx, "DEBUG", "POPULATE", n, "bench:keyspace", 100).Err(); err != nil {
		return fmt.Errorf("-redis-keys: DEBUG POPULATE: %w", err)
	}
	const chunk = 100000
	for from := 0; from < n/2; from += chunk {
		to := min(from+chunk, n/2) - 1
		if err := rdb.Eval(ctx, `for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do redis.call('PEXPIRE', 'bench:keyspace:' .. i, 604800000) end return 0`,
			nil, from, to).Err(); err != nil {
			return fmt.Errorf("-redis-keys: PEXPIRE: %w", err)
		}
	}
	return nil
}

func (w *wholeRun) startSim(ctx context.Context, record bool) error {
	addr, err := freeLoopback()
	if err != nil {
		return err
	}
	args := []string{"sim", "--addr", addr, "--log-level", "warn", "--workers", strconv.Itoa(w.f.simWorkers), "--max-records", strconv.Itoa(2*w.f.rate*int(w.f.duration.Seconds()+1) + 10000)}
	if !record {
		args = append(args, "--count-only")
	}
	if w.f.profileDir != "" {
		args = append(args, "--pprof")
	}
	p, err := w.start("sim", nil, w.f.binary, args...)
	if err != nil {
		return err
	}
	w.sim, w.simAt = p, "http://"+addr
	return waitOK(ctx, p, w.simAt+roxsim.StatsPath)
}

func waitOK(ctx context.Context, p *wproc, url string) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if resp, err := hc.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited while starting: %s", p.name, p.tail())
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s not ready: %s", url, p.tail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startServe starts `roxd serve` with roles; public is the callback base
// ROX is told (the callbacks process's address).
func (w *wholeRun) startServe(ctx context.Context, name, roles, cbAddr, public string) (*wproc, error) {
	httpAddr, err := freeLoopback()
	if err != nil {
		return nil, err
	}
	own := map[string]bool{}
	for _, v := range config.Table() {
		own[v.Name] = true
	}
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !own[k] {
			env = append(env, kv)
		}
	}
	env = append(env,
		"REDIS_URL=redis://"+w.aopt.Addr+"/0",
		"ROX_API_URL="+w.simAt+roxsim.SendPath,
		"ROX_ACCOUNT_ID="+roxsim.DefaultAccountID,
		"ROX_USERNAME="+roxsim.DefaultUsername,
		"ROX_PASSWORD="+roxsim.DefaultPassword,
		"ROXD_ROLES="+roles,
		"ROXD_HTTP_ADDR="+httpAddr,
		"ROXD_API_TOKEN="+wholeAPIToken,
		"ROXD_CALLBACK_TOKEN="+wholeCallbackToken,
		"ROXD_RECEIPTS_STREAM="+wholeReceipts,
		"ROXD_RECEIPT=always",
		"ROXD_ALLOW_VOLATILE_REDIS=true",
		"ROXD_SHUTDOWN_TIMEOUT=20s",
		"LOG_LEVEL=warn",
		"LOG_FORMAT=json",
		"ROXD_PUBLIC_URL=http://"+public,
	)
	if cbAddr != "" {
		env = append(env, "ROXD_CALLBACK_ADDR="+cbAddr)
	}
	if w.f.profileDir != "" {
		env = append(env, "ROXD_PPROF=true")
	}
	env = append(env, w.f.env...)
	p, err := w.start(name, env, w.f.binary, "serve")
	if err != nil {
		return nil, err
	}
	p.http = "http://" + httpAddr
	w.serve = append(w.serve, p)
	return p, waitOK(ctx, p, p.http+"/readyz")
}

// startDeployment starts the simulator and roxd serve, all roles in one
// process or split in three.
func (w *wholeRun) startDeployment(ctx context.Context, split, record bool) (api *wproc, err error) {
	if err := w.startSim(ctx, record); err != nil {
		return nil, err
	}
	cb, err := freeLoopback()
	if err != nil {
		return nil, err
	}
	if !split {
		return w.startServe(ctx, "serve-all", "worker,callbacks,api", cb, cb)
	}
	if _, err := w.startServe(ctx, "serve-callbacks", "callbacks", cb, cb); err != nil {
		return nil, err
	}
	if _, err := w.startServe(ctx, "serve-worker", "worker", "", cb); err != nil {
		return nil, err
	}
	return w.startServe(ctx, "serve-api", "api", "", cb)
}

// cpuSnap is CPU time so far of each process that counts.
type cpuSnap struct {
	at    time.Time
	roxd  time.Duration
	byRox []time.Duration // each roxd serve's, in w.serve's order
	sim   time.Duration
	redis time.Duration
	cmds  int64
	stats map[string]int64 // calls by command
}

func (w *wholeRun) snap(ctx context.Context) cpuSnap {
	s := cpuSnap{at: time.Now()}
	for _, p := range w.serve {
		c := procCPU(p.cmd.Process.Pid)
		s.roxd += c
		s.byRox = append(s.byRox, c)
	}
	if w.sim != nil {
		s.sim = procCPU(w.sim.cmd.Process.Pid)
	}
	s.redis = redisCPU(ctx, w.rdb)
	s.cmds, _ = commandCalls(ctx, w.rdb)
	s.stats = commandStats(ctx, w.rdb)
	return s
}

// usecPrefix marks a commandStats entry holding a command's time (µs)
// rather than its calls.
const usecPrefix = "usec:"

// commandStats is INFO commandstats' calls by command name, and each
// command's time in µs under usecPrefix+name (a script's time includes
// the commands it ran, which are counted under their own names too).
func commandStats(ctx context.Context, rdb *redis.Client) map[string]int64 {
	m := map[string]int64{}
	s, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return m
	}
	for _, line := range strings.Split(s, "\n") {
		name, rest, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(line), "cmdstat_"), ":")
		if !ok {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				m[name], _ = strconv.ParseInt(v, 10, 64)
			}
			if v, ok := strings.CutPrefix(kv, "usec="); ok {
				m[usecPrefix+name], _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	return m
}

// topCommands formats the commands of b-a per message, most first.
func topCommands(a, b cpuSnap, n, k int) string { return topStats(a, b, n, k, false) }

// topCommandTime formats the time (µs) Redis spent in each command of b-a
// per message, most first: where its CPU went. Scripts (evalsha) include
// the commands they ran; what the sum leaves of Redis's CPU is its event
// loop, network and parsing.
func topCommandTime(a, b cpuSnap, n, k int) string { return topStats(a, b, n, k, true) }

// topStats formats the first k commandStats entries of b-a per message,
// most first: the calls, or with usec the times (usecPrefix entries).
func topStats(a, b cpuSnap, n, k int, usec bool) string {
	type c struct {
		name string
		d    int64
	}
	var cs []c
	for name, v := range b.stats {
		if strings.HasPrefix(name, usecPrefix) != usec {
			continue
		}
		if d := v - a.stats[name]; d > 0 {
			cs = append(cs, c{strings.TrimPrefix(name, usecPrefix), d})
		}
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].d > cs[j].d })
	format := "%s %.2f"
	if usec {
		format = "%s %.1f"
	}
	var parts []string
	for i := 0; i < len(cs) && i < k; i++ {
		parts = append(parts, fmt.Sprintf(format, cs[i].name, float64(cs[i].d)/float64(n)))
	}
	return strings.Join(parts, ", ")
}

// procCPU is utime+stime of pid from /proc/<pid>/stat (all threads).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the ")" that closes comm: state is field 3; utime and
	// stime are fields 14 and 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clkTck
}

// clkTck is USER_HZ: 100 on every Linux this runs on.
const clkTck = 100

func loadAvg() string {
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

func numCPU() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "processor") {
			n++
		}
	}
	return n
}

func (d cpuSnap) per(a cpuSnap, n int) (roxd, redis, sim, cmds float64) {
	us := func(x time.Duration) float64 { return float64(x.Microseconds()) / float64(n) }
	return us(d.roxd - a.roxd), us(d.redis - a.redis), us(d.sim - a.sim), float64(d.cmds-a.cmds) / float64(n)
}

// wholeText is a text of n characters that starts with tag.
func wholeText(tag string, n int) string {
	if len(tag) >= n {
		return tag
	}
	const fill = "Your order is on its way and will arrive tomorrow between 9 and 5. Reply STOP to opt out. "
	b := []byte(tag + " ")
	for len(b) < n {
		b = append(b, fill...)
	}
	return string(b[:n])
}

type apiMsg struct {
	ID      string `json:"id"`
	To      string `json:"to"`
	Text    string `json:"text"`
	Receipt string `json:"receipt,omitempty"`
}

// poster posts batches of messages to the API.
type poster struct {
	base string
	hc   *http.Client
}

func newPoster(base string, conns int) *poster {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = conns + 4
	return &poster{base: base, hc: &http.Client{Timeout: 60 * time.Second, Transport: t}}
}

// wholeNumber is the i-th of a spread of valid Australian mobile numbers.
func wholeNumber(i int) string { return fmt.Sprintf("+614%08d", 10000000+i%89999999) }

// number is the number of the i-th message (-recipients).
func (w *wholeRun) number(i int) string {
	if w.f.recipients > 0 {
		i %= w.f.recipients
	}
	return wholeNumber(i)
}

// batch posts msgs and returns how many were accepted.
func (p *poster) batch(ctx context.Context, msgs []apiMsg) (int, error) {
	body, _ := json.Marshal(struct {
		Messages []apiMsg `json:"messages"`
	}{msgs})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base+"/v1/messages/batch", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+wholeAPIToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1000))
		return 0, fmt.Errorf("POST /v1/messages/batch: HTTP %d: %s", resp.StatusCode, b)
	}
	var res struct {
		Results []struct {
			Status string          `json:"status"`
			Error  json.RawMessage `json:"error"`
		} `json:"results"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return 0, err
	}
	ok := 0
	for _, r := range res.Results {
		if r.Status != "" && len(r.Error) == 0 {
			ok++
		}
	}
	return ok, nil
}

func (p *poster) one(ctx context.Context, m apiMsg) error {
	body, _ := json.Marshal(m)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base+"/v1/messages", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+wholeAPIToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("POST /v1/messages: HTTP %d", resp.StatusCode)
	}
	return nil
}

// offer posts n messages in batches from -posters goroutines and returns
// the count accepted and when the last POST was answered.
func (w *wholeRun) offer(ctx context.Context, base string, n int, tag string) (int64, time.Time, error) {
	p := newPoster(base, w.f.posters)
	var next, accepted, retries atomic.Int64
	var firstErr error
	defer func() {
		if n := retries.Load(); n > 0 {
			fmt.Fprintf(w.out, "  (%d POSTs repeated after a 503 or transport error)\n", n)
		}
	}()
	var once sync.Once
	var wg sync.WaitGroup
	for g := 0; g < w.f.posters; g++ {
		wg.Go(func() {
			for ctx.Err() == nil {
				from := int(next.Add(int64(w.f.batch))) - w.f.batch
				if from >= n {
					return
				}
				to := min(from+w.f.batch, n)
				msgs := make([]apiMsg, 0, to-from)
				for i := from; i < to; i++ {
					id := tag + strconv.Itoa(i)
					msgs = append(msgs, apiMsg{ID: id, To: w.number(i), Text: wholeText(id, w.f.textLen)})
				}
				// A 503 (the API's budget ran out on an overloaded machine)
				// or a transport error is retried with the same ids, as a
				// client would: the API answers replays with their status.
				var k int
				var err error
				for try := 0; try < 30 && ctx.Err() == nil; try++ {
					if k, err = p.batch(ctx, msgs); err == nil {
						break
					}
					retries.Add(1)
					time.Sleep(500 * time.Millisecond)
				}
				accepted.Add(int64(k))
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		})
	}
	wg.Wait()
	return accepted.Load(), time.Now(), firstErr
}

func (w *wholeRun) simStats(ctx context.Context) (roxsim.Stats, error) {
	var st roxsim.Stats
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.simAt+roxsim.StatsPath, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// profile fetches a CPU profile of p for -profile-seconds into the
// profile directory, in the background.
func (w *wholeRun) profile(p *wproc, name string) func() {
	return w.profileAfter(nil, p, name)
}

// profileAfter is profile started once after has returned (a process
// serves one CPU profile at a time: a second one at once gets HTTP 500).
func (w *wholeRun) profileAfter(after func(), p *wproc, name string) func() {
	if w.f.profileDir == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if after != nil {
			after()
		}
		resp, err := http.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", p.http, w.f.profileSeconds))
		if err != nil {
			fmt.Fprintf(w.out, "  profile %s: %v\n", name, err)
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			fmt.Fprintf(w.out, "  profile %s: HTTP %d (a roxd without ROXD_PPROF?)\n", name, resp.StatusCode)
			return
		}
		_ = os.MkdirAll(w.f.profileDir, 0o755)
		path := filepath.Join(w.f.profileDir, name+".pprof")
		fh, err := os.Create(path)
		if err != nil {
			return
		}
		defer fh.Close()
		_, _ = io.Copy(fh, resp.Body)
		fmt.Fprintf(w.out, "  profile of %s: %s\n", name, path)
	}()
	return func() { <-done }
}

// throughput offers -n messages in batches and times accepted, sent (the
// simulator accepted them) and receipt stored (entries on the receipts
// stream), with CPU per message of every process.
func (w *wholeRun) throughput(ctx context.Context, split bool) (wholeResult, error) {
	name := "all roles in one roxd serve"
	if split {
		name = "split roles: roxd serve api, worker, callbacks"
	}
	api, err := w.startDeployment(ctx, split, false)
	if err != nil {
		return wholeResult{}, err
	}
	n := w.f.n
	load0 := loadAvg()
	var slow *slowSampler
	if w.f.byScript {
		if slow, err = startSlowSampler(ctx, w.rdb); err != nil {
			return wholeResult{}, err
		}
		defer func() {
			if slow != nil { // the run failed before its figures: stop logging
				_, _ = slow.finish(ctx, n)
			}
		}()
	}
	a := w.snap(ctx)
	var waitProf func()
	if !split {
		waitProf = w.profile(api, "serve-all-ingest")
	}
	var waitProf2 func()
	var acceptedN int64
	var acceptedAt time.Time
	var offerErr error
	offered := make(chan struct{})
	go func() {
		defer close(offered)
		acceptedN, acceptedAt, offerErr = w.offer(ctx, api.http, n, "w")
	}()
	var sentAt, storedAt time.Time
	var sent, stored int64
	deadline := time.Now().Add(time.Duration(n/100+120) * time.Second)
	for sentAt.IsZero() || storedAt.IsZero() {
		select {
		case <-ctx.Done():
			return wholeResult{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if st, err := w.simStats(ctx); err == nil {
			sent = st.Queued
		}
		stored, _ = w.rdb.XLen(ctx, wholeReceipts).Result()
		now := time.Now()
		if sentAt.IsZero() && sent >= int64(n) {
			sentAt = now
		}
		if storedAt.IsZero() && stored >= int64(n) {
			storedAt = now
		}
		select {
		case <-offered:
			if waitProf2 == nil && !split {
				// Ingest done: what is left is sending and receipts.
				waitProf2 = w.profileAfter(waitProf, api, "serve-all-receipts")
				waitSim := w.profile(&wproc{http: w.simAt}, "sim")
				prev := waitProf2
				waitProf2 = func() { prev(); waitSim() }
			}
			if offerErr != nil {
				return wholeResult{}, offerErr
			}
			if acceptedN < int64(n) && (sent >= acceptedN && stored >= acceptedN) {
				return wholeResult{}, fmt.Errorf("only %d of %d accepted", acceptedN, n)
			}
		default:
		}
		if now.After(deadline) {
			return wholeResult{}, fmt.Errorf("timed out: %d sent, %d receipts stored of %d", sent, stored, n)
		}
	}
	<-offered
	b := w.snap(ctx)
	var byScript []scriptTime
	if slow != nil {
		byScript, err = slow.finish(ctx, n)
		slow = nil
		if err != nil {
			return wholeResult{}, err
		}
	}
	if waitProf != nil {
		waitProf()
	}
	if waitProf2 != nil {
		waitProf2()
	}
	r := wholeResult{Messages: n, Accepted: acceptedN, Sent: sent, Stored: stored, Load: load0 + " / " + loadAvg(), RedisByScript: byScript}
	el := func(t time.Time) float64 { return float64(n) / t.Sub(a.at).Seconds() }
	r.AcceptedS, r.SentS, r.StoredS = el(acceptedAt), el(sentAt), el(storedAt)
	r.RoxdCPU, r.RedisCPU, r.SimCPU, r.Commands = b.per(a, n)
	fmt.Fprintf(w.out, "\n[%s] %d messages of %d characters, POST /v1/messages/batch of %d from %d connections, one receipt each:\n",
		name, n, w.f.textLen, w.f.batch, w.f.posters)
	fmt.Fprintf(w.out, "  msg/s accepted %.0f, sent %.0f, with receipt stored %.0f\n", r.AcceptedS, r.SentS, r.StoredS)
	fmt.Fprintf(w.out, "  CPU per message: roxd %.1f µs, Redis %.1f µs, simulator %.1f µs\n", r.RoxdCPU, r.RedisCPU, r.SimCPU)
	if split && len(a.byRox) == len(w.serve) && len(b.byRox) == len(w.serve) {
		var parts []string
		for i, p := range w.serve {
			parts = append(parts, fmt.Sprintf("%s %.1f", strings.TrimPrefix(p.name, "serve-"), float64((b.byRox[i]-a.byRox[i]).Microseconds())/float64(n)))
		}
		fmt.Fprintf(w.out, "  roxd CPU per message by role, µs: %s\n", strings.Join(parts, ", "))
	}
	fmt.Fprintf(w.out, "  Redis commands per message %.2f (%s)\n", r.Commands, topCommands(a, b, n, 10))
	fmt.Fprintf(w.out, "  Redis time per message by command, µs (INFO commandstats; scripts include their commands): %s\n", topCommandTime(a, b, n, 10))
	if byScript != nil {
		fmt.Fprintf(w.out, "  Redis time per message by script, µs (SLOWLOG at 0 µs, which slows Redis: read as shares): %s\n", formatScriptTimes(byScript, 8))
	}
	fmt.Fprintf(w.out, "  load average %s\n", r.Load)
	return r, nil
}

// ingest runs the API role alone: -n messages accepted into a backlog
// nobody consumes, then Redis memory per queued message.
func (w *wholeRun) ingest(ctx context.Context) (wholeResult, error) {
	if err := w.startSim(ctx, false); err != nil { // unused, but ROX_API_URL must point somewhere
		return wholeResult{}, err
	}
	api, err := w.startServe(ctx, "serve-api", "api", "", "127.0.0.1:9")
	if err != nil {
		return wholeResult{}, err
	}
	n := w.f.n
	load0 := loadAvg()
	mem0 := usedMemory(ctx, w.rdb)
	a := w.snap(ctx)
	waitProf := w.profile(api, "serve-api")
	acc, at, err := w.offer(ctx, api.http, n, "i")
	if err != nil {
		return wholeResult{}, err
	}
	b := w.snap(ctx)
	waitProf()
	mem1 := usedMemory(ctx, w.rdb)
	r := wholeResult{Messages: n, Accepted: acc, Load: load0 + " / " + loadAvg()}
	r.AcceptedS = float64(acc) / at.Sub(a.at).Seconds()
	r.RoxdCPU, r.RedisCPU, _, r.Commands = b.per(a, n)
	r.MemPerMsg = float64(mem1-mem0) / float64(acc)
	fmt.Fprintf(w.out, "\n[ingest: roxd serve api alone] %d messages of %d characters, POST /v1/messages/batch of %d from %d connections:\n",
		n, w.f.textLen, w.f.batch, w.f.posters)
	fmt.Fprintf(w.out, "  msg/s accepted %.0f (%d accepted)\n", r.AcceptedS, acc)
	fmt.Fprintf(w.out, "  CPU per message: roxd %.1f µs, Redis %.1f µs; Redis commands per message %.2f (%s)\n", r.RoxdCPU, r.RedisCPU, r.Commands, topCommands(a, b, n, 8))
	fmt.Fprintf(w.out, "  Redis memory per queued message %.0f B (used_memory delta over the backlog of %d)\n", r.MemPerMsg, acc)
	fmt.Fprintf(w.out, "  load average %s\n", r.Load)
	return r, nil
}

func usedMemory(ctx context.Context, rdb *redis.Client) int64 {
	s, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0
	}
	v, _ := strconv.ParseInt(infoField(s, "used_memory"), 10, 64)
	return v
}

// latency offers -rate single-message POSTs per second for -duration, all
// roles in one process, and measures POST → ROX request from the
// simulator's record of when it read each request.
func (w *wholeRun) latency(ctx context.Context) (wholeResult, error) {
	api, err := w.startDeployment(ctx, false, true)
	if err != nil {
		return wholeResult{}, err
	}
	total := int(float64(w.f.rate) * w.f.duration.Seconds())
	p := newPoster(api.http, 64)
	load0 := loadAvg()
	a := w.snap(ctx)
	jobs := make(chan int, 1024)
	var errs atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for i := range jobs {
				id := "l" + strconv.Itoa(i)
				tag := id + " " + strconv.FormatInt(time.Now().UnixNano(), 10)
				if err := p.one(ctx, apiMsg{ID: id, To: w.number(i), Text: wholeText(tag, w.f.textLen)}); err != nil {
					errs.Add(1)
				}
			}
		})
	}
	t0 := time.Now()
	for i := 0; i < total && ctx.Err() == nil; i++ {
		if d := time.Until(t0.Add(time.Duration(i) * time.Second / time.Duration(w.f.rate))); d > 0 {
			time.Sleep(d)
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if ctx.Err() != nil {
		return wholeResult{}, ctx.Err()
	}
	deadline := time.Now().Add(2 * time.Minute)
	var st roxsim.Stats
	for {
		st, err = w.simStats(ctx)
		if err == nil && st.Queued >= int64(total)-errs.Load() {
			break
		}
		if time.Now().After(deadline) {
			return wholeResult{}, fmt.Errorf("timed out: %d of %d sent", st.Queued, total)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b := w.snap(ctx)
	var recs []roxsim.RecordedRecipient
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.simAt+roxsim.RecipientsPath+"?limit=0", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return wholeResult{}, err
	}
	err = json.NewDecoder(resp.Body).Decode(&recs)
	resp.Body.Close()
	if err != nil {
		return wholeResult{}, err
	}
	var lat []time.Duration
	for _, x := range recs {
		f := strings.Fields(x.Text)
		if len(f) < 2 {
			continue
		}
		if ns, err := strconv.ParseInt(f[1], 10, 64); err == nil {
			lat = append(lat, x.ReceivedAt.Sub(time.Unix(0, ns)))
		}
	}
	if len(lat) == 0 {
		return wholeResult{}, errors.New("no recipient recorded by the simulator")
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p50, p99 := percentiles(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	r := wholeResult{Messages: total, Accepted: int64(total) - errs.Load(), Sent: int64(len(lat)),
		P50ms: ms(p50), P99ms: ms(p99), MaxMs: ms(lat[len(lat)-1]), Load: load0 + " / " + loadAvg()}
	r.RoxdCPU, r.RedisCPU, r.SimCPU, r.Commands = b.per(a, total)
	fmt.Fprintf(w.out, "\n[latency] %d single-message POSTs/s for %s (%d messages), all roles in one roxd serve:\n", w.f.rate, w.f.duration, total)
	fmt.Fprintf(w.out, "  POST → ROX request p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d sent, %d POSTs failed)\n", r.P50ms, r.P99ms, r.MaxMs, len(lat), errs.Load())
	fmt.Fprintf(w.out, "  CPU per message: roxd %.1f µs, Redis %.1f µs; Redis commands per message %.2f\n", r.RoxdCPU, r.RedisCPU, r.Commands)
	fmt.Fprintf(w.out, "  load average %s\n", r.Load)
	return r, nil
}

// idleRun starts every role in one process, lets it settle, and measures
// its CPU and Redis's work over -idle with no message.
func (w *wholeRun) idleRun(ctx context.Context) (wholeResult, error) {
	if _, err := w.startDeployment(ctx, false, false); err != nil {
		return wholeResult{}, err
	}
	select {
	case <-ctx.Done():
		return wholeResult{}, ctx.Err()
	case <-time.After(2 * time.Second): // start-up work done
	}
	load0 := loadAvg()
	a := w.snap(ctx)
	select {
	case <-ctx.Done():
		return wholeResult{}, ctx.Err()
	case <-time.After(w.f.idle):
	}
	b := w.snap(ctx)
	secs := b.at.Sub(a.at).Seconds()
	r := wholeResult{Load: load0 + " / " + loadAvg()}
	r.RoxdIdleCore = (b.roxd - a.roxd).Seconds() / secs
	r.RedisIdleCore = (b.redis - a.redis).Seconds() / secs
	r.IdleCmdS = float64(b.cmds-a.cmds) / secs
	fmt.Fprintf(w.out, "\n[idle] all roles in one roxd serve, no messages, %s:\n", w.f.idle)
	fmt.Fprintf(w.out, "  roxd %.2f%% of a core, Redis %.2f%% of a core, %.0f Redis commands/s\n", 100*r.RoxdIdleCore, 100*r.RedisIdleCore, r.IdleCmdS)
	fmt.Fprintf(w.out, "  commands in %s: %s\n", w.f.idle, topCommands(a, b, 1, 12))
	fmt.Fprintf(w.out, "  load average %s\n", r.Load)
	return r, nil
}

func (w *wholeRun) summary(s wholeSummary) {
	fmt.Fprintf(w.out, "\n[summary] load average now %s\n", loadAvg())
	if s.BareRate > 0 {
		fmt.Fprintf(w.out, "  bare single-server asynq %.0f tasks/s\n", s.BareRate)
	}
	for _, r := range s.Runs {
		switch r.Run {
		case "all-roles", "split":
			ratio := ""
			if s.BareRate > 0 {
				ratio = fmt.Sprintf(" (%.2fx bare asynq)", r.StoredS/s.BareRate)
			}
			fmt.Fprintf(w.out, "  %-9s with receipt stored %.0f msg/s%s; per message roxd %.1f µs, Redis %.1f µs, simulator %.1f µs, %.2f commands\n",
				r.Run, r.StoredS, ratio, r.RoxdCPU, r.RedisCPU, r.SimCPU, r.Commands)
		case "ingest":
			fmt.Fprintf(w.out, "  ingest    accepted %.0f msg/s; Redis memory %.0f B per queued message\n", r.AcceptedS, r.MemPerMsg)
		case "latency":
			fmt.Fprintf(w.out, "  latency   p50 %.1f ms, p99 %.1f ms\n", r.P50ms, r.P99ms)
		case "idle":
			fmt.Fprintf(w.out, "  idle      roxd %.2f%% of a core, Redis %.0f commands/s\n", 100*r.RoxdIdleCore, r.IdleCmdS)
		}
	}
}
