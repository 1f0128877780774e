package metrics

import "github.com/prometheus/client_golang/prometheus"

var (
	// CallbacksSpooled counts callbacks written to the local spool instead
	// of Redis, by reason: connection (dial refused, reset, closed, pool
	// exhausted), loading, failover (MASTERDOWN, CLUSTERDOWN, TRYAGAIN,
	// NOREPLICAS), readonly, oom, busy, timeout (no answer within the
	// store budget), backlog (the spool is being replayed: later callbacks
	// queue behind it), stopped (the receiver is shutting down) and refused
	// (a command Redis can never run; kept in rejected.log).
	CallbacksSpooled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "callbacks_spooled_total", Help: "Callbacks written to the local spool instead of Redis, by reason.",
	}, []string{"reason"})

	// RedisPersistent is 1 when Redis keeps what it acknowledged across a
	// restart (appendonly yes or RDB save points), 0 when it does not, -1
	// when roxd cannot tell (CONFIG and INFO refused).
	RedisPersistent = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: ns, Name: "redis_persistent", Help: "1 when Redis persists writes (AOF or RDB), 0 when not, -1 when unknown.",
	})
	// RedisEvicting is 1 when Redis's maxmemory-policy may drop roxd's keys
	// (anything but noeviction).
	RedisEvicting = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: ns, Name: "redis_evicting", Help: "1 when Redis's maxmemory-policy may evict keys (not noeviction).",
	})
	// RedisDataLoss counts the times roxd found Redis restarted (run_id
	// changed) or flushed with its marker key gone.
	RedisDataLoss = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: ns, Name: "redis_data_loss_total", Help: "Times Redis came back without roxd's keys (restart without persistence, flush).",
	})
)

// SpoolReasons are the label values of CallbacksSpooled.
var SpoolReasons = []string{"connection", "loading", "failover", "readonly", "oom", "busy", "timeout", "backlog", "stopped", "refused"}

func init() {
	Registry.MustRegister(CallbacksSpooled, RedisPersistent, RedisEvicting, RedisDataLoss)
	for _, r := range SpoolReasons {
		CallbacksSpooled.WithLabelValues(r)
	}
}
