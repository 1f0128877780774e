package producer

import (
	"hash/maphash"
	"sync"
)

// Number validation is most of the API's CPU per message (libphonenumber's
// Parse and IsValidNumber: regular expressions per region, ~25 µs a number
// on the project's machine). Its answer depends only on the number's text
// and the default region, so it is memoized in a bounded cache: a number
// sent to again (the same customers, codes, reminders) costs a map lookup.
// The cache holds answers exactly as libNumber gives them (a differential
// test holds it to plain libphonenumber); it never grows past
// numCacheShards*numCacheShardSize entries.

const (
	numCacheShards    = 32
	numCacheShardSize = 2048 // 64k entries in all, ~10 MiB at most
)

// numAnswer is libphonenumber's answer: e164 when valid, else msg says why.
type numAnswer struct {
	e164 string
	msg  string
}

type numShard struct {
	mu sync.Mutex
	m  map[string]numAnswer
}

type numCache struct {
	seed   maphash.Seed
	shards [numCacheShards]numShard
	lookup func(number, region string) numAnswer
}

// numbers is the process's cache in front of libNumber.
var numbers = newNumCache(libNumber)

func newNumCache(lookup func(number, region string) numAnswer) *numCache {
	c := &numCache{seed: maphash.MakeSeed(), lookup: lookup}
	for i := range c.shards {
		c.shards[i].m = make(map[string]numAnswer)
	}
	return c
}

// get returns lookup(number, region), from the cache when it is there.
func (c *numCache) get(number, region string) numAnswer {
	key := region + "\x00" + number
	sh := &c.shards[maphash.String(c.seed, key)%numCacheShards]
	sh.mu.Lock()
	a, ok := sh.m[key]
	sh.mu.Unlock()
	if ok {
		return a
	}
	a = c.lookup(number, region)
	sh.mu.Lock()
	if len(sh.m) >= numCacheShardSize {
		// Full: drop a quarter, picked by Go's random map order.
		drop := numCacheShardSize / 4
		for k := range sh.m {
			delete(sh.m, k)
			if drop--; drop == 0 {
				break
			}
		}
	}
	sh.m[key] = a
	sh.mu.Unlock()
	return a
}
