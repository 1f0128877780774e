package worker

import (
	"context"

	"github.com/redoxygen/roxd/internal/store"
)

// Redis runs one command at a time, and a client's command waits for every
// command read before it in the same event-loop pass. Sixteen handlers of
// bulk batches each send a claim or record script of up to 500 messages
// (milliseconds of Redis each): a high message's every round trip (its
// form, asynq enqueue and dequeue, claim) would wait behind all of them.
// The gate lets at most heavyScripts of those lower-class scripts be in
// Redis at once; high ones never wait for it. Redis stays busy (one script
// runs while the next one's reply travels), so bulk throughput barely
// moves, and a high round trip waits for at most heavyScripts scripts.
const heavyScripts = 2

// priorityKey carries the priority of a task's batch from ProcessTask to
// process.
type priorityKey struct{}

// gated reports whether the scripts of a batch of priority p go through
// the gate.
func gated(p string) bool { return p != store.PriorityHigh }

// heavy takes a place at the gate for a script of a batch of priority p,
// waiting for ctx; release gives it back. A high batch (or a Worker
// without a gate: tests that call process directly) never waits.
func (w *Worker) heavy(ctx context.Context, p string) (release func(), err error) {
	if w.gate == nil || !gated(p) {
		return func() {}, nil
	}
	select {
	case w.gate <- struct{}{}:
		return func() { <-w.gate }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// heavyNow is heavy for a write that must happen whatever ctx says (the
// record of ROX's answer): it waits without a deadline; the gate is held
// only for one script, each bounded by the client's timeouts.
func (w *Worker) heavyNow(p string) func() {
	release, _ := w.heavy(context.Background(), p)
	return release
}

// ctxPriority is the priority of the batch process runs (ProcessTask puts
// it in ctx; an operator's run, without it, counts as normal).
func ctxPriority(ctx context.Context) string {
	if p, ok := ctx.Value(priorityKey{}).(string); ok {
		return p
	}
	return store.PriorityNormal
}
