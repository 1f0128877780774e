package roxsim

import (
	"sort"
	"strings"
	"time"

	"github.com/redoxygen/roxd/rox"
)

// Redacted replaces the password in every recorded request.
const Redacted = "[REDACTED]"

// RecordedRequest is one POST /smsapi/send as the simulator saw and answered
// it.
type RecordedRequest struct {
	// Seq numbers requests from 1 in arrival order.
	Seq        int64     `json:"seq"`
	ReceivedAt time.Time `json:"received_at"`
	RemoteAddr string    `json:"remote_addr"`
	BodyBytes  int       `json:"body_bytes"`
	// HTTPStatus is the status answered; 0 while a hung request is held
	// and when the client gave up on it.
	HTTPStatus int `json:"http_status"`
	// Fault names the injected fault that decided the answer: "5xx",
	// "429", "hang", "auth_fail", or "".
	Fault string `json:"fault,omitempty"`
	// Result and ResultText are the top-level answer (empty for 5xx and
	// hang).
	Result     rox.Code `json:"result,omitempty"`
	ResultText string   `json:"result_text,omitempty"`
	// RequestID is the RequestId answered (accepted requests only).
	RequestID string `json:"request_id,omitempty"`
	// Recipients is the number of recipients in the request.
	Recipients int `json:"recipients"`
	// Request is the decoded request with Sender.Password replaced by
	// Redacted; nil when the body could not be decoded.
	Request *rox.SendRequest `json:"request,omitempty"`
}

// RecordedRecipient is one recipient of an accepted request, with what the
// simulator answered and did for it.
type RecordedRecipient struct {
	RequestID  string    `json:"request_id"`
	Key        int       `json:"key"` // its number in the request, 1..N
	ReceivedAt time.Time `json:"received_at"`
	// SMSID is empty when the recipient was refused (Result not 0000).
	SMSID     string `json:"sms_id"`
	DestTn    string `json:"dest_tn"`
	DestName  string `json:"dest_name,omitempty"`
	DestEmail string `json:"dest_email,omitempty"`
	// Text is the text as delivered: GlobalText when set, else SMSText.
	Text               string          `json:"text"`
	SendLater          time.Time       `json:"send_later,omitzero"`
	ReceiptFlag        rox.ReceiptFlag `json:"receipt_flag"`
	ReplyType          rox.ReplyType   `json:"reply_type,omitempty"`
	ReceiptCallbackURL string          `json:"receipt_callback_url,omitempty"`
	ReplyCallbackURL   string          `json:"reply_callback_url,omitempty"`
	// Result and ResultText are the entry's answer in the send response.
	Result     rox.Code `json:"result"`
	ResultText string   `json:"result_text"`
	// DueAt is when it will be (or was) delivered: max(received,
	// SendLater) + ReceiptDelay. Zero for refused recipients.
	DueAt time.Time `json:"due_at,omitzero"`
	// DeliveredAt and DeliveryResult are set once delivered: "0000" or the
	// delivery failure code.
	DeliveredAt    time.Time `json:"delivered_at,omitzero"`
	DeliveryResult rox.Code  `json:"delivery_result,omitempty"`
}

// Callback kinds and outcomes.
const (
	KindReceipt = "receipt"
	KindReply   = "reply"

	OutcomeOK = "ok" // 2xx and Result "0000"
	// OutcomeFailed: this attempt failed (transport error, non-2xx, or a
	// Result other than "0000").
	OutcomeFailed = "failed"
	// OutcomeForwardedToEmail: the callback was given up (its attempts
	// failed) or never possible (a reply whose ReplyType is not H), so real
	// ROX would have forwarded it to email.
	OutcomeForwardedToEmail = "forwarded_to_email"
)

// RecordedCallback is one callback attempt (or one forward to email).
type RecordedCallback struct {
	Kind      string    `json:"kind"` // KindReceipt or KindReply
	At        time.Time `json:"at"`
	RequestID string    `json:"request_id"`
	SMSID     string    `json:"sms_id"`
	DestTn    string    `json:"dest_tn"`
	URL       string    `json:"url,omitempty"`
	// Result and ResultText are the receipt's; ReplyText the reply's.
	Result     rox.Code `json:"result,omitempty"`
	ResultText string   `json:"result_text,omitempty"`
	ReplyText  string   `json:"reply_text,omitempty"`
	// Attempt is 1, or 2 for the retry of RetryCallbacks.
	Attempt int `json:"attempt"`
	// Duplicate marks the second copy sent by the Duplicates fault.
	Duplicate  bool   `json:"duplicate,omitempty"`
	HTTPStatus int    `json:"http_status,omitempty"`
	Outcome    string `json:"outcome"`
	Error      string `json:"error,omitempty"`
	Duration   string `json:"duration,omitempty"`
}

// Stats are the simulator's counters since start or the last Reset.
type Stats struct {
	// Requests counts every POST /smsapi/send read (any outcome);
	// Accepted those answered "0000".
	Requests int64 `json:"requests"`
	Accepted int64 `json:"accepted"`
	// Rejected counts requests answered with an error Result, by code.
	Rejected map[rox.Code]int64 `json:"rejected"`
	// HTTPErrors counts requests answered 400, 405 or 413 (not injected).
	HTTPErrors int64 `json:"http_errors"`
	// Injected5xx and Hung count requests hit by those faults.
	Injected5xx int64 `json:"injected_5xx"`
	// Throttled counts requests answered HTTP 429 (Faults.Throttle).
	Throttled int64 `json:"throttled"`
	Hung      int64 `json:"hung"`
	// LateAnswers counts requests accepted and answered after
	// Faults.LateAnswerDelay.
	LateAnswers int64 `json:"late_answers"`
	// Recipients counts recipients of accepted requests; Queued those
	// answered "0000"; RecipientErrors the refused ones, by code.
	Recipients      int64              `json:"recipients"`
	Queued          int64              `json:"queued"`
	RecipientErrors map[rox.Code]int64 `json:"recipient_errors"`
	// Held counts queued recipients whose SendLater was in the future.
	Held int64 `json:"held"`
	// Delivered and DeliveryFailed count deliveries made so far; Pending
	// is the deliveries and callbacks still to make.
	Delivered      int64 `json:"delivered"`
	DeliveryFailed int64 `json:"delivery_failed"`
	Pending        int64 `json:"pending"`
	// ReceiptsSent and RepliesSent count callbacks acknowledged (2xx and
	// Result "0000"), duplicates included; ReceiptsFailed and
	// RepliesFailed count failed attempts.
	ReceiptsSent   int64 `json:"receipts_sent"`
	ReceiptsFailed int64 `json:"receipts_failed"`
	RepliesSent    int64 `json:"replies_sent"`
	RepliesFailed  int64 `json:"replies_failed"`
	// ForwardedToEmail counts receipts and replies given up (see
	// OutcomeForwardedToEmail).
	ForwardedToEmail int64 `json:"forwarded_to_email"`
	// Duplicates counts the extra copies posted by the Duplicates fault;
	// Retries the second attempts of RetryCallbacks.
	Duplicates int64 `json:"duplicates"`
	Retries    int64 `json:"retries"`
	// RecordsDropped counts records dropped because a list was full.
	RecordsDropped int64 `json:"records_dropped"`
}

func (st Stats) clone() Stats {
	out := st
	out.Rejected = make(map[rox.Code]int64, len(st.Rejected))
	for k, v := range st.Rejected {
		out.Rejected[k] = v
	}
	out.RecipientErrors = make(map[rox.Code]int64, len(st.RecipientErrors))
	for k, v := range st.RecipientErrors {
		out.RecipientErrors[k] = v
	}
	return out
}

func newStats() Stats {
	return Stats{Rejected: map[rox.Code]int64{}, RecipientErrors: map[rox.Code]int64{}}
}

// RecipientFilter selects recipients in Sim.FindRecipients and
// GET /sim/recipients. Empty fields match everything.
type RecipientFilter struct {
	RequestID string
	SMSID     string
	DestTn    string
	// Text matches recipients whose text contains it.
	Text string
	// Limit keeps only the newest Limit matches (0: all).
	Limit int
}

func (f RecipientFilter) match(b *batch, r *recip) bool {
	return (f.RequestID == "" || b.requestID == f.RequestID) &&
		(f.SMSID == "" || r.smsID == f.SMSID) &&
		(f.DestTn == "" || r.destTn == f.DestTn) &&
		(f.Text == "" || strings.Contains(r.text, f.Text))
}

// Requests returns a copy of the recorded send requests, oldest first.
func (s *Sim) Requests() []RecordedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]RecordedRequest(nil), s.requests...)
}

// Recipients returns a copy of every recorded recipient, oldest first.
func (s *Sim) Recipients() []RecordedRecipient {
	return s.FindRecipients(RecipientFilter{})
}

// FindRecipients returns the recorded recipients matching f, oldest first.
func (s *Sim) FindRecipients(f RecipientFilter) []RecordedRecipient {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []RecordedRecipient
	if f == (RecipientFilter{}) {
		out = make([]RecordedRecipient, 0, s.nRecorded)
	}
	for _, b := range s.recorded {
		for i := range b.recips {
			if f.match(b, &b.recips[i]) {
				out = append(out, b.record(i))
			}
		}
	}
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[len(out)-f.Limit:]
	}
	return out
}

// Callbacks returns a copy of the recorded callback attempts, oldest first.
func (s *Sim) Callbacks() []RecordedCallback {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]RecordedCallback(nil), s.callbacks...)
}

// Stats returns the counters.
func (s *Sim) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats.clone()
	st.Pending = int64(s.pending)
	return st
}

// Reset forgets every record and zeroes the counters. Deliveries already
// accepted still happen (and are counted anew), as they would at ROX.
func (s *Sim) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
	s.recorded = nil
	s.nRecorded = 0
	s.callbacks = nil
	s.stats = newStats()
}

// recordRequestLocked appends rr, trimming the list when full.
func (s *Sim) recordRequestLocked(rr RecordedRequest) int {
	if s.cfg.CountOnly {
		return -1
	}
	if len(s.requests) >= s.cfg.MaxRecords {
		drop := max(1, len(s.requests)/4)
		s.requests = append(s.requests[:0], s.requests[drop:]...)
		s.stats.RecordsDropped += int64(drop)
	}
	s.requests = append(s.requests, rr)
	return len(s.requests) - 1
}

// updateRequest sets the answer of the request recorded at idx with seq.
func (s *Sim) updateRequestLocked(idx int, seq int64, status int, code rox.Code, text string) {
	if idx < 0 {
		return
	}
	// The list may have been trimmed or reset since: find it by seq.
	if idx >= len(s.requests) || s.requests[idx].Seq != seq {
		idx = -1
		for i := len(s.requests) - 1; i >= 0; i-- {
			if s.requests[i].Seq == seq {
				idx = i
				break
			}
		}
		if idx < 0 {
			return
		}
	}
	s.requests[idx].HTTPStatus = status
	s.requests[idx].Result = code
	s.requests[idx].ResultText = text
}

func (s *Sim) recordBatchLocked(b *batch) {
	if s.cfg.CountOnly {
		return
	}
	for s.nRecorded+len(b.recips) > s.cfg.MaxRecords && len(s.recorded) > 0 {
		// Drop the oldest quarter (at least one batch).
		target := s.nRecorded - s.cfg.MaxRecords/4
		n := 0
		for n < len(s.recorded) && s.nRecorded > target {
			s.nRecorded -= len(s.recorded[n].recips)
			s.stats.RecordsDropped += int64(len(s.recorded[n].recips))
			s.recorded[n] = nil
			n++
		}
		s.recorded = s.recorded[n:]
	}
	s.recorded = append(s.recorded, b)
	s.nRecorded += len(b.recips)
}

func (s *Sim) recordCallbackLocked(c RecordedCallback) {
	if s.cfg.CountOnly {
		return
	}
	if len(s.callbacks) >= s.cfg.MaxRecords {
		drop := max(1, len(s.callbacks)/4)
		s.callbacks = append(s.callbacks[:0], s.callbacks[drop:]...)
		s.stats.RecordsDropped += int64(drop)
	}
	s.callbacks = append(s.callbacks, c)
}

// RateFigures is the rate of accepted recipients over a run of requests.
type RateFigures struct {
	// Requests and Recipients are those counted; Span the time from the
	// first counted request to the last.
	Requests, Recipients int
	Span                 time.Duration
	// PerSecond is the least-squares slope of the recipients accepted so
	// far against the arrival time: the steady rate, without the bias a
	// rate limiter's bursts put on a window's two ends.
	PerSecond float64
	// Endpoints is the simple figure: the recipients of all counted
	// requests but the last over Span.
	Endpoints float64
}

// AcceptedRate measures how fast recipients arrived in accepted requests
// (HTTP 200, Result 0000), ignoring the first skip of them (a limiter's
// initial burst) and the last (a backlog's partial tail). It needs records
// (not Config.CountOnly).
func AcceptedRate(reqs []RecordedRequest, skip int) RateFigures {
	acc := make([]RecordedRequest, 0, len(reqs))
	for _, r := range reqs {
		if r.HTTPStatus == 200 && r.Result.OK() && r.Recipients > 0 {
			acc = append(acc, r)
		}
	}
	sort.Slice(acc, func(i, j int) bool { return acc[i].ReceivedAt.Before(acc[j].ReceivedAt) })
	if len(acc) < skip+3 {
		return RateFigures{}
	}
	acc = acc[skip : len(acc)-1]
	t0 := acc[0].ReceivedAt
	f := RateFigures{Requests: len(acc), Span: acc[len(acc)-1].ReceivedAt.Sub(t0)}
	var sx, sy, sxx, sxy float64
	cum := 0
	for i, r := range acc {
		cum += r.Recipients
		if i < len(acc)-1 {
			f.Endpoints += float64(r.Recipients)
		}
		x, y := r.ReceivedAt.Sub(t0).Seconds(), float64(cum)
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	f.Recipients = cum
	n := float64(len(acc))
	if d := n*sxx - sx*sx; d > 0 {
		f.PerSecond = (n*sxy - sx*sy) / d
	}
	if f.Span > 0 {
		f.Endpoints /= f.Span.Seconds()
	} else {
		f.Endpoints = 0
	}
	return f
}
