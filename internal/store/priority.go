package store

import "strings"

// Priorities of a message (its field `priority`). Batches never mix them:
// the priority is a component of the group key, so each priority has its
// own ready lists, its own backpressure count ({P}:waiting for normal,
// {P}:waiting:high, {P}:waiting:bulk) and its own asynq queue
// (PriorityQueue).
const (
	PriorityHigh   = "high"
	PriorityNormal = "normal"
	PriorityBulk   = "bulk"
)

// Priorities lists the priorities from the highest down.
var Priorities = []string{PriorityHigh, PriorityNormal, PriorityBulk}

// ValidPriority reports whether p names a priority ("" is not one: callers
// map it to PriorityNormal first).
func ValidPriority(p string) bool {
	return p == PriorityHigh || p == PriorityNormal || p == PriorityBulk
}

// groupPriorityTag starts the priority component of a group key.
const groupPriorityTag = "p="

// WithPriority returns group with the priority component of p: a normal
// message's group is unchanged ("<sendlater>|<receipt>|<reply>", as before
// priorities existed, so ready lists and schedule groups written by an older
// roxd keep working), a high or bulk one gets "|p=high" or "|p=bulk"
// appended. Further tagged components ("|<tag>=<value>") may follow.
func WithPriority(group, p string) string {
	if p == "" || p == PriorityNormal {
		return group
	}
	return group + "|" + groupPriorityTag + p
}

// GroupPriority returns the priority of a group key (PriorityNormal when it
// has no priority component).
func GroupPriority(group string) string {
	for _, part := range strings.Split(group, "|")[1:] {
		if v, ok := strings.CutPrefix(part, groupPriorityTag); ok && ValidPriority(v) {
			return v
		}
	}
	return PriorityNormal
}

// PriorityQueue is the asynq queue of the send tasks of priority p, given
// the deployment's queue (ROXD_QUEUE): normal uses base itself (as before
// priorities existed), high and bulk use base + "-high" and base + "-bulk".
func PriorityQueue(base, p string) string {
	if p == PriorityHigh || p == PriorityBulk {
		return base + "-" + p
	}
	return base
}

// PriorityQueues lists the send queues of base, highest priority first.
func PriorityQueues(base string) []string {
	out := make([]string, len(Priorities))
	for i, p := range Priorities {
		out[i] = PriorityQueue(base, p)
	}
	return out
}

// unwaitLua returns Lua that removes batch bid (a Lua expression) from the
// high and bulk waiting zsets, given the Lua expression of {P}:waiting:
// scripts that take a batch off {P}:waiting call it too, so a batch of any
// priority leaves its backpressure count.
func unwaitLua(waitingKey, bid string) string {
	return "redis.call('ZREM', " + waitingKey + " .. ':high', " + bid + ")\n" +
		"redis.call('ZREM', " + waitingKey + " .. ':bulk', " + bid + ")\n"
}
