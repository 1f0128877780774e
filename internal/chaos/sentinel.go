package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// The Sentinel group of fault failover: one master, one replica and three
// sentinels (quorum 2), all redis-server processes on loopback, each with
// its own config file (Sentinel rewrites them on a failover).
const (
	sentinelMaster = "chaos"
	sentinels      = 3
)

// sentinelGroup is the running group.
type sentinelGroup struct {
	data      []int // ports of the two data servers (master first at start)
	sentinels []int
	procs     []*child
}

// usesSentinel: fault failover runs the whole run on a Sentinel group.
func (r *run) usesSentinel() bool { return r.cfg.has(FaultFailover) }

// redisURL is REDIS_URL of every roxd child.
func (r *run) redisURL() string {
	if r.sg == nil {
		return "redis://" + loopback(r.redis.port) + "/0"
	}
	addrs := make([]string, len(r.sg.sentinels))
	for i, p := range r.sg.sentinels {
		addrs[i] = loopback(p)
	}
	return "redis-sentinel://" + strings.Join(addrs, ",") + "/" + sentinelMaster + "/0"
}

// asynqOpt reaches the run's Redis for the inspector.
func (r *run) asynqOpt() asynq.RedisConnOpt {
	if r.sg == nil {
		return asynq.RedisClientOpt{Addr: loopback(r.redis.port)}
	}
	return asynq.RedisFailoverClientOpt{MasterName: sentinelMaster, SentinelAddrs: r.sentinelAddrs()}
}

func (r *run) sentinelAddrs() []string {
	out := make([]string, len(r.sg.sentinels))
	for i, p := range r.sg.sentinels {
		out[i] = loopback(p)
	}
	return out
}

// startSentinel starts the group and connects r.rdb through the sentinels.
func (r *run) startSentinel(ctx context.Context) error {
	sg := &sentinelGroup{}
	for range 2 + sentinels {
		p, err := freePort()
		if err != nil {
			return err
		}
		if len(sg.data) < 2 {
			sg.data = append(sg.data, p)
		} else {
			sg.sentinels = append(sg.sentinels, p)
		}
	}
	r.sg = sg
	for i, port := range sg.data {
		dir := filepath.Join(r.dir, "redis", strconv.Itoa(port))
		conf := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nappendonly yes\nappendfsync everysec\nsave \"\"\n"+
			"maxmemory-policy noeviction\nrepl-diskless-sync yes\nrepl-diskless-sync-delay 0\n", port, dir)
		if i == 1 {
			conf += fmt.Sprintf("replicaof 127.0.0.1 %d\n", sg.data[0])
		}
		c, err := r.startConf(ctx, "redis", dir, conf)
		if err != nil {
			return err
		}
		sg.procs = append(sg.procs, c)
	}
	if err := r.waitLinked(ctx, loopback(sg.data[0]), 60*time.Second); err != nil {
		return err
	}
	for _, port := range sg.sentinels {
		dir := filepath.Join(r.dir, "sentinel", strconv.Itoa(port))
		conf := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\n"+
			"sentinel monitor %s 127.0.0.1 %d 2\n"+
			"sentinel down-after-milliseconds %s 5000\n"+
			"sentinel failover-timeout %s 20000\n"+
			"sentinel parallel-syncs %s 1\n", port, dir, sentinelMaster, sg.data[0], sentinelMaster, sentinelMaster, sentinelMaster)
		c, err := r.startConf(ctx, "sentinel", dir, conf, "--sentinel")
		if err != nil {
			return err
		}
		sg.procs = append(sg.procs, c)
	}
	r.rdb = redis.NewFailoverClient(&redis.FailoverOptions{MasterName: sentinelMaster, SentinelAddrs: r.sentinelAddrs(),
		MaxRetries: 5, DialTimeout: time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 5 * time.Second})
	// Every sentinel knows the replica and the other sentinels before a
	// failover is asked of one.
	deadline := time.Now().Add(60 * time.Second)
	for {
		ready := 0
		for _, a := range r.sentinelAddrs() {
			if r.sentinelReady(ctx, a) {
				ready++
			}
		}
		if ready == sentinels && r.rdb.Ping(ctx).Err() == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("chaos: the sentinel group did not form within 60s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	r.step("sentinel group started").Ints("data_ports", sg.data).Ints("sentinel_ports", sg.sentinels).Send()
	return nil
}

// startConf writes conf to <dir>/redis.conf and starts redis-server on it.
func (r *run) startConf(ctx context.Context, name, dir, conf string, extra ...string) (*child, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "redis.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	c, err := r.p.start(name, dir, nil, r.cfg.RedisServer, append([]string{path}, extra...)...)
	if err != nil {
		return nil, err
	}
	port := strings.Fields(strings.SplitN(conf, "\n", 2)[0])[1]
	cl := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + port, MaxRetries: -1, DialTimeout: time.Second})
	defer cl.Close()
	deadline := time.Now().Add(30 * time.Second)
	for cl.Ping(ctx).Err() != nil {
		if c.exited() || time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("chaos: %s on %s did not start: %s", name, port, c.tail(2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return c, nil
}

// waitLinked waits until the master at addr has a replica online.
func (r *run) waitLinked(ctx context.Context, addr string, timeout time.Duration) error {
	cl := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer cl.Close()
	deadline := time.Now().Add(timeout)
	for {
		info, err := cl.Info(ctx, "replication").Result()
		if err == nil && strings.Contains(info, "role:master") && strings.Contains(info, "state=online") {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("chaos: %s has no replica online after %s (%v)", addr, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sentinelReady: the sentinel at addr sees the master, its replica and the
// two other sentinels.
func (r *run) sentinelReady(ctx context.Context, addr string) bool {
	sc := redis.NewSentinelClient(&redis.Options{Addr: addr, DialTimeout: time.Second})
	defer sc.Close()
	m, err := sc.Master(ctx, sentinelMaster).Result()
	if err != nil {
		return false
	}
	return m["num-slaves"] == "1" && m["num-other-sentinels"] == strconv.Itoa(sentinels-1) && !strings.Contains(m["flags"], "down")
}

// masterAddr asks the sentinels for the current master.
func (r *run) masterAddr(ctx context.Context) string {
	for _, a := range r.sentinelAddrs() {
		sc := redis.NewSentinelClient(&redis.Options{Addr: a, DialTimeout: time.Second})
		v, err := sc.GetMasterAddrByName(ctx, sentinelMaster).Result()
		sc.Close()
		if err == nil && len(v) == 2 {
			return v[0] + ":" + v[1]
		}
	}
	return ""
}

// failover asks a sentinel for SENTINEL FAILOVER while ROX requests are in
// flight, waits until the other server is master with the old one back as
// its replica, and watches the API's /readyz meanwhile.
func (r *run) failover(ctx context.Context) error {
	inflight := r.waitInFlight(ctx)
	old := r.masterAddr(ctx)
	watch := r.watchReadyz(ctx)
	began := time.Now()
	deadline := began.Add(90 * time.Second)
	sc := redis.NewSentinelClient(&redis.Options{Addr: r.sentinelAddrs()[0], DialTimeout: time.Second})
	defer sc.Close()
	for {
		err := sc.Failover(ctx, sentinelMaster).Err()
		if err == nil {
			break
		}
		// NOGOODSLAVE while the replica resyncs after the last failover,
		// INPROG while one is under way: ask again.
		if time.Now().After(deadline) || ctx.Err() != nil {
			watch.stop()
			return fmt.Errorf("SENTINEL FAILOVER: %w", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	r.step("sentinel failover asked").Str("old_master", old).Int("requests_in_flight", inflight).Send()
	var now string
	for {
		now = r.masterAddr(ctx)
		if now != "" && now != old {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			watch.stop()
			return fmt.Errorf("no new master within 90s (still %s)", old)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := r.waitLinked(ctx, now, time.Until(deadline)); err != nil {
		watch.stop()
		return err
	}
	// Let /readyz see the new master with its replica before the watch ends.
	ready := time.Now().Add(30 * time.Second)
	for !watch.readyAgain() && time.Now().Before(ready) && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
	}
	notReady, reasons := watch.stop()
	r.failovers++
	if notReady > 0 {
		r.readyzReported++
	}
	r.step("failover done").Str("new_master", now).Dur("took", time.Since(began).Round(time.Millisecond)).
		Int("readyz_not_ready_answers", notReady).Strs("readyz_reasons", reasons).Send()
	return nil
}

// readyzWatch polls the API's /readyz until stopped.
type readyzWatch struct {
	mu       sync.Mutex
	notReady int
	reasons  map[string]bool
	lastOK   bool
	cancel   context.CancelFunc
	done     chan struct{}
}

func (r *run) watchReadyz(ctx context.Context) *readyzWatch {
	wctx, cancel := context.WithCancel(ctx)
	w := &readyzWatch{reasons: map[string]bool{}, cancel: cancel, done: make(chan struct{})}
	hc := &http.Client{Timeout: 3 * time.Second}
	url := "http://" + r.api.httpAddr + "/readyz"
	go func() {
		defer close(w.done)
		for wctx.Err() == nil {
			req, _ := http.NewRequestWithContext(wctx, http.MethodGet, url, nil)
			if resp, err := hc.Do(req); err == nil {
				var body struct {
					Reason string `json:"reason"`
				}
				_ = json.NewDecoder(resp.Body).Decode(&body)
				resp.Body.Close()
				w.mu.Lock()
				w.lastOK = resp.StatusCode == http.StatusOK
				if !w.lastOK {
					w.notReady++
					w.reasons[body.Reason] = true
				}
				w.mu.Unlock()
			}
			select {
			case <-wctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return w
}

// readyAgain: not-ready was seen and the last answer is ready.
func (w *readyzWatch) readyAgain() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.notReady > 0 && w.lastOK
}

func (w *readyzWatch) stop() (int, []string) {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.reasons))
	for k := range w.reasons {
		out = append(out, k)
	}
	return w.notReady, out
}
