package logging

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/internal/metrics"
)

// SourceRoxd labels roxd's own lines in roxd_log_repeats_suppressed_total.
const SourceRoxd = "roxd"

// degraded is set while a dependency (Redis) is down: then roxd's own
// warnings and errors go through the repeat filter too, since every loop
// that touches Redis fails the same way until it is back.
var degraded atomic.Bool

// SetDegraded marks the start (true) or end (false) of an outage of a
// dependency, and is a ConditionChanged. While degraded, roxd's own warning
// and error lines with the same message are logged once per change, like
// the libraries' lines; the outage itself is logged by the caller.
func SetDegraded(down bool) {
	degraded.Store(down)
	ConditionChanged()
}

// repeatHook filters roxd's own warnings and errors while degraded.
type repeatHook struct{}

func (repeatHook) Run(e *zerolog.Event, level zerolog.Level, msg string) {
	if level < zerolog.WarnLevel || level > zerolog.ErrorLevel || !degraded.Load() {
		return
	}
	if ok, _ := repeats.allow(SourceRoxd, level.String(), msg); !ok {
		e.Discard()
	}
}

// RepeatQuiet is how long a condition must stay silent before its next
// occurrence is logged again.
const RepeatQuiet = time.Minute

// maxConditions bounds the conditions remembered; past it, the quietest
// are forgotten (and so logged again on their next occurrence).
const maxConditions = 4096

// repeats is the process-wide filter of third-party log lines (asynq,
// go-redis, the standard library's log): a condition (source, level and
// message with digits masked) is logged when it first occurs; while it
// keeps recurring with gaps shorter than RepeatQuiet it is not logged
// again, only counted in roxd_log_repeats_suppressed_total{source}. It is
// logged again, with the number of lines left out ("repeats_suppressed"),
// after a quiet spell or after ConditionChanged.
var repeats = &repeatFilter{seen: map[string]*condition{}, now: time.Now}

type condition struct {
	last       time.Time
	suppressed int
}

type repeatFilter struct {
	mu   sync.Mutex
	seen map[string]*condition
	now  func() time.Time
}

// ConditionChanged tells the filter that the state behind the libraries'
// conditions changed (Redis became unreachable, or reachable again): every
// condition is logged again on its next occurrence.
func ConditionChanged() {
	repeats.mu.Lock()
	defer repeats.mu.Unlock()
	clear(repeats.seen)
}

// allow reports whether a line of source at level with msg is to be
// written, and how many lines of the same condition were left out since it
// was last written.
func (f *repeatFilter) allow(source, level, msg string) (bool, int) {
	key := source + "\x00" + level + "\x00" + maskDigits(msg)
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.seen[key]
	if ok && now.Sub(c.last) < RepeatQuiet {
		c.last = now
		c.suppressed++
		metrics.LogRepeats.WithLabelValues(source).Inc()
		return false, 0
	}
	n := 0
	if ok {
		n = c.suppressed
	}
	if !ok && len(f.seen) >= maxConditions {
		for k, old := range f.seen {
			if now.Sub(old.last) >= RepeatQuiet {
				delete(f.seen, k)
			}
		}
		if len(f.seen) >= maxConditions {
			clear(f.seen)
		}
	}
	f.seen[key] = &condition{last: now}
	return true, n
}

// maskDigits replaces each run of digits by '#', so that "after 3
// attempts" and "after 4 attempts" are one condition.
func maskDigits(s string) string {
	b := make([]byte, 0, len(s))
	inDigits := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= '0' && c <= '9' {
			if !inDigits {
				b = append(b, '#')
			}
			inDigits = true
			continue
		}
		inDigits = false
		b = append(b, c)
	}
	return string(b)
}
