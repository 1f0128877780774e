package callbacks

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/internal/testutil"
)

// durableServer is a private redis-server that keeps its data across a
// SIGKILL (AOF, fsync always), so that a test can tell "lost by us" from
// "lost by a Redis without persistence".
type durableServer struct {
	t    *testing.T
	port int
	dir  string
	cmd  *exec.Cmd
}

func newDurableServer(t *testing.T) *durableServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server not on PATH under CI=true")
		}
		t.Skip("redis-server not on PATH")
	}
	testutil.RedisURL(t) // same skip rule as every Redis test
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &durableServer{t: t, port: port, dir: t.TempDir()}
	s.start()
	t.Cleanup(s.kill)
	return s
}

func (s *durableServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

func (s *durableServer) start() {
	s.t.Helper()
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "yes", "--appendfsync", "always", "--dir", s.dir,
		"--logfile", filepath.Join(s.dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	s.cmd = cmd
	c := redis.NewClient(&redis.Options{Addr: s.addr(), MaxRetries: -1})
	defer c.Close()
	testutil.Eventually(s.t, 10*time.Second, func() bool { return c.Ping(context.Background()).Err() == nil },
		"redis-server on %s did not answer", s.addr())
}

func (s *durableServer) kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

func (s *durableServer) client(t *testing.T) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.addr(), DialTimeout: 200 * time.Millisecond,
		ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond, MaxRetries: 1})
	t.Cleanup(func() { c.Close() })
	return c
}

// checkOrdered checks that the stream holds exactly the SMSIds of sent, each
// once, and that each sender's SMSIds appear in the order it sent them.
func checkOrdered(t *testing.T, b *bundle, sent map[string]bool) {
	t.Helper()
	msgs := b.entries(t, b.cfg.ReceiptsStream)
	seen := map[string]int{}
	last := map[string]int{}
	for _, m := range msgs {
		id := m.Values["sms_id"].(string)
		seen[id]++
		var sender, seq int
		if _, err := fmt.Sscanf(id, "s%d-%d", &sender, &seq); err != nil {
			t.Fatalf("unexpected sms_id %q", id)
		}
		key := strconv.Itoa(sender)
		if p, ok := last[key]; ok && seq <= p {
			t.Errorf("sender %d: %d after %d: out of order", sender, seq, p)
		}
		last[key] = seq
	}
	for id := range sent {
		if seen[id] != 1 {
			t.Errorf("answered %s is in the stream %d times, want 1", id, seen[id])
		}
	}
	for id, n := range seen {
		if !sent[id] && n > 1 {
			t.Errorf("unanswered %s in the stream %d times", id, n)
		}
	}
}

// Redis is killed while senders post callbacks concurrently and restarted
// later: every callback answered "0000" ends in the stream exactly once and
// in each sender's order.
func TestRedisKilledMidStreamLosesNothing(t *testing.T) {
	srv := newDurableServer(t)
	rdb := srv.client(t)

	// The SMSIds are unknown: no deferral, which would reorder them
	// (doc.go); this test is about the spool's order and exactly-once.
	b := setup(t, rdb, func(c *Config) { c.StoreTimeout = 200 * time.Millisecond; c.DeferDelays = noDefer })

	const senders, perSender = 4, 250
	var answered atomic.Int64
	var mu sync.Mutex
	sent := map[string]bool{}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: senders}}
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Go(func() {
			for i := 0; i < perSender; i++ {
				id := fmt.Sprintf("s%d-%04d", s, i)
				resp, err := client.Post(b.url(KindReceipt), "application/json",
					strings.NewReader(receiptBody(testAccount, id, "0000", ts1)))
				if err != nil {
					t.Errorf("POST: %v", err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("%s: status %d", id, resp.StatusCode)
					continue
				}
				mu.Lock()
				sent[id] = true
				mu.Unlock()
				answered.Add(1)
			}
		})
	}
	testutil.Eventually(t, 30*time.Second, func() bool { return answered.Load() >= 150 }, "no traffic")
	srv.kill()
	down := answered.Load()
	testutil.Eventually(t, 30*time.Second, func() bool { return answered.Load() >= down+300 }, "not answering while Redis is down")
	if !b.recv.spool.isActive() {
		t.Error("spool not active while Redis is down")
	}
	srv.start()
	wg.Wait()
	testutil.Eventually(t, 30*time.Second, func() bool { return !b.recv.spool.isActive() }, "spool not drained")
	if n := len(sent); n != senders*perSender {
		t.Errorf("%d of %d answered 0000", n, senders*perSender)
	}
	checkOrdered(t, b, sent)
	if t.Failed() {
		t.Logf("killed at %d answered; xlen %d; seen keys %d", down, rdb.XLen(context.Background(), b.cfg.ReceiptsStream).Val(), len(rdb.Keys(context.Background(), b.keys.CallbackSeen("*")).Val()))
		data, _ := os.ReadFile(filepath.Join(b.cfg.SpoolDir, rejectedName))
		t.Logf("rejected: %.2000s", data)

	}
	if files, _ := b.recv.spool.files(""); len(files) != 0 {
		t.Errorf("spool files left: %v", files)
	}
	if d := b.recv.spool.depth.Load(); d != 0 {
		t.Errorf("spool depth %d after drain", d)
	}
}

// With testutil.NewServer (no persistence), a sequence posted while Redis
// is down and after it is back arrives once each, in order.
func TestRedisStoppedAndRestartedSequence(t *testing.T) {
	srv := testutil.NewServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), DialTimeout: 200 * time.Millisecond, MaxRetries: 1})
	t.Cleanup(func() { rdb.Close() })
	b := setup(t, rdb, func(c *Config) { c.DeferDelays = noDefer }) // unknown SMSIds, pushed at once

	sent := map[string]bool{}
	post := func(from, to int) {
		for i := from; i < to; i++ {
			id := fmt.Sprintf("s0-%04d", i)
			b.mustOK(t, KindReceipt, receiptBody(testAccount, id, "0000", ts1))
			sent[id] = true
		}
	}
	post(0, 10)
	if n := rdb.XLen(context.Background(), b.cfg.ReceiptsStream).Val(); n != 10 {
		t.Fatalf("%d entries before the stop, want 10", n)
	}
	srv.Stop()
	post(10, 40) // answered "0000" from the spool
	if d := b.recv.SpoolDepth(); d != 30 {
		t.Errorf("spool depth %d, want 30", d)
	}
	srv.Start() // empty: the first 10 died with the server
	post(40, 60)
	testutil.Eventually(t, 20*time.Second, func() bool { return b.recv.SpoolDepth() == 0 }, "spool not drained")
	for i := 0; i < 10; i++ {
		delete(sent, fmt.Sprintf("s0-%04d", i))
	}
	msgs := b.entries(t, b.cfg.ReceiptsStream)
	if len(msgs) != 50 {
		t.Fatalf("%d entries, want 50", len(msgs))
	}
	for i, m := range msgs {
		if want := fmt.Sprintf("s0-%04d", i+10); m.Values["sms_id"] != want {
			t.Fatalf("entry %d is %v, want %s", i, m.Values["sms_id"], want)
		}
	}
	checkOrdered(t, b, sent)
}

// Callbacks spooled by a process that stops before Redis returns are
// replayed, in order and once, by the next process on the same spool.
func TestSpoolReplayAfterProcessRestart(t *testing.T) {
	dir := t.TempDir()
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { dead.Close() })
	live := testutil.Redis(t)
	prefix, stream := testutil.Name("cb"), testutil.Name("receipts")
	cfg := Config{Prefix: prefix, Token: testToken, AccountID: testAccount, ReceiptsStream: stream,
		RepliesStream: testutil.Name("replies"), SpoolDir: dir, StoreTimeout: 200 * time.Millisecond,
		DeferDelays: noDefer} // unknown SMSIds, pushed at once
	t.Cleanup(func() { cleanupKeys(live, cfg.WithDefaults()) })

	first := startReceiver(t, dead, cfg)
	for i := 0; i < 25; i++ {
		first.mustOK(t, KindReceipt, receiptBody(testAccount, fmt.Sprintf("s0-%04d", i), "0000", ts1))
	}
	// A duplicate while spooled: replay must still give one entry.
	first.mustOK(t, KindReceipt, receiptBody(testAccount, "s0-0003", "0000", ts1))
	first.stop()
	// A crash mid-write leaves a torn last line, never acknowledged.
	files, _ := filepath.Glob(filepath.Join(dir, "*"+spoolExt))
	if len(files) == 0 {
		t.Fatal("no spool file after the first process")
	}
	f, err := os.OpenFile(files[len(files)-1], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(`{"kind":"receipt","event_id":"abc","sms_id":"tor`)
	f.Close()

	second := startReceiver(t, live, cfg)
	testutil.Eventually(t, 10*time.Second, func() bool { return !second.recv.spool.isActive() }, "spool not replayed")
	second.mustOK(t, KindReceipt, receiptBody(testAccount, "s0-0025", "0000", ts1))
	msgs := second.entries(t, stream)
	if len(msgs) != 26 {
		t.Fatalf("%d entries, want 26", len(msgs))
	}
	for i, m := range msgs {
		if want := fmt.Sprintf("s0-%04d", i); m.Values["sms_id"] != want {
			t.Fatalf("entry %d is %v, want %s", i, m.Values["sms_id"], want)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*"+spoolExt)); len(left) != 0 {
		t.Errorf("spool files left: %v", left)
	}
}

// A callback that Redis refuses for good (not a connection problem) does
// not block the spool and is kept in rejected.log.
func TestSpoolRejectsPermanentErrors(t *testing.T) {
	b := setup(t, nil, func(c *Config) { c.DeferDelays = noDefer }) // unknown SMSIds, pushed at once
	ctx := context.Background()
	// The stream key holds a string: XADD fails with WRONGTYPE.
	if err := b.rdb.Set(ctx, b.cfg.ReceiptsStream, "not a stream", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	b.mustOK(t, KindReceipt, receiptBody(testAccount, "s0-0000", "0000", ts1)) // spooled
	testutil.Eventually(t, 10*time.Second, func() bool { return !b.recv.spool.isActive() }, "spool blocked")
	data, err := os.ReadFile(filepath.Join(b.cfg.SpoolDir, rejectedName))
	if err != nil || !strings.Contains(string(data), "s0-0000") || !strings.Contains(string(data), "WRONGTYPE") {
		t.Fatalf("rejected.log: %q, %v", data, err)
	}
	b.rdb.Del(ctx, b.cfg.ReceiptsStream)
	b.mustOK(t, KindReceipt, receiptBody(testAccount, "s0-0001", "0000", ts1))
	if n := len(b.entries(t, b.cfg.ReceiptsStream)); n != 1 {
		t.Errorf("%d entries after the stream was fixed, want 1", n)
	}
}

// Without a spool directory, a callback that cannot be stored is not
// acknowledged.
func TestNoSpoolAnswers503(t *testing.T) {
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { dead.Close() })
	testutil.RedisURL(t)
	b := startReceiver(t, dead, Config{Token: testToken, StoreTimeout: 100 * time.Millisecond})
	code, _ := b.post(t, b.url(KindReceipt), receiptBody(testAccount, "x", "0000", ts1))
	if code != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", code)
	}
}

// A callback arriving after Run returned (the HTTP server still up during
// shutdown) is spooled and answered "0000", and the next start replays it.
func TestCallbackAfterRunStoppedIsSpooled(t *testing.T) {
	live := testutil.Redis(t)
	dir := t.TempDir()
	cfg := Config{Prefix: testutil.Name("cb"), Token: testToken, ReceiptsStream: testutil.Name("receipts"),
		RepliesStream: testutil.Name("replies"), SpoolDir: dir, DeferDelays: noDefer}
	t.Cleanup(func() { cleanupKeys(live, cfg.WithDefaults()) })
	recv, err := New(cfg, live, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- recv.Run(ctx) }()
	srv := httptest.NewServer(recv.Handler())
	defer srv.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	b := &bundle{srv: srv}
	start := time.Now()
	b.mustOK(t, KindReceipt, receiptBody(testAccount, "late", "0000", ts1))
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Errorf("late callback took %s: it should not wait for a stopped batcher", d)
	}
	if n := live.XLen(context.Background(), cfg.ReceiptsStream).Val(); n != 0 {
		t.Fatalf("stored directly after Run returned: %d", n)
	}
	next := startReceiver(t, live, cfg)
	testutil.Eventually(t, 10*time.Second, func() bool { return !next.recv.spool.isActive() }, "not replayed")
	if msgs := next.entries(t, cfg.ReceiptsStream); len(msgs) != 1 || msgs[0].Values["sms_id"] != "late" {
		t.Errorf("entries %v", msgs)
	}
}

// Concurrent appends while the replayer rotates, reads and removes files:
// every appended line is read exactly once (the race that once lost lines
// created just after the listing began).
func TestSpoolConcurrentAppendAndRotate(t *testing.T) {
	s, err := openSpool(t.TempDir(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	const writers, per = 16, 60
	seen := map[string]int{}
	var mu sync.Mutex
	replayOnce := func() {
		if err := s.rotate(); err != nil {
			t.Error(err)
			return
		}
		names, err := s.closedFiles()
		if err != nil {
			t.Error(err)
			return
		}
		for _, n := range names {
			if err := s.readFile(n, 7, func(evs []*event) error {
				mu.Lock()
				defer mu.Unlock()
				for _, e := range evs {
					seen[e.EventID]++
				}
				return nil
			}); err != nil {
				t.Error(err)
			}
			if err := s.remove(n); err != nil {
				t.Error(err)
			}
		}
	}
	stop := make(chan struct{})
	var rwg sync.WaitGroup
	rwg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				replayOnce()
			}
		}
	})
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Go(func() {
			for i := 0; i < per; i++ {
				e := &event{Kind: KindReceipt, EventID: fmt.Sprintf("w%d-%d", w, i), SMSID: "s"}
				if _, err := s.append([]*event{e}, i == 0); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	rwg.Wait()
	replayOnce()
	if len(seen) != writers*per {
		t.Errorf("read %d distinct lines, want %d", len(seen), writers*per)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s read %d times", id, n)
		}
	}
	if ok, err := s.tryDeactivate(); !ok || err != nil {
		t.Errorf("tryDeactivate after draining: %v, %v", ok, err)
	}
}
