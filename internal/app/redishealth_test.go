package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/config"
	"github.com/redoxygen/roxd/internal/metrics"
	"github.com/redoxygen/roxd/internal/testutil"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type served struct {
	addrs Addrs
	logs  *lockedBuf
	stop  func() error
}

// serveAPI runs Run (role api) against redisURL; err is Run's error when it
// refused to start.
func serveAPI(t *testing.T, redisURL string, extra map[string]string, interval time.Duration) (*served, error) {
	t.Helper()
	env := map[string]string{
		"REDIS_URL": redisURL, "ROXD_ROLES": "api", "ROXD_HTTP_ADDR": "127.0.0.1:0",
		"ROXD_API_TOKEN": "api-token-0123456789", "ROXD_KEY_PREFIX": testutil.Name("health"),
		"ROXD_QUEUE": testutil.Name("q"), "ROXD_SPOOL_DIR": t.TempDir(), "ROXD_SHUTDOWN_TIMEOUT": "5s",
		"ROXD_CALLBACK_DRAIN": "0s",
	}
	for k, v := range extra {
		env[k] = v
	}
	cfg, err := config.Load(mapLookup(env))
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuf{}
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan Addrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, zerolog.New(logs), Options{Ready: func(a Addrs) { addrc <- a }, RedisCheckInterval: interval})
	}()
	select {
	case a := <-addrc:
		s := &served{addrs: a, logs: logs}
		var once sync.Once
		var runErr error
		s.stop = func() error {
			once.Do(func() { cancel(); runErr = <-done })
			return runErr
		}
		t.Cleanup(func() { _ = s.stop() })
		return s, nil
	case err := <-done:
		cancel()
		return nil, err
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("not ready after 30s")
	}
	return nil, nil
}

type readyz struct {
	Status   string   `json:"status"`
	Reason   string   `json:"reason"`
	Warnings []string `json:"warnings"`
}

func getReadyz(t *testing.T, addr string) (int, readyz) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r readyz
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, r
}

// TestEvictingRedisRefusesStart is issue 8 fault 6: a Redis whose
// maxmemory-policy may evict (allkeys-* and volatile-*: roxd's records
// carry a TTL) stops the start with an error naming the policy.
func TestEvictingRedisRefusesStart(t *testing.T) {
	for _, policy := range []string{"allkeys-lru", "volatile-lru", "volatile-ttl", "allkeys-random"} {
		t.Run(policy, func(t *testing.T) {
			srv := testutil.NewServerArgs(t, "--maxmemory-policy", policy, "--appendonly", "yes")
			s, err := serveAPI(t, srv.URL(), nil, 0)
			if err == nil {
				_ = s.stop()
				t.Fatalf("Run started against maxmemory-policy %s", policy)
			}
			if !errors.Is(err, ErrEvictingRedis) || !strings.Contains(err.Error(), policy) {
				t.Errorf("Run: %v; want ErrEvictingRedis naming %s", err, policy)
			}
		})
	}
	srv := testutil.NewServerArgs(t, "--maxmemory-policy", "noeviction", "--appendonly", "yes")
	s, err := serveAPI(t, srv.URL(), nil, 0)
	if err != nil {
		t.Fatalf("noeviction + AOF: %v", err)
	}
	if code, r := getReadyz(t, s.addrs.HTTP); code != http.StatusOK || len(r.Warnings) != 0 {
		t.Errorf("readyz with AOF and noeviction: %d %+v", code, r)
	}
	if v := promtest.ToFloat64(metrics.RedisPersistent); v != 1 {
		t.Errorf("roxd_redis_persistent = %v, want 1", v)
	}
}

// Without persistence roxd warns (log error, gauge 0, readyz warning),
// unless ROXD_ALLOW_VOLATILE_REDIS=true; with CONFIG renamed away it reads
// INFO instead.
func TestVolatileRedisWarns(t *testing.T) {
	srv := testutil.NewServer(t) // --save "" --appendonly no
	s, err := serveAPI(t, srv.URL(), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	code, r := getReadyz(t, s.addrs.HTTP)
	if code != http.StatusOK || len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "no persistence") {
		t.Errorf("readyz without persistence: %d %+v; want ready with a warning", code, r)
	}
	if v := promtest.ToFloat64(metrics.RedisPersistent); v != 0 {
		t.Errorf("roxd_redis_persistent = %v, want 0", v)
	}
	if n := strings.Count(s.logs.String(), `"persistence":"none"`); n != 1 || !strings.Contains(s.logs.String(), `"level":"error"`) {
		t.Errorf("want one error log line about persistence none, got %d:\n%s", n, s.logs.String())
	}
	// Redis's default hash-max-listpack-value (64) makes records with a
	// 160-character text twice as large: one warning naming the setting.
	if n := strings.Count(s.logs.String(), `"hash_max_listpack_value":64`); n != 1 || !strings.Contains(s.logs.String(), "set hash-max-listpack-value 256") {
		t.Errorf("want one warning about hash-max-listpack-value 64, got %d:\n%s", n, s.logs.String())
	}
	_ = s.stop()

	s, err = serveAPI(t, srv.URL(), map[string]string{"ROXD_ALLOW_VOLATILE_REDIS": "true"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if code, r := getReadyz(t, s.addrs.HTTP); code != http.StatusOK || len(r.Warnings) != 0 {
		t.Errorf("readyz with ROXD_ALLOW_VOLATILE_REDIS=true: %d %+v, want no warning", code, r)
	}
	if strings.Contains(s.logs.String(), `"level":"error"`) {
		t.Errorf("error logged although ROXD_ALLOW_VOLATILE_REDIS=true:\n%s", s.logs.String())
	}
	_ = s.stop()

	// CONFIG renamed away: INFO persistence still tells AOF on.
	compact := testutil.NewServerArgs(t, "--appendonly", "yes", "--hash-max-listpack-value", "256")
	s, err = serveAPI(t, compact.URL(), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(s.logs.String(), "hash-max-listpack-value") {
		t.Errorf("warned about hash-max-listpack-value 256:\n%s", s.logs.String())
	}
	_ = s.stop()

	aof := testutil.NewServerArgs(t, "--appendonly", "yes", "--rename-command", "CONFIG", "")
	s, err = serveAPI(t, aof.URL(), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if code, r := getReadyz(t, s.addrs.HTTP); code != http.StatusOK || len(r.Warnings) != 0 {
		t.Errorf("readyz, AOF seen through INFO: %d %+v", code, r)
	}
	if !strings.Contains(s.logs.String(), `"source":"info"`) {
		t.Errorf("settings not read through INFO:\n%s", s.logs.String())
	}
}

// A Redis without persistence restarted under a running roxd comes back
// empty: roxd says so (error log, roxd_redis_data_loss_total, readyz
// warning).
func TestRedisCameBackEmpty(t *testing.T) {
	srv := testutil.NewServer(t)
	s, err := serveAPI(t, srv.URL(), map[string]string{"ROXD_ALLOW_VOLATILE_REDIS": "true"}, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	before := promtest.ToFloat64(metrics.RedisDataLoss)
	srv.Stop()
	srv.Start()
	testutil.Eventually(t, 30*time.Second, func() bool {
		return promtest.ToFloat64(metrics.RedisDataLoss) > before
	}, "roxd_redis_data_loss_total did not grow after Redis came back empty")
	code, r := getReadyz(t, s.addrs.HTTP)
	if code != http.StatusOK || len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "marker key is gone") {
		t.Errorf("readyz after data loss: %d %+v", code, r)
	}
	if !strings.Contains(s.logs.String(), "Redis restarted without its data") {
		t.Errorf("no error log about the lost data:\n%s", s.logs.String())
	}
	if v := promtest.ToFloat64(metrics.RedisDataLoss) - before; v != 1 {
		t.Errorf("roxd_redis_data_loss_total grew by %v, want 1 (said once)", v)
	}
}
