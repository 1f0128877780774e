package worker

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/redoxygen/roxd/internal/store"
)

// No polling while idle. The producer publishes on {P}:wake with every
// enqueue; the former, the scheduler and the schedule-group sync wait on
// that (and on a slow IdleInterval safety tick) instead of ticking. The
// former ticks every FormInterval only while messages wait in ready lists.
// asynq polls for tasks with a sleep (TaskCheckInterval) when its queues
// are empty: one lane always runs with the slow IdleInterval poll, and the
// other lanes (polling every TaskCheckInterval) run only while this process
// enqueued a task within HotLinger.

// signal is a wake-up with no payload: a kick while one is pending is
// merged into it, so a kick is never lost and never blocks.
type signal chan struct{}

func newSignal() signal { return make(signal, 1) }

func (s signal) kick() {
	select {
	case s <- struct{}{}:
	default:
	}
}

// wakeLoop subscribes to {P}:wake and kicks every signal for each message.
// go-redis resubscribes after a lost connection; a notification lost
// meanwhile costs at most IdleInterval.
func (w *Worker) wakeLoop(ctx context.Context, sigs ...signal) {
	sub := w.rdb.Subscribe(ctx, w.b.Keys().Wake())
	defer sub.Close()
	ch := sub.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-ch:
			if !ok {
				return
			}
			for _, s := range sigs {
				s.kick()
			}
		}
	}
}

// waitWork waits until ctx ends (false), sig is kicked, or d passes.
func waitWork(ctx context.Context, sig signal, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-sig:
		return true
	case <-t.C:
		return true
	}
}

// sleepCtx waits d unless ctx ends first (false).
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// lanes owns the asynq servers of the process: one that always runs
// (polling every IdleInterval when its queue is empty) and hot ones
// (polling every TaskCheckInterval), started by kick and stopped HotLinger
// after the last kick.
type lanes struct {
	w       *Worker
	mux     *asynq.ServeMux
	per     int
	nHot    int
	mu      sync.Mutex
	base    *asynq.Server
	hot     []*asynq.Server
	stopped bool
	last    atomic.Int64 // unix nanos of the last kick
	running atomic.Bool  // hot servers up (read without mu in kick)
	stops   sync.WaitGroup

	// The reserve lane runs only while high tasks are enqueued (its 1 ms
	// poll is ~1,000 scripts a second): started by a kick for a high task,
	// stopped HotLinger after the last one.
	reserve   *asynq.Server
	lastHigh  atomic.Int64 // unix nanos of the last high kick
	reserveOn atomic.Bool  // reserve is up (read without mu in kick)
}

// Priorities (README, "Priority"): one asynq queue per priority. Every lane
// serves them strictly (high, then normal, then bulk: a high task is the
// next one taken whenever a handler is free). While the lanes are hot two
// more servers of one handler each run beside them: the floor lane serves
// only normal and bulk (equal weights), so neither is ever starved by a
// higher class, and the reserve lane (HighReserve handlers) serves only
// high, so a high task never waits for a bulk request to end when every
// other handler holds one. The reserve lane polls every reservePoll: a high
// task is taken about a millisecond after it is enqueued, not five.
// Their handlers do not count against SendConcurrency (reservedKey).
func (w *Worker) server(check time.Duration) *asynq.Server {
	return w.serverOf(check, w.lanes.per, map[string]int{
		store.PriorityQueue(w.cfg.Queue, store.PriorityHigh):   3,
		store.PriorityQueue(w.cfg.Queue, store.PriorityNormal): 2,
		store.PriorityQueue(w.cfg.Queue, store.PriorityBulk):   1,
	}, true)
}

// floorServer is the floor lane, reserveServer the reserve lane (see
// server).
func (w *Worker) floorServer() *asynq.Server {
	return w.serverOf(w.cfg.TaskCheckInterval, 1, map[string]int{
		store.PriorityQueue(w.cfg.Queue, store.PriorityNormal): 1,
		store.PriorityQueue(w.cfg.Queue, store.PriorityBulk):   1,
	}, false)
}

func (w *Worker) reserveServer() *asynq.Server {
	return w.serverOf(min(w.cfg.TaskCheckInterval, reservePoll), w.cfg.HighReserve,
		map[string]int{store.PriorityQueue(w.cfg.Queue, store.PriorityHigh): 1}, false)
}

// reservePoll is the reserve lane's poll while its queue is empty (asynq
// sleeps 0.5 to 1.5 times it between two dequeues of one server: about a
// thousand cheap scripts a second, only while the lanes are hot).
const reservePoll = time.Millisecond

// reservedKey marks a handler run of the floor or reserve lane: it does not
// wait for the SendConcurrency semaphore.
type reservedKey struct{}

// reservedMux serves the floor and reserve lanes: mux, runs marked.
func reservedMux(w *Worker) *asynq.ServeMux {
	m := asynq.NewServeMux()
	m.HandleFunc(TaskType, func(ctx context.Context, t *asynq.Task) error {
		return w.ProcessTask(context.WithValue(ctx, reservedKey{}, true), t)
	})
	m.HandleFunc(TaskTypeSchedule, w.processSchedule)
	return m
}

func (w *Worker) serverOf(check time.Duration, conc int, queues map[string]int, strict bool) *asynq.Server {
	return asynq.NewServer(w.asynqOpt, asynq.Config{
		Concurrency:              conc,
		Queues:                   queues,
		StrictPriority:           strict,
		TaskCheckInterval:        check,
		DelayedTaskCheckInterval: w.cfg.DelayedTaskCheckInterval,
		ShutdownTimeout:          w.cfg.ShutdownTimeout,
		RetryDelayFunc:           w.retryDelay,
		IsFailure:                isFailure,
		Logger:                   w.asynqLog,
		LogLevel:                 w.asynqLevel,
	})
}

// start starts the base server.
func (l *lanes) start() error {
	l.base = l.w.server(max(l.w.cfg.IdleInterval, l.w.cfg.TaskCheckInterval))
	return l.base.Start(l.mux)
}

// kick notes that a task was enqueued and starts the hot servers when they
// are not running; for a high task (high) also the reserve lane.
func (l *lanes) kick(high bool) {
	now := time.Now().UnixNano()
	l.last.Store(now)
	if high {
		l.lastHigh.Store(now)
	}
	if l.running.Load() && (!high || l.reserveOn.Load()) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	if len(l.hot) == 0 {
		for i := 0; i < l.nHot; i++ {
			s := l.w.server(l.w.cfg.TaskCheckInterval)
			if err := s.Start(l.mux); err != nil {
				l.w.log.Warn().Err(err).Msg("start a hot asynq lane (the base lane still polls)")
				break
			}
			l.hot = append(l.hot, s)
		}
		if len(l.hot) > 0 {
			if s := l.w.floorServer(); s.Start(reservedMux(l.w)) != nil {
				l.w.log.Warn().Msg("start the floor asynq lane (the strict lanes still serve every priority)")
			} else {
				l.hot = append(l.hot, s)
			}
		}
		l.running.Store(len(l.hot) > 0)
	}
	if high && l.reserve == nil {
		s := l.w.reserveServer()
		if err := s.Start(reservedMux(l.w)); err != nil {
			l.w.log.Warn().Err(err).Msg("start the reserve asynq lane (the strict lanes still serve high first)")
			return
		}
		l.reserve = s
		l.reserveOn.Store(true)
	}
}

// cool stops the hot servers when no task was enqueued for HotLinger, and
// the reserve lane when no high task was.
func (l *lanes) cool(ctx context.Context) {
	for sleepCtx(ctx, min(l.w.cfg.HotLinger/2, time.Second)) {
		var stop []*asynq.Server
		l.mu.Lock()
		if l.running.Load() && time.Since(time.Unix(0, l.last.Load())) >= l.w.cfg.HotLinger {
			stop = append(stop, l.hot...)
			l.hot = nil
			l.running.Store(false)
		}
		if l.reserve != nil && time.Since(time.Unix(0, l.lastHigh.Load())) >= l.w.cfg.HotLinger {
			stop = append(stop, l.reserve)
			l.reserve = nil
			l.reserveOn.Store(false)
		}
		l.mu.Unlock()
		for _, s := range stop {
			l.stops.Add(1)
			go func() { defer l.stops.Done(); s.Shutdown() }()
		}
	}
}

// shutdown stops every server and waits for them.
func (l *lanes) shutdown() {
	l.mu.Lock()
	l.stopped = true
	all := append([]*asynq.Server(nil), l.hot...)
	if l.base != nil {
		all = append(all, l.base)
	}
	if l.reserve != nil {
		all = append(all, l.reserve)
	}
	l.hot, l.reserve = nil, nil
	l.running.Store(false)
	l.reserveOn.Store(false)
	l.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range all {
		wg.Go(s.Shutdown)
	}
	wg.Wait()
	l.stops.Wait()
}
