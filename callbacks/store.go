package callbacks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/internal/store"
)

// result is the outcome of storing one event.
type result struct {
	dup      bool   // already stored earlier (same event id)
	deferred bool   // SMSId unknown yet: kept in {P}:cb:deferred for later
	gone     bool   // the deferred member was resolved by another receiver
	moved    bool   // a receipt moved the record's status forward
	id       string // stream entry id when stored
	err      error
}

// job is one event waiting for the batcher; done has room for one result
// so that the batcher never blocks on a caller that gave up.
type job struct {
	ev   *event
	done chan result
}

// storer runs the store script for events, many per pipelined round trip.
type storer struct {
	rdb  redis.UniversalClient
	keys store.Keys
	cfg  Config
	jobs chan *job
	// deferred is {P}:cb:deferred: callbacks whose SMSId was unknown, by
	// due time (unix ms).
	deferred string
}

// deferredKey is the zset of callbacks waiting for their SMSId to be
// recorded: {P}:cb:deferred.
func deferredKey(k store.Keys) string { return k.Base() + "cb:deferred" }

func newStorer(rdb redis.UniversalClient, cfg Config) *storer {
	keys := store.NewKeys(cfg.Prefix)
	return &storer{
		rdb:      rdb,
		keys:     keys,
		cfg:      cfg,
		jobs:     make(chan *job, cfg.Pipelines*cfg.MaxBatch),
		deferred: deferredKey(keys),
	}
}

func (s *storer) stream(kind string) string {
	if kind == KindReply {
		return s.cfg.RepliesStream
	}
	return s.cfg.ReceiptsStream
}

// scriptArgs returns the KEYS and ARGV of the store script for e. While e
// has attempts left (e.Attempt < len(Config.DeferDelays)), an unknown SMSId
// defers it by the next delay; after the last one it is pushed with an
// empty message_id.
func (s *storer) scriptArgs(e *event) ([]string, []any) {
	keys := []string{s.keys.CallbackSeen(e.EventID), s.keys.SMS(e.SMSID), s.stream(e.Kind), s.keys.Suppressed(), s.deferred}
	errText, done := "", ""
	if e.OptOutDone {
		done = "1"
	} else if e.OptOut != "" && e.OptOutNumber == "" {
		// A spooled event of an earlier version carries no number.
		e.OptOutNumber = optOutNumber(e.ReplyFrom, s.cfg.DefaultRegion)
	}
	if e.Kind == KindReceipt && e.Status == StatusFailed {
		errText = "receipt " + e.Result
		if e.ResultText != "" {
			errText += ": " + e.ResultText
		}
	}
	maxLen := s.cfg.StreamMaxLen
	if maxLen < 0 {
		maxLen = 0
	}
	var deferUntil int64
	next := max(e.Attempt, 0)
	if next < len(s.cfg.DeferDelays) {
		deferUntil = time.Now().Add(s.cfg.DeferDelays[next]).UnixMilli()
		next++
	}
	argv := make([]any, 0, 32)
	argv = append(argv, s.keys.Base(), s.cfg.DedupTTL.Milliseconds(), maxLen, e.Kind, e.Status,
		e.OptOut, e.OptOutNumber, e.ReceivedMS, e.EventID, errText, deferUntil, next, e.member, done)
	argv = append(argv, e.streamFields()...)
	return keys, argv
}

// exec stores evs in one pipelined round trip (plus one more if the
// script cache was empty) and returns one result per event.
func (s *storer) exec(ctx context.Context, evs []*event) []result {
	res := make([]result, len(evs))
	todo := make([]int, len(evs))
	for i := range todo {
		todo[i] = i
	}
	for attempt := 0; attempt < 2 && len(todo) > 0; attempt++ {
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.Cmd, len(todo))
		for k, i := range todo {
			keys, argv := s.scriptArgs(evs[i])
			cmds[k] = storeScript.EvalSha(ctx, pipe, keys, argv...)
		}
		wait := s.waitReplicated(ctx, pipe)
		_, _ = pipe.Exec(ctx) // errors are read per command below
		werr := s.cfg.Replicas.Check(wait)
		var again []int
		for k, i := range todo {
			err := cmds[k].Err()
			if redis.HasErrorPrefix(err, "NOSCRIPT") && attempt == 0 {
				again = append(again, i)
				continue
			}
			res[i] = parseResult(cmds[k].Val(), err)
			if res[i].err == nil && werr != nil {
				// On the master, not on enough replicas: the caller spools
				// it (replayed later, the dedup marker keeps it once) and
				// answers ROX "0000" only then.
				res[i] = result{err: fmt.Errorf("callbacks: store: %w", werr)}
			}
		}
		todo = again
		if len(todo) > 0 {
			if err := storeScript.Load(ctx, s.rdb).Err(); err != nil {
				for _, i := range todo {
					res[i] = result{err: fmt.Errorf("callbacks: load script: %w", err)}
				}
				return res
			}
		}
	}
	return res
}

// waitReplicated queues, after the store scripts in pipe (one
// connection), the wait for ROXD_REDIS_MIN_REPLICAS replicas, so that a
// callback is answered "0000" only once that many replicas have it (or it
// is in the spool). nil when off.
func (s *storer) waitReplicated(ctx context.Context, pipe redis.Pipeliner) *redis.Cmd {
	return s.cfg.Replicas.Queue(ctx, pipe)
}

func parseResult(v any, err error) result {
	if err != nil {
		return result{err: fmt.Errorf("callbacks: store: %w", err)}
	}
	a, ok := v.([]any)
	if !ok || len(a) != 3 {
		return result{err: fmt.Errorf("callbacks: store: unexpected script reply %T", v)}
	}
	code, _ := a[0].(int64)
	id, _ := a[1].(string)
	moved, _ := a[2].(int64)
	switch code {
	case 0:
		return result{dup: true}
	case 1:
		return result{id: id, moved: moved == 1}
	case 2:
		return result{deferred: true}
	case 3:
		return result{gone: true}
	}
	return result{err: fmt.Errorf("callbacks: store: unexpected script result %d", code)}
}

// loop is one batcher: it takes the first waiting job, every other job
// already waiting (up to MaxBatch), and stores them in one round trip. No
// timer: while a round trip is in flight the next batch gathers by itself.
func (s *storer) loop(ctx context.Context) {
	batch := make([]*job, 0, s.cfg.MaxBatch)
	evs := make([]*event, 0, s.cfg.MaxBatch)
	for {
		batch, evs = batch[:0], evs[:0]
		select {
		case <-ctx.Done():
			return
		case j := <-s.jobs:
			batch = append(batch, j)
		}
	gather:
		for len(batch) < s.cfg.MaxBatch {
			select {
			case j := <-s.jobs:
				batch = append(batch, j)
			default:
				break gather
			}
		}
		for _, j := range batch {
			evs = append(evs, j.ev)
		}
		// The round trip outlives Run's ctx so that a batch in flight at
		// shutdown completes; it is bounded by the store budget instead
		// (the callers wait as long, then spool).
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.StoreTimeout)
		res := s.exec(rctx, evs)
		cancel()
		for i, j := range batch {
			j.done <- res[i]
		}
	}
}

// transient reports whether err means Redis could not be reached or could
// not take writes right now (as opposed to a command that can never work).
func transient(err error) bool {
	if err == nil {
		return false
	}
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return true // network, timeout, pool, closed client, context
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	return redis.IsLoadingError(err) || redis.IsReadOnlyError(err) || redis.IsClusterDownError(err) ||
		redis.IsTryAgainError(err) || redis.IsMasterDownError(err) || redis.IsOOMError(err) ||
		redis.HasErrorPrefix(err, "NOSCRIPT") || redis.HasErrorPrefix(err, "BUSY") ||
		redis.HasErrorPrefix(err, "MAXCLIENTS") || redis.HasErrorPrefix(err, "NOREPLICAS")
}
