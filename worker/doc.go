// Package worker hands queued messages to ROX. It runs, in one process:
//
//   - a scheduler that moves due scheduled messages (SendAt - lead) into the
//     ready list of their SendLater group;
//   - a former that coalesces each group's ready list into batches of up to
//     500 messages and enqueues one asynq task ("rox:send") per batch;
//   - DequeueLanes asynq servers whose handler claims a batch (under a
//     lock, skipping cancelled, suppressed and already-submitted messages),
//     sends it as ONE ROX request and records every SMSId in one script;
//   - a reaper that re-enqueues batches whose task was never enqueued.
//
// asynq owns retries (only the recipients that failed retryably stay in a
// batch), archive and crash recovery. See docs/ARCHITECTURE.md.
package worker
