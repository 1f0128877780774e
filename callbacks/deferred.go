package callbacks

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// Resolving deferred callbacks: a callback whose SMSId the worker had not
// recorded yet waits in {P}:cb:deferred (member: the event's JSON with its
// attempt count; score: when it is due, unix ms). The resolver takes due
// members, oldest first, and runs the store script on each in resolve mode:
// the script claims the member (so that several receivers sharing Redis
// store each once), then stores it correlated if the SMSId is known now,
// defers it again by the next Config.DeferDelays, or, after the last delay,
// pushes it with an empty message_id.
//
// It does not poll: one ZRANGE by rank reads the due members and the next
// one's due time, and the resolver sleeps until then, or resolveIdle when
// nothing is deferred (a member another receiver sharing Redis defers is
// resolved at most resolveIdle late); a callback this receiver defers
// wakes it (storer.deferWake). An idle receiver sends one command per
// resolveIdle per shard instead of ten a second.
const (
	resolveMax = 100
	// resolveIdle is the longest the resolver sleeps.
	resolveIdle = time.Second
	// resolveRetry is the wait after a Redis error.
	resolveRetry = 100 * time.Millisecond
	// badMemberRetry is how long a member Redis refuses for good waits
	// before it is tried again when there is no spool to keep it in.
	badMemberRetry = time.Minute
)

var errBadMember = errors.New("callbacks: deferred member does not decode")

// resolveLoop resolves due deferred callbacks until ctx is done.
func (r *Receiver) resolveLoop(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	var lastWarn time.Time
	var wakeAt time.Time // when t fires
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.st.deferWake:
			// This receiver deferred a callback: due no sooner than the
			// first of DeferDelays from now. Sleep no longer than that.
			if due := time.Now().Add(r.minDeferDelay()); due.Before(wakeAt) {
				t.Reset(time.Until(due))
				wakeAt = due
			}
			continue
		}
		next, err := r.resolveDue(ctx)
		wait := resolveIdle
		if err != nil {
			wait = resolveRetry
			if ctx.Err() == nil && time.Since(lastWarn) >= 30*time.Second {
				lastWarn = time.Now()
				r.log.Warn().Err(err).Msg("deferred callbacks not resolved; retrying")
			}
		} else if !next.IsZero() {
			wait = min(max(time.Until(next), time.Millisecond), resolveIdle)
		}
		t.Reset(wait)
		wakeAt = time.Now().Add(wait)
	}
}

// minDeferDelay is the shortest wait a callback deferred now can have.
func (r *Receiver) minDeferDelay() time.Duration {
	d := resolveIdle
	for _, x := range r.cfg.DeferDelays {
		d = min(d, x)
	}
	return d
}

// resolveDue resolves every deferred callback due now, resolveMax per
// pipelined round trip, and returns when the earliest member not yet due
// is (zero: none seen). It stops at the first transient Redis error: what
// is left stays in the zset for the next look.
func (r *Receiver) resolveDue(ctx context.Context) (time.Time, error) {
	var first error
	var next time.Time
	for shard := range r.st.shards {
		for ctx.Err() == nil {
			n, nx, err := r.resolveBatch(ctx, shard)
			if err != nil && first == nil {
				first = err
			}
			if !nx.IsZero() && (next.IsZero() || nx.Before(next)) {
				next = nx
			}
			if err != nil || n < resolveMax {
				break
			}
		}
	}
	return next, first
}

// resolveBatch resolves up to resolveMax due members and returns how
// many it fetched, and when the first member not due yet is (zero: none
// among the resolveMax earliest).
func (r *Receiver) resolveBatch(ctx context.Context, shard int) (int, time.Time, error) {
	deferred := r.st.shards[shard].deferred
	rctx, cancel := context.WithTimeout(ctx, 4*r.cfg.StoreTimeout)
	defer cancel()
	// The resolveMax earliest by score: the due ones are a prefix, the
	// first after it says when to look again.
	zs, err := r.st.rdb.ZRangeWithScores(rctx, deferred, 0, resolveMax-1).Result()
	if err != nil {
		return 0, time.Time{}, err
	}
	now := float64(time.Now().UnixMilli())
	var next time.Time
	members := make([]string, 0, len(zs))
	for _, z := range zs {
		if z.Score > now {
			next = time.UnixMilli(int64(z.Score))
			break
		}
		m, _ := z.Member.(string)
		members = append(members, m)
	}
	if len(members) == 0 {
		return 0, next, nil
	}
	n, err := r.resolveMembers(rctx, shard, deferred, members)
	return n, next, err
}

// resolveMembers resolves the due members and returns how many it was
// given.
func (r *Receiver) resolveMembers(rctx context.Context, shard int, deferred string, members []string) (int, error) {
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
