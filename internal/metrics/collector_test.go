package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/internal/metrics"
	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/internal/testutil"
)

type collectorBundle struct {
	queue, idle string
	client      *asynq.Client
	insp        *asynq.Inspector
	qc          *metrics.QueueCollector
}

// setupCollector fills a queue of the test's own with 3 pending, 2
// scheduled and 1 archived task, and roxd's message keys (under a prefix of
// the test's own) with 5 ready messages in two groups and 2 scheduled ones.
func setupCollector(t *testing.T, ttl time.Duration) collectorBundle {
	t.Helper()
	ctx := context.Background()
	rdb := testutil.Redis(t)
	opt := testutil.AsynqOpt(t)
	b := collectorBundle{queue: testutil.Name("mq"), idle: testutil.Name("idle")}
	b.client = asynq.NewClient(opt)
	t.Cleanup(func() { _ = b.client.Close() })
	b.insp = asynq.NewInspector(opt)
	t.Cleanup(func() { _ = b.insp.Close() })
	t.Cleanup(func() { _ = b.insp.DeleteQueue(b.queue, true) })

	for i := range 3 {
		b.enqueue(t, fmt.Sprintf("p%d", i))
	}
	for i := range 2 {
		if _, err := b.client.Enqueue(asynq.NewTask("rox:send", []byte(`{}`)), asynq.Queue(b.queue),
			asynq.TaskID(fmt.Sprintf("s%d", i)), asynq.ProcessIn(time.Hour)); err != nil {
			t.Fatalf("enqueue scheduled: %v", err)
		}
	}
	b.enqueue(t, "a0")
	if err := b.insp.ArchiveTask(b.queue, "a0"); err != nil {
		t.Fatalf("archive: %v", err)
	}

	prefix := testutil.Name("m")
	k := store.NewKeys(prefix)
	keys := []string{k.Groups(), k.Ready("g1"), k.Ready("g2"), k.Ready("g3"), k.Scheduled()}
	t.Cleanup(func() { _ = rdb.Del(context.Background(), keys...).Err() })
	pipe := rdb.TxPipeline()
	pipe.SAdd(ctx, k.Groups(), "g1", "g2", "g3") // g3's list is empty
	pipe.RPush(ctx, k.Ready("g1"), "m1", "m2", "m3")
	pipe.RPush(ctx, k.Ready("g2"), "m4", "m5")
	pipe.ZAdd(ctx, k.Scheduled(), redisZ(1, "m6"), redisZ(2, "m7"))
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("seed roxd keys: %v", err)
	}

	qc, err := metrics.NewQueueCollector(metrics.QueueCollectorConfig{
		Inspector: b.insp, Redis: rdb, Prefix: prefix, Queues: []string{b.queue, b.idle}, CacheTTL: ttl,
	})
	if err != nil {
		t.Fatalf("NewQueueCollector: %v", err)
	}
	b.qc = qc
	return b
}

func (b collectorBundle) enqueue(t *testing.T, id string) {
	t.Helper()
	if _, err := b.client.Enqueue(asynq.NewTask("rox:send", []byte(`{}`)), asynq.Queue(b.queue), asynq.TaskID(id)); err != nil {
		t.Fatalf("enqueue %s: %v", id, err)
	}
}

func gauge(queue, state string) float64 {
	return promtest.ToFloat64(metrics.QueueSize.WithLabelValues(queue, state))
}

func TestQueueCollectorRefresh(t *testing.T) {
	b := setupCollector(t, time.Hour)
	if err := b.qc.Refresh(context.Background()); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	want := map[string]float64{"pending": 3, "active": 0, "scheduled": 2, "retry": 0, "archived": 1, "completed": 0, "aggregating": 0}
	for state, n := range want {
		if got := gauge(b.queue, state); got != n {
			t.Errorf("queue_size{%s} = %v, want %v", state, got, n)
		}
		if got := gauge(b.idle, state); got != 0 {
			t.Errorf("idle queue_size{%s} = %v, want 0", state, got)
		}
	}
	if got := gauge(metrics.MessagesQueue, "ready"); got != 5 {
		t.Errorf("messages ready = %v, want 5", got)
	}
	if got := gauge(metrics.MessagesQueue, "scheduled"); got != 2 {
		t.Errorf("messages scheduled = %v, want 2", got)
	}
	if lat := promtest.ToFloat64(metrics.QueueLatency.WithLabelValues(b.queue)); lat <= 0 || lat > 60 {
		t.Errorf("latency = %v s, want a small positive age", lat)
	}
}

// TestQueueCollectorScrape scrapes a fresh registry through Handler and
// shows the cache at work: a second scrape within CacheTTL serves the same
// reading, Refresh renews it.
func TestQueueCollectorScrape(t *testing.T) {
	b := setupCollector(t, time.Hour)
	srv := httptest.NewServer(b.qc.Handler(promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{})))
	t.Cleanup(srv.Close)

	line := fmt.Sprintf(`roxd_queue_size{queue=%q,state="pending"}`, b.queue)
	if got := scrape(t, srv.URL, line); got != "3" {
		t.Fatalf("%s = %q, want 3", line, got)
	}
	if got := scrape(t, srv.URL, `roxd_queue_size{queue="messages",state="ready"}`); got != "5" {
		t.Fatalf("messages ready = %q, want 5", got)
	}
	b.enqueue(t, "p3")
	if got := scrape(t, srv.URL, line); got != "3" {
		t.Fatalf("within CacheTTL: %s = %q, want the cached 3", line, got)
	}
	if err := b.qc.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := scrape(t, srv.URL, line); got != "4" {
		t.Fatalf("after Refresh: %s = %q, want 4", line, got)
	}
}

func TestQueueCollectorNoCache(t *testing.T) {
	b := setupCollector(t, time.Nanosecond)
	srv := httptest.NewServer(b.qc.Handler(promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{})))
	t.Cleanup(srv.Close)
	line := fmt.Sprintf(`roxd_queue_size{queue=%q,state="pending"}`, b.queue)
	if got := scrape(t, srv.URL, line); got != "3" {
		t.Fatalf("%s = %q, want 3", line, got)
	}
	b.enqueue(t, "p3")
	if got := scrape(t, srv.URL, line); got != "4" {
		t.Fatalf("%s = %q, want 4 on the next scrape", line, got)
	}
}

func scrape(t *testing.T, url, series string) string {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for l := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			return v
		}
	}
	t.Fatalf("series %s not in the scrape", series)
	return ""
}

func TestQueueCollectorConfig(t *testing.T) {
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: "127.0.0.1:1"})
	defer insp.Close()
	rdb := testutil.Redis(t)
	for _, tc := range []struct {
		name  string
		cfg   metrics.QueueCollectorConfig
		field string
	}{
		{"no inspector", metrics.QueueCollectorConfig{Redis: rdb, Queues: []string{"q"}}, "Inspector"},
		{"no redis", metrics.QueueCollectorConfig{Inspector: insp, Queues: []string{"q"}}, "Redis"},
		{"no queues", metrics.QueueCollectorConfig{Inspector: insp, Redis: rdb}, "Queues"},
		{"empty queue", metrics.QueueCollectorConfig{Inspector: insp, Redis: rdb, Queues: []string{""}}, "Queues"},
		{"negative ttl", metrics.QueueCollectorConfig{Inspector: insp, Redis: rdb, Queues: []string{"q"}, CacheTTL: -1}, "CacheTTL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := metrics.NewQueueCollector(tc.cfg)
			if !errors.Is(err, metrics.ErrCollectorConfig) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("error %v: want ErrCollectorConfig naming %s", err, tc.field)
			}
		})
	}
}

// TestQueueCollectorRedisDown: a refresh against an unreachable Redis
// returns an error and Handler still serves the last values.
func TestQueueCollectorRedisDown(t *testing.T) {
	srv := testutil.NewServer(t)
	c, err := redisClient(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: srv.Addr()})
	t.Cleanup(func() { _ = insp.Close() })
	queue := testutil.Name("down")
	qc, err := metrics.NewQueueCollector(metrics.QueueCollectorConfig{
		Inspector: insp, Redis: c, Queues: []string{queue}, CacheTTL: time.Nanosecond, Timeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := qc.Refresh(context.Background()); err != nil {
		t.Fatalf("Refresh while up: %v", err)
	}
	srv.Stop()
	if err := qc.Refresh(context.Background()); err == nil {
		t.Fatal("Refresh with Redis down returned nil")
	}
	hs := httptest.NewServer(qc.Handler(promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{})))
	t.Cleanup(hs.Close)
	if got := scrape(t, hs.URL, fmt.Sprintf(`roxd_queue_size{queue=%q,state="pending"}`, queue)); got != "0" {
		t.Fatalf("scrape with Redis down = %q, want the last value 0", got)
	}
}

func redisZ(score float64, member string) redis.Z { return redis.Z{Score: score, Member: member} }

func redisClient(addr string) (*redis.Client, error) {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	if err := c.Ping(context.Background()).Err(); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}
