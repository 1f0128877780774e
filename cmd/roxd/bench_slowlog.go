package main

// Redis time by script (`roxd bench whole -redis-by-script`): INFO
// commandstats lumps every script under evalsha, so the bench turns on
// Redis's SLOWLOG with a 0 µs threshold for the throughput runs and
// sums each top-level command's logged time by script name
// (store.Scripts() maps the SHA1s). Commands a script runs are logged
// too, under the client "?:0": they are left out, their time is inside
// their script's entry. Logging every command slows Redis (about 1.5x per
// message in the runs of docs/BENCHMARKS.md), so the figures are shares
// of Redis's time, not its CPU.

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/internal/store"
)

// slowlogLen is the SLOWLOG's length while sampling: read every
// slowlogEvery, it holds what Redis logs in that time at ~200,000
// commands/s (scripts' commands included) with room to spare.
const (
	slowlogLen   = 200000
	slowlogEvery = 100 * time.Millisecond
)

// scriptTime is one script's (or command's) logged calls and time.
type scriptTime struct {
	Name  string  `json:"name"`
	Calls int64   `json:"calls"`
	US    int64   `json:"us"`
	PerUS float64 `json:"us_per_msg"`
}

// slowSampler reads and resets the SLOWLOG until stopped.
type slowSampler struct {
	rdb   *redis.Client
	names map[string]string // SHA1 -> script name
	stop  chan struct{}
	done  chan struct{}

	mu  sync.Mutex
	by  map[string]*scriptTime
	err error
	// prev is the SLOWLOG configuration to put back.
	prevSlower, prevLen string
}

// startSlowSampler sets the SLOWLOG to log every command and starts
// reading it.
func startSlowSampler(ctx context.Context, rdb *redis.Client) (*slowSampler, error) {
	s := &slowSampler{rdb: rdb, names: map[string]string{}, by: map[string]*scriptTime{},
		stop: make(chan struct{}), done: make(chan struct{})}
	for name, sc := range store.Scripts() {
		s.names[sc.Hash()] = name
	}
	cur, err := rdb.ConfigGet(ctx, "slowlog-*").Result()
	if err != nil {
		return nil, fmt.Errorf("CONFIG GET slowlog-*: %w", err)
	}
	s.prevSlower, s.prevLen = cur["slowlog-log-slower-than"], cur["slowlog-max-len"]
	if err := rdb.ConfigSet(ctx, "slowlog-max-len", fmt.Sprint(slowlogLen)).Err(); err != nil {
		return nil, fmt.Errorf("CONFIG SET slowlog-max-len: %w", err)
	}
	if err := rdb.ConfigSet(ctx, "slowlog-log-slower-than", "0").Err(); err != nil {
		return nil, fmt.Errorf("CONFIG SET slowlog-log-slower-than: %w", err)
	}
	rdb.Do(ctx, "SLOWLOG", "RESET")
	go s.run(ctx)
	return s, nil
}

func (s *slowSampler) run(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(slowlogEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			s.read(ctx)
			return
		case <-ctx.Done():
			return
		case <-t.C:
			s.read(ctx)
		}
	}
}

// read takes the SLOWLOG and resets it (what Redis logs between the two
// commands is lost: a sample, not a count).
func (s *slowSampler) read(ctx context.Context) {
	cmds, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SlowLogGet(ctx, slowlogLen)
		p.Do(ctx, "SLOWLOG", "RESET")
		return nil
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.err = err
		return
	}
	logs, err := cmds[0].(*redis.SlowLogCmd).Result()
	if err != nil {
		s.err = err
		return
	}
	for _, l := range logs {
		if l.ClientAddr == "?:0" || len(l.Args) == 0 {
			continue // run by a script: inside the script's own entry
		}
		name := strings.ToLower(fmt.Sprint(l.Args[0]))
		if name == "slowlog" || name == "multi" || name == "exec" {
			continue // the sampler's own
		}
		if name == "evalsha" && len(l.Args) > 1 {
			sha := fmt.Sprint(l.Args[1])
			if n, ok := s.names[sha]; ok {
				name = n
			} else if len(sha) >= 8 {
				name = "evalsha " + sha[:8] + " (not roxd's: asynq)"
			}
		}
		st := s.by[name]
		if st == nil {
			st = &scriptTime{Name: name}
			s.by[name] = st
		}
		st.Calls++
		st.US += l.Duration.Microseconds()
	}
}

// finish stops sampling, puts the SLOWLOG configuration back and returns
// the time by name per message of n, most first.
func (s *slowSampler) finish(ctx context.Context, n int) ([]scriptTime, error) {
	close(s.stop)
	<-s.done
	s.rdb.ConfigSet(ctx, "slowlog-log-slower-than", s.prevSlower)
	s.rdb.ConfigSet(ctx, "slowlog-max-len", s.prevLen)
	s.rdb.Do(ctx, "SLOWLOG", "RESET")
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, fmt.Errorf("SLOWLOG: %w", s.err)
	}
	out := make([]scriptTime, 0, len(s.by))
	for _, st := range s.by {
		st.PerUS = float64(st.US) / float64(n)
		out = append(out, *st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].US > out[j].US })
	return out, nil
}

// formatScriptTimes formats the first k of ts: name, µs per message and
// the share of the logged total.
func formatScriptTimes(ts []scriptTime, k int) string {
	var total int64
	for _, t := range ts {
		total += t.US
	}
	var parts []string
	for i := 0; i < len(ts) && i < k; i++ {
		share := 0.0
		if total > 0 {
			share = 100 * float64(ts[i].US) / float64(total)
		}
		parts = append(parts, fmt.Sprintf("%s %.1f (%.0f%%, %d calls)", ts[i].Name, ts[i].PerUS, share, ts[i].Calls))
	}
	return strings.Join(parts, ", ")
}
