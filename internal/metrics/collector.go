package metrics

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/internal/store"
)

// Queue collector defaults.
const (
	// DefaultQueueCacheTTL is how long one reading of the queues serves
	// scrapes before Redis is asked again.
	DefaultQueueCacheTTL = 2 * time.Second
	// DefaultQueueTimeout bounds roxd's own Redis calls in one refresh.
	DefaultQueueTimeout = 5 * time.Second
	// MessagesQueue is the QueueSize label of roxd's own message lists.
	MessagesQueue = "messages"
	// groupScanBatch is how many groups one SSCAN/LLEN pipeline covers.
	groupScanBatch = 500
)

// States of QueueSize for asynq queues, and for MessagesQueue.
var (
	TaskStates    = []string{"pending", "active", "scheduled", "retry", "archived", "completed", "aggregating"}
	MessageStates = []string{"ready", "scheduled"}
)

// ErrCollectorConfig is wrapped by configuration errors of NewQueueCollector.
var ErrCollectorConfig = errors.New("metrics: invalid queue collector config")

// QueueCollectorConfig configures a QueueCollector.
type QueueCollectorConfig struct {
	// Inspector reads asynq's queues. Required.
	Inspector *asynq.Inspector
	// Redis reads roxd's message lists. Required.
	Redis redis.UniversalClient
	// Prefix is roxd's key prefix (store.DefaultPrefix when empty).
	Prefix string
	// Shards is the deployment's shard count (0 means 1): the message
	// counts add up every shard's.
	Shards int
	// Queues are the asynq queues to report. Required, non-empty.
	Queues []string
	// CacheTTL (DefaultQueueCacheTTL when 0) and Timeout
	// (DefaultQueueTimeout when 0).
	CacheTTL time.Duration
	Timeout  time.Duration
	// Logger gets one line per failed refresh.
	Logger zerolog.Logger
}

func (c QueueCollectorConfig) withDefaults() QueueCollectorConfig {
	if c.CacheTTL == 0 {
		c.CacheTTL = DefaultQueueCacheTTL
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultQueueTimeout
	}
	return c
}

// Validate reports the first problem, naming the field.
func (c QueueCollectorConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Inspector == nil:
		return fmt.Errorf("%w: Inspector is nil", ErrCollectorConfig)
	case c.Redis == nil:
		return fmt.Errorf("%w: Redis is nil", ErrCollectorConfig)
	case len(c.Queues) == 0:
		return fmt.Errorf("%w: Queues is empty", ErrCollectorConfig)
	case slices.Contains(c.Queues, ""):
		return fmt.Errorf("%w: Queues holds an empty name", ErrCollectorConfig)
	case c.CacheTTL < 0:
		return fmt.Errorf("%w: CacheTTL %s is negative", ErrCollectorConfig, c.CacheTTL)
	case c.Timeout < 0:
		return fmt.Errorf("%w: Timeout %s is negative", ErrCollectorConfig, c.Timeout)
	}
	return nil
}

// QueueCollector keeps QueueSize and QueueLatency current. Those families
// are registered in Registry like every other; the collector refreshes them
// when /metrics is scraped (Handler), at most once per CacheTTL, so a scrape
// always sees values at most CacheTTL old and Redis is not asked more often
// however many scrapers there are.
type QueueCollector struct {
	cfg  QueueCollectorConfig
	keys []store.Keys
	log  zerolog.Logger

	mu   sync.Mutex // serialises refreshes; guards last
	last time.Time
}

// NewQueueCollector returns a collector for cfg.
func NewQueueCollector(cfg QueueCollectorConfig) (*QueueCollector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	cfg.Queues = slices.Clone(cfg.Queues)
	return &QueueCollector{
		cfg:  cfg,
		keys: store.ShardKeys(cfg.Prefix, cfg.Shards),
		log:  cfg.Logger.With().Str("component", "queue-metrics").Logger(),
	}, nil
}

// Handler refreshes the queue gauges (unless the last refresh is younger
// than CacheTTL) and then serves next, typically promhttp.HandlerFor(Registry,
// ...). A failed refresh is logged and the last values are served; the next
// attempt comes CacheTTL later.
func (c *QueueCollector) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := c.refresh(r.Context(), false); err != nil {
			c.log.Warn().Err(err).Msg("queue metrics: refresh failed, serving the last values")
		}
		next.ServeHTTP(w, r)
	})
}

// Refresh reads every queue now, whatever the cache.
func (c *QueueCollector) Refresh(ctx context.Context) error { return c.refresh(ctx, true) }

func (c *QueueCollector) refresh(ctx context.Context, force bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !force && time.Since(c.last) < c.cfg.CacheTTL {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()

	errTasks := c.refreshTasks()
	errMsgs := c.refreshMessages(ctx)
	// A failed reading is cached too: scrapers must not hammer a Redis
	// that is struggling already.
	c.last = time.Now()
	return errors.Join(errTasks, errMsgs)
}

// refreshTasks reads asynq's queues. A configured queue asynq has not seen
// yet (nothing was ever enqueued to it) reports zeros.
func (c *QueueCollector) refreshTasks() error {
	known, err := c.cfg.Inspector.Queues()
	if err != nil {
		return fmt.Errorf("metrics: list asynq queues: %w", err)
	}
	var errs []error
	for _, q := range c.cfg.Queues {
		var info asynq.QueueInfo
		if slices.Contains(known, q) {
			got, err := c.cfg.Inspector.GetQueueInfo(q)
			if err != nil {
				errs = append(errs, fmt.Errorf("metrics: queue %s: %w", q, err))
				continue
			}
			info = *got
		}
		counts := []int{info.Pending, info.Active, info.Scheduled, info.Retry, info.Archived, info.Completed, info.Aggregating}
		for i, state := range TaskStates {
			QueueSize.WithLabelValues(q, state).Set(float64(counts[i]))
		}
		QueueLatency.WithLabelValues(q).Set(info.Latency.Seconds())
	}
	return errors.Join(errs...)
}

// refreshMessages counts roxd's messages waiting to be batched (the ready
// lists of every group in {P}:groups) and waiting for their time
// ({P}:scheduled). Every key shares the {P} hash tag, so the pipelines stay
// on one node of a cluster.
func (c *QueueCollector) refreshMessages(ctx context.Context) error {
	var ready, scheduled int64
	for _, k := range c.keys {
		r, s, err := c.countShard(ctx, k)
		if err != nil {
			return err
		}
		ready += r
		scheduled += s
	}
	QueueSize.WithLabelValues(MessagesQueue, "ready").Set(float64(ready))
	QueueSize.WithLabelValues(MessagesQueue, "scheduled").Set(float64(scheduled))
	return nil
}

// countShard counts one shard's ready and scheduled messages.
func (c *QueueCollector) countShard(ctx context.Context, k store.Keys) (int64, int64, error) {
	scheduled, err := c.cfg.Redis.ZCard(ctx, k.Scheduled()).Result()
	if err != nil {
		return 0, 0, fmt.Errorf("metrics: count scheduled messages: %w", err)
	}
	var ready int64
	var cursor uint64
	seen := map[string]struct{}{} // SSCAN may return a member twice
	for {
		page, next, err := c.cfg.Redis.SScan(ctx, k.Groups(), cursor, "", groupScanBatch).Result()
		if err != nil {
			return 0, 0, fmt.Errorf("metrics: scan groups: %w", err)
		}
		groups := page[:0]
		for _, g := range page {
			if _, dup := seen[g]; !dup {
				seen[g] = struct{}{}
				groups = append(groups, g)
			}
		}
		if len(groups) > 0 {
			pipe := c.cfg.Redis.Pipeline()
			lens := make([]*redis.IntCmd, len(groups))
			for i, g := range groups {
				lens[i] = pipe.LLen(ctx, k.Ready(g))
			}
			if _, err := pipe.Exec(ctx); err != nil {
				return 0, 0, fmt.Errorf("metrics: count ready messages: %w", err)
			}
			for _, l := range lens {
				ready += l.Val()
			}
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	return ready, scheduled, nil
}
