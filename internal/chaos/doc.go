// Package chaos runs roxd under the faults of a bad week and counts what
// went wrong: `roxd chaos`.
//
// Run starts a real redis-server (appendonly yes, in a temporary
// directory, on a private loopback port), the ROX simulator (`roxd sim`)
// and roxd itself as child processes split the way production runs them
// (`roxd serve` with ROXD_ROLES=api, =worker and =callbacks), offers
// Config.Messages messages through POST /v1/messages/batch, and meanwhile
// kills the worker with SIGKILL while ROX requests are in flight, stops it
// with SIGTERM, restarts Redis, makes Redis refuse writes (maxmemory 1,
// then REPLICAOF a master that does not exist) and finally runs one
// all-roles process that it stops with SIGTERM while receipts are in
// flight. It then waits, bounded by Config.Settle, until no work is left
// (no batch, no asynq task, no deferred callback, no message waiting to be
// sent, no pending delivery at the simulator) and counts, from the
// simulator's record, the message records and the rox:receipts stream,
// the Tally: messages lost, SMS sent twice, receipts the simulator could
// not deliver, receipts missing or doubled on the stream, messages not in
// a final status.
//
// Every message has its own DestTn and text, so the simulator's record of
// accepted recipients is the ground truth of what was sent.
package chaos
