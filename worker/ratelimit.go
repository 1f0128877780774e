package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/internal/metrics"
	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/rox"
)

// Rate limits (ROXD_RATE_LIMIT, ROXD_REQUEST_RATE_LIMIT) are GCRA buckets in
// the Redis every worker process shares (github.com/go-redis/redis_rate), so
// the limit holds for the deployment, not per process:
//
//   - The former forms one batch at a time of at most burstBatch messages
//     (min(MaxBatch, limit)), then takes exactly as many tokens as the batch
//     holds (waiting for them when the bucket is short) before it enqueues
//     the batch's task: a batch is never split after the fact and no token
//     is taken for a message that does not exist. The task carries the
//     tokens it paid (payload.Paid).
//   - Any other run of a batch (an asynq retry, a redelivery, the reaper's
//     re-enqueue, an operator's run) pays for its recipients before it
//     claims them.
//   - HTTP 429 from ROX pauses the whole account ({P}:ratepause:<account>):
//     no batch of it is formed or claimed until the pause ends. The pause is
//     the answer's Retry-After, or, without one, a pause doubling from 1 s
//     to a minute while 429s follow each other.
//
// Tokens are taken, never given back: redis_rate's GCRA cannot return a
// whole grant (its script leaves the bucket untouched when the returned
// tokens would move its time before now), so the former takes tokens only
// for messages it has already popped into a batch.

// Rate-limit kinds (metric label).
const (
	rateKindMessages = "messages"
	rateKindRequests = "requests"
)

// Bounds of the pause after a 429 without Retry-After.
const (
	throttlePauseInitial = time.Second
	throttlePauseMax     = time.Minute
)

// maxInHandlerRateWait is the longest a handler run waits for tokens or a
// pause before it hands the batch back to asynq with the wait as its delay.
const maxInHandlerRateWait = 10 * time.Second

type rateLimiter struct {
	rl      *redis_rate.Limiter
	rdb     redis.UniversalClient
	keys    store.Keys
	account string
	msg     redis_rate.Limit // zero: no message limit
	req     redis_rate.Limit // zero: no request limit
	batch   int              // most messages per batch while msg is set

	mu          sync.Mutex
	pauseUntil  time.Time // 429 pause as last seen (local cache of RatePause)
	pauseReadAt time.Time
	pauseStep   time.Duration // last pause without Retry-After
	tokens      map[string]float64
}

// keys are the deployment's (Config.RatePrefix), shared by every shard.
func newRateLimiter(rdb redis.UniversalClient, keys store.Keys, account string, msgPerSec, reqPerSec, maxBatch int) *rateLimiter {
	l := &rateLimiter{rl: redis_rate.NewLimiter(rdb), rdb: rdb, keys: keys, account: account, batch: maxBatch,
		tokens: map[string]float64{}}
	if msgPerSec > 0 {
		// A batch is at most one second of messages; the bucket holds up to
		// two full batches (at most one second), so a former that wakes a
		// little late loses no tokens.
		l.batch = min(maxBatch, msgPerSec)
		l.msg = redis_rate.Limit{Rate: msgPerSec, Period: time.Second, Burst: max(l.batch, min(msgPerSec, 2*maxBatch))}
	}
	if reqPerSec > 0 {
		l.req = redis_rate.Limit{Rate: reqPerSec, Period: time.Second, Burst: 1}
	}
	metrics.RateLimit.WithLabelValues(account, rateKindMessages).Set(float64(msgPerSec))
	metrics.RateLimit.WithLabelValues(account, rateKindRequests).Set(float64(reqPerSec))
	// Every series of the account exists from the start (zero), so that
	// /metrics shows tokens waited, current rate and 429s seen before the
	// first wait.
	for _, kind := range []string{rateKindMessages, rateKindRequests} {
		metrics.RateWait.WithLabelValues(account, kind)
		metrics.RateTokens.WithLabelValues(account, kind)
		metrics.RateCurrent.WithLabelValues(account, kind)
	}
	metrics.ROXThrottled.WithLabelValues(account)
	metrics.ROXAuthPaused.WithLabelValues(account).Set(0)
	return l
}

// limited says whether the former must pace itself.
func (l *rateLimiter) limited() bool { return !l.msg.IsZero() || !l.req.IsZero() }

// take waits until the buckets grant n messages (at most the burst) and one
// request. It returns early with errRateWait when the wait would exceed
// maxWait (0: no bound) or ctx ends (then with ctx's error).
func (l *rateLimiter) take(ctx context.Context, n int, maxWait time.Duration) error {
	if !l.msg.IsZero() && n > 0 {
		if err := l.takeOne(ctx, l.keys.RateMessages(l.account), l.msg, min(n, l.msg.Burst), rateKindMessages, maxWait); err != nil {
			return err
		}
	}
	if !l.req.IsZero() {
		return l.takeOne(ctx, l.keys.RateRequests(l.account), l.req, 1, rateKindRequests, maxWait)
	}
	return nil
}

func (l *rateLimiter) takeOne(ctx context.Context, key string, lim redis_rate.Limit, n int, kind string, maxWait time.Duration) error {
	began := time.Now()
	defer func() {
		if w := time.Since(began); w > time.Millisecond {
			metrics.RateWait.WithLabelValues(l.account, kind).Add(w.Seconds())
		}
	}()
	errWait := 0
	for {
		res, err := l.rl.AllowN(ctx, key, lim, n)
		var d time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// Redis trouble: wait a little and ask again; the caller's
			// ctx bounds it.
			errWait++
			d = min(time.Duration(errWait)*50*time.Millisecond, time.Second)
		case res.Allowed > 0:
			metrics.RateTokens.WithLabelValues(l.account, kind).Add(float64(n))
			l.mu.Lock()
			l.tokens[kind] += float64(n)
			l.mu.Unlock()
			return nil
		default:
			d = max(res.RetryAfter, time.Millisecond)
		}
		if maxWait > 0 && time.Since(began)+d > maxWait {
			return &rateWait{Account: l.account, Kind: kind, Delay: d}
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// rateWait is returned by a handler run that would wait too long for
// tokens or a 429 pause: asynq runs the task again after Delay (not a
// failure).
type rateWait struct {
	Account, Kind string
	Delay         time.Duration
	// ExpiresAt is the earliest expiry of the batch's messages (zero:
	// none): the run comes back no later than just after it.
	ExpiresAt time.Time
}

func (e *rateWait) Error() string {
	return fmt.Sprintf("account %s is rate-limited (%s): trying again in %s", e.Account, e.Kind, e.Delay.Round(time.Millisecond))
}

// pauseLeft returns how long the account's 429 pause still runs, reading
// {P}:ratepause:<account> at most every refresh (0: read now).
func (l *rateLimiter) pauseLeft(ctx context.Context, refresh time.Duration) time.Duration {
	if l == nil {
		return 0
	}
	now := time.Now()
	l.mu.Lock()
	if refresh > 0 && now.Sub(l.pauseReadAt) < refresh {
		d := l.pauseUntil.Sub(now)
		l.mu.Unlock()
		return max(d, 0)
	}
	l.mu.Unlock()
	d, err := l.rdb.PTTL(ctx, l.keys.RatePause(l.account)).Result()
	if err != nil || d < 0 {
		d = 0
	}
	l.mu.Lock()
	l.pauseReadAt = now
	if until := now.Add(d); until.After(l.pauseUntil) || d == 0 {
		l.pauseUntil = until
	}
	left := l.pauseUntil.Sub(now)
	l.mu.Unlock()
	return max(left, 0)
}

// throttled records a 429 from ROX: it pauses the account for Retry-After
// (rounded up to the millisecond) or, without one, a pause doubling from
// throttlePauseInitial. It returns the pause. The key is only ever
// lengthened (SET ... GT keeps a longer pause another process set).
func (l *rateLimiter) throttled(ctx context.Context, retryAfter time.Duration) (time.Duration, error) {
	metrics.ROXThrottled.WithLabelValues(l.account).Inc()
	l.mu.Lock()
	d := retryAfter
	if d <= 0 {
		d = min(max(l.pauseStep*2, throttlePauseInitial), throttlePauseMax)
		l.pauseStep = d
	}
	d = d.Round(time.Millisecond)
	if d < retryAfter {
		d += time.Millisecond
	}
	until := time.Now().Add(d)
	if until.After(l.pauseUntil) {
		l.pauseUntil = until
	}
	l.pauseReadAt = time.Now()
	l.mu.Unlock()
	err := throttleScript.Run(ctx, l.rdb, []string{l.keys.RatePause(l.account)}, d.Milliseconds()).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return d, fmt.Errorf("worker: pause account %s after HTTP 429: %w", l.account, err)
	}
	return d, nil
}

// notThrottled ends the doubling after a request ROX did not answer 429.
func (l *rateLimiter) notThrottled() {
	l.mu.Lock()
	l.pauseStep = 0
	l.mu.Unlock()
}

// throttleScript sets the pause key to ARGV[1] ms unless a longer pause is
// already set.
var throttleScript = store.NewScript("worker.throttle", `
local left = redis.call('PTTL', KEYS[1])
if left >= tonumber(ARGV[1]) then return left end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[1])
return tonumber(ARGV[1])
`)

// sampleRates publishes the tokens taken since the last call per second
// (RateCurrent); called once a second.
func (l *rateLimiter) sampleRates(elapsed time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, kind := range []string{rateKindMessages, rateKindRequests} {
		metrics.RateCurrent.WithLabelValues(l.account, kind).Set(l.tokens[kind] / elapsed.Seconds())
		l.tokens[kind] = 0
	}
}

// is429 says whether err is ROX answering HTTP 429, and its Retry-After.
func is429(err error) (time.Duration, bool) {
	var e *rox.Error
	if errors.As(err, &e) && e.Kind == rox.KindHTTP && e.StatusCode == 429 {
		return e.RetryAfter, true
	}
	return 0, false
}

// ceilToSecond lengthens d so that now+d falls on a whole second or later:
// asynq stores a retry's time in whole seconds (truncated), which would
// otherwise run it up to a second early, before a Retry-After or a pause
// ends.
func ceilToSecond(now time.Time, d time.Duration) time.Duration {
	at := now.Add(d)
	sec := at.Unix()
	if at.Nanosecond() > 0 {
		sec++
	}
	return time.Unix(sec, 0).Sub(now)
}

// batchSizeFor returns how many tokens a run of batch bid pays for: its
// current recipients (an estimate: the claim may drop some).
func (w *Worker) batchSizeFor(ctx context.Context, bid string, fallback int) int {
	bi, err := w.b.Batch(ctx, bid)
	if err != nil {
		return fallback
	}
	return len(bi.IDs)
}

// payBeforeClaim makes a run of a batch respect the account's 429 pause and
// rate limit before it claims anything: it waits (at most
// maxInHandlerRateWait, then returns a rateWait for asynq) while the account
// is paused, and pays for the batch's recipients unless the former already
// did for this, its first run. A run that waits first sets expired the
// messages whose validity ran out (store ExpireDue), pays only for those
// left, and never waits past the earliest expiry of those: retries stop at
// expiry, whatever holds the account back.
func (w *Worker) payBeforeClaim(ctx context.Context, a *account, p payload, retried int) error {
	l := a.rl
	var due *store.DueExpiry
	expireDue := func() *store.DueExpiry {
		if due == nil {
			d, err := a.b.ExpireDue(ctx, p.Batch, time.Now())
			if err != nil {
				// The claim checks the expiry anyway; pay for the estimate.
				d = store.DueExpiry{Live: w.batchSizeFor(ctx, p.Batch, p.Recipients)}
			}
			if d.Expired > 0 {
				metrics.MessagesExpired.Add(float64(d.Expired))
				w.log.Info().Str("batch", p.Batch).Str("account", a.name).Int("expired", d.Expired).
					Msg("messages expired while their account waited (429 pause or rate limit): not sent")
			}
			due = &d
		}
		return due
	}
	if d := l.pauseLeft(ctx, 0); d > 0 {
		e := expireDue()
		if e.Live == 0 {
			// Nothing left to send: the claim finishes the batch.
			return nil
		}
		if d > maxInHandlerRateWait || (!e.Earliest.IsZero() && time.Now().Add(d).After(e.Earliest)) {
			return &rateWait{Account: l.account, Kind: "http_429", Delay: d, ExpiresAt: e.Earliest}
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		due = nil // read again after the wait
	}
	if !l.limited() || (retried == 0 && p.Paid > 0) {
		return nil
	}
	e := expireDue()
	if e.Live == 0 {
		return nil
	}
	n := 0
	if !l.msg.IsZero() {
		n = e.Live
	}
	maxWait := maxInHandlerRateWait
	if !e.Earliest.IsZero() {
		// Never wait in the handler past the earliest expiry.
		maxWait = min(maxWait, max(time.Until(e.Earliest), time.Millisecond))
	}
	err := l.take(ctx, n, maxWait)
	var rw *rateWait
	if errors.As(err, &rw) {
		rw.ExpiresAt = e.Earliest
	}
	return err
}

// payFormed pays the tokens of batch f the former has just formed, before
// its task is enqueued, for its messages still valid only: it first sets
// expired those whose validity ran out (store ExpireDue: history, stream
// entry, metric), and does so again whenever the wait for message tokens
// would end past the earliest expiry of those left. An expired backlog so
// costs the account no tokens: it neither delays the valid messages behind
// it nor ends expired one batch per token. It returns the message tokens
// paid: 0 when nothing is left to send (the claim finishes the batch) or
// ctx ended (the run pays, payBeforeClaim).
func (w *Worker) payFormed(ctx context.Context, a *account, f store.Formed) int {
	l := a.rl
	var paid int
	for {
		d, err := a.b.ExpireDue(ctx, f.ID, time.Now())
		if err != nil {
			// The claim checks the expiry anyway; pay for the batch.
			d = store.DueExpiry{Live: f.Size}
		}
		if d.Expired > 0 {
			metrics.MessagesExpired.Add(float64(d.Expired))
			w.log.Info().Str("batch", f.ID).Str("account", a.name).Int("expired", d.Expired).
				Msg("messages expired before their batch was paid for (rate limit): not sent, no tokens taken")
		}
		if d.Live == 0 {
			return 0
		}
		paid = d.Live
		if l.msg.IsZero() {
			break
		}
		var maxWait time.Duration // 0: no bound
		if !d.Earliest.IsZero() {
			maxWait = max(time.Until(d.Earliest), time.Millisecond)
		}
		err = l.takeOne(ctx, l.keys.RateMessages(l.account), l.msg, min(d.Live, l.msg.Burst), rateKindMessages, maxWait)
		if err == nil {
			break
		}
		var rw *rateWait
		if !errors.As(err, &rw) {
			return 0
		}
		// The tokens come after the earliest expiry: wait for it (nothing
		// taken yet), set those expired, and pay for the rest.
		t := time.NewTimer(time.Until(d.Earliest) + time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0
		case <-t.C:
		}
	}
	if !l.req.IsZero() {
		if err := l.takeOne(ctx, l.keys.RateRequests(l.account), l.req, 1, rateKindRequests, 0); err != nil {
			return 0
		}
	}
	return paid
}

// rateDelay is the retry delay of a rateWait.
func rateDelay(err error) (time.Duration, bool) {
	var rw *rateWait
	if !errors.As(err, &rw) {
		return 0, false
	}
	return rw.Delay, true
}

// taskAccountPause is the 429 pause left of the account of task t's batch
// (0 when t is not a batch task or its account is unknown).
func (w *Worker) taskAccountPause(t *asynq.Task) time.Duration {
	if t == nil || w.accts == nil {
		return 0
	}
	var p payload
	if json.Unmarshal(t.Payload(), &p) != nil {
		return 0
	}
	a, err := w.account(store.GroupAccount(p.Group))
	if err != nil {
		return 0
	}
	return a.rl.pauseLeft(context.Background(), time.Second)
}
