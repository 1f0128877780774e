package roxsim

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/valyala/fasthttp"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/redoxygen/roxd/rox"
)

// fates of a recipient, drawn at acceptance.
const (
	fateRefused   = 1 << 0 // refused with RecipientErrorCodes[fate>>3]
	fateFail      = 1 << 1 // delivery fails
	fateAutoReply = 1 << 2 // answers with an automatic reply
)

// batch is the recipients of one accepted request. Everything but the
// delivery fields of recips is written at acceptance and never changes;
// those are written under Sim.mu.
type batch struct {
	requestID  string
	receivedAt time.Time
	sendLater  time.Time
	due        time.Time
	seq        uint64
	flag       rox.ReceiptFlag
	replyType  rox.ReplyType
	receiptURL string
	replyURL   string
	failCode   rox.Code
	autoText   string
	recips     []recip
}

// recip is one recipient of a batch: the per-recipient part of a
// RecordedRecipient.
type recip struct {
	smsID     string // empty when refused
	destTn    string
	destName  string
	destEmail string
	text      string   // as delivered: GlobalText or SMSText
	result    rox.Code // "0000" or the refusal code
	fate      uint8
	// Delivery, under Sim.mu.
	deliveredAt    time.Time
	deliveryResult rox.Code
}

// record returns recipient i as a RecordedRecipient.
func (b *batch) record(i int) RecordedRecipient {
	r := &b.recips[i]
	out := RecordedRecipient{
		RequestID: b.requestID, Key: i + 1, ReceivedAt: b.receivedAt,
		SMSID: r.smsID, DestTn: r.destTn, DestName: r.destName, DestEmail: r.destEmail, Text: r.text,
		SendLater: b.sendLater, ReceiptFlag: b.flag, ReplyType: b.replyType,
		ReceiptCallbackURL: b.receiptURL, ReplyCallbackURL: b.replyURL,
		Result: r.result, ResultText: "Queued",
		DeliveredAt: r.deliveredAt, DeliveryResult: r.deliveryResult,
	}
	if r.result.OK() {
		out.DueAt = b.due
	} else {
		out.ResultText = codeText(r.result)
	}
	return out
}

// batchHeap orders batches by due time, then arrival.
type batchHeap []*batch

func (h batchHeap) Len() int { return len(h) }
func (h batchHeap) Less(i, j int) bool {
	if h[i].due.Equal(h[j].due) {
		return h[i].seq < h[j].seq
	}
	return h[i].due.Before(h[j].due)
}
func (h batchHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *batchHeap) Push(x any)   { *h = append(*h, x.(*batch)) }
func (h *batchHeap) Pop() any {
	old := *h
	b := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return b
}

// job is one recipient's callbacks.
type job struct {
	b         *batch
	i         int
	receipt   bool
	result    rox.Code // delivery result, for the receipt
	reply     bool
	replyText string
}

// schedule delivers batches when due. It is the only timer of the
// simulator.
func (s *Sim) schedule() {
	defer s.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		s.mu.Lock()
		var wait time.Duration = -1
		var b *batch
		if len(s.due) > 0 {
			if d := time.Until(s.due[0].due); d > 0 {
				wait = d
			} else {
				b = heap.Pop(&s.due).(*batch)
			}
		}
		s.mu.Unlock()
		if b != nil {
			if !s.deliver(b) {
				return
			}
			continue
		}
		var tc <-chan time.Time
		if wait >= 0 {
			t.Reset(wait)
			tc = t.C
		}
		select {
		case <-tc:
		case <-s.wake:
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
		case <-s.closing:
			return
		}
	}
}

// deliver marks b's queued recipients delivered (or failed) and hands their
// callbacks to the workers. It returns false when the simulator closed.
func (s *Sim) deliver(b *batch) bool {
	now := time.Now()
	jobs := make([]job, 0, 16)
	s.mu.Lock()
	for i := range b.recips {
		r := &b.recips[i]
		fate := r.fate
		if fate&fateRefused != 0 {
			continue
		}
		code := rox.CodeOK
		failed := fate&fateFail != 0
		if failed {
			code = b.failCode
			s.stats.DeliveryFailed++
		} else {
			s.stats.Delivered++
		}
		r.deliveredAt, r.deliveryResult = now, code
		receipt := b.flag == rox.ReceiptAlways || (b.flag == rox.ReceiptOnError && failed)
		reply := !failed && fate&fateAutoReply != 0 && b.replyType == rox.ReplyHTTP
		if receipt || reply {
			jobs = append(jobs, job{b: b, i: i, receipt: receipt, result: code, reply: reply, replyText: b.autoText})
		}
	}
	s.addPendingLocked(len(jobs) - 1)
	s.mu.Unlock()
	for k, j := range jobs {
		select {
		case s.jobs <- j:
		case <-s.closing:
			s.mu.Lock()
			s.addPendingLocked(-(len(jobs) - k))
			s.mu.Unlock()
			return false
		}
	}
	return true
}

// work posts callbacks until the simulator closes.
func (s *Sim) work() {
	defer s.wg.Done()
	for {
		select {
		case <-s.closing:
			return
		default:
		}
		select {
		case j := <-s.jobs:
			s.run(j)
			s.donePending()
		case <-s.closing:
			return
		}
	}
}

// run makes one recipient's callbacks: the receipt, then the reply.
func (s *Sim) run(j job) {
	b, r := j.b, &j.b.recips[j.i] // identity fields are immutable after acceptance
	if j.receipt {
		text := "Delivered"
		if !j.result.OK() {
			text = codeText(j.result)
		}
		rc := rox.Receipt{Name: rox.NameReceipt, Version: rox.Version,
			Sender: rox.CallbackSender{AccountID: s.cfg.AccountID, Username: s.cfg.Username},
			Messages: rox.ReceiptMessages{RequestID: b.requestID, Receipt: rox.ReceiptDetail{
				SMSID: r.smsID, DestTn: r.destTn, Result: j.result, ResultText: text,
				Timestamp: rox.FormatTimestamp(time.Now())}}}
		cb := RecordedCallback{Kind: KindReceipt, RequestID: b.requestID, SMSID: r.smsID, DestTn: r.destTn,
			URL: b.receiptURL, Result: j.result, ResultText: text}
		s.callback(cb, rc)
	}
	if j.reply {
		rp := rox.Reply{Name: s.cfg.ReplyName, Version: rox.Version,
			Sender: rox.CallbackSender{AccountID: s.cfg.AccountID, Username: s.cfg.Username},
			Messages: rox.ReplyMessages{RequestID: b.requestID, Reply: rox.ReplyDetail{
				SMSID: r.smsID, ReplyFrom: r.destTn, ReplyText: j.replyText, SMSText: r.text,
				Timestamp: rox.FormatTimestamp(time.Now())}}}
		cb := RecordedCallback{Kind: KindReply, RequestID: b.requestID, SMSID: r.smsID, DestTn: r.destTn,
			URL: b.replyURL, ReplyText: j.replyText}
		s.callback(cb, rp)
	}
}

// callback posts body to cb.URL (retrying once when configured), then a
// duplicate when the Duplicates fault draws one. A callback whose attempts
// all fail is counted as forwarded to email.
func (s *Sim) callback(cb RecordedCallback, body any) {
	payload, err := json.Marshal(body)
	if err != nil { // rox types always encode; keep the rule "never panic"
		s.log.Error().Err(err).Str("kind", cb.Kind).Msg("encode callback")
		return
	}
	ok := s.attempt(cb, payload, 1, false)
	if !ok && s.cfg.RetryCallbacks {
		s.mu.Lock()
		s.stats.Retries++
		s.mu.Unlock()
		ok = s.attempt(cb, payload, 2, false)
	}
	if !ok {
		s.mu.Lock()
		s.stats.ForwardedToEmail++
		c := cb
		c.At, c.Outcome = time.Now(), OutcomeForwardedToEmail
		s.recordCallbackLocked(c)
		s.mu.Unlock()
		return
	}
	s.rng.mu.Lock()
	dup := hit(s.rng.r, s.faults.Load().Duplicates)
	s.rng.mu.Unlock()
	if dup {
		s.mu.Lock()
		s.stats.Duplicates++
		s.mu.Unlock()
		s.attempt(cb, payload, 1, true)
	}
}

// attempt posts payload once and records the outcome.
func (s *Sim) attempt(cb RecordedCallback, payload []byte, attempt int, dup bool) bool {
	start := time.Now()
	status, err := s.post(s.ctx, cb.URL, payload)
	cb.At, cb.Attempt, cb.Duplicate, cb.HTTPStatus = start, attempt, dup, status
	cb.Duration = time.Since(start).Round(time.Microsecond).String()
	cb.Outcome = OutcomeOK
	if err != nil {
		cb.Outcome, cb.Error = OutcomeFailed, err.Error()
	}
	s.mu.Lock()
	switch {
	case cb.Kind == KindReceipt && err == nil:
		s.stats.ReceiptsSent++
	case cb.Kind == KindReceipt:
		s.stats.ReceiptsFailed++
	case err == nil:
		s.stats.RepliesSent++
	default:
		s.stats.RepliesFailed++
	}
	s.recordCallbackLocked(cb)
	s.mu.Unlock()
	if err != nil {
		// The URL carries the receiver's secret token: log only the kind,
		// ids and the cause.
		s.log.Warn().Str("kind", cb.Kind).Str("sms_id", cb.SMSID).Int("status", status).
			Int("attempt", attempt).Str("error", cb.Error).Msg("callback failed")
	}
	return err == nil
}

// errCallback is the cause of a failed callback.
var errCallback = errors.New("callback failed")

// post sends payload and checks the answer: 2xx and, when the body is a
// ROX callback response, Result "0000". Its errors never contain the URL
// (it carries the receiver's token): fasthttp's name only the address.
//
// The client is fasthttp's: the same HTTP/1.1 on the wire as net/http's
// (one request at a time per keep-alive connection, as ROX posts), at half
// the simulator's CPU per callback (roxd bench whole: 114-117 µs with
// net/http's client, 57-67 µs with fasthttp's), which counts against the
// machine that runs both.
func (s *Sim) post(ctx context.Context, u string, payload []byte) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("%w: %v", errCallback, err)
	}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(u)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	req.Header.SetUserAgent("roxsim")
	req.SetBodyRaw(payload)
	if err := s.client.DoTimeout(req, resp, s.cfg.CallbackTimeout); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return 0, fmt.Errorf("%w: %v", errCallback, err)
	}
	code := resp.StatusCode()
	if code < 200 || code > 299 {
		return code, fmt.Errorf("%w: HTTP %d", errCallback, code)
	}
	cr, err := rox.DecodeCallbackResponse(resp.Body())
	if err != nil {
		return code, fmt.Errorf("%w: answer is not a ROX callback response", errCallback)
	}
	if !cr.Result.OK() {
		return code, fmt.Errorf("%w: answered Result %s", errCallback, strconv.Quote(string(cr.Result)))
	}
	return code, nil
}

// putUUID writes a random (version 4) UUID from r into dst[:36].
func putUUID(dst []byte, r *rand.Rand) {
	const hex = "0123456789abcdef"
	var u [16]byte
	a, b := r.Uint64(), r.Uint64()
	for i := 0; i < 8; i++ {
		u[i] = byte(a >> (8 * i))
		u[8+i] = byte(b >> (8 * i))
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	j := 0
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst[j] = '-'
			j++
		}
		dst[j] = hex[c>>4]
		dst[j+1] = hex[c&0xf]
		j += 2
	}
}
