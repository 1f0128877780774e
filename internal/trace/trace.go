// Package trace lets a benchmark see when a batch passes each step of the
// worker (formed, task enqueued, handler start, claimed) without a log line
// per batch: the worker calls Mark at each step, which costs one atomic load
// while no hook is set (always, outside `roxd bench priority`).
package trace

import (
	"sync/atomic"
	"time"
)

// Steps of a batch, in order.
const (
	FormCall = "form_call" // the Form call that formed it started
	Formed   = "formed"    // its Form call returned
	Enqueued = "enqueued"  // its asynq task was enqueued
	Handler  = "handler"   // a handler run started
	Claimed  = "claimed"   // the claim script returned
)

// Hook receives one step of batch at time t. It must be safe for
// concurrent use and quick.
type Hook func(step, batch string, t time.Time)

var hook atomic.Pointer[Hook]

// Set installs h (nil removes it).
func Set(h Hook) {
	if h == nil {
		hook.Store(nil)
		return
	}
	hook.Store(&h)
}

// On reports whether a hook is installed.
func On() bool { return hook.Load() != nil }

// Mark reports step of batch at t to the hook, if any.
func Mark(step, batch string, t time.Time) {
	if h := hook.Load(); h != nil {
		(*h)(step, batch, t)
	}
}
