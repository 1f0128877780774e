package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// ErrShutdownBudget is returned by Run when a part did not stop within
// ROXD_SHUTDOWN_TIMEOUT and was abandoned (the process exits anyway; what
// it held is in Redis or the spool and is taken up by the next start).
var ErrShutdownBudget = errors.New("shutdown exceeded ROXD_SHUTDOWN_TIMEOUT")

// shutdownReserve is the part of ROXD_SHUTDOWN_TIMEOUT kept for closing
// the callback listener, the receiver and the Redis clients after the
// callback drain.
const shutdownReserve = 1500 * time.Millisecond

// workerShutdownTimeout is the asynq shutdown timeout handed to the worker:
// what is left of the budget once the callback drain and the reserve are
// set aside (at least one second).
func workerShutdownTimeout(budget, drain time.Duration) time.Duration {
	return max(budget-drain-shutdownReserve, time.Second)
}

// parts are the goroutines of Run, each named for the logs.
type parts struct {
	log    zerolog.Logger
	mu     sync.Mutex
	done   map[string]chan struct{}
	failed chan error // the first part that returned an error
}

func newParts(log zerolog.Logger) *parts {
	return &parts{log: log, done: map[string]chan struct{}{}, failed: make(chan error, 1)}
}

// start runs fn in its own goroutine.
func (p *parts) start(name string, fn func() error) {
	d := make(chan struct{})
	p.mu.Lock()
	p.done[name] = d
	p.mu.Unlock()
	go func() {
		defer close(d)
		if err := fn(); err != nil {
			select {
			case p.failed <- err:
			default:
			}
		}
	}()
}

// serve serves srv on ln until srv is shut down.
func (p *parts) serve(name string, srv *http.Server, ln net.Listener) {
	p.start(name, func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	})
}

// wait waits until part name has returned or until; false when it had not.
func (p *parts) wait(name string, until time.Time) bool {
	p.mu.Lock()
	d, ok := p.done[name]
	p.mu.Unlock()
	if !ok {
		return true
	}
	t := time.NewTimer(time.Until(until))
	defer t.Stop()
	select {
	case <-d:
		return true
	case <-t.C:
		return false
	}
}

// shutdownPlan is what shutdown stops, in order.
type shutdownPlan struct {
	budget, drain           time.Duration
	httpSrv, cbSrv          *http.Server // cbSrv nil without role callbacks
	stopWorker, stopRecv    context.CancelFunc
	hasWorker, hasCallbacks bool
	cbActivity              *activity // callbacks seen by the callback listener
}

// shutdown stops senders before receivers, within the budget
// (ROXD_SHUTDOWN_TIMEOUT) whatever Redis does:
//
//  1. intake: the internal listener (API, probes, metrics) takes no new
//     requests; API calls in flight finish (each within ROXD_API_TIMEOUT);
//  2. the worker stops forming batches and drains its ROX requests;
//  3. the callback listener keeps answering (storing, or spooling) for
//     ROXD_CALLBACK_DRAIN after the worker is done, and then while ROX keeps
//     posting (activity.drain), so that receipts of the last requests still
//     find it; then it closes, in-flight callbacks finish, and the
//     receiver's batchers stop;
//  4. Run's deferred calls close the Redis clients last.
//
// A step that overruns its share is abandoned (logged); the result is then
// ErrShutdownBudget.
func (p *parts) shutdown(pl shutdownPlan) error {
	began := time.Now()
	deadline := began.Add(pl.budget)
	// The worker and intake must be done by workerEnd so that the drain and
	// the reserve still fit.
	workerEnd := deadline.Add(-pl.drain - shutdownReserve)
	if !workerEnd.After(began) {
		workerEnd = deadline
	}
	var late []string
	bounded := func(name string, until time.Time, fn func(ctx context.Context) error) {
		ctx, cancel := context.WithDeadline(context.Background(), until)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- fn(ctx) }()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				p.log.Warn().Err(err).Str("part", name).Msg("shutdown step failed")
			}
			if err == nil {
				return
			}
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			late = append(late, name)
			p.log.Error().Str("part", name).Dur("budget", pl.budget).Msg("did not stop in time; abandoned")
		}
	}

	p.log.Info().Dur("budget", pl.budget).Dur("callback_drain", pl.drain).Msg("shutting down: intake first")
	bounded("http", workerEnd, pl.httpSrv.Shutdown)
	if pl.hasWorker {
		pl.stopWorker()
		if !p.wait("worker", workerEnd) {
			late = append(late, "worker")
			p.log.Error().Str("part", "worker").Dur("budget", pl.budget).Msg("worker did not stop in time; abandoned")
		}
	}
	if pl.hasCallbacks {
		took := pl.cbActivity.drain(pl.drain, deadline.Add(-shutdownReserve/2))
		p.log.Info().Dur("took", took.Round(time.Millisecond)).Msg("callback drain done; closing the callback listener")
		bounded("callback listener", deadline.Add(-shutdownReserve/4), pl.cbSrv.Shutdown)
		pl.stopRecv()
		if !p.wait("callbacks", deadline) {
			late = append(late, "callbacks")
			p.log.Error().Str("part", "callbacks").Dur("budget", pl.budget).Msg("receiver did not stop in time; abandoned")
		}
	}
	p.log.Info().Dur("took", time.Since(began).Round(time.Millisecond)).Strs("abandoned", late).Msg("shutdown done")
	if len(late) > 0 {
		return fmt.Errorf("%w (%s): %v", ErrShutdownBudget, pl.budget, late)
	}
	return nil
}
