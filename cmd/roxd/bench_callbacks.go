package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/callbacks"
	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/rox"
)

// benchCallbacks is `roxd bench callbacks` (dispatched from bench.go): it starts a receiver on
// loopback against the Redis given (random prefix and stream names, removed
// afterwards), drives it with concurrent keep-alive clients, prints
// callbacks/s and latency percentiles, and checks that every answered
// callback is in its stream exactly once.
func benchCallbacks(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench callbacks", flag.ContinueOnError)
	redisURL := envString(fs, "redis", "REDIS_URL", "redis://127.0.0.1:6379/0", "Redis URL", false)
	clients := fs.Int("clients", 32, "concurrent keep-alive clients")
	count := fs.Int("count", 200_000, "callbacks to send (0: until -duration)")
	duration := fs.Duration("duration", 0, "stop after this long (0: until -count)")
	warmup := fs.Int("warmup", 5_000, "callbacks sent first and left out of the figures")
	replyEvery := fs.Int("reply-every", 10, "every Nth callback is a reply (0: receipts only)")
	known := fs.Bool("known", true, "create a message record and SMSId map for every callback, as the worker would")
	pipelines := fs.Int("pipelines", callbacks.DefaultPipelines, "receiver Config.Pipelines")
	maxBatch := fs.Int("max-batch", callbacks.DefaultMaxBatch, "receiver Config.MaxBatch")
	keep := fs.Bool("keep", false, "keep the keys and streams (default: removed)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the measured run to this file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *clients < 1 || *clients > 4096 {
		return fmt.Errorf("-clients %d: want 1..4096", *clients)
	}
	if *count <= 0 && *duration <= 0 {
		return fmt.Errorf("give -count or -duration")
	}
	if *count <= 0 {
		*count = 50_000_000 // bounded by -duration
	}
	rawURL, err := redisURL()
	if err != nil {
		return err
	}
	opt, err := benchRedisOptions(rawURL)
	if err != nil {
		return err
	}
	opt.PoolSize = max(opt.PoolSize, *pipelines*2+8)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis %s: %w", opt.Addr, err)
	}

	tag := randHex(6)
	cfg := callbacks.Config{
		Prefix:         "bench-" + tag,
		Token:          randHex(16),
		AccountID:      "CI00000001",
		ReceiptsStream: "bench-" + tag + ":receipts",
		RepliesStream:  "bench-" + tag + ":replies",
		StreamMaxLen:   -1, // the check below reads every entry back
		Pipelines:      *pipelines,
		MaxBatch:       *maxBatch,
	}
	spoolDir, err := os.MkdirTemp("", "roxd-bench-spool-")
	if err != nil {
		return err
	}
	keepSpool := false
	defer func() {
		if !keepSpool {
			os.RemoveAll(spoolDir)
		}
	}()
	cfg.SpoolDir = spoolDir
	keys := store.NewKeys(cfg.Prefix)
	if !*keep {
		defer cleanupBench(rdb, cfg)
	}
	total := *count + *warmup
	if *known {
		if err := seedRecords(ctx, rdb, keys, total); err != nil {
			return err
		}
	}

	recv, err := callbacks.New(cfg, rdb, zerolog.New(os.Stderr).Level(zerolog.WarnLevel))
	if err != nil {
		return err
	}
	rctx, stopRecv := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var runErr error
	wg.Go(func() { runErr = recv.Run(rctx) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		stopRecv()
		wg.Wait()
		return err
	}
	srv := &http.Server{Handler: recv.Handler(), ReadHeaderTimeout: 5 * time.Second}
	wg.Go(func() { _ = srv.Serve(ln) })
	shutdown := func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = srv.Shutdown(sctx)
		cancel()
		stopRecv()
		wg.Wait()
	}

	fmt.Printf("roxd bench callbacks: %d clients, %d callbacks (+%d warm-up), reply every %d, known=%v, pipelines=%d max-batch=%d, GOMAXPROCS=%d, redis %s\n",
		*clients, *count, *warmup, *replyEvery, *known, *pipelines, *maxBatch, runtime.GOMAXPROCS(0), opt.Addr)

	d := &driver{addr: ln.Addr().String(), token: cfg.Token, replyEvery: *replyEvery}
	if *warmup > 0 {
		if _, err := d.run(ctx, *clients, 0, *warmup, 0); err != nil {
			shutdown()
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			shutdown()
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			shutdown()
			return err
		}
	}
	redisCPU0 := cbRedisCPU(ctx, rdb)
	procCPU0 := cbProcessCPU()
	res, err := d.run(ctx, *clients, *warmup, total, *duration)
	redisCPUUsed, procCPUUsed := cbRedisCPU(ctx, rdb)-redisCPU0, cbProcessCPU()-procCPU0
	if *cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	// Callbacks answered from the spool (Redis too slow for StoreTimeout)
	// reach the stream when the replayer has drained it.
	spooled := recv.SpoolDepth()
	drainStart := time.Now()
	for recv.SpoolDepth() > 0 && time.Since(drainStart) < time.Minute && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	if spooled > 0 {
		fmt.Printf("spool: %d callbacks were still spooled at the end; drained in %s\n", spooled, time.Since(drainStart).Round(time.Millisecond))
	}
	if left := recv.SpoolDepth(); left > 0 {
		keepSpool = true
		fmt.Printf("spool: %d callbacks not drained after a minute; spool kept in %s\n", left, spoolDir)
	}
	shutdown()
	if err != nil {
		return err
	}
	if runErr != nil {
		return fmt.Errorf("receiver: %w", runErr)
	}
	lat := res.latencies
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(float64(len(lat))*p))]
	}
	n := len(lat)
	rate := float64(n) / res.elapsed.Seconds()
	fmt.Printf("answered %d in %s: %.0f callbacks/s; latency p50 %s p90 %s p99 %s p99.9 %s max %s; non-200: %d\n",
		n, res.elapsed.Round(time.Millisecond), rate, pct(.50), pct(.90), pct(.99), pct(.999), pct(1), res.bad)

	if n > 0 {
		fmt.Printf("cpu per callback: this process (receiver + load generator) %.0fus, redis %.0fus; %.2f of %d cores busy with this run\n",
			procCPUUsed.Seconds()*1e6/float64(n), redisCPUUsed.Seconds()*1e6/float64(n),
			(procCPUUsed+redisCPUUsed).Seconds()/res.elapsed.Seconds(), runtime.NumCPU())
	}
	// Every answered callback must be in its stream exactly once.
	answered := res.answered + d.warmAnswered
	stored, dups, err := checkStreams(ctx, rdb, cfg, total)
	if err != nil {
		return err
	}
	fmt.Printf("check: %d answered \"0000\", %d stream entries, %d duplicate entries\n", answered, stored, dups)
	if stored != answered || dups != 0 || res.bad != 0 {
		return fmt.Errorf("check failed: %d answered, %d stored, %d duplicates, %d non-200", answered, stored, dups, res.bad)
	}
	target := "MET"
	if rate < 20_000 || pct(.99) > 10*time.Millisecond {
		target = "MISSED"
	}
	fmt.Printf("target >= 20000 callbacks/s with p99 <= 10ms: %s\n", target)
	return nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// seedRecords writes a message record and SMSId map for callbacks 0..n-1.
func seedRecords(ctx context.Context, rdb *redis.Client, keys store.Keys, n int) error {
	for i := 0; i < n; i += 1000 {
		pipe := rdb.Pipeline()
		for j := i; j < min(n, i+1000); j++ {
			id := "m" + strconv.Itoa(j)
			pipe.HSet(ctx, keys.Msg(id), "to", "+61407555001", "status", "submitted", "meta", `{"bench":"1","n":"`+strconv.Itoa(j)+`"}`, "sms_id", smsID(j))
			pipe.Expire(ctx, keys.Msg(id), time.Hour)
			pipe.Set(ctx, keys.SMS(smsID(j)), id, time.Hour)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("seed records: %w", err)
		}
	}
	return nil
}

func smsID(i int) string { return "bsms-" + strconv.Itoa(i) }

func cleanupBench(rdb *redis.Client, cfg callbacks.Config) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	iter := rdb.Scan(ctx, 0, "{"+cfg.Prefix+"}:*", 5000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 5000 {
			rdb.Unlink(ctx, batch...)
			batch = batch[:0]
		}
	}
	batch = append(batch, cfg.ReceiptsStream, cfg.RepliesStream)
	rdb.Unlink(ctx, batch...)
}

// checkStreams reads both streams back: entries, and entries whose sms_id
// and kind were seen before.
func checkStreams(ctx context.Context, rdb *redis.Client, cfg callbacks.Config, total int) (int, int, error) {
	seen := make(map[string]struct{}, total)
	stored, dups := 0, 0
	for _, s := range []string{cfg.ReceiptsStream, cfg.RepliesStream} {
		start := "-"
		for {
			msgs, err := rdb.XRangeN(ctx, s, start, "+", 10_000).Result()
			if err != nil {
				return 0, 0, fmt.Errorf("read %s: %w", s, err)
			}
			for _, m := range msgs {
				k := fmt.Sprint(m.Values["kind"], "/", m.Values["sms_id"])
				if _, ok := seen[k]; ok {
					dups++
				}
				seen[k] = struct{}{}
				stored++
			}
			if len(msgs) < 10_000 {
				break
			}
			start = "(" + msgs[len(msgs)-1].ID
		}
	}
	return stored, dups, nil
}

// driver sends callbacks over raw keep-alive HTTP/1.1 connections, so that
// the load generator costs little of the CPU it shares with the receiver.
type driver struct {
	addr, token  string
	replyEvery   int
	warmAnswered int
}

type runResult struct {
	latencies []time.Duration
	elapsed   time.Duration
	answered  int
	bad       int
}

func (d *driver) run(ctx context.Context, clients, from, to int, dur time.Duration) (runResult, error) {
	var next atomic.Int64
	next.Store(int64(from))
	var deadline time.Time
	if dur > 0 {
		deadline = time.Now().Add(dur)
	}
	var mu sync.Mutex
	var out runResult
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Go(func() {
			lat, bad, err := d.client(ctx, &next, to, deadline)
			mu.Lock()
			defer mu.Unlock()
			out.latencies = append(out.latencies, lat...)
			out.bad += bad
			if err != nil && firstErr == nil {
				firstErr = err
			}
		})
	}
	wg.Wait()
	out.elapsed = time.Since(start)
	out.answered = len(out.latencies)
	if from == 0 && dur == 0 {
		d.warmAnswered = out.answered
	}
	return out, firstErr
}

func (d *driver) client(ctx context.Context, next *atomic.Int64, to int, deadline time.Time) ([]time.Duration, int, error) {
	conn, err := net.Dial("tcp", d.addr)
	if err != nil {
		return nil, 0, err
	}
	defer conn.Close()
	br := bufio.NewReaderSize(conn, 4096)
	var lat []time.Duration
	bad := 0
	var req, body []byte
	for ctx.Err() == nil {
		i := int(next.Add(1) - 1)
		if i >= to || (!deadline.IsZero() && time.Now().After(deadline)) {
			break
		}
		kind := "receipt"
		if d.replyEvery > 0 && i%d.replyEvery == d.replyEvery-1 {
			kind = "reply"
		}
		body = appendBody(body[:0], kind, i)
		req = append(req[:0], "POST /rox/"...)
		req = append(req, d.token...)
		req = append(req, '/')
		req = append(req, kind...)
		req = append(req, " HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: "...)
		req = strconv.AppendInt(req, int64(len(body)), 10)
		req = append(req, "\r\n\r\n"...)
		req = append(req, body...)
		t0 := time.Now()
		if _, err := conn.Write(req); err != nil {
			return lat, bad, err
		}
		status, rb, err := readResponse(br)
		if err != nil {
			return lat, bad, err
		}
		if status != 200 || !bytes.Contains(rb, []byte(`"Result":"0000"`)) {
			bad++
			continue
		}
		lat = append(lat, time.Since(t0))
	}
	return lat, bad, nil
}

func appendBody(b []byte, kind string, i int) []byte {
	ts := rox.FormatTimestamp(time.Unix(1_900_000_000+int64(i%86400), 0))
	if kind == "receipt" {
		b = append(b, `{"Name":"ROX_API_Receipt","Version":1.1,"Sender":{"AccountId":"CI00000001","Username":"user@your_domain.com"},"Messages":{"RequestId":"123e4567-e89b-12d3-a456-426614174000","Receipt":{"SMSId":"`...)
		b = append(b, smsID(i)...)
		b = append(b, `","DestTn":"+61407555001","Result":"0000","ResultText":"Delivered","Timestamp":"`...)
		b = append(b, ts...)
		return append(b, `"}}}`...)
	}
	b = append(b, `{"Name":"ROX_API_Reply","Version":1.1,"Sender":{"AccountId":"CI00000001","Username":"user@your_domain.com"},"Messages":{"RequestId":"123e4567-e89b-12d3-a456-426614174000","Reply":{"SMSId":"`...)
	b = append(b, smsID(i)...)
	b = append(b, `","ReplyFrom":"+61407555001","ReplyText":"Thanks No Problem","SMSText":"Where the last SMS you sent was: ...","Timestamp":"`...)
	b = append(b, ts...)
	return append(b, `"}}}`...)
}

var errBadResponse = errors.New("bench: malformed HTTP response")

// readResponse reads one HTTP/1.1 response with a Content-Length body.
func readResponse(br *bufio.Reader) (int, []byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, nil, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, nil, errBadResponse
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, nil, errBadResponse
	}
	clen := -1
	for {
		h, err := br.ReadSlice('\n')
		if err != nil {
			return 0, nil, err
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		if k, v, ok := bytes.Cut(h, []byte(":")); ok && bytes.EqualFold(bytes.TrimSpace(k), []byte("Content-Length")) {
			if clen, err = strconv.Atoi(string(bytes.TrimSpace(v))); err != nil {
				return 0, nil, errBadResponse
			}
		}
	}
	if clen < 0 {
		return 0, nil, errBadResponse
	}
	body := make([]byte, clen)
	if _, err := io.ReadFull(br, body); err != nil {
		return 0, nil, err
	}
	return status, body, nil
}

// cbRedisCPU is Redis's used_cpu_user + used_cpu_sys (0 when unknown).
func cbRedisCPU(ctx context.Context, rdb *redis.Client) time.Duration {
	info, err := rdb.Info(ctx, "cpu").Result()
	if err != nil {
		return 0
	}
	var total float64
	for _, l := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), ":")
		if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}

// cbProcessCPU is this process's user + system CPU time so far.
func cbProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
