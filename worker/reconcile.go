package worker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/internal/metrics"
	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/rox"
)

// Recipients whose ROX outcome is unknown (internal/store/reconcile.go has
// the protocol; docs/ARCHITECTURE.md "Duplicate guard" the why).
//
// Two events make an outcome unknown: a claim finds recipients an earlier
// run sent without recording an answer (that run crashed, or was cut off
// while ROX held the request), and a Send that ends in a timeout or a
// transport error once the request may have reached ROX. Either way each
// recipient follows its policy (Config.Ambiguous, or the message's
// on_ambiguous). Recipients waiting for evidence keep the batch: the task
// is retried when their window closes (asynq's retry delay), never polled.

// ReasonOutcomeUnknown is the err (and MessagesFailed reason) of a message
// failed because ROX may or may not have accepted it.
const ReasonOutcomeUnknown = store.ReasonOutcomeUnknown

// reconcileWait is returned by a run that leaves recipients reconciling:
// asynq retries the task at Until (see retryDelay). It is not a failure.
type reconcileWait struct {
	Batch   string
	Waiting int
	Until   time.Time
}

func (e *reconcileWait) Error() string {
	return fmt.Sprintf("reconciling: %d recipients of batch %s wait for receipts or replies until %s (ROX may have accepted their request)",
		e.Waiting, e.Batch, e.Until.UTC().Format(time.RFC3339))
}

// reconcileDelay is the retry delay of a reconcileWait: the time left in
// its window, plus a little so the re-check lands after it.
func reconcileDelay(err error) (time.Duration, bool) {
	var rw *reconcileWait
	if !errors.As(err, &rw) {
		return 0, false
	}
	return max(time.Until(rw.Until), 0) + 50*time.Millisecond, true
}

// mayHaveReachedROX says whether a failed Send leaves ROX's outcome unknown:
// a timeout, or a transport error other than one that proves the request
// never left (dialling failed, DNS). HTTP errors, decode errors (not
// retried: see process), auth and sending errors are answers.
func mayHaveReachedROX(err error) bool {
	var e *rox.Error
	if !errors.As(err, &e) {
		return false
	}
	if e.Kind != rox.KindTimeout && e.Kind != rox.KindTransport {
		return false
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return false
	}
	var de *net.DNSError
	return !errors.As(err, &de)
}

// observeReconcile counts and logs what a claim or Unknown did with
// recipients of unknown outcome.
func (w *Worker) observeReconcile(log zerolog.Logger, rc store.ReconcileCounts, why string) {
	add := func(ev string, n int) {
		if n > 0 {
			metrics.AmbiguousRecipients.WithLabelValues(ev).Add(float64(n))
		}
	}
	add(metrics.AmbiguousReconciling, rc.Entered)
	add(metrics.AmbiguousMatched, rc.Matched)
	add(metrics.AmbiguousResent, rc.Resent)
	add(metrics.AmbiguousFailed, rc.Failed)
	if rc.Failed > 0 {
		metrics.MessagesFailed.WithLabelValues(ReasonOutcomeUnknown).Add(float64(rc.Failed))
	}
	if rc.AmbiguousEvidence > 0 {
		metrics.ReconcileAmbiguousEvidence.Add(float64(rc.AmbiguousEvidence))
	}
	if rc == (store.ReconcileCounts{}) {
		return
	}
	ev := log.Warn().Str("cause", why).Int("entered", rc.Entered).Int("matched", rc.Matched).
		Int("waiting", rc.Waiting).Int("resent", rc.Resent).Int("failed_outcome_unknown", rc.Failed).
		Int("ambiguous_evidence", rc.AmbiguousEvidence)
	if !rc.Until.IsZero() {
		ev = ev.Time("window_closes", rc.Until)
	}
	ev.Msg("recipients whose ROX outcome is unknown")
}

// waitReconcile ends a run that leaves recipients reconciling: the lock is
// released and the task retried when the window closes. On the task's last
// attempt it ends quietly instead (an archived task would keep its ID
// taken): the batch stays in {P}:batches and the reaper enqueues it again.
func (w *Worker) waitReconcile(ctx context.Context, log zerolog.Logger, bid, token string, rc store.ReconcileCounts, last bool) error {
	if err := w.b.Unlock(ctx, bid, token); err != nil {
		return err
	}
	if last {
		log.Warn().Int("waiting", rc.Waiting).Msg("reconciling on the task's last attempt: the reaper re-enqueues the batch")
		w.leaveToSweep(ctx, log, bid)
		return nil
	}
	return &reconcileWait{Batch: bid, Waiting: rc.Waiting, Until: rc.Until}
}

// unknownOutcome handles a Send that failed after the request may have
// reached ROX: each recipient follows its policy (store.Batches.Unknown).
func (w *Worker) unknownOutcome(ctx context.Context, log zerolog.Logger, bid, token string, claim store.Claim, serr error, last bool) error {
	ids := make([]string, len(claim.Items))
	for i, it := range claim.Items {
		ids[i] = it.ID
	}
	rc, retried, exhausted, err := w.b.Unknown(ctx, bid, token, claim.Group, ids, serr.Error(), last, w.cfg.TaskTimeout, time.Now())
	if err != nil {
		// Nothing written: the lock expires and the next claim finds the
		// recipients still in flight, which is the same decision.
		log.Error().Err(err).Msg("record unknown outcome")
		return err
	}
	w.observeReconcile(log, rc, "rox_"+outcomeLabel(serr))
	if exhausted > 0 {
		metrics.MessagesFailed.WithLabelValues(ReasonRetriesExhausted).Add(float64(exhausted))
		metrics.MessagesArchived.WithLabelValues(ReasonRetriesExhausted).Add(float64(exhausted))
	}
	switch {
	case rc.Waiting > 0 && last:
		log.Warn().Int("waiting", rc.Waiting).Msg("reconciling on the task's last attempt: the reaper re-enqueues the batch")
		w.leaveToSweep(ctx, log, bid)
		return nil
	case rc.Waiting > 0:
		return &reconcileWait{Batch: bid, Waiting: rc.Waiting, Until: rc.Until}
	case retried > 0:
		metrics.MessagesRetried.WithLabelValues(retryLabel(serr)).Add(float64(retried))
		return &BatchError{Batch: bid, Failed: retried, Total: len(ids), Last: serr}
	case exhausted > 0 || rc.Failed > 0:
		be := &BatchError{Batch: bid, Failed: exhausted + rc.Failed, Total: len(ids), Last: serr, Exhausted: exhausted > 0}
		return fmt.Errorf("%w: %w", be, asynq.SkipRetry)
	}
	return nil
}
