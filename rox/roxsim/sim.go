package roxsim

import (
	"container/heap"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/redoxygen/roxd/rox"
)

// Paths the simulator serves.
const (
	SendPath       = "/smsapi/send"    // POST: ROX_API_Request
	RequestsPath   = "/sim/requests"   // GET: recorded requests (?limit=)
	RecipientsPath = "/sim/recipients" // GET: recorded recipients (?request_id= &sms_id= &dest_tn= &text= &limit=)
	CallbacksPath  = "/sim/callbacks"  // GET: recorded callbacks (?kind= &sms_id= &limit=)
	StatsPath      = "/sim/stats"      // GET: Stats
	ResetPath      = "/sim/reset"      // POST: Reset
	FaultsPath     = "/sim/faults"     // GET, PUT: Faults
	ReplyPath      = "/sim/reply"      // POST: {"sms_id" or "dest_tn", "text"}
)

// Errors of the Go API.
var (
	// ErrClosed: the simulator was closed.
	ErrClosed = errors.New("roxsim: closed")
	// ErrNotFound: no recorded message matches.
	ErrNotFound = errors.New("roxsim: no such message")
	// ErrNotRecording: the simulator runs with CountOnly.
	ErrNotRecording = errors.New("roxsim: recording is off (CountOnly)")
)

// Sim is a simulated ROX endpoint. It is an http.Handler; create it with
// New and stop it with Close. All its methods are safe for concurrent use.
type Sim struct {
	cfg    Config
	log    zerolog.Logger
	faults atomic.Pointer[Faults]
	rng    lockedRand
	client *fasthttp.Client
	conns  *connSet // the client's connections, closed when Close gives up
	mux    *http.ServeMux
	bufs   sync.Pool // *[]byte for bodies and answers

	mu        sync.Mutex
	stats     Stats
	reqSeq    int64
	requests  []RecordedRequest
	recorded  []*batch // batches whose recipients are recorded, oldest first
	nRecorded int
	callbacks []RecordedCallback
	due       batchHeap // accepted batches not yet delivered
	heapSeq   uint64
	pending   int // batches in due + callback jobs queued or running
	idle      chan struct{}

	wake      chan struct{} // a new earliest batch
	jobs      chan job
	closing   chan struct{}
	closeOnce sync.Once
	ctx       context.Context // cancelled when Close gives up waiting
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// New validates cfg and starts the simulator's scheduler and callback
// workers. The caller must Close it.
func New(cfg Config, log zerolog.Logger) (*Sim, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64() | 1
	}
	conns := &connSet{m: map[net.Conn]struct{}{}}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Sim{
		cfg: cfg,
		log: log.With().Str("component", "roxsim").Logger(),
		rng: lockedRand{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))},
		client: &fasthttp.Client{
			Name:                "roxsim",
			MaxConnsPerHost:     cfg.Workers,
			MaxIdleConnDuration: 90 * time.Second,
			MaxResponseBodySize: 64 << 10,
			Dial:                conns.dial,
		},
		conns:   conns,
		stats:   newStats(),
		idle:    make(chan struct{}),
		wake:    make(chan struct{}, 1),
		jobs:    make(chan job, cfg.Workers*4),
		closing: make(chan struct{}),
		ctx:     ctx,
		cancel:  cancel,
	}
	close(s.idle)
	f := cfg.Faults
	s.faults.Store(&f)
	s.bufs.New = func() any { b := make([]byte, 0, 64<<10); return &b }
	s.mux = s.routes()
	s.wg.Add(1 + cfg.Workers)
	go s.schedule()
	for i := 0; i < cfg.Workers; i++ {
		go s.work()
	}
	return s, nil
}

// Close stops the scheduler (undelivered messages are dropped), releases
// hung requests and waits for the callbacks in flight. When ctx ends first
// it cancels them, waits for the workers to return and returns ctx's error.
func (s *Sim) Close(ctx context.Context) error {
	s.closeOnce.Do(func() { close(s.closing) })
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		s.cancel()
		s.conns.closeAll() // callbacks in flight end now
		<-done
		err = ctx.Err()
	}
	s.cancel()
	s.client.CloseIdleConnections()
	s.conns.closeAll()
	return err
}

// Faults returns the current faults.
func (s *Sim) Faults() Faults { return *s.faults.Load() }

// SetFaults validates f and makes it the current fault set. It applies to
// requests read from now on and to callbacks not yet made.
func (s *Sim) SetFaults(f Faults) error {
	if err := f.Validate(); err != nil {
		return err
	}
	f = f.withDefaults()
	s.faults.Store(&f)
	s.log.Info().Interface("faults", f).Msg("faults changed")
	return nil
}

// WaitIdle waits until every accepted delivery is made and every callback
// it caused is answered (Stats.Pending is 0). A message held by SendLater
// keeps it waiting until due: give ctx a deadline. After Close it returns
// ErrClosed.
func (s *Sim) WaitIdle(ctx context.Context) error {
	select {
	case <-s.closing:
		return ErrClosed
	default:
	}
	s.mu.Lock()
	ch := s.idle
	s.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closing:
		return ErrClosed
	}
}

// addPendingLocked changes the pending count and the idle signal.
func (s *Sim) addPendingLocked(n int) {
	was := s.pending
	s.pending += n
	switch {
	case was == 0 && s.pending > 0:
		s.idle = make(chan struct{})
	case was > 0 && s.pending <= 0:
		s.pending = 0
		close(s.idle)
	}
}

// ServeHTTP serves SendPath and the inspection endpoints.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == SendPath {
		s.handleSend(w, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// lockedRand is the simulator's one seeded source.
type lockedRand struct {
	mu sync.Mutex
	r  *rand.Rand
}

// hit draws against rate; call with mu held.
func hit(r *rand.Rand, rate float64) bool {
	return rate > 0 && (rate >= 1 || r.Float64() < rate)
}

func (s *Sim) handleSend(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.countHTTPError()
		s.writeError(w, http.StatusMethodNotAllowed, CodeMalformed, "method "+r.Method+" not allowed: POST only")
		return
	}
	select {
	case <-s.closing:
		s.writeError(w, http.StatusServiceUnavailable, CodeMalformed, "simulator closing")
		return
	default:
	}
	bp := s.bufs.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 1<<20 { // keep only ordinary buffers
			s.bufs.Put(bp)
		}
	}()
	body, err := readBody(w, r, s.cfg.MaxBody, (*bp)[:0])
	*bp = body[:0]
	if err != nil {
		var mbe *http.MaxBytesError
		s.countHTTPError()
		if errors.As(err, &mbe) {
			s.writeError(w, http.StatusRequestEntityTooLarge, CodeMalformed,
				"body larger than "+strconv.FormatInt(s.cfg.MaxBody, 10)+" bytes")
			return
		}
		s.writeError(w, http.StatusBadRequest, CodeMalformed, "reading body: "+err.Error())
		return
	}

	var req rox.SendRequest
	decoded, decErr := rox.DecodeSendRequest(body)
	if decErr == nil {
		req = *decoded
	}
	f := s.faults.Load()

	// Draw the request's faults.
	var hang, fail5xx, late, throttle bool
	var jitter time.Duration
	s.rng.mu.Lock()
	hang = hit(s.rng.r, f.Hang)
	if !hang {
		fail5xx = hit(s.rng.r, f.Fail5xx)
		throttle = !fail5xx && hit(s.rng.r, f.Throttle)
		if f.Jitter > 0 {
			jitter = time.Duration(s.rng.r.Int64N(int64(f.Jitter) + 1))
		}
		late = !fail5xx && f.LateAnswerDelay > 0 && hit(s.rng.r, f.LateAnswer)
	}
	s.rng.mu.Unlock()

	rr := RecordedRequest{ReceivedAt: now, RemoteAddr: r.RemoteAddr, BodyBytes: len(body),
		Recipients: len(req.Messages.Recipients)}
	if decErr == nil {
		red := req
		if red.Sender.Password != "" {
			red.Sender.Password = Redacted
		}
		rr.Request = &red
	}
	switch {
	case hang:
		rr.Fault = "hang"
	case fail5xx:
		rr.Fault = "5xx"
	case throttle:
		rr.Fault = "429"
	case f.AuthFail:
		rr.Fault = "auth_fail"
	}
	s.mu.Lock()
	s.reqSeq++
	rr.Seq = s.reqSeq
	seq := rr.Seq
	s.stats.Requests++
	idx := s.recordRequestLocked(rr)
	s.mu.Unlock()

	answer := func(status int, code rox.Code, text string) {
		s.mu.Lock()
		s.updateRequestLocked(idx, seq, status, code, text)
		if !code.OK() && code != "" {
			s.stats.Rejected[code]++
		}
		s.mu.Unlock()
		if code == "" {
			return
		}
		s.writeError(w, status, code, text)
	}

	if hang {
		s.mu.Lock()
		s.stats.Hung++
		s.mu.Unlock()
		s.log.Debug().Int64("seq", seq).Msg("holding request (hang fault)")
		select {
		case <-r.Context().Done():
		case <-s.closing:
			abort(w)
		}
		return
	}
	if d := f.Latency + jitter; d > 0 && !s.cfg.AcceptFirst {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		case <-s.closing:
			t.Stop()
		}
	}
	if fail5xx {
		s.mu.Lock()
		s.stats.Injected5xx++
		s.updateRequestLocked(idx, seq, http.StatusInternalServerError, "", "")
		s.mu.Unlock()
		http.Error(w, "roxsim: injected server error", http.StatusInternalServerError)
		return
	}
	if throttle {
		s.mu.Lock()
		s.stats.Throttled++
		s.updateRequestLocked(idx, seq, http.StatusTooManyRequests, "", "")
		s.mu.Unlock()
		if ra := f.ThrottleRetryAfter; ra > 0 {
			w.Header().Set("Retry-After", strconv.FormatInt(int64((ra+time.Second-1)/time.Second), 10))
		}
		http.Error(w, "roxsim: injected throttling", http.StatusTooManyRequests)
		return
	}
	if decErr != nil {
		if !json.Valid(body) {
			s.countHTTPError()
			answer(http.StatusBadRequest, CodeMalformed, "request body is not JSON")
			return
		}
		code, text := decodeErrorText(decErr)
		answer(http.StatusOK, code, text)
		return
	}
	if f.AuthFail || !s.authOK(&req.Sender) {
		answer(http.StatusOK, CodeAuthFailed, "Authentication failed: unknown AccountId, Username or Password")
		return
	}
	if err := req.Validate(); err != nil {
		code, text := decodeErrorText(err)
		answer(http.StatusOK, code, text)
		return
	}

	b, out := s.accept(now, &req, f, (*bp)[:0])
	*bp = out[:0]
	if d := f.Latency + jitter; d > 0 && s.cfg.AcceptFirst {
		// Accepted: the SMS go out whatever happens to the answer.
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		case <-s.closing:
			t.Stop()
		}
	}
	s.mu.Lock()
	s.updateRequestLocked(idx, seq, http.StatusOK, rox.CodeOK, "Success")
	if idx >= 0 && idx < len(s.requests) && s.requests[idx].Seq == seq {
		s.requests[idx].RequestID = b.requestID
		if late {
			s.requests[idx].Fault = "late_answer"
		}
	}
	if late {
		s.stats.LateAnswers++
	}
	s.mu.Unlock()
	if late {
		// Accepted (ids drawn, delivery scheduled), answered late: a
		// client with a shorter timeout never learns the SMSIds.
		t := time.NewTimer(f.LateAnswerDelay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		case <-s.closing:
			t.Stop()
		}
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// abort drops the connection of a held request without an answer, as a
// server that dies mid-request would. Where the connection cannot be taken
// over (HTTP/2), it answers 503.
func abort(w http.ResponseWriter) {
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		_ = conn.Close()
		return
	}
	http.Error(w, "roxsim: closing", http.StatusServiceUnavailable)
}

func (s *Sim) countHTTPError() {
	s.mu.Lock()
	s.stats.HTTPErrors++
	s.mu.Unlock()
}

// authOK compares the credentials in constant time.
func (s *Sim) authOK(snd *rox.Sender) bool {
	a := subtle.ConstantTimeCompare([]byte(snd.AccountID), []byte(s.cfg.AccountID))
	u := subtle.ConstantTimeCompare([]byte(snd.Username), []byte(s.cfg.Username))
	p := subtle.ConstantTimeCompare([]byte(snd.Password), []byte(s.cfg.Password))
	return a&u&p == 1
}

// decodeErrorText turns a decode or validation error into a code and a
// ResultText naming the field.
func decodeErrorText(err error) (rox.Code, string) {
	var fe *rox.FieldError
	if errors.As(err, &fe) {
		if fe.Field == "body" {
			return CodeMalformed, "request is not a ROX_API_Request: " + fe.Reason
		}
		return CodeInvalid, fe.Field + ": " + fe.Reason
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return CodeMalformed, "request is not a JSON object"
		}
		return CodeMalformed, te.Field + ": wrong type: " + te.Value + " where " + te.Type.String() + " is expected"
	}
	return CodeMalformed, "request is not a ROX_API_Request"
}

// readBody reads r's body into buf, at most limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, limit int64, buf []byte) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, limit)
	if n := r.ContentLength; n > 0 && n <= limit && int64(cap(buf)) < n+1 {
		buf = make([]byte, 0, n+1)
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// writeError answers a ROX_API_Response carrying code and text.
func (s *Sim) writeError(w http.ResponseWriter, status int, code rox.Code, text string) {
	out := make([]byte, 0, 128+len(text))
	out = append(out, `{"Name":"ROX_API_Response","Version":1.1,"Result":`...)
	out = rox.AppendJSONString(out, string(code))
	out = append(out, `,"ResultText":`...)
	out = rox.AppendJSONString(out, text)
	out = append(out, '}')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(status)
	_, _ = w.Write(out)
}

// accept answers an accepted request: it assigns ids, draws per-recipient
// faults, records the batch, schedules its delivery, and appends the
// ROX_API_Response to out.
func (s *Sim) accept(now time.Time, req *rox.SendRequest, f *Faults, out []byte) (*batch, []byte) {
	m := &req.Messages
	n := len(m.Recipients)
	due := now
	held := false
	if !m.SendLater.IsZero() && m.SendLater.After(now) {
		due, held = m.SendLater, true
	}
	due = due.Add(f.ReceiptDelay)
	b := &batch{
		receivedAt: now,
		sendLater:  m.SendLater,
		due:        due,
		flag:       m.ReceiptFlag,
		replyType:  m.ReplyType,
		receiptURL: m.ReceiptCallbackURL,
		replyURL:   m.ReplyCallbackURL,
		failCode:   f.DeliveryFailureCode,
		autoText:   f.AutoReplyText,
		recips:     make([]recip, n),
	}
	// Ids: one buffer for the RequestId and every SMSId.
	ids := make([]byte, 36*(n+1))
	var nErr int
	s.rng.mu.Lock()
	rg := s.rng.r
	putUUID(ids[:36], rg)
	for i := range b.recips {
		r := &b.recips[i]
		if hit(rg, f.RecipientErrors) {
			r.fate = fateRefused
			r.result = f.RecipientErrorCodes[rg.IntN(len(f.RecipientErrorCodes))]
			nErr++
			continue
		}
		putUUID(ids[36*(i+1):36*(i+2)], rg)
		if hit(rg, f.DeliveryFailures) {
			r.fate |= fateFail
		}
		if m.ReplyType == rox.ReplyHTTP && hit(rg, f.AutoReplyRate) {
			r.fate |= fateAutoReply
		}
	}
	s.rng.mu.Unlock()
	idstr := string(ids)
	b.requestID = idstr[:36]
	for i := range m.Recipients {
		src := &m.Recipients[i]
		r := &b.recips[i]
		r.destTn, r.destName, r.destEmail, r.text = src.DestTn, src.DestName, src.DestEmail, src.SMSText
		if m.GlobalText != "" {
			r.text = m.GlobalText
		}
		if r.fate&fateRefused == 0 {
			r.smsID = idstr[36*(i+1) : 36*(i+2)]
			r.result = rox.CodeOK
		}
	}
	queued := n - nErr

	s.mu.Lock()
	s.stats.Accepted++
	s.stats.Recipients += int64(n)
	s.stats.Queued += int64(queued)
	if held {
		s.stats.Held += int64(queued)
	}
	if nErr > 0 {
		for i := range b.recips {
			if b.recips[i].fate&fateRefused != 0 {
				s.stats.RecipientErrors[b.recips[i].result]++
			}
		}
	}
	s.recordBatchLocked(b)
	if queued > 0 {
		s.addPendingLocked(1)
		s.heapSeq++
		b.seq = s.heapSeq
		heap.Push(&s.due, b)
		if s.due[0] == b {
			select {
			case s.wake <- struct{}{}:
			default:
			}
		}
	}
	s.mu.Unlock()

	ts := rox.FormatTimestamp(now)
	out = append(out, `{"Name":"ROX_API_Response","Version":1.1,"Result":"0000","ResultText":"Success","Messages":{"Count":`...)
	out = strconv.AppendInt(out, int64(n), 10)
	out = append(out, `,"RequestId":"`...)
	out = append(out, b.requestID...)
	out = append(out, '"')
	for i := range b.recips {
		r := &b.recips[i]
		out = append(out, `,"`...)
		out = strconv.AppendInt(out, int64(i+1), 10)
		out = append(out, `":{"SMSId":"`...)
		out = append(out, r.smsID...)
		out = append(out, `","DestTn":`...)
		out = rox.AppendJSONString(out, r.destTn)
		out = append(out, `,"Result":"`...)
		out = append(out, r.result...)
		if r.result.OK() {
			out = append(out, `","ResultText":"Queued"`...)
		} else {
			out = append(out, `","ResultText":`...)
			out = rox.AppendJSONString(out, codeText(r.result))
		}
		out = append(out, `,"Timestamp":"`...)
		out = append(out, ts...)
		out = append(out, `"}`...)
	}
	out = append(out, `}}`...)
	if s.log.GetLevel() <= zerolog.DebugLevel {
		s.log.Debug().Str("request_id", b.requestID).Int("recipients", n).Int("refused", nErr).
			Bool("held", held).Time("due", due).Msg("accepted")
	}
	return b, out
}

// Reply makes the simulator post a reply with text to the newest recorded
// message with smsID (or, when smsID is empty, sent to destTn). A message
// whose ReplyType is not H gets no callback: the reply is counted as
// forwarded to email. The post itself happens asynchronously (see
// WaitIdle and Callbacks).
func (s *Sim) Reply(ctx context.Context, smsID, destTn, text string) (RecordedRecipient, error) {
	if s.cfg.CountOnly {
		return RecordedRecipient{}, ErrNotRecording
	}
	if smsID == "" && destTn == "" {
		return RecordedRecipient{}, fmt.Errorf("%w: give an SMSId or a DestTn", ErrNotFound)
	}
	s.mu.Lock()
	var b *batch
	idx := -1
	for bi := len(s.recorded) - 1; bi >= 0 && b == nil; bi-- {
		rb := s.recorded[bi]
		for i := len(rb.recips) - 1; i >= 0; i-- {
			r := &rb.recips[i]
			if r.smsID != "" && (r.smsID == smsID || (smsID == "" && r.destTn == destTn)) {
				b, idx = rb, i
				break
			}
		}
	}
	if b == nil {
		s.mu.Unlock()
		return RecordedRecipient{}, ErrNotFound
	}
	rec := b.record(idx)
	if b.replyType != rox.ReplyHTTP || b.replyURL == "" {
		s.stats.ForwardedToEmail++
		s.recordCallbackLocked(RecordedCallback{Kind: KindReply, At: time.Now(), RequestID: rec.RequestID,
			SMSID: rec.SMSID, DestTn: rec.DestTn, ReplyText: text, Attempt: 0, Outcome: OutcomeForwardedToEmail,
			Error: "ReplyType is " + strconv.Quote(string(b.replyType)) + ", not H"})
		s.mu.Unlock()
		return rec, nil
	}
	s.addPendingLocked(1)
	s.mu.Unlock()
	select {
	case s.jobs <- job{b: b, i: idx, reply: true, replyText: text}:
		return rec, nil
	case <-ctx.Done():
		s.donePending()
		return rec, ctx.Err()
	case <-s.closing:
		s.donePending()
		return rec, ErrClosed
	}
}

func (s *Sim) donePending() {
	s.mu.Lock()
	s.addPendingLocked(-1)
	s.mu.Unlock()
}

// connSet tracks the callback client's connections so that Close can end
// the callbacks in flight when its context ends (fasthttp's client takes
// no context).
type connSet struct {
	mu     sync.Mutex
	m      map[net.Conn]struct{}
	closed bool
}

// dial is the client's Dial: fasthttp's dialer, with the connection
// tracked until it is closed.
func (cs *connSet) dial(addr string) (net.Conn, error) {
	c, err := fasthttp.Dial(addr)
	if err != nil {
		return nil, err
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	tc := &trackedConn{Conn: c, set: cs}
	cs.m[tc] = struct{}{}
	return tc, nil
}

// closeAll closes every connection and refuses new ones.
func (cs *connSet) closeAll() {
	cs.mu.Lock()
	cs.closed = true
	all := make([]net.Conn, 0, len(cs.m))
	for c := range cs.m {
		all = append(all, c)
	}
	cs.mu.Unlock()
	for _, c := range all {
		c.Close()
	}
}

type trackedConn struct {
	net.Conn
	set  *connSet
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.set.mu.Lock()
		delete(c.set.m, c)
		c.set.mu.Unlock()
	})
	return c.Conn.Close()
}
