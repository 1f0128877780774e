package app

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/internal/metrics"
	"github.com/redoxygen/roxd/internal/redisconn"
	"github.com/redoxygen/roxd/internal/store"
)

// ErrEvictingRedis is returned by Run when Redis's maxmemory-policy may
// evict roxd's keys.
var ErrEvictingRedis = errors.New("REDIS_URL: Redis may evict roxd's keys")

// DefaultRedisCheckInterval is how often a running roxd reads Redis's
// persistence and eviction settings and looks for its marker key.
const DefaultRedisCheckInterval = 30 * time.Second

// redisCheckBudget bounds one check.
const redisCheckBudget = 3 * time.Second

// markerKey is {P}:redis-marker: a key without TTL that roxd writes to know
// whether Redis still holds its data. Gone after a restart without
// persistence or a flush.
func markerKey(prefix string) string { return store.NewKeys(prefix).RedisMarker() }

// redisHealth watches whether Redis can keep what it acknowledged.
type redisHealth struct {
	rdb           redis.UniversalClient
	log           zerolog.Logger
	marker        string
	allowVolatile bool

	mu          sync.Mutex
	checked     bool // one check succeeded
	d           redisconn.Durability
	lastPersist string // persistence last logged
	lastPolicy  string
	lastListpk  int
	markerSeen  bool
	dataLostAt  time.Time
	dataLostMsg string
}

func newRedisHealth(rdb redis.UniversalClient, prefix string, allowVolatile bool, log zerolog.Logger) *redisHealth {
	return &redisHealth{rdb: rdb, log: log.With().Str("component", "redis-health").Logger(),
		marker: markerKey(prefix), allowVolatile: allowVolatile}
}

// check reads the settings once, logs what changed, updates the metrics and
// the marker. It returns ErrEvictingRedis (wrapped) for an evicting policy
// and other errors when Redis could not be asked.
func (h *redisHealth) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, redisCheckBudget)
	defer cancel()
	d, err := redisconn.Inspect(ctx, h.rdb)
	if err != nil {
		return err
	}
	exists, err := h.rdb.Exists(ctx, h.marker).Result()
	if err != nil {
		return fmt.Errorf("redis marker: %w", err)
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	prev := h.d
	h.d, h.checked = d, true

	persist := d.Persistence()
	switch persist {
	case redisconn.PersistAOF, redisconn.PersistRDB:
		metrics.RedisPersistent.Set(1)
	case redisconn.PersistNone:
		metrics.RedisPersistent.Set(0)
	default:
		metrics.RedisPersistent.Set(-1)
	}
	if persist != h.lastPersist {
		h.lastPersist = persist
		ev := h.log.Info()
		switch {
		case persist == redisconn.PersistAOF:
		case persist == redisconn.PersistRDB:
			ev = h.log.Warn()
		case h.allowVolatile:
			ev = h.log.Info().Bool("allowed_by_ROXD_ALLOW_VOLATILE_REDIS", true)
		default:
			ev = h.log.Error()
		}
		ev.Str("persistence", persist).Bool("appendonly", d.AppendOnly).Str("save", d.Save).
			Str("source", d.Source).Msg(persistMessage(persist))
	}
	evicting := d.Evicting()
	if evicting {
		metrics.RedisEvicting.Set(1)
	} else {
		metrics.RedisEvicting.Set(0)
	}
	if d.Policy != h.lastPolicy {
		h.lastPolicy = d.Policy
		if evicting {
			h.log.Error().Str("maxmemory_policy", d.Policy).
				Msg("Redis may evict roxd's keys (message records carry a TTL, so volatile-* policies evict them too): set maxmemory-policy noeviction")
		}
	}

	if d.ListpackValue != h.lastListpk {
		h.lastListpk = d.ListpackValue
		if !d.CompactRecords() {
			h.log.Warn().Int("hash_max_listpack_value", d.ListpackValue).
				Msgf("message records with texts over %d bytes take the large hash encoding (~1.3 KiB of Redis memory per queued message instead of ~600 B): set hash-max-listpack-value %d",
					d.ListpackValue, redisconn.CompactRecordBytes)
		}
	}

	if exists == 0 {
		lost := h.markerSeen || (prev.RunID != "" && d.RunID != prev.RunID)
		if lost {
			h.dataLostAt = time.Now()
			h.dataLostMsg = fmt.Sprintf("roxd's marker key is gone (run_id %s -> %s): Redis restarted without its data or was flushed; messages accepted before are lost", short(prev.RunID), short(d.RunID))
			if prev.RunID == d.RunID {
				h.dataLostMsg = "roxd's marker key is gone with the same run_id: Redis was flushed; messages accepted before are lost"
			}
			metrics.RedisDataLoss.Inc()
			h.log.Error().Str("run_id_before", prev.RunID).Str("run_id", d.RunID).Msg(h.dataLostMsg)
		}
		if err := h.rdb.SetNX(ctx, h.marker, time.Now().UTC().Format(time.RFC3339), 0).Err(); err != nil {
			return fmt.Errorf("redis marker: %w", err)
		}
	} else if prev.RunID != "" && d.RunID != prev.RunID {
		h.log.Warn().Str("run_id_before", prev.RunID).Str("run_id", d.RunID).Msg("Redis restarted and kept its data")
	}
	h.markerSeen = true
	if evicting {
		return fmt.Errorf("%w: maxmemory-policy is %s; set it to noeviction", ErrEvictingRedis, d.Policy)
	}
	return nil
}

func persistMessage(p string) string {
	switch p {
	case redisconn.PersistAOF:
		return "Redis persists with AOF"
	case redisconn.PersistRDB:
		return "Redis persists with RDB snapshots only: a crash loses the writes since the last one; appendonly yes is safer"
	case redisconn.PersistNone:
		return "Redis has no persistence (appendonly no, no save points): a restart loses every queued message; set appendonly yes"
	}
	return "cannot tell whether Redis persists its data (CONFIG and INFO refused)"
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// run checks every interval until ctx ends; errors are logged once per
// change.
func (h *redisHealth) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := h.check(ctx)
		msg := ""
		if err != nil && !errors.Is(err, ErrEvictingRedis) {
			msg = err.Error()
		}
		if msg != lastErr && ctx.Err() == nil {
			if msg != "" {
				h.log.Warn().Err(err).Msg("cannot check Redis persistence and eviction (said once until it changes)")
			}
			lastErr = msg
		}
	}
}

// readiness returns whether Redis's settings allow running and the
// warnings /readyz shows.
func (h *redisHealth) readiness() (ok bool, reason string, warnings []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.checked {
		return true, "", nil
	}
	if h.d.Evicting() {
		return false, "redis maxmemory-policy " + h.d.Policy + " may evict roxd's keys", nil
	}
	switch p := h.d.Persistence(); {
	case p == redisconn.PersistNone && !h.allowVolatile:
		warnings = append(warnings, "redis has no persistence: a restart loses queued messages")
	case p == redisconn.PersistUnknown && !h.allowVolatile:
		warnings = append(warnings, "redis persistence unknown (CONFIG and INFO refused)")
	}
	if !h.dataLostAt.IsZero() {
		warnings = append(warnings, h.dataLostAt.UTC().Format(time.RFC3339)+": "+h.dataLostMsg)
	}
	return true, "", warnings
}
