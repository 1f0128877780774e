package worker

// This file keeps ROX's answers that Redis refused to record (OOM, READONLY
// after a failover, a dropped connection): a batch whose answer the worker
// holds is never sent again. See docs/ARCHITECTURE.md, "Duplicate guard".
//
//   - process: Record fails after ROX answered → holdAnswer journals the
//     answer (fsynced) and waits for the applier; the handler never returns
//     an error that would let a retry send again while the answer is held.
//   - awaitHeld, called before Claim: a redelivered or retried task of a
//     held batch waits for the apply instead of claiming.
//   - applyLoop: applies held answers with bounded exponential backoff until
//     Redis takes them, keeps the batch lock alive meanwhile where Redis
//     allows (PEXPIRE is not refused under OOM), and marks them done.
//   - Run: entries left by an earlier process are loaded by New and applied
//     before the asynq servers start.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/internal/journal"
	"github.com/redoxygen/roxd/internal/metrics"
	"github.com/redoxygen/roxd/internal/store"
)

// Bounds of the applier's backoff between attempts, and of one attempt.
const (
	applyInitial = 50 * time.Millisecond
	applyMax     = 2 * time.Second
	applyTimeout = 5 * time.Second
)

// ErrJournalDir is wrapped by New's errors about Config.JournalDir: it
// cannot be created or read, or another process holds it (then the error
// also wraps journal.ErrInUse).
var ErrJournalDir = errors.New("worker: JournalDir unusable")

// errJournalled means the batch's ROX answer is held in the local journal
// and not yet recorded in Redis. The task is retried later (not counted as
// a failure); it never sends: the retry waits for the apply at claim time.
var errJournalled = errors.New("worker: the batch's ROX answer is journalled locally and not yet recorded in Redis")

// held is one ROX answer waiting for its Redis record.
type held struct {
	e       journal.Entry
	durable bool // false when the journal write failed: held in memory only
	since   time.Time
	applied chan struct{}
	rec     store.Recorded // set before applied is closed
	tries   int
	warned  bool
}

// answers is the set of held answers, in journal order.
type answers struct {
	mu   sync.Mutex
	list []*held
	wake chan struct{}
}

func newAnswers() *answers { return &answers{wake: make(chan struct{}, 1)} }

func (a *answers) add(h *held) {
	a.mu.Lock()
	a.list = append(a.list, h)
	n := len(a.list)
	a.mu.Unlock()
	metrics.JournalPending.Set(float64(n))
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *answers) remove(h *held) {
	a.mu.Lock()
	for i, x := range a.list {
		if x == h {
			a.list = append(a.list[:i], a.list[i+1:]...)
			break
		}
	}
	n := len(a.list)
	a.mu.Unlock()
	metrics.JournalPending.Set(float64(n))
}

func (a *answers) find(bid string) *held {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, h := range a.list {
		if h.e.Batch == bid {
			return h
		}
	}
	return nil
}

func (a *answers) snapshot() []*held {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]*held(nil), a.list...)
}

func (a *answers) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.list)
}

// openJournal opens cfg.JournalDir and loads what an earlier process left.
func (w *Worker) openJournal() error {
	j, err := journal.Open(w.cfg.JournalDir)
	if errors.Is(err, journal.ErrInUse) {
		return fmt.Errorf("%w: %w; give each worker process its own", ErrJournalDir, err)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrJournalDir, err)
	}
	w.jr = j
	w.ans = newAnswers()
	for _, e := range j.Pending() {
		w.ans.add(&held{e: e, durable: true, since: time.Now(), applied: make(chan struct{})})
	}
	if tb := j.TornBytes(); tb > 0 {
		w.log.Warn().Str("dir", j.Dir()).Int64("bytes", tb).Msg("journal ended in a torn write (a crash while appending; never acknowledged): dropped")
	}
	return nil
}

// Close releases the journal directory. Run calls it when it returns; call
// it yourself for a Worker that never runs. Held answers stay on disk.
func (w *Worker) Close() error {
	if w.jr == nil {
		return nil
	}
	return w.jr.Close()
}

// holdAnswer is called when Record failed (rerr) after ROX answered. It
// journals the answer, hands it to the applier and waits for the apply
// until shortly before ctx's deadline. It returns what Record returned and
// true once applied; false when the answer is still held (the caller must
// then end the run without any further write and without an error that
// counts as a failure: see errJournalled).
func (w *Worker) holdAnswer(ctx context.Context, log zerolog.Logger, bid, token, reqID string, out []store.SendOutcome, at time.Time, rerr error) (store.Recorded, bool) {
	e := journal.Entry{Batch: bid, Token: token, RequestID: reqID, At: at.UTC(), Outcomes: make([]journal.Outcome, len(out))}
	sub := 0
	for i, o := range out {
		e.Outcomes[i] = journal.Outcome{ID: o.ID, Kind: string(rune(o.Kind)), Value: o.Value}
		if o.Kind == store.OutcomeSubmitted {
			sub++
		}
	}
	h := &held{since: time.Now(), applied: make(chan struct{})}
	je, jerr := w.jr.Append(e)
	if jerr != nil {
		// Still never resend: hold it in memory (lost only if this process
		// dies before Redis takes it).
		h.e = e
		log.Error().Err(jerr).AnErr("record_error", rerr).Str("request_id", reqID).Int("submitted", sub).
			Msg("JOURNAL WRITE FAILED after Redis refused ROX's answer: the answer is held in memory only until Redis takes it")
	} else {
		h.e, h.durable = je, true
		log.Warn().Err(rerr).Str("request_id", reqID).Int("recipients", len(out)).Int("submitted", sub).Uint64("seq", je.Seq).
			Msg("Redis refused ROX's answer: journalled; applying it until Redis takes it, the batch is not sent again meanwhile")
	}
	w.ans.add(h)
	if w.waitHeld(ctx, h) {
		return h.rec, true
	}
	return store.Recorded{}, false
}

// awaitHeld is the claim-time guard: while batch bid's answer is held it
// waits for the apply (until shortly before ctx's deadline). It reports
// whether the answer is still held, in which case the caller must not
// claim the batch.
func (w *Worker) awaitHeld(ctx context.Context, log zerolog.Logger, bid string) (stillHeld bool) {
	h := w.ans.find(bid)
	if h == nil {
		return false
	}
	log.Warn().Str("request_id", h.e.RequestID).Msg("batch's ROX answer is journalled and not yet in Redis: waiting for it instead of claiming (never resent)")
	return !w.waitHeld(ctx, h)
}

// waitHeld waits for h's apply until a second (or a tenth of the budget)
// before ctx's deadline, so that the handler's own answer reaches asynq
// before asynq's deadline does. It reports whether h was applied.
func (w *Worker) waitHeld(ctx context.Context, h *held) bool {
	wctx := ctx
	if dl, ok := ctx.Deadline(); ok {
		margin := min(time.Second, time.Until(dl)/10)
		var cancel context.CancelFunc
		wctx, cancel = context.WithDeadline(ctx, dl.Add(-margin))
		defer cancel()
	}
	select {
	case <-h.applied:
		return true
	case <-wctx.Done():
		return false
	}
}

// applyLoop applies held answers until ctx ends: at once when one is added,
// then with exponential backoff (applyInitial doubling to applyMax or a
// quarter of TaskTimeout, jittered) while any is left.
func (w *Worker) applyLoop(ctx context.Context) {
	// Attempts (and so lock renewals) come at least four times per lock TTL.
	ceil := min(applyMax, w.cfg.TaskTimeout/4)
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = min(applyInitial, ceil)
	bo.MaxInterval = ceil
	bo.MaxElapsedTime = 0
	bo.Multiplier = 2
	bo.RandomizationFactor = 0.2
	bo.Reset()
	for {
		left := w.applyHeld(ctx)
		var t *time.Timer
		var tick <-chan time.Time
		if left > 0 {
			t = time.NewTimer(bo.NextBackOff())
			tick = t.C
		} else {
			bo.Reset()
		}
		select {
		case <-ctx.Done():
		case <-w.ans.wake:
		case <-tick:
		}
		if t != nil {
			t.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// applyHeld makes one attempt at every held answer, in journal order, and
// returns how many are left.
func (w *Worker) applyHeld(ctx context.Context) int {
	for _, h := range w.ans.snapshot() {
		if ctx.Err() != nil {
			break
		}
		w.applyOne(ctx, h)
	}
	return w.ans.len()
}

// applyOne writes h with the same Record script as the handler, whatever
// holds the lock now: the outcome is ROX's truth (Record releases the lock
// only when it still holds h's token).
func (w *Worker) applyOne(ctx context.Context, h *held) {
	log := w.log.With().Str("batch", h.e.Batch).Str("request_id", h.e.RequestID).Logger()
	out := make([]store.SendOutcome, len(h.e.Outcomes))
	for i, o := range h.e.Outcomes {
		k := store.OutcomeRetry
		if len(o.Kind) == 1 {
			k = store.SendOutcomeKind(o.Kind[0])
		}
		out[i] = store.SendOutcome{ID: o.ID, Kind: k, Value: o.Value}
	}
	h.tries++
	rctx, cancel := context.WithTimeout(ctx, applyTimeout)
	rec, err := w.b.Record(rctx, h.e.Batch, h.e.Token, h.e.RequestID, out, h.e.At)
	cancel()
	if err != nil && !errors.Is(err, store.ErrBatchReply) {
		metrics.JournalApplyErrors.Inc()
		if !h.warned {
			h.warned = true
			log.Warn().Err(err).Msg("journalled ROX answer not yet applied: Redis still refuses; retrying with backoff (logged once per batch)")
		}
		w.keepLock(ctx, h)
		return
	}
	if err != nil {
		// The script ran (it wrote) but answered oddly: do not run it
		// forever.
		log.Error().Err(err).Msg("journalled ROX answer applied, but the record script's reply was not understood")
	}
	if h.durable {
		if derr := w.jr.Done(h.e.Seq); derr != nil {
			// Applied, but the file still says pending: the next start applies
			// it again (Record is idempotent for what ROX accepted).
			log.Error().Err(derr).Msg("journal: marking an applied answer done failed; it will be applied again at the next start")
		}
	}
	h.rec = rec
	w.ans.remove(h)
	metrics.JournalApplied.Inc()
	log.Info().Int("submitted", rec.Submitted).Int("failed", rec.Failed).Int("retry", rec.Retry).
		Int("attempts", h.tries).Dur("held_ms", time.Since(h.since)).Msg("journalled ROX answer applied to Redis")
	close(h.applied)
}

// keepLockScript extends the batch lock while it still holds the token.
// Neither GET nor PEXPIRE is refused under OOM (they allocate nothing), so
// this works while Redis refuses the record for memory; under READONLY
// nothing is writable and the lock may expire (see ARCHITECTURE.md).
var keepLockScript = store.NewScript("worker.keepLock", `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`)

func (w *Worker) keepLock(ctx context.Context, h *held) {
	rctx, cancel := context.WithTimeout(ctx, applyTimeout)
	defer cancel()
	_ = keepLockScript.Run(rctx, w.rdb, []string{w.b.Keys().Lock(h.e.Batch)}, h.e.Token, w.cfg.TaskTimeout.Milliseconds()).Err()
}
