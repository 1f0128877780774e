package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/internal/journal"
	"github.com/redoxygen/roxd/internal/logging"
	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/internal/trace"
	"github.com/redoxygen/roxd/rox"
)

// Sender sends one ROX request. *rox.Client satisfies it.
type Sender interface {
	Send(ctx context.Context, m rox.Messages) (*rox.SendResponse, error)
}

var _ Sender = (*rox.Client)(nil)

// Worker forms batches and sends them to ROX. Create it with New and run it
// with Run.
type Worker struct {
	cfg      Config
	rdb      redis.UniversalClient
	asynqOpt asynq.RedisConnOpt
	sender   Sender
	log      zerolog.Logger
	policy   rox.Policy
	b        *store.Batches

	client *asynq.Client
	op     *Operator // while Run runs
	idPfx  string

	handlers sync.WaitGroup // handler runs in flight (they may outlive asynq's abort)

	jr  *journal.Journal // ROX answers Redis refused (journal.go)
	ans *answers

	accts map[string]*account // by name (accounts.go)
	order []*account          // the default account first

	lanes             *lanes // asynq servers, while Run runs
	sem               chan struct{}
	gate              chan struct{} // lower-class Redis scripts in flight (gate.go)
	schedSig, syncSig signal        // the formers' signals are their accounts'
	asynqLog          asynq.Logger
	asynqLevel        asynq.LogLevel
}

// New validates cfg (after defaults), takes cfg.JournalDir (an error
// wrapping journal.ErrInUse when another process holds it) and returns a
// Worker. rdb serves roxd's own keys; asynqOpt is the same Redis for asynq.
// Run releases the journal directory when it returns; a Worker that is
// never run must be closed with Close.
func New(cfg Config, rdb redis.UniversalClient, asynqOpt asynq.RedisConnOpt, sender Sender, log zerolog.Logger) (*Worker, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case rdb == nil:
		return nil, fmt.Errorf("%w: nil redis client", ErrConfig)
	case asynqOpt == nil:
		return nil, fmt.Errorf("%w: nil asynq RedisConnOpt", ErrConfig)
	case sender == nil:
		return nil, fmt.Errorf("%w: nil Sender", ErrConfig)
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	w := &Worker{
		cfg:      cfg,
		rdb:      rdb,
		asynqOpt: asynqOpt,
		sender:   sender,
		log:      log.With().Str("component", "worker").Logger(),
		policy:   rox.NewPolicy(cfg.PermanentCodes),
		b: store.NewBatches(rdb, store.NewKeys(cfg.Store.Prefix), cfg.Store.StatusTTL).WithReconcile(store.ReconcileParams{
			Window: cfg.ReconcileWindow, Default: cfg.Ambiguous, MaxAttempts: cfg.MaxAttempts,
		}).WithExpiry(store.ExpiryParams{Stream: cfg.ReceiptsStream, MaxLen: cfg.StreamMaxLen, AccountID: cfg.AccountID}).
			WithReplicas(cfg.Store.Replicas),
		gate:  make(chan struct{}, heavyScripts),
		idPfx: "b" + time.Now().UTC().Format("060102150405") + "-" + hex.EncodeToString(rnd[:]) + "-",
	}
	w.setupAccounts(sender)
	if err := w.openJournal(); err != nil {
		return nil, err
	}
	return w, nil
}

// Config returns the worker's configuration, defaults filled in.
func (w *Worker) Config() Config { return w.cfg }

// Run first applies the ROX answers an earlier process left in the journal
// (those Redis still refuses stay held: their batches are not claimed until
// the applier gets them in), then starts the journal applier, the asynq
// servers, the scheduler, the former and the reaper, and blocks until ctx
// ends. Then it stops the former and the scheduler
// first, shuts the asynq servers down (unfinished tasks go back to pending
// after ShutdownTimeout), waits for handler runs and returns nil. Nothing is
// lost: messages are in records, ready lists and batches.
func (w *Worker) Run(ctx context.Context) error {
	defer w.Close()
	// ROX answers an earlier process could not record: apply them before
	// claiming anything. Those Redis still refuses stay held, and their
	// batches are not claimed (awaitHeld) until the applier gets them in.
	if n := w.ans.len(); n > 0 {
		w.log.Warn().Int("answers", n).Str("dir", w.jr.Dir()).Msg("journal holds ROX answers an earlier run could not record: applying them before claiming")
		if left := w.applyHeld(ctx); left > 0 {
			w.log.Warn().Int("answers", left).Msg("journalled ROX answers still refused by Redis: their batches are not claimed until applied")
		}
	}
	applyCtx, stopApply := context.WithCancel(context.WithoutCancel(ctx))
	applyDone := make(chan struct{})
	go func() { defer close(applyDone); w.applyLoop(applyCtx) }()
	defer func() { stopApply(); <-applyDone }()

	w.client = asynq.NewClient(w.asynqOpt)
	defer w.client.Close()
	op, err := NewOperator(w.cfg, w.rdb, w.asynqOpt, w.log)
	if err != nil {
		return err
	}
	defer op.Close()
	op.enq = w.enqueueBatch
	w.op = op

	nLanes := w.cfg.DequeueLanes
	mux := asynq.NewServeMux()
	mux.Handle(TaskType, w)
	mux.HandleFunc(TaskTypeSchedule, w.processSchedule)
	w.asynqLog, w.asynqLevel = logging.Asynq(w.log), logging.AsynqLevel(w.log.GetLevel())
	// One base lane always runs; lanes-1 hot ones (at least one) run while
	// tasks are being enqueued (wake.go). The semaphore keeps the requests
	// in flight within SendConcurrency whatever runs.
	w.lanes = &lanes{w: w, mux: mux, per: (w.cfg.SendConcurrency + nLanes - 1) / nLanes, nHot: max(nLanes-1, 1)}
	w.sem = make(chan struct{}, w.cfg.SendConcurrency)
	shutdown := func() {
		w.lanes.shutdown()
		w.handlers.Wait()
	}
	if err := w.lanes.start(); err != nil {
		shutdown()
		return fmt.Errorf("worker: start asynq server: %w", err)
	}
	w.log.Info().Str("queue", w.cfg.Queue).Int("lanes", nLanes).Int("concurrency", w.cfg.SendConcurrency).
		Str("account", w.cfg.AccountID).Int("accounts", len(w.order)).Msg("worker started")

	loopCtx, stopLoops := context.WithCancel(ctx)
	var loops sync.WaitGroup
	w.schedSig, w.syncSig = newSignal(), newSignal()
	sigs := []signal{w.schedSig, w.syncSig}
	for _, a := range w.order {
		a.formSig, a.highSig = newSignal(), newSignal()
		sigs = append(sigs, a.formSig, a.highSig)
	}
	loops.Add(6 + 2*len(w.order))
	go func() { defer loops.Done(); w.wakeLoop(loopCtx, sigs...) }()
	go func() { defer loops.Done(); w.lanes.cool(loopCtx) }()
	go func() { defer loops.Done(); w.rateLoop(loopCtx) }()
	go func() { defer loops.Done(); w.syncLoop(loopCtx) }()
	for _, a := range w.order {
		// Two formers per account (high, and the rest): one account
		// waiting for its tokens or its pause never holds up another, and
		// a high message never waits for a bulk form call.
		go func() { defer loops.Done(); w.formLoop(loopCtx, a, true) }()
		go func() { defer loops.Done(); w.formLoop(loopCtx, a, false) }()
	}
	go func() { defer loops.Done(); w.scheduleLoop(loopCtx) }()
	go func() { defer loops.Done(); w.reapLoop(loopCtx) }()

	<-ctx.Done()
	// Senders stop before receivers: no new batches, then drain handlers.
	stopLoops()
	loops.Wait()
	shutdown()
	w.log.Info().Msg("worker stopped")
	return nil
}

// formPerCall bounds the batches of each priority one Form script makes:
// each full batch costs about a millisecond of Redis (much more on a
// starved machine), and the loop calls again at once.
const formPerCall = 2

// highEnqueuers bounds the enqueues of high batches in flight per account
// (formLoop).
const highEnqueuers = 8

// formLoop forms the batches of account a and enqueues their tasks: every
// FormInterval while messages wait in ready lists, else when woken (an
// enqueue published on {P}:wake, the scheduler moved messages) or every
// IdleInterval.
//
// Each account has two formers. The high one (high true) forms only high
// groups, without Linger (a high message is formed as soon as it is seen;
// under a flood MaxWaiting still makes batches fill instead of
// multiplying), with its own batch ids and sequence; its script is short
// and never waits at the gate (gate.go). The other forms normal and bulk:
// a high message never waits for its bulk form script or for the asynq
// enqueues of the bulk batches that script formed.
func (w *Worker) formLoop(ctx context.Context, a *account, high bool) {
	p := store.FormParams{
		MaxBatch:   w.cfg.MaxBatch,
		Linger:     w.cfg.Linger,
		MaxWaiting: w.cfg.MaxWaiting,
		// A bulk backlog stays in its ready list, a few batches per
		// handler ahead of the senders.
		MaxWaitingBulk: 2 * w.cfg.SendConcurrency,
		MaxForm:        formPerCall,
		IDPrefix:       a.idPfx,
		Priorities:     []string{store.PriorityNormal, store.PriorityBulk},
	}
	sig, gateAs := a.formSig, store.PriorityBulk
	if high {
		p.Linger = 0
		p.IDPrefix = a.idPfx + "h"
		p.Priorities = []string{store.PriorityHigh}
		sig, gateAs = a.highSig, store.PriorityHigh
	}
	// The high former enqueues the tasks of what it formed in goroutines
	// of their own (at most highEnqueuers at once) and forms again at
	// once: a high message that arrives while the tasks of the one before
	// are enqueued (asynq's enqueue script, then MarkEnqueued: two round
	// trips) waits for one form round trip, and batches formed back to
	// back do not queue behind each other's enqueues. Under a rate limit
	// it stays one batch at a time, its tokens taken before it forms the
	// next (as the other former does).
	enqueue := func(formed []store.Formed, limited bool) { w.enqueueFormed(ctx, a, formed, limited) }
	if high {
		var enqs sync.WaitGroup
		slots := make(chan struct{}, highEnqueuers)
		defer enqs.Wait()
		enqueue = func(formed []store.Formed, limited bool) {
			if limited {
				w.enqueueFormed(ctx, a, formed, limited)
				return
			}
			slots <- struct{}{}
			enqs.Go(func() {
				defer func() { <-slots }()
				w.enqueueFormed(ctx, a, formed, limited)
			})
		}
	}
	var lastWarn time.Time
	var seq uint64
	busy := true
	for {
		if busy {
			if !sleepCtx(ctx, w.cfg.FormInterval) {
				return
			}
		} else if !waitWork(ctx, sig, w.cfg.IdleInterval) {
			return
		}
		p.MaxForm = formPerCall
		p.MaxBatch = w.cfg.MaxBatch
		if a.rl.pauseLeft(ctx, 20*time.Millisecond) > 0 {
			// ROX answered 429: the whole account waits (ratelimit.go).
			continue
		}
		limited := a.rl.limited()
		if limited {
			// One batch at a time, at most what the bucket can grant; its
			// tokens are taken before its task exists.
			p.MaxForm = 1
			p.MaxBatch = a.rl.batch
		}
		probing := false
		if a.paused.Load() {
			// After an auth pause one batch (of either former) probes ROX;
			// more follow only when it succeeds (authOK clears paused).
			busy = true
			if !a.takeProbe(w.cfg.AuthPauseInitial) {
				continue
			}
			probing = true
			p.MaxForm = 1
		}
		formedAny, failed := false, false
		for {
			p.Seq = seq
			callAt := time.Now()
			release, err := w.heavy(ctx, gateAs)
			if err != nil {
				break
			}
			formed, err := a.b.Form(ctx, p, callAt)
			release()
			if probing && len(formed) == 0 {
				// Nothing of this former's to probe with (or still paused
				// in Redis): the other former, or the next call, may.
				a.giveProbe()
			}
			if trace.On() {
				now := time.Now()
				for _, f := range formed {
					trace.Mark(trace.FormCall, f.ID, callAt)
					trace.Mark(trace.Formed, f.ID, now)
				}
			}
			if err != nil {
				failed = true
				if !errors.Is(err, store.ErrAuthPaused) {
					// The script may have run and formed batches whose reply
					// never arrived (a connection cut by a Redis restart):
					// never use their ids again, or the next batch would
					// overwrite one and leave its messages in no batch.
					// (up to MaxForm per priority: three of them)
					seq += uint64(3 * p.MaxForm)
				}
				if !errors.Is(err, store.ErrAuthPaused) && ctx.Err() == nil && time.Since(lastWarn) > time.Second {
					lastWarn = time.Now()
					w.log.Warn().Err(err).Str("account", a.name).Bool("high", high).Msg("form batches (logged at most once a second)")
				}
				break
			}
			formedAny = formedAny || len(formed) > 0
			seq += uint64(len(formed))
			if len(formed) > 0 {
				enqueue(formed, limited)
			}
			if len(formed) < p.MaxForm || p.MaxForm == 1 {
				break
			}
		}
		switch {
		case a.paused.Load() || formedAny:
			busy = true
		case failed:
			// Paused by another process, or Redis failing: retry at the
			// idle pace, not every millisecond.
			busy = false
		case high:
			// Keep ticking while high messages wait (a partial batch held
			// back by MaxWaiting).
			waiting, err := a.b.HasReadyOf(ctx, store.PriorityHigh)
			busy = err == nil && waiting
		default:
			// Nothing formed: keep ticking only while messages wait (for
			// Linger, or for a handler to take a waiting batch).
			waiting, err := w.b.HasReady(ctx)
			busy = err == nil && waiting
		}
	}
}

// enqueueFormed enqueues the tasks of the batches one Form call made (with
// a rate limit, paying for each first) and marks them enqueued.
func (w *Worker) enqueueFormed(ctx context.Context, a *account, formed []store.Formed, limited bool) {
	enqueued := make([]string, 0, len(formed))
	for _, f := range formed {
		pl := w.batchPayload(f.ID, f.Group, f.Size, f.First)
		if limited {
			// Pay for exactly the batch's messages still valid,
			// waiting for the tokens. Stopped meanwhile: the task
			// goes unpaid and its run pays (payBeforeClaim).
			pl.Paid = w.payFormed(ctx, a, f)
		}
		// Enqueue even when ctx ended: the batch exists and must get
		// its task (the reaper is the fallback).
		ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err := w.enqueueTask(ectx, pl)
		cancel()
		if err != nil {
			w.log.Warn().Err(err).Str("batch", f.ID).Msg("enqueue batch task; the reaper will retry")
			continue
		}
		trace.Mark(trace.Enqueued, f.ID, time.Now())
		enqueued = append(enqueued, f.ID)
	}
	if len(enqueued) > 0 {
		ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := w.b.MarkEnqueued(ectx, enqueued...); err != nil {
			w.log.Warn().Err(err).Msg("mark batches enqueued; the sweep will take their tasks as never enqueued")
		}
		cancel()
	}
}

// rateLoop publishes the tokens this process takes per second.
func (w *Worker) rateLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, a := range w.order {
				a.rl.sampleRates(now.Sub(last))
			}
			last = now
		}
	}
}

// enqueue enqueues the task of batch p.Batch; a task that already exists
// (same TaskID) counts as done. The batch record then says its task exists
// (a task missing later was deleted by an operator).
func (w *Worker) enqueue(ctx context.Context, p payload) error {
	if err := w.enqueueTask(ctx, p); err != nil {
		return err
	}
	return w.b.MarkEnqueued(ctx, p.Batch)
}

func (w *Worker) enqueueTask(ctx context.Context, p payload) error {
	if w.lanes != nil {
		defer w.lanes.kick(p.Priority == store.PriorityHigh) // a task to take: poll fast for a while
	}
	body, _ := json.Marshal(p)
	_, err := w.client.EnqueueContext(ctx, asynq.NewTask(TaskType, body),
		asynq.TaskID(p.Batch), asynq.Queue(store.PriorityQueue(w.cfg.Queue, p.Priority)),
		asynq.MaxRetry(w.cfg.MaxAttempts-1), asynq.Timeout(w.cfg.TaskTimeout),
		asynq.Retention(w.cfg.TaskRetention))
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("worker: enqueue batch %s: %w", p.Batch, err)
	}
	return nil
}

// enqueueBatch enqueues the task of batch id from its record.
func (w *Worker) enqueueBatch(ctx context.Context, id string) error {
	bi, err := w.b.Batch(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrNoBatch) {
			return nil
		}
		return err
	}
	return w.enqueue(ctx, w.batchPayload(id, bi.Group, len(bi.IDs), bi.IDs[:min(len(bi.IDs), payloadFirstIDs)]))
}

// scheduleLoop moves due scheduled messages into their ready lists. It
// sleeps until the next scheduled message is due for hand-over (at least
// ScheduleInterval, at most IdleInterval), or until an enqueue wakes it.
func (w *Worker) scheduleLoop(ctx context.Context) {
	const limit = 1000
	var lastWarn time.Time
	wait := time.Duration(0)
	for {
		if !sleepCtx(ctx, min(wait, w.cfg.ScheduleInterval)) {
			return
		}
		if wait > w.cfg.ScheduleInterval && !waitWork(ctx, w.schedSig, wait-w.cfg.ScheduleInterval) {
			return
		}
		lead := w.cfg.Store.ScheduleLead
		wait = w.cfg.IdleInterval
		next, ok, err := w.b.NextScheduled(ctx)
		if err != nil {
			if ctx.Err() == nil && time.Since(lastWarn) > 10*time.Second {
				lastWarn = time.Now()
				w.log.Warn().Err(err).Msg("peek scheduled messages")
			}
			continue
		}
		if !ok {
			continue
		}
		if d := time.Until(next.Add(-lead)); d > 0 {
			wait = max(min(d, w.cfg.IdleInterval), w.cfg.ScheduleInterval)
			continue
		}
		wait = w.cfg.ScheduleInterval
		for ctx.Err() == nil {
			seen, moved, err := w.b.MoveDue(ctx, time.Now().Add(lead), limit)
			if err != nil {
				if ctx.Err() == nil && time.Since(lastWarn) > 10*time.Second {
					lastWarn = time.Now()
					w.log.Warn().Err(err).Msg("move due scheduled messages")
				}
				break
			}
			if moved > 0 {
				for _, a := range w.order {
					a.formSig.kick()
					a.highSig.kick()
				}
				w.log.Debug().Int("moved", moved).Msg("scheduled messages handed to their groups")
			}
			if seen < limit {
				break
			}
		}
	}
}

// syncLoop keeps one asynq task per schedule group (Operator.SyncGroups):
// at most every ScheduleInterval when woken, at least every IdleInterval.
func (w *Worker) syncLoop(ctx context.Context) {
	for {
		if !sleepCtx(ctx, w.cfg.ScheduleInterval) {
			return
		}
		if !waitWork(ctx, w.syncSig, max(w.cfg.IdleInterval-w.cfg.ScheduleInterval, 0)) {
			return
		}
		w.op.SyncGroups(ctx)
	}
}

// reapLoop re-enqueues the task of batches older than ReapAge (a crash
// between forming and enqueueing leaves a batch without a task). A batch
// whose task exists (pending, retry, archived) answers TaskID conflict.
func (w *Worker) reapLoop(ctx context.Context) {
	t := time.NewTicker(w.cfg.ReapInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.reap(ctx)
	}
}

func (w *Worker) reap(ctx context.Context) {
	w.op.Sweep(ctx, time.Now().Add(-w.cfg.ReapAge))
}
