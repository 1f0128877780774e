package metrics

import "github.com/prometheus/client_golang/prometheus"

var (
	// RedisUp is 1 while the process reaches Redis, 0 while it does not
	// (set by the start-up check and the watcher of internal/app).
	RedisUp = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: ns, Name: "redis_up", Help: "1 while Redis answers, 0 while it is unreachable.",
	})
	// RedisUnreachable counts the times Redis became unreachable.
	RedisUnreachable = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: ns, Name: "redis_unreachable_total", Help: "Times Redis went from reachable (or unknown) to unreachable.",
	})
	// LogRepeats counts log lines not written because they repeat a
	// condition already logged (internal/logging), by source (asynq,
	// go-redis, stdlib, and roxd for its own warnings while Redis is down).
	LogRepeats = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "log_repeats_suppressed_total", Help: "Log lines not written because they repeat a condition already logged, by source.",
	}, []string{"source"})
)

func init() {
	Registry.MustRegister(RedisUp, RedisUnreachable, LogRepeats)
	for _, s := range []string{"roxd", "asynq", "go-redis", "stdlib"} {
		LogRepeats.WithLabelValues(s)
	}
}
