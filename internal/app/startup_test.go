package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/config"
	"github.com/redoxygen/roxd/internal/testutil"
)

// syncBuffer is a log sink safe for concurrent writes and reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lines returns the log lines, each decoded; it fails on a line that is
// not one JSON object.
func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	text := s.String()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		out = append(out, m)
	}
	return out
}

func (s *syncBuffer) count(t *testing.T, msg string) int {
	n := 0
	for _, l := range s.lines(t) {
		if l["message"] == msg {
			n++
		}
	}
	return n
}

func apiEnv(t *testing.T, redisURL string) map[string]string {
	return map[string]string{
		"REDIS_URL": redisURL, "ROXD_ROLES": "api,callbacks", "ROXD_HTTP_ADDR": "127.0.0.1:0",
		"ROXD_CALLBACK_ADDR": "127.0.0.1:0", "ROXD_CALLBACK_TOKEN": "callback-token-0123456789",
		"ROXD_API_TOKEN": "api-token-0123456789", "ROXD_KEY_PREFIX": testutil.Name("app"),
		"ROXD_QUEUE": testutil.Name("q"), "ROXD_SPOOL_DIR": t.TempDir(),
	}
}

// TestStartupPermanentRedisErrors: a wrong password, a missing password, an
// unknown user and a database the server does not have stop start-up at
// once with an error naming REDIS_URL, without the password.
func TestStartupPermanentRedisErrors(t *testing.T) {
	srv := testutil.NewServer(t)
	const pw = "s3cret-redis-Pa55"
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer admin.Close()
	if err := admin.ConfigSet(context.Background(), "requirepass", pw).Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Do(context.Background(), "AUTH", pw).Err() })
	open := testutil.NewServer(t) // no password, 16 databases

	tests := []struct{ name, url, want string }{
		{"wrong password", "redis://:wrong-" + pw + "@" + srv.Addr() + "/0", "WRONGPASS"},
		{"wrong password and user", "redis://default:wrong-" + pw + "@" + srv.Addr() + "/0", "WRONGPASS"},
		{"unknown user", "redis://nobody:" + pw + "@" + srv.Addr() + "/0", "WRONGPASS"},
		{"no password", "redis://" + srv.Addr() + "/0", "NOAUTH"},
		{"no such database", "redis://" + open.Addr() + "/16", "DB index is out of range"},
		{"no such database, high", "redis://" + open.Addr() + "/99999", "DB index is out of range"},
		{"no such database with password", "redis://:" + pw + "@" + srv.Addr() + "/42", "DB index is out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Load(mapLookup(apiEnv(t, tt.url)))
			if err != nil {
				t.Fatal(err)
			}
			var logs syncBuffer
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			err = Run(ctx, cfg, zerolog.New(&logs), Options{Ready: func(Addrs) { t.Error("started") }})
			var ce *config.Error
			if !errors.As(err, &ce) || ce.Var != "REDIS_URL" || !strings.HasPrefix(err.Error(), "REDIS_URL: ") {
				t.Fatalf("Run = %v, want an error naming REDIS_URL", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run = %v, want it to say %s", err, tt.want)
			}
			if strings.Contains(err.Error(), pw) || strings.Contains(logs.String(), pw) {
				t.Fatalf("password in error or logs: %v\n%s", err, logs.String())
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("took %s: a permanent error must stop start-up at once", d)
			}
		})
	}
}

// TestStartupRedisUnreachable: with Redis down at start, Run says once, at
// error level, that Redis is unreachable and at which address (password
// redacted), does not claim to have started, keeps retrying with backoff
// without further lines, logs when Redis answers, then starts.
func TestStartupRedisUnreachable(t *testing.T) {
	srv := testutil.NewServer(t)
	srv.Stop()
	const pw = "unreachable-Pa55word"
	url := "redis://default:" + pw + "@" + srv.Addr() + "/0"
	cfg, err := config.Load(mapLookup(apiEnv(t, url)))
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan Addrs, 1)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, zerolog.New(&logs), Options{Ready: func(a Addrs) { ready <- a }}) }()

	testutil.Eventually(t, 20*time.Second, func() bool {
		return logs.count(t, "redis unreachable at start: retrying with backoff; roxd starts when it answers") == 1
	},
		"no line says Redis is unreachable:\n%s", logs.String())
	time.Sleep(3 * time.Second) // retries happen meanwhile: they must stay silent
	all := logs.lines(t)
	if len(all) != 1 {
		t.Fatalf("%d lines while Redis is down, want 1:\n%s", len(all), logs.String())
	}
	l := all[0]
	if l["level"] != "error" || l["redis"] != "redis://default:xxxxx@"+srv.Addr()+"/0" && !strings.Contains(l["redis"].(string), srv.Addr()) {
		t.Fatalf("unreachable line %v: want level error and the address", l)
	}
	if strings.Contains(logs.String(), pw) {
		t.Fatalf("password in the logs:\n%s", logs.String())
	}
	select {
	case <-ready:
		t.Fatal("started without Redis")
	default:
	}

	// Redis comes back (without a password: the default user accepts any).
	srv.Start()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run returned %v", err)
	case <-time.After(30 * time.Second):
		t.Fatalf("not started 30s after Redis came back:\n%s", logs.String())
	}
	if n := logs.count(t, "redis reachable again"); n != 1 {
		t.Fatalf("%d 'redis reachable again' lines, want 1:\n%s", n, logs.String())
	}
	if n := logs.count(t, "redis unreachable at start: retrying with backoff; roxd starts when it answers"); n != 1 {
		t.Fatalf("%d unreachable lines, want 1", n)
	}

	// Down again while running: said once; back: said once.
	srv.Stop()
	testutil.Eventually(t, 30*time.Second, func() bool { return logs.count(t, "redis unreachable: retrying with backoff") == 1 },
		"no line says Redis became unreachable:\n%s", logs.String())
	time.Sleep(3 * time.Second)
	if n := logs.count(t, "redis unreachable: retrying with backoff"); n != 1 {
		t.Fatalf("%d unreachable lines while down, want 1", n)
	}
	srv.Start()
	testutil.Eventually(t, 30*time.Second, func() bool { return logs.count(t, "redis reachable again") == 2 },
		"no line says Redis is back:\n%s", logs.String())
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	if strings.Contains(logs.String(), pw) {
		t.Fatalf("password in the logs:\n%s", logs.String())
	}
}

// TestStartupStopsWhileWaiting: a shutdown while Redis is unreachable at
// start returns nil promptly.
func TestStartupStopsWhileWaiting(t *testing.T) {
	srv := testutil.NewServer(t)
	srv.Stop()
	cfg, err := config.Load(mapLookup(apiEnv(t, srv.URL())))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, zerolog.Nop(), Options{}) }()
	time.Sleep(time.Second)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not stop")
	}
}

// TestStartupUnusableSpoolDir: an unusable ROXD_SPOOL_DIR stops start-up
// naming the variable.
func TestStartupUnusableSpoolDir(t *testing.T) {
	env := apiEnv(t, testutil.RedisURL(t))
	env["ROXD_SPOOL_DIR"] = "/proc/roxd-spool"
	cfg, err := config.Load(mapLookup(env))
	if err != nil {
		t.Fatal(err)
	}
	err = Run(context.Background(), cfg, zerolog.Nop(), Options{Ready: func(Addrs) { t.Error("started") }})
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Var != "ROXD_SPOOL_DIR" {
		t.Fatalf("Run = %v, want an error naming ROXD_SPOOL_DIR", err)
	}
}
