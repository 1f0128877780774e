package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/internal/metrics"
	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/internal/trace"
	"github.com/redoxygen/roxd/rox"
)

// Failure reasons stored in a message's err and used as metric labels.
const (
	ReasonPermanent        = "rox_permanent"
	ReasonRetriesExhausted = "retries_exhausted"
	ReasonInvalid          = "invalid"
)

// errLocked means another handler run holds the batch (a redelivery while
// the first run is still sending). It is retried and is not a failure.
var errLocked = errors.New("worker: batch is locked by another handler run")

// BatchError is what a handler run returns when recipients remain to be
// retried (or ran out of attempts): asynq shows its text in the dashboard.
type BatchError struct {
	Batch     string
	Failed    int // recipients that failed this attempt (retryable)
	Total     int // recipients sent this attempt
	Codes     map[rox.Code]string
	Last      error // the request's error, if the whole request failed
	Exhausted bool
	// ExpiresAt is the earliest expiry of the recipients to retry (zero:
	// none expires): the retry runs no later than just after it, so that
	// they end expired then (retryDelay).
	ExpiresAt time.Time
}

func (e *BatchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rox: %d of %d recipients failed", e.Failed, e.Total)
	if len(e.Codes) > 0 {
		codes := make([]string, 0, len(e.Codes))
		for c := range e.Codes {
			codes = append(codes, string(c))
		}
		sort.Strings(codes)
		b.WriteString(":")
		for i, c := range codes {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(" " + c + " " + e.Codes[rox.Code(c)])
		}
	}
	if e.Last != nil {
		b.WriteString("; last error: ")
		b.WriteString(e.Last.Error())
	}
	if e.Exhausted {
		b.WriteString("; retries exhausted, marked failed")
	}
	return b.String()
}

// Unwrap returns the request's error (for Retry-After).
func (e *BatchError) Unwrap() error { return e.Last }

func isFailure(err error) bool {
	var rw *reconcileWait
	var rtw *rateWait
	return !errors.Is(err, errLocked) && !errors.Is(err, errJournalled) && !errors.As(err, &rw) && !errors.As(err, &rtw)
}

// retryDelay is asynq's RetryDelayFunc: exponential backoff with jitter from
// RetryInitial to RetryMaxInterval (cenkalti/backoff), at least the server's
// Retry-After when it sent one. A delay that is a minimum (Retry-After, a
// 429 pause, a rate-limit wait) is rounded up so that the retry time falls
// on a whole second: asynq keeps retry times in whole seconds (truncated)
// and would otherwise run the task up to a second early.
//
// Retries stop at expiry: a delay that would end after the earliest expiry
// of the batch's messages (BatchError.ExpiresAt, rateWait.ExpiresAt) is cut
// to end just after it (rounded up to the whole second, so the run never
// comes before it), when the claim, or ExpireDue while the account still
// waits, sets them expired; the others are sent or wait on from there.
func (w *Worker) retryDelay(n int, err error, t *asynq.Task) time.Duration {
	now := time.Now()
	d := w.retryDelayUncut(n, err, t)
	if exp := expiryOf(err); !exp.IsZero() && now.Add(d).After(exp) {
		return ceilToSecond(now, max(exp.Sub(now), time.Millisecond))
	}
	return d
}

// expiryOf is the earliest expiry a handler run's error carries (zero:
// none).
func expiryOf(err error) time.Time {
	var be *BatchError
	if errors.As(err, &be) {
		return be.ExpiresAt
	}
	var rw *rateWait
	if errors.As(err, &rw) {
		return rw.ExpiresAt
	}
	return time.Time{}
}

func (w *Worker) retryDelayUncut(n int, err error, t *asynq.Task) time.Duration {
	if d, ok := reconcileDelay(err); ok {
		return d
	}
	if d, ok := rateDelay(err); ok {
		return ceilToSecond(time.Now(), d)
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = w.cfg.RetryInitial
	b.MaxInterval = w.cfg.RetryMaxInterval
	b.MaxElapsedTime = 0
	b.Multiplier = 2
	b.RandomizationFactor = 0.5
	b.Reset()
	d := b.NextBackOff()
	for i := 0; i < n && i < 64; i++ {
		d = b.NextBackOff()
	}
	ra, ok := rox.RetryAfterOf(err)
	if pause := w.taskAccountPause(t); pause > ra {
		// The account is paused after a 429 (this batch's or another's).
		ra, ok = pause, true
	}
	if ok && ra >= d {
		return ceilToSecond(time.Now(), ra)
	}
	return d
}

// ProcessTask handles one rox:send task: one batch, one ROX request.
func (w *Worker) ProcessTask(ctx context.Context, t *asynq.Task) error {
	w.handlers.Add(1)
	defer w.handlers.Done()
	var p payload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.Batch == "" {
		return fmt.Errorf("worker: bad task payload: %w", asynq.SkipRetry)
	}
	trace.Mark(trace.Handler, p.Batch, time.Now())
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, ok := asynq.GetMaxRetry(ctx)
	last := ok && retried >= maxRetry
	res := &attemptResult{Attempt: retried + 1}
	a, err := w.account(store.GroupAccount(p.Group))
	if err != nil {
		return err
	}
	ctx = context.WithValue(ctx, accountKey{}, a)
	ctx = context.WithValue(ctx, priorityKey{}, store.GroupPriority(p.Group))
	// Tokens first: a run waiting for them holds no sending slot.
	if err := w.payBeforeClaim(ctx, a, p, retried); err != nil {
		return err
	}
	if reserved, _ := ctx.Value(reservedKey{}).(bool); w.sem != nil && !reserved {
		select {
		case w.sem <- struct{}{}:
			defer func() { <-w.sem }()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	err = w.process(context.WithValue(ctx, resultKey{}, res), p.Batch, last)
	w.writeResult(t, res)
	return err
}

// process runs one attempt of batch bid. last says this is the final
// attempt: recipients that fail retryably are marked failed.
func (w *Worker) process(ctx context.Context, bid string, last bool) error {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	token := hex.EncodeToString(rnd[:])
	log := w.log.With().Str("batch", bid).Logger()

	if w.awaitHeld(ctx, log, bid) {
		// ROX's answer for this batch is journalled, not yet in Redis:
		// never claim (claiming would send it again). See journal.go.
		if last {
			return nil
		}
		return errJournalled
	}
	a, err := w.accountFor(ctx, bid)
	if err != nil {
		return err
	}
	log = log.With().Str("account", a.name).Logger()
	prio := ctxPriority(ctx)
	release, err := w.heavy(ctx, prio)
	if err != nil {
		return err
	}
	claim, err := a.b.Claim(ctx, bid, token, w.cfg.TaskTimeout, time.Now())
	release()
	if err != nil {
		return err
	}
	trace.Mark(trace.Claimed, bid, time.Now())
	// After the claim, writes must happen even if asynq cancels ctx.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	switch claim.State {
	case store.ClaimGone:
		// Finished, or archived and now run again by an operator.
		return w.archivedRun(ctx, bid, last)
	case store.ClaimLocked:
		if last {
			// The run holding the lock owns the batch. Archiving this task
			// would keep its ID taken, and the reaper could then never
			// re-enqueue what that run leaves behind; end quietly instead.
			log.Warn().Msg("batch is locked by another handler run on this task's last attempt: leaving it to that run and the reaper")
			w.leaveToSweep(wctx, log, bid)
			return nil
		}
		log.Warn().Msg("batch is locked by another handler run (a redelivery): retrying later")
		return errLocked
	case store.ClaimPaused:
		n, err := w.b.Requeue(wctx, bid, token)
		if err != nil {
			return err
		}
		log.Warn().Int("requeued", n).Msg("sending paused (ROX rejected the credentials): batch put back")
		return nil
	}
	if claim.Suppressed > 0 {
		metrics.MessagesSuppressed.Add(float64(claim.Suppressed))
	}
	if claim.Expired > 0 {
		// Their validity ran out before this request: never sent.
		metrics.MessagesExpired.Add(float64(claim.Expired))
		log.Info().Int("expired", claim.Expired).Msg("messages expired before they were handed to ROX: not sent")
	}
	w.observeReconcile(log, claim.Reconcile, "unanswered_earlier_request")
	if claim.Reconcile.Waiting > 0 {
		return w.waitReconcile(wctx, log, bid, token, claim.Reconcile, last)
	}
	if len(claim.Items) == 0 {
		return w.b.Finish(wctx, bid, token)
	}

	msgs, err := w.build(a, claim)
	if err != nil {
		// A bad group or a recipient ROX would refuse: fail them, never retry.
		out := make([]store.SendOutcome, len(claim.Items))
		for i, it := range claim.Items {
			out[i] = store.SendOutcome{ID: it.ID, Kind: store.OutcomeFailed, Value: ReasonInvalid + ": " + err.Error()}
		}
		release := w.heavyNow(prio)
		_, rerr := w.b.Record(wctx, bid, token, "", out, time.Now())
		release()
		if rerr != nil {
			return rerr
		}
		metrics.MessagesFailed.WithLabelValues(ReasonInvalid).Add(float64(len(out)))
		w.keepArchived(wctx, bid, claim.Group, out, ReasonInvalid)
		return fmt.Errorf("worker: batch %s: %w: %w", bid, err, asynq.SkipRetry)
	}

	start := time.Now()
	resp, serr := a.sender.Send(ctx, msgs)
	dur := time.Since(start)
	outcome := outcomeLabel(serr)
	metrics.ROXRequestDuration.WithLabelValues(outcome).Observe(dur.Seconds())
	metrics.ROXRecipientsPerRequest.Observe(float64(len(msgs.Recipients)))
	reqID := ""
	if resp != nil {
		reqID = resp.Messages.RequestID
	}
	ev := log.Info()
	if serr != nil {
		ev = log.Warn().Err(serr)
	}
	ev.Str("request_id", reqID).Str("group", claim.Group).Int("recipients", len(msgs.Recipients)).
		Str("result", outcome).Dur("latency_ms", dur).Bool("last_attempt", last).Msg("rox request")

	if serr == nil && (resp == nil || len(resp.Messages.Results) != len(claim.Items)) {
		// Only a Sender other than rox.Client can do this; never index past
		// the answer. ROX may have accepted: treat as unreadable, not retried.
		n := 0
		if resp != nil {
			n = len(resp.Messages.Results)
		}
		serr = &rox.Error{Kind: rox.KindDecode, Err: fmt.Errorf("%d results for %d recipients", n, len(claim.Items))}
	}
	if rox.IsAuth(serr) {
		return w.authFailed(wctx, a, bid, token, serr)
	}
	if ra, ok := is429(serr); ok {
		// ROX is throttling the account: pause all of it, not just this
		// batch (its own retry waits at least as long: retryDelay).
		d, perr := a.rl.throttled(wctx, ra)
		log.Warn().Err(perr).Dur("pause", d).Msg("ROX answered HTTP 429: the account's sending is paused")
	} else {
		a.rl.notThrottled()
	}
	w.authOK(a)
	if mayHaveReachedROX(serr) {
		// ROX may have accepted: never a blind resend (worker/reconcile.go).
		return w.unknownOutcome(wctx, log, bid, token, claim, serr, last)
	}

	out := make([]store.SendOutcome, len(claim.Items))
	be := &BatchError{Batch: bid, Total: len(claim.Items), Codes: map[rox.Code]string{}}
	var retryReason string
	failed := 0
	switch {
	case serr == nil:
		for i, it := range claim.Items {
			r := resp.Messages.Results[i]
			switch {
			case r.Result.OK() && r.SMSID != "":
				out[i] = store.SendOutcome{ID: it.ID, Kind: store.OutcomeSubmitted, Value: r.SMSID}
			case w.policy.RetryableCode(r.Result) && !last:
				out[i] = store.SendOutcome{ID: it.ID, Kind: store.OutcomeRetry, Value: codeErr(r.Result, r.ResultText)}
				be.Failed++
				be.Codes[r.Result] = r.ResultText
				retryReason = "sending_error"
			case w.policy.RetryableCode(r.Result):
				out[i] = store.SendOutcome{ID: it.ID, Kind: store.OutcomeFailed, Value: ReasonRetriesExhausted + ": " + codeErr(r.Result, r.ResultText)}
				be.Failed++
				be.Codes[r.Result] = r.ResultText
				be.Exhausted = true
			default:
				// A permanent code, or 0000 without an SMSId (nothing to
				// track: treat as refused).
				out[i] = store.SendOutcome{ID: it.ID, Kind: store.OutcomeFailed, Value: ReasonPermanent + ": " + codeErr(r.Result, r.ResultText)}
				failed++
			}
		}
	case w.policy.Retryable(serr) && !last:
		retryReason = retryLabel(serr)
		be.Failed, be.Last = len(claim.Items), serr
		for i, it := range claim.Items {
			out[i] = store.SendOutcome{ID: it.ID, Kind: store.OutcomeRetry, Value: serr.Error()}
		}
	case w.policy.Retryable(serr):
		be.Failed, be.Last, be.Exhausted = len(claim.Items), serr, true
		for i, it := range claim.Items {
			out[i] = store.SendOutcome{ID: it.ID, Kind: store.OutcomeFailed, Value: ReasonRetriesExhausted + ": " + serr.Error()}
		}
	default:
		// Not retryable: a permanent top-level code, a 4xx, or an
		// unreadable answer (ROX may have accepted: never resend).
		for i, it := range claim.Items {
			out[i] = store.SendOutcome{ID: it.ID, Kind: store.OutcomeFailed, Value: ReasonPermanent + ": " + serr.Error()}
		}
		failed = len(out)
	}

	answeredAt := time.Now()
	release = w.heavyNow(prio)
	rec, rerr := w.b.Record(wctx, bid, token, reqID, out, answeredAt)
	release()
	if rerr != nil && !errors.Is(rerr, store.ErrBatchReply) {
		// ROX answered and Redis refused the record (OOM, READONLY, down):
		// journal the answer and apply it until Redis takes it; never
		// resend it (journal.go).
		var applied bool
		if rec, applied = w.holdAnswer(ctx, log, bid, token, reqID, out, answeredAt, rerr); !applied {
			if last {
				// Nothing in it is to be retried; archiving would keep the
				// task's ID from the reaper.
				return nil
			}
			return errJournalled
		}
	} else if rerr != nil {
		// The script ran (it wrote) but its reply is not understood.
		log.Error().Err(rerr).Str("request_id", reqID).Msg("record ROX answer")
		return rerr
	}
	noteResult(ctx, reqID, len(claim.Items), rec, resp, serr)
	metrics.MessagesSubmitted.Add(float64(rec.Submitted))
	if failed > 0 {
		metrics.MessagesFailed.WithLabelValues(ReasonPermanent).Add(float64(failed))
	}
	if be.Exhausted {
		metrics.MessagesFailed.WithLabelValues(ReasonRetriesExhausted).Add(float64(be.Failed))
		metrics.MessagesArchived.WithLabelValues(ReasonRetriesExhausted).Add(float64(be.Failed))
		log.Error().Int("failed", be.Failed).Str("request_id", reqID).Msg("batch out of attempts: remaining recipients marked failed")
		w.keepArchived(wctx, bid, claim.Group, out, ReasonRetriesExhausted)
		return fmt.Errorf("%w: %w", be, asynq.SkipRetry)
	}
	if rec.Retry > 0 {
		metrics.MessagesRetried.WithLabelValues(retryReason).Add(float64(rec.Retry))
		for i, it := range claim.Items {
			if out[i].Kind == store.OutcomeRetry && !it.ExpiresAt.IsZero() && (be.ExpiresAt.IsZero() || it.ExpiresAt.Before(be.ExpiresAt)) {
				be.ExpiresAt = it.ExpiresAt
			}
		}
		return be
	}
	if serr != nil {
		// Whole request refused for good: archive it with the reason.
		metrics.MessagesArchived.WithLabelValues(ReasonPermanent).Add(float64(rec.Failed))
		w.keepArchived(wctx, bid, claim.Group, out, ReasonPermanent)
		return fmt.Errorf("worker: batch %s: %w: %w", bid, serr, asynq.SkipRetry)
	}
	return nil
}

func codeErr(c rox.Code, text string) string {
	if text == "" {
		return string(c)
	}
	return string(c) + " " + text
}

// leaveToSweep is called by a run that ends its task without an error
// while the batch still holds work (its last attempt, locked or
// reconciling): the task completes and the sweep enqueues the batch again.
// The batch's `task` mark is cleared first, so that a completed task that
// vanishes before a sweep sees it (asynq deletes it after TaskRetention)
// reads as "never enqueued" (enqueue it), not as an operator's delete.
func (w *Worker) leaveToSweep(ctx context.Context, log zerolog.Logger, bid string) {
	if err := w.b.MarkUnenqueued(ctx, bid); err != nil {
		log.Debug().Err(err).Msg("clear the batch's task mark (the sweep still sees its completed task)")
	}
}

// authFailed pauses account a (only it) with a growing pause, puts the
// batch back at the front of its ready list and finishes it: nothing is
// lost, no hot loop.
func (w *Worker) authFailed(ctx context.Context, a *account, bid, token string, serr error) error {
	a.authMu.Lock()
	d := a.authPause * 2
	if d < w.cfg.AuthPauseInitial {
		d = w.cfg.AuthPauseInitial
	}
	if d > w.cfg.AuthPauseMax {
		d = w.cfg.AuthPauseMax
	}
	a.authPause = d
	a.authMu.Unlock()
	if a.paused.CompareAndSwap(false, true) {
		setAuthPausedGauge(a.name, true)
	}
	perr := a.b.PauseAuth(ctx, d)
	n, err := w.b.Requeue(ctx, bid, token)
	metrics.MessagesRetried.WithLabelValues("auth").Add(float64(n))
	vars := "ROX_ACCOUNT_ID/ROX_USERNAME/ROX_PASSWORD"
	if a.name != DefaultAccount {
		vars = "its entry in ROX_ACCOUNTS"
	}
	w.log.Error().Err(serr).Str("account", a.name).Str("account_id", a.id).Str("batch", bid).Dur("pause", d).Int("requeued", n).
		Msg("ROX REJECTED THE CREDENTIALS: sending paused for this account; check " + vars)
	if perr != nil {
		return perr
	}
	return err
}

// authOK ends account a's pause state after a request ROX did not reject
// for auth.
func (w *Worker) authOK(a *account) {
	if !a.paused.Load() {
		return
	}
	a.authMu.Lock()
	a.authPause = 0
	a.authMu.Unlock()
	if a.paused.CompareAndSwap(true, false) {
		setAuthPausedGauge(a.name, false)
		w.log.Warn().Str("account", a.name).Str("account_id", a.id).Msg("ROX accepted the credentials again: sending resumed")
	}
}

// build turns a claimed batch into one ROX request.
func (w *Worker) build(a *account, c store.Claim) (rox.Messages, error) {
	sendLater, receipt, reply, err := store.ParseGroup(c.Group)
	if err != nil {
		return rox.Messages{}, err
	}
	var m rox.Messages
	switch receipt {
	case "always", "":
		m.ReceiptFlag = rox.ReceiptAlways
	case "on_error":
		m.ReceiptFlag = rox.ReceiptOnError
	case "never":
		m.ReceiptFlag = rox.ReceiptNever
	default:
		return rox.Messages{}, fmt.Errorf("group %q: unknown receipt mode", c.Group)
	}
	if m.ReceiptFlag != rox.ReceiptNever {
		if a.receiptURL == "" {
			return rox.Messages{}, errors.New("receipts asked for but no ReceiptCallbackURL configured")
		}
		m.ReceiptCallbackURL = a.receiptURL
	}
	switch reply {
	case "http", "":
		m.ReplyType = rox.ReplyHTTP
		if a.replyURL == "" {
			return rox.Messages{}, errors.New("HTTP replies asked for but no ReplyCallbackURL configured")
		}
		m.ReplyCallbackURL = a.replyURL
	case "email":
		m.ReplyType = rox.ReplyEmail
	case "sms":
		m.ReplyType = rox.ReplySMS
	case "both":
		m.ReplyType = rox.ReplyBoth
	default:
		return rox.Messages{}, fmt.Errorf("group %q: unknown reply mode", c.Group)
	}
	if !sendLater.IsZero() {
		m.SendLater = sendLater.UTC()
		m.TimeZoneOffset = 0
	}
	same := true
	for _, it := range c.Items[1:] {
		if it.Text != c.Items[0].Text {
			same = false
			break
		}
	}
	m.Recipients = make([]rox.Recipient, len(c.Items))
	for i, it := range c.Items {
		m.Recipients[i] = rox.Recipient{DestTn: it.To, DestName: it.Name, DestEmail: it.Email}
		if !same {
			m.Recipients[i].SMSText = it.Text
		}
	}
	if same {
		m.GlobalText = c.Items[0].Text
	}
	if err := m.Validate(); err != nil {
		return rox.Messages{}, err
	}
	return m, nil
}

// outcomeLabel is the ROXRequestDuration label of a Send result.
func outcomeLabel(err error) string {
	if err == nil {
		return "ok"
	}
	switch rox.KindOf(err) {
	case rox.KindAuth:
		return "auth_error"
	case rox.KindRejected:
		return "sending_error"
	case rox.KindHTTP, rox.KindDecode, rox.KindInvalid:
		return "http_error"
	case rox.KindTimeout:
		return "timeout"
	default:
		return "transport_error"
	}
}

// retryLabel is the MessagesRetried reason of a retryable Send error.
func retryLabel(err error) string {
	var e *rox.Error
	if errors.As(err, &e) {
		switch e.Kind {
		case rox.KindTimeout:
			return "timeout"
		case rox.KindHTTP:
			if e.StatusCode == 429 {
				return "http_429"
			}
			return "http_5xx"
		case rox.KindRejected:
			return "sending_error"
		}
	}
	return "transport"
}
