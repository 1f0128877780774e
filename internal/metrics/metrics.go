// Package metrics declares every Prometheus family roxd exports. Parts of the
// product update these; the internal listener serves Registry at /metrics.
// Label values are small fixed sets (reasons, kinds, outcomes), never ids.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const ns = "roxd"

// Registry holds roxd's metrics plus the Go and process collectors.
var Registry = prometheus.NewRegistry()

var (
	// MessagesAccepted counts messages accepted by the producer, by initial
	// status (queued, scheduled, suppressed).
	MessagesAccepted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "messages_accepted_total", Help: "Messages accepted by the producer, by initial status.",
	}, []string{"status"})
	// MessagesSubmitted counts recipients ROX accepted (got an SMSId).
	MessagesSubmitted = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: ns, Name: "messages_submitted_total", Help: "Recipients accepted by ROX.",
	})
	// MessagesDelivered counts delivery receipts with success.
	MessagesDelivered = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: ns, Name: "messages_delivered_total", Help: "Messages with a successful delivery receipt.",
	})
	// MessagesFailed counts messages that ended failed, by reason
	// (rox_permanent, retries_exhausted, receipt, invalid).
	MessagesFailed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "messages_failed_total", Help: "Messages that ended failed, by reason.",
	}, []string{"reason"})
	// MessagesRetried counts recipients scheduled for another attempt, by
	// reason (transport, timeout, http_429, http_5xx, sending_error, auth).
	MessagesRetried = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "messages_retried_total", Help: "Recipients retried, by reason.",
	}, []string{"reason"})
	// MessagesArchived counts batches archived in asynq after their last
	// attempt, by reason.
	MessagesArchived = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "messages_archived_total", Help: "Messages whose batch was archived, by reason.",
	}, []string{"reason"})
	// MessagesCancelled and MessagesSuppressed count those outcomes.
	MessagesCancelled = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: ns, Name: "messages_cancelled_total", Help: "Messages cancelled before hand-over.",
	})
	MessagesSuppressed = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: ns, Name: "messages_suppressed_total", Help: "Messages not sent because the number opted out.",
	})
	// MessagesExpired counts messages whose validity ran out before they
	// were handed to ROX (status expired, never sent).
	MessagesExpired = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: ns, Name: "messages_expired_total", Help: "Messages not sent because their validity (valid_for, expires_at) ran out first.",
	})

	// ROXRequestDuration is the latency of POST /smsapi/send, by outcome
	// (ok, auth_error, sending_error, http_error, transport_error, timeout).
	ROXRequestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: ns, Name: "rox_request_duration_seconds", Help: "ROX send request latency, by outcome.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"outcome"})
	// ROXRecipientsPerRequest is the batch size of each ROX request.
	ROXRecipientsPerRequest = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: ns, Name: "rox_recipients_per_request", Help: "Recipients per ROX send request.",
		Buckets: []float64{1, 5, 10, 25, 50, 100, 200, 300, 400, 450, 500},
	})
	// ROXAuthPaused is 1 while ROX rejects an account's credentials and
	// its sending is paused, by account (default, or a ROX_ACCOUNTS name).
	ROXAuthPaused = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: ns, Name: "rox_auth_paused", Help: "1 while an account's sending is paused because ROX rejected its credentials, by account.",
	}, []string{"account"})

	// RateWait counts the seconds the worker waited for tokens of a rate
	// limit, by account and kind (messages: ROXD_RATE_LIMIT, requests:
	// ROXD_REQUEST_RATE_LIMIT).
	RateWait = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "rate_wait_seconds_total", Help: "Seconds spent waiting for rate-limit tokens, by account and kind (messages, requests).",
	}, []string{"account", "kind"})
	// RateTokens counts the tokens this process took, by account and kind.
	RateTokens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "rate_tokens_total", Help: "Rate-limit tokens taken by this process, by account and kind.",
	}, []string{"account", "kind"})
	// RateCurrent is the tokens this process took in the last second, by
	// account and kind (the sum over processes is the account's rate).
	RateCurrent = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: ns, Name: "rate_current", Help: "Rate-limit tokens taken by this process in the last second, by account and kind.",
	}, []string{"account", "kind"})
	// RateLimit is the configured limit per second (0: none).
	RateLimit = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: ns, Name: "rate_limit", Help: "Configured rate limit per second (0: none), by account and kind.",
	}, []string{"account", "kind"})
	// ROXThrottled counts HTTP 429 answers from ROX, by account.
	ROXThrottled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "rox_throttled_total", Help: "HTTP 429 answers from ROX, by account (each pauses the account).",
	}, []string{"account"})

	// Callbacks counts callbacks received, by kind (receipt, reply) and
	// outcome (stored, duplicate, deferred, spooled, bad_token, too_large,
	// bad_request, wrong_account, error).
	Callbacks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "callbacks_total", Help: "Callbacks received, by kind and outcome.",
	}, []string{"kind", "outcome"})
	// CallbackDuration is the time from request to answer.
	CallbackDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: ns, Name: "callback_duration_seconds", Help: "Callback handling latency, by kind.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
	}, []string{"kind"})
	// SpoolDepth is the number of callbacks in the local spool awaiting Redis.
	SpoolDepth = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: ns, Name: "callback_spool_depth", Help: "Callbacks spooled locally, waiting for Redis.",
	})

	// JournalPending is the number of ROX answers held in the worker's
	// local journal because Redis refused their record (OOM, READONLY,
	// down); their batches are not claimed until they are applied.
	JournalPending = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: ns, Name: "journal_pending", Help: "ROX answers journalled locally, waiting for Redis to take their record.",
	})
	// JournalApplied counts journalled answers written to Redis at last.
	JournalApplied = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: ns, Name: "journal_applied_total", Help: "Journalled ROX answers applied to Redis.",
	})
	// JournalApplyErrors counts failed attempts to apply a journalled answer
	// (each retry counts).
	JournalApplyErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: ns, Name: "journal_apply_errors_total", Help: "Failed attempts to apply a journalled ROX answer to Redis.",
	})

	// QueueSize is the number of asynq tasks (batches) per queue and state,
	// and roxd messages per state (queue "messages": ready, scheduled).
	// Set by the queue collector.
	QueueSize = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: ns, Name: "queue_size", Help: "Tasks per queue and state.",
	}, []string{"queue", "state"})
	// QueueLatency is the age of the oldest pending task per queue.
	QueueLatency = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: ns, Name: "queue_latency_seconds", Help: "Age of the oldest pending task, per queue.",
	}, []string{"queue"})
)

func init() {
	Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		MessagesAccepted, MessagesSubmitted, MessagesDelivered, MessagesFailed, MessagesRetried,
		MessagesArchived, MessagesCancelled, MessagesSuppressed, MessagesExpired,
		ROXRequestDuration, ROXRecipientsPerRequest, ROXAuthPaused,
		RateWait, RateTokens, RateCurrent, RateLimit, ROXThrottled,
		Callbacks, CallbackDuration, SpoolDepth, QueueSize, QueueLatency,
		JournalPending, JournalApplied, JournalApplyErrors,
	)
}

// Label values the parts use. They are set to zero at start so that every
// family and series is visible on /metrics before the first event.
var (
	acceptedStatuses = []string{"queued", "scheduled", "suppressed"}
	failedReasons    = []string{"rox_permanent", "retries_exhausted", "receipt", "invalid"}
	retryReasons     = []string{"transport", "timeout", "http_429", "http_5xx", "sending_error", "auth"}
	archivedReasons  = []string{"rox_permanent", "retries_exhausted"}
	requestOutcomes  = []string{"ok", "auth_error", "sending_error", "http_error", "transport_error", "timeout"}
	callbackKinds    = []string{"receipt", "reply"}
	callbackOutcomes = []string{"stored", "duplicate", "deferred", "spooled", "bad_token", "too_large", "bad_request", "wrong_account", "error"}
)

func init() {
	for _, v := range acceptedStatuses {
		MessagesAccepted.WithLabelValues(v)
	}
	for _, v := range failedReasons {
		MessagesFailed.WithLabelValues(v)
	}
	for _, v := range retryReasons {
		MessagesRetried.WithLabelValues(v)
	}
	for _, v := range archivedReasons {
		MessagesArchived.WithLabelValues(v)
	}
	for _, v := range requestOutcomes {
		ROXRequestDuration.WithLabelValues(v)
	}
	for _, k := range callbackKinds {
		CallbackDuration.WithLabelValues(k)
		for _, o := range callbackOutcomes {
			Callbacks.WithLabelValues(k, o)
		}
	}
}
