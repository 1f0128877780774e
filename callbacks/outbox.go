package callbacks

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/internal/redisconn"
	"github.com/redoxygen/roxd/internal/store"
)

// On a Redis Cluster the streams (rox:receipts, rox:replies) live in other
// slots than roxd's keys ({P}: one slot per shard), and a Lua script may
// only touch keys of one slot. There the store script writes everything of
// its own slot (dedup marker, status, opt-out, deferral) and, in the same
// atomic call, the entry's fields into the outbox {P}:cb:outbox (hash event
// id -> JSON); pushScript then appends them to the stream in a second call
// whose marker (in the stream's slot, {<stream tag>}:x:<event id>) makes it
// happen once, and the outbox entry is removed. The receiver answers ROX
// once the first call is done (the callback is stored in Redis); an entry
// whose push failed or whose process died stays in the outbox, and every
// receiver drains entries older than outboxGrace (drainOutbox). On a single
// Redis, or when a stream shares {P}'s slot ({roxd}:receipts), the store
// script XADDs itself, as before: one round trip.

// outboxGrace is how old an outbox entry must be before the drain pushes
// it: younger ones belong to a push in flight.
const outboxGrace = 10 * time.Second

// outboxInterval is how often each receiver drains the outbox.
const outboxInterval = 5 * time.Second

// pushMarkerTTL is how long a pushed entry's marker is kept: longer than an
// entry can wait in the outbox with its push done and its removal failed.
const pushMarkerTTL = 24 * time.Hour

// outboxKey is {P}:cb:outbox.
func outboxKey(k store.Keys) string { return k.Base() + "cb:outbox" }

// outboxEntry is the JSON the store script writes into the outbox.
type outboxEntry struct {
	T      int64    `json:"t"` // when stored, unix ms
	Kind   string   `json:"k"`
	Fields []string `json:"f"`

	eventID string
	outbox  string // the outbox key holding it
}

// splitStreams reports whether the store script must leave stream entries
// in the outbox: rdb is a cluster client and a stream's slot is not base's.
func splitStreams(rdb redis.UniversalClient, base string, streams ...string) bool {
	if _, ok := rdb.(*redis.ClusterClient); !ok {
		return false
	}
	for _, s := range streams {
		if redisconn.Slot(s) != redisconn.Slot(base) {
			return true
		}
	}
	return false
}

// health remembers whether the last store (or push) was refused by Redis
// for a reason replaying cannot cure; /readyz reports it.
type health struct {
	refused atomic.Pointer[string]
}

func (h *health) fail(err error) {
	msg := "callbacks cannot be stored: " + err.Error()
	h.refused.Store(&msg)
}

func (h *health) ok() { h.refused.Store(nil) }

// reason is "" while callbacks can be stored.
func (h *health) reason() string {
	if p := h.refused.Load(); p != nil {
		return *p
	}
	return ""
}

// push appends entries to their streams (pipelined, one round trip plus
// one if the script cache was empty), then removes them from outbox. It
// returns one stream entry id per entry ("" when pushed earlier) and the
// first error.
func (s *storer) push(ctx context.Context, entries []outboxEntry) ([]string, error) {
	ids := make([]string, len(entries))
	todo := make([]int, len(entries))
	for i := range todo {
		todo[i] = i
	}
	maxLen := max(s.cfg.StreamMaxLen, 0)
	var first error
	done := map[string][]string{} // outbox -> event ids pushed
	for attempt := 0; attempt < 2 && len(todo) > 0; attempt++ {
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.Cmd, len(todo))
		for k, i := range todo {
			e := entries[i]
			stream := s.stream(e.Kind)
			argv := make([]any, 0, 2+len(e.Fields))
			argv = append(argv, pushMarkerTTL.Milliseconds(), maxLen)
			for _, f := range e.Fields {
				argv = append(argv, f)
			}
			cmds[k] = pushScript.EvalSha(ctx, pipe, []string{stream, redisconn.SameSlotKey(stream, "x:"+e.eventID)}, argv...)
		}
		_, _ = pipe.Exec(ctx)
		var again []int
		for k, i := range todo {
			err := cmds[k].Err()
			switch {
			case redis.HasErrorPrefix(err, "NOSCRIPT") && attempt == 0:
				again = append(again, i)
			case err != nil:
				if first == nil {
					first = fmt.Errorf("callbacks: push to stream: %w", err)
				}
			default:
				ids[i], _ = cmds[k].Val().(string)
				done[entries[i].outbox] = append(done[entries[i].outbox], entries[i].eventID)
			}
		}
		todo = again
		if len(todo) > 0 {
			if err := pushScript.Load(ctx, s.rdb).Err(); err != nil {
				return ids, fmt.Errorf("callbacks: load script: %w", err)
			}
		}
	}
	if len(done) > 0 {
		pipe := s.rdb.Pipeline()
		for outbox, ids := range done {
			pipe.HDel(ctx, outbox, ids...)
		}
		if _, err := pipe.Exec(ctx); err != nil && first == nil {
			first = fmt.Errorf("callbacks: outbox: %w", err)
		}
	}
	return ids, first
}

// drainOutbox pushes the outbox entries older than outboxGrace (a push that
// failed, or whose process died) and returns how many it pushed.
func (s *storer) drainOutbox(ctx context.Context) (int, error) {
	if !s.split {
		return 0, nil
	}
	n := 0
	for _, outbox := range s.outboxes() {
		var cursor uint64
		for {
			kv, next, err := s.rdb.HScan(ctx, outbox, cursor, "", 500).Result()
			if err != nil {
				return n, err
			}
			var old []outboxEntry
			limit := time.Now().Add(-outboxGrace).UnixMilli()
			for i := 0; i+1 < len(kv); i += 2 {
				var e outboxEntry
				if err := json.Unmarshal([]byte(kv[i+1]), &e); err != nil {
					return n, fmt.Errorf("callbacks: outbox entry %s: %w", strconv.Quote(kv[i]), err)
				}
				if e.T <= limit {
					e.eventID, e.outbox = kv[i], outbox
					old = append(old, e)
				}
			}
			if len(old) > 0 {
				if _, err := s.push(ctx, old); err != nil {
					return n, err
				}
				n += len(old)
			}
			if next == 0 {
				return n, nil
			}
			cursor = next
		}
	}
	return n, nil
}

// outboxLoop drains the outbox every outboxInterval until ctx ends.
func (r *Receiver) outboxLoop(ctx context.Context) {
	t := time.NewTicker(outboxInterval)
	defer t.Stop()
	var lastWarn time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		dctx, cancel := context.WithTimeout(ctx, 4*r.cfg.StoreTimeout)
		n, err := r.st.drainOutbox(dctx)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			if !transient(err) {
				r.st.health.fail(err)
			}
			if time.Since(lastWarn) >= 30*time.Second {
				lastWarn = time.Now()
				r.log.Warn().Err(err).Msg("outbox: stream entries not pushed yet; retrying")
			}
		case n > 0:
			r.log.Info().Int("entries", n).Msg("outbox: pushed stream entries left by an earlier push")
		}
	}
}
