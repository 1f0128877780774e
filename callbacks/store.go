package callbacks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"reflect"
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

	pending *outboxEntry // stored; its stream entry waits in the outbox (outbox.go)
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
	// split: the streams are in other cluster slots than {P}; entries go
	// through the outbox {P}:cb:outbox (outbox.go).
	split  bool
	outbox string
	health health
	// shards: every shard's keys (store.ShardKeys); keys, deferred and
	// outbox above are shard 0's.
	shards []shardKeys
	// deferWake wakes the resolver (deferred.go) when a callback was
	// deferred; it holds at most one signal.
	deferWake chan struct{}
}

// shardKeys are one shard's keys the storer uses.
type shardKeys struct {
	keys     store.Keys
	deferred string
	outbox   string
}

// deferredKey is the zset of callbacks waiting for their SMSId to be
// recorded: {P}:cb:deferred.
func deferredKey(k store.Keys) string { return k.Base() + "cb:deferred" }

func newStorer(rdb redis.UniversalClient, cfg Config) *storer {
	all := store.ShardKeys(cfg.Prefix, cfg.Shards)
	keys := all[0]
	shards := make([]shardKeys, len(all))
	split := false
	for i, k := range all {
		shards[i] = shardKeys{keys: k, deferred: deferredKey(k), outbox: outboxKey(k)}
		split = split || splitStreams(rdb, k.Base(), cfg.ReceiptsStream, cfg.RepliesStream)
	}
	return &storer{
		shards:   shards,
		rdb:      rdb,
		keys:     keys,
		cfg:      cfg,
		jobs:     make(chan *job, cfg.Pipelines*cfg.MaxBatch),
		deferred: deferredKey(keys),
		split:    split,
		outbox:   outboxKey(keys),

		deferWake: make(chan struct{}, 1),
	}
}

// outboxes are the outbox keys the storer writes (outbox.go).
func (s *storer) outboxes() []string {
	out := make([]string, len(s.shards))
	for i, sk := range s.shards {
		out[i] = sk.outbox
	}
	return out
}

// shardOf returns e's shard: the one its callback URL named (s=<n>, set
// by the worker), else the one whose SMSId map holds e's SMSId (found is
// false when none does: then shard 0, as for a deployment of one shard).
func (s *storer) shardOf(e *event) int {
	if e.Shard >= 1 && e.Shard <= len(s.shards) {
		return e.Shard - 1
	}
	return 0
}

func (s *storer) stream(kind string) string {
	if kind == KindReply {
		return s.cfg.RepliesStream
	}
	return s.cfg.ReceiptsStream
}

// scriptArgs returns event e's part of the store script's KEYS (its dedup
// marker and SMSId map) and of its ARGV (script.go: kind ... done, then the
// stream fields). While e has attempts left (e.Attempt <
// len(Config.DeferDelays)), an unknown SMSId defers it by the next delay;
// after the last one it is pushed with an empty message_id.
func (s *storer) scriptArgs(e *event) ([]string, []any) {
	return s.appendArgs(make([]string, 0, 2), make([]any, 0, eventArgs), e)
}

// eventArgs is the most ARGV scriptArgs gives one event.
const eventArgs = scriptFixedArgs + 8

// appendArgs appends e's KEYS and ARGV (scriptArgs) to keys and argv: the
// group's own slices, so that an event costs no slices of its own.
func (s *storer) appendArgs(keys []string, argv []any, e *event) ([]string, []any) {
	sk := s.shards[s.shardOf(e)]
	keys = append(keys, sk.keys.CallbackSeen(e.EventID), sk.keys.SMS(e.SMSID))
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
	var deferUntil int64
	next := max(e.Attempt, 0)
	if next < len(s.cfg.DeferDelays) {
		deferUntil = time.Now().Add(s.cfg.DeferDelays[next]).UnixMilli()
		next++
	}
	argv = append(argv, e.Kind, e.Status, e.OptOut, e.OptOutNumber, e.ReceivedMS, e.EventID, errText,
		deferUntil, next, e.member, done)
	return keys, e.appendStreamFields(argv)
}

// groupArgs returns the KEYS and ARGV of one store script call for the
// events evs, all of shard sh (script.go).
func (s *storer) groupArgs(sh int, evs []*event) ([]string, []any) {
	sk := s.shards[sh]
	maxLen := s.cfg.StreamMaxLen
	if maxLen < 0 {
		maxLen = 0
	}
	keys := make([]string, 0, 5+2*len(evs))
	common := 4
	if s.split {
		// the streams are not touched: keep KEYS in one slot
		keys = append(keys, sk.keys.Suppressed(), sk.deferred, sk.outbox, sk.outbox, sk.outbox)
		common = 5
	} else {
		keys = append(keys, sk.keys.Suppressed(), sk.deferred, s.cfg.ReceiptsStream, s.cfg.RepliesStream)
	}
	argv := make([]any, 0, 6+(1+eventArgs)*len(evs))
	argv = append(argv, common, sk.keys.Base(), s.cfg.DedupTTL.Milliseconds(), maxLen, len(evs), s.cfg.StatusTTL.Milliseconds())
	for _, e := range evs {
		at := len(argv)
		argv = append(argv, 0) // the event's ARGV count, set below
		keys, argv = s.appendArgs(keys, argv, e)
		argv[at] = len(argv) - at - 1
	}
	return keys, argv
}

// exec stores evs, one script call per shard among them (a group commit),
// all in one pipelined round trip (plus one more if the script cache was
// empty), and returns one result per event. An event whose own commands
// fail gets its own error; a call that fails as a whole (Redis
// unreachable, the script refused) fails the events of that call.
func (s *storer) exec(ctx context.Context, evs []*event) []result {
	res := make([]result, len(evs))
	if err := s.locate(ctx, evs); err != nil {
		for i := range res {
			res[i] = result{err: err}
		}
		return res
	}
	// groups[sh] are the indexes of the events of shard sh, in order.
	groups := make(map[int][]int, 1)
	var order []int
	for i, e := range evs {
		sh := s.shardOf(e)
		if _, ok := groups[sh]; !ok {
			order = append(order, sh)
		}
		groups[sh] = append(groups[sh], i)
	}
	todo := order
	for attempt := 0; attempt < 2 && len(todo) > 0; attempt++ {
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.Cmd, len(todo))
		for k, sh := range todo {
			idx := groups[sh]
			gevs := make([]*event, len(idx))
			for j, i := range idx {
				gevs[j] = evs[i]
			}
			keys, argv := s.groupArgs(sh, gevs)
			cmds[k] = storeScript.EvalSha(ctx, pipe, keys, argv...)
		}
		wait := s.waitReplicated(ctx, pipe)
		_, _ = pipe.Exec(ctx) // errors are read per command below
		werr := s.cfg.Replicas.Check(wait)
		var again []int
		for k, sh := range todo {
			err := cmds[k].Err()
			if redis.HasErrorPrefix(err, "NOSCRIPT") && attempt == 0 {
				again = append(again, sh)
				continue
			}
			parseResults(res, groups[sh], cmds[k].Val(), err)
			for _, i := range groups[sh] {
				if res[i].deferred {
					select {
					case s.deferWake <- struct{}{}:
					default:
					}
				}
				if res[i].err == nil && werr != nil {
					// On the master, not on enough replicas: the caller
					// spools it (replayed later, the dedup marker keeps it
					// once) and answers ROX "0000" only then.
					res[i] = result{err: fmt.Errorf("callbacks: store: %w", werr)}
				}
			}
		}
		todo = again
		if len(todo) > 0 {
			if err := storeScript.Load(ctx, s.rdb).Err(); err != nil {
				for _, sh := range todo {
					for _, i := range groups[sh] {
						res[i] = result{err: fmt.Errorf("callbacks: load script: %w", err)}
					}
				}
				s.observe(res, nil)
				return res
			}
		}
	}
	// Entries left in the outbox: push them now. A failed push leaves them
	// there for drainOutbox; the callbacks are stored either way.
	var pend []outboxEntry
	var at []int
	for i := range res {
		if p := res[i].pending; p != nil {
			p.eventID = evs[i].EventID
			p.outbox = s.shards[s.shardOf(evs[i])].outbox
			pend = append(pend, *p)
			at = append(at, i)
		}
	}
	var pushErr error
	if len(pend) > 0 {
		var ids []string
		ids, pushErr = s.push(ctx, pend)
		for k, i := range at {
			res[i].id = ids[k]
		}
	}
	s.observe(res, pushErr)
	s.spreadOptOuts(ctx, evs, res)
	return res
}

// waitReplicated queues, after the store scripts in pipe (one
// connection), the wait for ROXD_REDIS_MIN_REPLICAS replicas, so that a
// callback is answered "0000" only once that many replicas have it (or it
// is in the spool). nil when off.
func (s *storer) waitReplicated(ctx context.Context, pipe redis.Pipeliner) *redis.Cmd {
	return s.cfg.Replicas.Queue(ctx, pipe)
}

// locate gives each event without a valid shard (a callback URL without
// s=<n>: posted before the deployment had shards, or by hand) the shard
// whose SMSId map knows its SMSId, in one pipelined round trip; shard 0
// when none does.
func (s *storer) locate(ctx context.Context, evs []*event) error {
	if len(s.shards) == 1 {
		return nil
	}
	var lost []*event
	for _, e := range evs {
		if e.Shard < 1 || e.Shard > len(s.shards) {
			lost = append(lost, e)
		}
	}
	if len(lost) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([][]*redis.IntCmd, len(lost))
	for i, e := range lost {
		for _, sk := range s.shards {
			cmds[i] = append(cmds[i], pipe.Exists(ctx, sk.keys.SMS(e.SMSID)))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("callbacks: find the shard of an SMSId: %w", err)
	}
	for i, e := range lost {
		e.Shard = 1
		for j, c := range cmds[i] {
			if c.Val() > 0 {
				e.Shard = j + 1
				break
			}
		}
	}
	return nil
}

// spreadOptOuts copies the opt-outs the store script applied in an event's
// shard to every other shard (each shard keeps the whole suppression list,
// see store/shards.go). Best effort: a failure is retried by nothing, so a
// number may stay unsuppressed in some shards; logged by the caller's
// metrics only. A START is copied where no operator suppressed the number.
func (s *storer) spreadOptOuts(ctx context.Context, evs []*event, res []result) {
	if len(s.shards) == 1 {
		return
	}
	pipe := s.rdb.Pipeline()
	n := 0
	for i, e := range evs {
		if res[i].err != nil || res[i].dup || res[i].gone || e.OptOutNumber == "" || e.Kind != KindReply {
			continue
		}
		own := s.shardOf(e)
		for j, sk := range s.shards {
			if j == own {
				continue
			}
			switch e.OptOut {
			case KeywordStop:
				pipe.SAdd(ctx, sk.keys.Suppressed(), e.OptOutNumber)
				n++
			case KeywordStart:
				pipe.Eval(ctx, `if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 0 then redis.call('SREM', KEYS[1], ARGV[1]) end return 0`,
					[]string{sk.keys.Suppressed(), sk.keys.SuppressedByOperator()}, e.OptOutNumber)
				n++
			}
		}
	}
	if n > 0 {
		_, _ = pipe.Exec(ctx)
	}
}

// observe updates the storer's health from a round trip's results: a
// refusal replaying cannot cure (CROSSSLOT, WRONGTYPE, a script error...)
// makes /readyz fail until a later store succeeds.
func (s *storer) observe(res []result, pushErr error) {
	var refused error
	stored := false
	for _, x := range res {
		switch {
		case x.err == nil:
			stored = true
		case !transient(x.err) && refused == nil:
			refused = x.err
		}
	}
	if pushErr != nil && !transient(pushErr) && refused == nil {
		refused = pushErr
	}
	switch {
	case refused != nil:
		s.health.fail(refused)
	case stored && pushErr == nil:
		s.health.ok()
	}
}

// replyError makes msg, the error one event met inside the store script
// (its own command failed; the others of its call went on), the error
// go-redis makes of an error reply, so that transient, spoolReason and the
// redis.IsXxxError helpers (which look for go-redis's own type) read it
// exactly as they read a command's refusal.
func replyError(msg string) error {
	return reflect.ValueOf(msg).Convert(reflect.TypeOf(redis.ErrNoScript)).Interface().(error)
}

// parseResults sets res[i] for the events idx of one store script call
// from its reply v (3 values per event) or its error.
func parseResults(res []result, idx []int, v any, err error) {
	if err != nil {
		for _, i := range idx {
			res[i] = result{err: fmt.Errorf("callbacks: store: %w", err)}
		}
		return
	}
	a, ok := v.([]any)
	if !ok || len(a) != 3*len(idx) {
		for _, i := range idx {
			res[i] = result{err: fmt.Errorf("callbacks: store: unexpected script reply %T for %d events", v, len(idx))}
		}
		return
	}
	for k, i := range idx {
		res[i] = parseResult(a[3*k : 3*k+3])
	}
}

// parseResult reads one event's 3 values of the store script's reply.
func parseResult(a []any) result {
	code, _ := a[0].(int64)
	id, _ := a[1].(string)
	moved, _ := a[2].(int64)
	switch code {
	case 0:
		return result{dup: true}
	case 1:
		return result{id: id, moved: moved == 1}
	case 4:
		var e outboxEntry
		if err := json.Unmarshal([]byte(id), &e); err != nil {
			return result{err: fmt.Errorf("callbacks: store: outbox entry: %w", err)}
		}
		return result{moved: moved == 1, pending: &e}
	case 2:
		return result{deferred: true}
	case 3:
		return result{gone: true}
	case -1:
		return result{err: fmt.Errorf("callbacks: store: %w", replyError(id))}
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
