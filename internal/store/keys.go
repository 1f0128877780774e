package store

import "strings"

// DefaultPrefix is the key prefix of a roxd deployment.
const DefaultPrefix = "roxd"

// Keys builds roxd's key names. Every key carries the hash tag {prefix} so
// that all of them live in one Redis Cluster slot and Lua scripts may touch
// any of them.
type Keys struct{ base string }

// NewKeys returns the key builder for prefix (DefaultPrefix when empty).
func NewKeys(prefix string) Keys {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return Keys{base: "{" + prefix + "}:"}
}

// Base is the common start of every key, e.g. "{roxd}:".
func (k Keys) Base() string { return k.base }

func (k Keys) Msg(id string) string      { return k.base + "msg:" + id }
func (k Keys) Ready(group string) string { return k.base + "ready:" + group }
func (k Keys) Groups() string            { return k.base + "groups" }

// Wake is the pub/sub channel the producer publishes to after an enqueue:
// the worker's former and scheduler wait on it instead of polling.
func (k Keys) Wake() string               { return k.base + "wake" }
func (k Keys) Scheduled() string          { return k.base + "scheduled" }
func (k Keys) Batch(id string) string     { return k.base + "batch:" + id }
func (k Keys) Batches() string            { return k.base + "batches" }
func (k Keys) Waiting() string            { return k.base + "waiting" }
func (k Keys) Lock(batchID string) string { return k.base + "lock:" + batchID }

// WaitingOf is the backpressure zset of priority p's formed batches that no
// handler picked up yet: {P}:waiting for normal (as before priorities
// existed), {P}:waiting:high and {P}:waiting:bulk.
func (k Keys) WaitingOf(p string) string {
	if p == PriorityHigh || p == PriorityBulk {
		return k.Waiting() + ":" + p
	}
	return k.Waiting()
}

func (k Keys) Suppressed() string { return k.base + "suppressed" }

// SMS is {P}:sms:<smsid> for smsID in its canonical form (CanonicalSMSID).
func (k Keys) SMS(smsID string) string { return k.base + "sms:" + CanonicalSMSID(smsID) }

// SuppressedByOperator is {P}:suppressed:operator, the numbers of
// {P}:suppressed that an operator suppressed (API, `roxd suppress`): a
// START from the handset does not lift those.
func (k Keys) SuppressedByOperator() string { return k.base + "suppressed:operator" }

// RedisMarker is {P}:redis-marker, a key without TTL whose absence tells
// that Redis came back empty (internal/app's durability check).
func (k Keys) RedisMarker() string { return k.base + "redis-marker" }
func (k Keys) CallbackSeen(h string) string {
	return k.base + "cb:seen:" + h
}
func (k Keys) AuthPause() string { return k.base + "authpause" }

// AuthPauseOf is the auth pause of one ROX account: {P}:authpause for the
// default account (as before accounts existed), {P}:authpause:<name> for
// the others. An authentication failure pauses only its own account.
func (k Keys) AuthPauseOf(account string) string {
	if account == "" || account == DefaultAccount {
		return k.AuthPause()
	}
	return k.base + "authpause:" + account
}

// RateMessages is the GCRA bucket of an account's messages per second
// (ROXD_RATE_LIMIT). github.com/go-redis/redis_rate stores it under its own
// prefix: the Redis key is "rate:" + RateMessages(account), which keeps the
// hash tag. The rate keys (RateMessages, RateRequests, RatePause) are built
// from the deployment's prefix, never a shard's: every shard's worker
// shares them, so an account's limit holds over all shards and processes.
// Each is one key touched alone (redis_rate's script takes one key), so
// they work on Redis Cluster whatever slot the shards' keys are in.
func (k Keys) RateMessages(account string) string { return k.base + "rl:msg:" + account }

// RateRequests is the GCRA bucket of an account's ROX requests per second
// (ROXD_REQUEST_RATE_LIMIT), stored like RateMessages.
func (k Keys) RateRequests(account string) string { return k.base + "rl:req:" + account }

// RatePause is set while ROX answers HTTP 429 to an account: no batch of
// the account is formed or sent until it expires (PX = the pause).
func (k Keys) RatePause(account string) string { return k.base + "ratepause:" + account }

// Flight is the in-flight index of a number (digits only, see
// FlightNumber): hash message id → unix ms its request left.
func (k Keys) Flight(digits string) string { return k.base + "flight:" + digits }

// Evidence holds callbacks with an unknown SMSId for a number in flight:
// hash event id → JSON.
func (k Keys) Evidence(digits string) string { return k.base + "ev:" + digits }

// Operator keys (internal/store/operator.go).
func (k Keys) SchedGroup(group string) string { return k.base + "sched:" + group }
func (k Keys) SchedDirty() string             { return k.base + "sdirty" }
func (k Keys) SchedTasks() string             { return k.base + "stasks" }
func (k Keys) ArchivedBatch(id string) string { return k.base + "abatch:" + id }
func (k Keys) ArchivedBatches() string        { return k.base + "archived" }

// Status of a message. It only moves forward (see Rank).
type Status string

const (
	StatusQueued     Status = "queued"
	StatusScheduled  Status = "scheduled"
	StatusSending    Status = "sending" // internal: being handed to ROX; shown as queued
	StatusSubmitted  Status = "submitted"
	StatusDelivered  Status = "delivered"
	StatusFailed     Status = "failed"
	StatusCancelled  Status = "cancelled"
	StatusSuppressed Status = "suppressed"
	// StatusExpired: its validity (valid_for, expires_at) ran out before it
	// was handed to ROX; it was never sent. Final.
	StatusExpired Status = "expired"
)

// Rank orders statuses: a transition is allowed only to a higher rank.
func (s Status) Rank() int {
	switch s {
	case StatusQueued, StatusScheduled:
		return 0
	case StatusSending, StatusReconciling:
		return 1
	case StatusSubmitted:
		return 2
	case StatusDelivered, StatusFailed, StatusCancelled, StatusSuppressed, StatusExpired:
		return 3
	default:
		return -1
	}
}

// Public is the status shown to callers: sending is shown as queued.
func (s Status) Public() Status {
	if s == StatusSending {
		return StatusQueued
	}
	return s
}

// Final reports whether s is terminal.
func (s Status) Final() bool { return s.Rank() == 3 }

// ValidStatus reports whether s names a status.
func ValidStatus(s string) bool { return Status(strings.TrimSpace(s)).Rank() >= 0 && s != "" }
