package app

import (
	"net/http"
	"sync/atomic"
	"time"
)

// drainQuiet is how long the callback listener must have had no callback
// before the drain may end early... never earlier than ROXD_CALLBACK_DRAIN:
// the drain lasts at least ROXD_CALLBACK_DRAIN, and then as long as ROX
// keeps posting (no quiet gap of drainQuiet, at most the drain itself),
// within ROXD_SHUTDOWN_TIMEOUT.
const drainQuiet = 2 * time.Second

// activity tracks callbacks in flight and the last one seen.
type activity struct {
	draining atomic.Bool
	inFlight atomic.Int64
	last     atomic.Int64 // unix nanoseconds of the last start or end
}

func (a *activity) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.inFlight.Add(1)
		a.last.Store(time.Now().UnixNano())
		defer func() {
			a.last.Store(time.Now().UnixNano())
			a.inFlight.Add(-1)
		}()
		if a.draining.Load() {
			// Close each connection after its answer, so that none is idle
			// (and cut under a request: EOF) when the listener shuts down.
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
}

// quietFor reports whether no callback was in flight or arrived for d.
func (a *activity) quietFor(d time.Duration) bool {
	return a.inFlight.Load() == 0 && time.Since(time.Unix(0, a.last.Load())) >= d
}

// drain keeps the callback listener answering from now until at least
// drain has passed and then until ROX has been quiet for
// min(drainQuiet, drain), never past limit. Meanwhile every answer closes
// its connection, so that ROX's connections are not cut under a request
// (EOF) when the listener shuts down. (http.Server.SetKeepAlivesEnabled
// would close idle connections at once, with the same race.)
func (a *activity) drain(drain time.Duration, limit time.Time) time.Duration {
	began := time.Now()
	a.draining.Store(true)
	minEnd := began.Add(drain)
	if minEnd.After(limit) {
		minEnd = limit
	}
	time.Sleep(time.Until(minEnd))
	quiet := min(drainQuiet, drain)
	for quiet > 0 && time.Now().Before(limit) && !a.quietFor(quiet) {
		time.Sleep(min(50*time.Millisecond, time.Until(limit)))
	}
	return time.Since(began)
}
