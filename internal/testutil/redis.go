package testutil

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// EnvRedisURL names the variable through which tests find their Redis.
// scripts/with-redis.sh (and so `make test`) sets it.
const EnvRedisURL = "TEST_REDIS_URL"

// RedisURL returns the URL of the test Redis. Without TEST_REDIS_URL the test
// is skipped, except under CI=true, where it fails: CI must never pass by
// skipping the tests that matter.
func RedisURL(t testing.TB) string {
	t.Helper()
	return envURL(t, EnvRedisURL, "run `make test` (it starts a throw-away redis-server)")
}

// envURL returns the variable name, or skips t saying how to set it
// (fails it under CI=true).
func envURL(t testing.TB, name, how string) string {
	t.Helper()
	u := os.Getenv(name)
	if u == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set under CI=true: run the tests through `make test`", name)
		}
		t.Skipf("%s is not set: %s", name, how)
	}
	return u
}

// RedisOpt is the parsed form of RedisURL, for go-redis and asynq alike.
func RedisOpt(t testing.TB) *redis.Options {
	t.Helper()
	opt, err := redis.ParseURL(RedisURL(t))
	if err != nil {
		t.Fatalf("parse %s: %v", EnvRedisURL, err)
	}
	return opt
}

// AsynqOpt converts RedisOpt for asynq.
func AsynqOpt(t testing.TB) asynq.RedisClientOpt {
	o := RedisOpt(t)
	return asynq.RedisClientOpt{Addr: o.Addr, Password: o.Password, DB: o.DB, Username: o.Username}
}

// Redis returns a client of the test Redis, closed when the test ends.
func Redis(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(RedisOpt(t))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping test redis: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Name returns a random name such as "t-roxd-3f9a1c2b" for a key prefix, a
// queue or a stream, so that tests sharing one Redis never see each other.
// Isolation is by name, never by flushing shared state.
func Name(base string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("t-%s-%s", base, hex.EncodeToString(b[:]))
}

// Server is a private redis-server process, for tests that must stop and
// restart Redis (spooling, reconnection). It is killed when the test ends.
type Server struct {
	t    testing.TB
	Port int
	dir  string
	args []string // extra redis-server arguments (NewServerArgs)
	cmd  *exec.Cmd
}

// NewServer starts a private redis-server on a free loopback port with no
// persistence. It fails the test (or skips it outside CI) when redis-server
// is not on PATH.
func NewServer(t testing.TB) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server not on PATH under CI=true")
		}
		t.Skip("redis-server not on PATH")
	}
	s := &Server{t: t, Port: freePort(t), dir: t.TempDir()}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Addr is host:port of the server.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// URL is the redis:// URL of the server.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Start (re)starts the server on its port and waits until it answers.
func (s *Server) Start() {
	s.t.Helper()
	if s.cmd != nil {
		return
	}
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir,
		"--logfile", filepath.Join(s.dir, "redis.log"))
	cmd.Args = append(cmd.Args, s.args...)
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	s.cmd = cmd
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
	defer c.Close()
	Eventually(s.t, 10*time.Second, func() bool {
		return c.Ping(context.Background()).Err() == nil
	}, "redis-server on %s did not answer", s.Addr())
}

// Stop kills the server (its data is gone: it keeps nothing on disk).
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.Resume()
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// EnvRedisClusterURL names the variable through which tests find a 3-master
// Redis Cluster (a redis-cluster:// URL). scripts/with-cluster.sh (and so
// `make test`) sets it.
const EnvRedisClusterURL = "TEST_REDIS_CLUSTER_URL"

// RedisClusterURL returns the redis-cluster:// URL of the test cluster.
// Without TEST_REDIS_CLUSTER_URL the test is skipped, except under CI=true,
// where it fails.
func RedisClusterURL(t testing.TB) string {
	t.Helper()
	return envURL(t, EnvRedisClusterURL, "run through scripts/with-cluster.sh (`make test` does)")
}
