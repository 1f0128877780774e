package callbacks

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Resolving deferred callbacks: a callback whose SMSId the worker had not
// recorded yet waits in {P}:cb:deferred (member: the event's JSON with its
// attempt count; score: when it is due, unix ms). Every resolveInterval the
// resolver takes due members, oldest first, and runs the store script on
// each in resolve mode: the script claims the member (so that several
// receivers sharing Redis store each once), then stores it correlated if
// the SMSId is known now, defers it again by the next Config.DeferDelays,
// or, after the last delay, pushes it with an empty message_id.
const (
	resolveInterval = 100 * time.Millisecond
	resolveMax      = 100
	// badMemberRetry is how long a member Redis refuses for good waits
	// before it is tried again when there is no spool to keep it in.
	badMemberRetry = time.Minute
)

var errBadMember = errors.New("callbacks: deferred member does not decode")

// resolveLoop resolves due deferred callbacks until ctx is done.
func (r *Receiver) resolveLoop(ctx context.Context) {
	t := time.NewTicker(resolveInterval)
	defer t.Stop()
	var lastWarn time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := r.resolveDue(ctx); err != nil && ctx.Err() == nil && time.Since(lastWarn) >= 30*time.Second {
			lastWarn = time.Now()
			r.log.Warn().Err(err).Msg("deferred callbacks not resolved; retrying")
		}
	}
}

// resolveDue resolves every deferred callback due now, resolveMax per
// pipelined round trip. It stops at the first transient Redis error: what
// is left stays in the zset for the next tick.
func (r *Receiver) resolveDue(ctx context.Context) error {
	var first error
	for shard := range r.st.shards {
		for ctx.Err() == nil {
			n, err := r.resolveBatch(ctx, shard)
			if err != nil && first == nil {
				first = err
			}
			if err != nil || n < resolveMax {
				break
			}
		}
	}
	return first
}

// resolveBatch resolves up to resolveMax due members and returns how
// many it fetched.
func (r *Receiver) resolveBatch(ctx context.Context, shard int) (int, error) {
	deferred := r.st.shards[shard].deferred
	rctx, cancel := context.WithTimeout(ctx, 4*r.cfg.StoreTimeout)
	defer cancel()
	members, err := r.st.rdb.ZRangeByScore(rctx, deferred, &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(time.Now().UnixMilli(), 10), Count: resolveMax,
	}).Result()
	if err != nil || len(members) == 0 {
		return 0, err
	}
	evs := make([]*event, 0, len(members))
	for _, m := range members {
		e, err := decodeMember(m)
		if err != nil {
			if err := r.refuseMember(rctx, deferred, m, "", m, err); err != nil {
				return len(members), err
			}
			continue
		}
		e.Shard = shard + 1
		evs = append(evs, e)
	}
	if len(evs) == 0 {
		return len(members), nil
	}
	for i, x := range r.st.exec(rctx, evs) {
		switch {
		case x.err != nil && transient(x.err):
			return len(members), x.err
		case x.err != nil:
			if err := r.refuseMember(rctx, deferred, evs[i].member, evs[i].EventID, evs[i], x.err); err != nil {
				return len(members), err
			}
		default:
			r.observe(evs[i], x)
		}
	}
	return len(members), nil
}

// decodeMember reads a deferred member back into its event.
func decodeMember(m string) (*event, error) {
	e := new(event)
	if err := json.Unmarshal([]byte(m), e); err != nil {
		return nil, errBadMember
	}
	if e.EventID == "" || e.SMSID == "" || (e.Kind != KindReceipt && e.Kind != KindReply) {
		return nil, errBadMember
	}
	e.member = m
	return e, nil
}

// refuseMember deals with a member that can never be stored as it is (it
// does not decode, or Redis refuses it for good, e.g. WRONGTYPE on a
// misconfigured stream key): with a spool it moves to rejected.log, as a
// refused spooled callback does, and leaves the zset; without one it stays
// and is tried again after badMemberRetry, so that it neither blocks the
// others nor is lost.
func (r *Receiver) refuseMember(ctx context.Context, deferred, member, eventID string, kept any, cause error) error {
	if r.spool != nil {
		r.log.Error().Err(cause).Str("event_id", eventID).Msg("redis refused a deferred callback; kept in rejected.log")
		if err := r.spool.reject(kept, cause); err != nil {
			return err
		}
		return r.st.rdb.ZRem(ctx, deferred, member).Err()
	}
	r.log.Error().Err(cause).Str("event_id", eventID).Dur("retry_in", badMemberRetry).Msg("redis refused a deferred callback; kept deferred")
	return r.st.rdb.ZAddArgs(ctx, deferred, redis.ZAddArgs{XX: true, Members: []redis.Z{{
		Score: float64(time.Now().Add(badMemberRetry).UnixMilli()), Member: member,
	}}}).Err()
}
