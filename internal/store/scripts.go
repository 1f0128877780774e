package store

import (
	"maps"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Every Lua script of roxd is made with NewScript, so that the cluster test
// (internal/app's TestClusterEndToEnd) can run each one on a real Redis
// Cluster and a new script without such a test fails (a test refuses
// redis.NewScript anywhere else).
//
// The scripts a message goes through (store.enqueue, store.form,
// store.claim, store.record, callbacks.store) begin with
//
//	local ARGV, KEYS = ARGV, KEYS
//	local rcall = redis.call
//
// and call rcall: ARGV, KEYS and redis are globals, each use a lookup in
// Lua's global table, and these scripts use them several times per message
// (2% of Redis's instructions per message, scripts/redis-instructions.sh).
// For the same count, a number they pass to Redis goes as the string it
// came as (ARGV), never as a Lua number, which Redis formats with sprintf
// on each call.
var (
	scriptsMu sync.Mutex
	scripts   = map[string]*redis.Script{}
)

// NewScript is redis.NewScript, registered under name ("package.job").
// Names are unique; a second registration of one name panics at start-up
// (a programming error, never input).
func NewScript(name, src string) *redis.Script {
	scriptsMu.Lock()
	defer scriptsMu.Unlock()
	if _, dup := scripts[name]; dup {
		panic("store: script " + name + " registered twice")
	}
	s := redis.NewScript(src)
	scripts[name] = s
	return s
}

// Scripts returns every script registered so far (those of the packages
// linked in), by name.
func Scripts() map[string]*redis.Script {
	scriptsMu.Lock()
	defer scriptsMu.Unlock()
	return maps.Clone(scripts)
}
