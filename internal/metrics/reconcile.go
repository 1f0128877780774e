package metrics

import "github.com/prometheus/client_golang/prometheus"

var (
	// AmbiguousRecipients counts recipients whose ROX outcome was unknown
	// (a crash or a timeout while their request was in flight), by event:
	// reconciling (entered the reconcile window), matched (recorded from a
	// receipt or reply matched by number), resent (sent again: the window
	// closed without evidence, or the resend policy), failed (ended failed
	// outcome_unknown).
	AmbiguousRecipients = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "ambiguous_recipients_total",
		Help: "Recipients whose ROX outcome was unknown, by event (reconciling, matched, resent, failed).",
	}, []string{"event"})
	// ReconcileAmbiguousEvidence counts callbacks that fitted a reconciling
	// recipient but also another recipient in flight to the same number,
	// and so were not attributed.
	ReconcileAmbiguousEvidence = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: ns, Name: "reconcile_ambiguous_evidence_total",
		Help: "Callbacks not used as evidence because they fitted more than one recipient in flight.",
	})
)

// Events of AmbiguousRecipients.
const (
	AmbiguousReconciling = "reconciling"
	AmbiguousMatched     = "matched"
	AmbiguousResent      = "resent"
	AmbiguousFailed      = "failed"
)

func init() {
	Registry.MustRegister(AmbiguousRecipients, ReconcileAmbiguousEvidence)
	for _, e := range []string{AmbiguousReconciling, AmbiguousMatched, AmbiguousResent, AmbiguousFailed} {
		AmbiguousRecipients.WithLabelValues(e)
	}
	MessagesFailed.WithLabelValues("outcome_unknown")
}
