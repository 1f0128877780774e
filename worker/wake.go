package worker

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
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
}

func (w *Worker) server(check time.Duration) *asynq.Server {
	return asynq.NewServer(w.asynqOpt, asynq.Config{
		Concurrency:              w.lanes.per,
		Queues:                   map[string]int{w.cfg.Queue: 1},
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
// are not running.
func (l *lanes) kick() {
	l.last.Store(time.Now().UnixNano())
	if l.running.Load() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped || len(l.hot) > 0 {
		return
	}
	for i := 0; i < l.nHot; i++ {
		s := l.w.server(l.w.cfg.TaskCheckInterval)
		if err := s.Start(l.mux); err != nil {
			l.w.log.Warn().Err(err).Msg("start a hot asynq lane (the base lane still polls)")
			break
		}
		l.hot = append(l.hot, s)
	}
	l.running.Store(len(l.hot) > 0)
}

// cool stops the hot servers when no task was enqueued for HotLinger.
func (l *lanes) cool(ctx context.Context) {
	for sleepCtx(ctx, min(l.w.cfg.HotLinger/2, time.Second)) {
		if !l.running.Load() || time.Since(time.Unix(0, l.last.Load())) < l.w.cfg.HotLinger {
			continue
		}
		l.mu.Lock()
		hot := l.hot
		l.hot = nil
		l.running.Store(false)
		l.mu.Unlock()
		for _, s := range hot {
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
	l.hot = nil
	l.running.Store(false)
	l.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range all {
		wg.Go(s.Shutdown)
	}
	wg.Wait()
	l.stops.Wait()
}
