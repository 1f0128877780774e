package callbacks

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/internal/metrics"
	"github.com/redoxygen/roxd/rox"
)

// Outcomes of a callback, as counted in roxd_callbacks_total.
const (
	OutcomeStored       = "stored"
	OutcomeDuplicate    = "duplicate"
	OutcomeDeferred     = "deferred" // SMSId not recorded yet: correlated later
	OutcomeSpooled      = "spooled"
	OutcomeBadToken     = "bad_token"
	OutcomeTooLarge     = "too_large"
	OutcomeBadRequest   = "bad_request"
	OutcomeWrongAccount = "wrong_account"
	OutcomeError        = "error"
)

// ErrRunning is returned by a second call of Run.
var ErrRunning = errors.New("callbacks: receiver already running")

var errStopped = errors.New("callbacks: receiver stopped")

// errNoAnswer: Redis did not answer within Config.StoreTimeout.
var errNoAnswer = errors.New("callbacks: store: no answer")

// Receiver is the HTTP endpoint ROX posts receipts and replies to. Its
// Handler serves /rox/{token}/receipt and /rox/{token}/reply; Run drives the
// Redis batchers and the spool replayer.
type Receiver struct {
	cfg      Config
	log      zerolog.Logger
	st       *storer
	spool    *spool // nil when spooling is disabled
	tokenSum [sha256.Size]byte
	accounts []tokenAccount // the default account (Token, AccountID) first
	kw       keywords

	receiptResp, replyResp []byte
	running                atomic.Bool
	stopped                chan struct{} // closed when Run has returned
	spooling               atomic.Bool   // for logging the change once
	bufs                   sync.Pool

	counters map[[2]string]prometheus.Counter
	durRecv  prometheus.Observer
	durReply prometheus.Observer
}

// New checks cfg and returns a Receiver storing into rdb. When
// cfg.SpoolDir holds callbacks left by an earlier process, Run replays them
// before new callbacks reach Redis.
func New(cfg Config, rdb redis.UniversalClient, log zerolog.Logger) (*Receiver, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if rdb == nil {
		return nil, fmt.Errorf("%w: redis client: required", ErrConfig)
	}
	r := &Receiver{
		cfg:      cfg,
		log:      log.With().Str("component", "callbacks").Logger(),
		st:       newStorer(rdb, cfg),
		tokenSum: sha256.Sum256([]byte(cfg.Token)),
		accounts: []tokenAccount{{sum: sha256.Sum256([]byte(cfg.Token)), id: cfg.AccountID, name: "default"}},
		kw:       newKeywords(cfg.StopWords, cfg.StartWords, cfg.HelpWords),
		counters: map[[2]string]prometheus.Counter{},
		stopped:  make(chan struct{}),
		durRecv:  metrics.CallbackDuration.WithLabelValues(KindReceipt),
		durReply: metrics.CallbackDuration.WithLabelValues(KindReply),
	}
	for _, a := range cfg.Accounts {
		r.accounts = append(r.accounts, tokenAccount{sum: sha256.Sum256([]byte(a.Token)), id: strings.TrimSpace(a.AccountID), name: a.Name})
	}
	r.bufs.New = func() any { return new(bytes.Buffer) }
	var err error
	if r.receiptResp, err = json.Marshal(rox.ReceiptResponse()); err != nil {
		return nil, fmt.Errorf("callbacks: encode answer: %w", err)
	}
	if r.replyResp, err = json.Marshal(rox.ReplyResponse()); err != nil {
		return nil, fmt.Errorf("callbacks: encode answer: %w", err)
	}
	for _, k := range []string{KindReceipt, KindReply, "unknown"} {
		for _, o := range []string{OutcomeStored, OutcomeDuplicate, OutcomeDeferred, OutcomeSpooled, OutcomeBadToken,
			OutcomeTooLarge, OutcomeBadRequest, OutcomeWrongAccount, OutcomeError} {
			r.counters[[2]string{k, o}] = metrics.Callbacks.WithLabelValues(k, o)
		}
	}
	if cfg.SpoolDir != "" {
		if r.spool, err = openSpool(cfg.SpoolDir, r.log); err != nil {
			return nil, err
		}
	} else {
		r.log.Warn().Msg("no spool directory: callbacks that cannot reach Redis are answered 503")
	}
	return r, nil
}

// ShardParam is the query parameter of the callback URLs the worker hands
// ROX: the shard of the request's messages (store/shards.go), so that a
// callback's records are found without a lookup. URLs carry it only when
// the deployment has more than one shard.
const ShardParam = "s"

// shardParam is 1 + the shard v names among n, or 0 when v names none.
// queryGet is url.ParseQuery(raw).Get(name) without the map: the first
// value of name, pairs that do not parse skipped as ParseQuery skips them,
// and nothing read past ParseQuery's default limit of 10,000 pairs.
func queryGet(raw, name string) string {
	if strings.Count(raw, "&") >= 10000 {
		return ""
	}
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" || strings.Contains(pair, ";") {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, err := url.QueryUnescape(k)
		if err != nil || k != name {
			continue
		}
		if v, err = url.QueryUnescape(v); err != nil {
			continue
		}
		return v
	}
	return ""
}

func shardParam(v string, n int) int {
	i, err := strconv.Atoi(v)
	if v == "" || err != nil || i < 0 || i >= n {
		return 0
	}
	return i + 1
}

// Unready returns why callbacks cannot be stored now ("" when they can):
// the last store (or stream push) was refused by Redis for a reason
// replaying cannot cure (CROSSSLOT, WRONGTYPE, NOPERM, a script error). It
// clears when a later store succeeds. /readyz reports it.
func (r *Receiver) Unready() string { return r.st.health.reason() }

// Run stores callbacks until ctx is done: it starts the pipelined batchers,
// the spool replayer (which first replays what an earlier process left) and
// the resolver of deferred callbacks (deferred.go), and waits for them.
// Shut the HTTP server down before cancelling ctx if you can: a callback
// arriving after Run returned goes straight to the spool (replayed by the
// next start), or is answered 503 without a spool. Deferred callbacks wait
// in Redis for the next Run (of any receiver sharing it).
func (r *Receiver) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	var wg sync.WaitGroup
	for i := 0; i < r.cfg.Pipelines; i++ {
		wg.Go(func() { r.st.loop(ctx) })
	}
	if r.spool != nil {
		wg.Go(func() { r.replayLoop(ctx) })
	}
	wg.Go(func() { r.resolveLoop(ctx) })
	if r.st.split {
		wg.Go(func() { r.outboxLoop(ctx) })
	}
	<-ctx.Done()
	wg.Wait()
	close(r.stopped)
	if r.spool != nil {
		// Close the current file, but keep the spool open: a callback that
		// still arrives (the HTTP server not yet shut down) is spooled, to
		// be replayed by the next start, rather than refused.
		return r.spool.rotate()
	}
	return nil
}

// SpoolDepth is the number of callbacks in the local spool waiting for
// Redis (0 when spooling is disabled or the spool is drained).
func (r *Receiver) SpoolDepth() int64 {
	if r.spool == nil || !r.spool.isActive() {
		return 0
	}
	return max(r.spool.depth.Load(), 1)
}

// Handler serves POST /rox/{token}/receipt and POST /rox/{token}/reply.
func (r *Receiver) Handler() http.Handler { return http.HandlerFunc(r.serveHTTP) }

// route splits /rox/{token}/{kind}; ok is false unless the token matches.
func (r *Receiver) route(path string) (kind string, ok bool) {
	kind, a := r.routeAccount(path)
	return kind, a != nil
}

// tokenAccount is an account the receiver takes callbacks for, known by
// the hash of its token.
type tokenAccount struct {
	sum      [32]byte
	id, name string
}

// routeAccount returns the kind a path names and the account whose token
// it carries (nil: no account's). Every token is compared, in constant
// time, whichever matches.
func (r *Receiver) routeAccount(path string) (kind string, acct *tokenAccount) {
	rest, found := strings.CutPrefix(path, "/rox/")
	if !found {
		return "unknown", nil
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return "unknown", nil
	}
	switch rest[i+1:] {
	case KindReceipt:
		kind = KindReceipt
	case KindReply:
		kind = KindReply
	default:
		return "unknown", nil
	}
	sum := sha256.Sum256([]byte(rest[:i]))
	for j := range r.accounts {
		if subtle.ConstantTimeCompare(sum[:], r.accounts[j].sum[:]) == 1 {
			acct = &r.accounts[j]
		}
	}
	return kind, acct
}

func (r *Receiver) count(kind, outcome string) {
	if c, ok := r.counters[[2]string{kind, outcome}]; ok {
		c.Inc()
	}
}

// fail counts the outcome and answers with a JSON ROX_API_*_Response whose
// Result is result (never "0000") and ResultText msg (answer.go).
func (r *Receiver) fail(w http.ResponseWriter, kind, outcome string, code int, result rox.Code, msg string) {
	r.count(kind, outcome)
	writeAnswer(w, kind, code, result, msg)
}

// pathKind is the kind a path names, whether or not its token is right, so
// that even a refusal answers in the right Name.
func pathKind(path string) string {
	if strings.HasSuffix(path, "/"+KindReply) {
		return KindReply
	}
	return KindReceipt
}

func (r *Receiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	kind, acct := r.routeAccount(req.URL.Path)
	if acct == nil {
		writeKind := kind
		if kind == "unknown" {
			writeKind = pathKind(req.URL.Path)
		}
		r.count(kind, OutcomeBadToken)
		writeAnswer(w, writeKind, http.StatusNotFound, ResultBadToken, "not found: no callback here for this token and path")
		return
	}
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		r.fail(w, kind, OutcomeBadRequest, http.StatusMethodNotAllowed, ResultBadRequest, "method "+req.Method+" not allowed: use POST")
		return
	}
	if req.ContentLength > r.cfg.MaxBody {
		r.fail(w, kind, OutcomeTooLarge, http.StatusRequestEntityTooLarge, ResultTooLarge, r.tooLarge())
		return
	}
	buf := r.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 2*int(r.cfg.MaxBody) {
			r.bufs.Put(buf)
		}
	}()
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, req.Body, r.cfg.MaxBody)); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			r.fail(w, kind, OutcomeTooLarge, http.StatusRequestEntityTooLarge, ResultTooLarge, r.tooLarge())
			return
		}
		r.fail(w, kind, OutcomeBadRequest, http.StatusBadRequest, ResultBadRequest, "cannot read the body")
		return
	}
	ev, account, err := r.decode(kind, buf.Bytes(), start)
	if err != nil {
		r.fail(w, kind, OutcomeBadRequest, http.StatusBadRequest, ResultBadRequest,
			"bad request: "+err.Error()+r.salvage(req.Context(), kind, buf.Bytes()))
		return
	}
	// The token names the account; the callback must claim that account.
	if acct.id != "" && !strings.EqualFold(strings.TrimSpace(account), acct.id) {
		r.fail(w, kind, OutcomeWrongAccount, http.StatusForbidden, ResultWrongAccount,
			"wrong account: Sender.AccountId is not the ROX account of this callback URL's token"+r.salvage(req.Context(), kind, buf.Bytes()))
		return
	}
	ev.Shard = shardParam(queryGet(req.URL.RawQuery, ShardParam), max(r.cfg.Shards, 1))
	outcome, err := r.store(ev)
	if err != nil {
		r.log.Error().Err(err).Str("kind", kind).Str("event_id", ev.EventID).Msg("callback not stored; answered 503")
		text := "not stored: storage unavailable, post it again later"
		if spoolReason(err) == SpoolRefused {
			text = "not stored: storage refused the write, post it again later"
		}
		r.fail(w, kind, OutcomeError, http.StatusServiceUnavailable, ResultNotStored, text)
		return
	}
	r.count(kind, outcome)
	w.Header().Set("Content-Type", "application/json")
	if kind == KindReceipt {
		_, _ = w.Write(r.receiptResp)
		r.durRecv.Observe(time.Since(start).Seconds())
	} else {
		_, _ = w.Write(r.replyResp)
		r.durReply.Observe(time.Since(start).Seconds())
	}
}

// salvage applies the STOP of a refused callback (salvage.go) and returns
// what to add to the refusal's ResultText.
func (r *Receiver) salvage(ctx context.Context, kind string, body []byte) string {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.StoreTimeout)
	defer cancel()
	num, err := r.salvageStop(ctx, body)
	switch {
	case err != nil:
		r.log.Error().Err(err).Str("kind", kind).Msg("refused callback carries a STOP that could not be applied")
		return "; its STOP could not be applied"
	case num != "":
		r.log.Warn().Str("kind", kind).Msg("refused callback carries a STOP: number opted out")
		return "; its STOP was applied (number opted out)"
	}
	return ""
}

func (r *Receiver) tooLarge() string {
	return fmt.Sprintf("body too large: at most %d bytes", r.cfg.MaxBody)
}

// decode reads a callback body of kind into an event and its account id.
func (r *Receiver) decode(kind string, body []byte, now time.Time) (*event, string, error) {
	if kind == KindReceipt {
		rc, err := rox.DecodeReceipt(body)
		if err != nil {
			return nil, "", err
		}
		return receiptEvent(rc, now), rc.Sender.AccountID, nil
	}
	rp, err := rox.DecodeReply(body)
	if err != nil {
		return nil, "", err
	}
	return replyEvent(rp, now, r.kw, r.cfg.DefaultRegion), rp.Sender.AccountID, nil
}

// store writes ev to Redis or, failing that, to the spool, and returns the
// outcome. It returns an error only when ev is stored nowhere. Which
// failures divert a callback to the spool, and why, is spoolReason's
// (spooldecision.go); a slow Redis only slows the answer.
func (r *Receiver) store(ev *event) (string, error) {
	if r.spool != nil {
		wrote, err := r.spool.append([]*event{ev}, false)
		if err != nil {
			return "", err
		}
		if wrote {
			metrics.CallbacksSpooled.WithLabelValues(SpoolBacklog).Inc()
			return OutcomeSpooled, nil
		}
	}
	j := &job{ev: ev, done: make(chan result, 1)}
	timer := time.NewTimer(r.cfg.StoreTimeout)
	defer timer.Stop()
	var res result
	select {
	case r.st.jobs <- j:
		select {
		case res = <-j.done:
		case <-timer.C:
			res.err = fmt.Errorf("%w from redis in %s", errNoAnswer, r.cfg.StoreTimeout)
		case <-r.stopped:
			res.err = errStopped
		}
	case <-timer.C:
		res.err = fmt.Errorf("%w: batcher busy for %s", errNoAnswer, r.cfg.StoreTimeout)
	case <-r.stopped:
		res.err = errStopped
	}
	if res.err == nil {
		r.observe(ev, res)
		switch {
		case res.dup:
			return OutcomeDuplicate, nil
		case res.deferred:
			return OutcomeDeferred, nil
		}
		return OutcomeStored, nil
	}
	if r.spool == nil {
		return "", res.err
	}
	reason := spoolReason(res.err)
	if reason == SpoolRefused {
		// Replaying cannot cure it: keep it for the operator, loudly.
		if err := r.spool.reject(ev, res.err); err != nil {
			return "", fmt.Errorf("%w (and rejected.log: %w)", res.err, err)
		}
		metrics.CallbacksSpooled.WithLabelValues(reason).Inc()
		r.log.Error().Err(res.err).Str("event_id", ev.EventID).Str("kind", ev.Kind).
			Msg("redis refused a callback; kept in the spool's rejected.log")
		return OutcomeSpooled, nil
	}
	if _, err := r.spool.append([]*event{ev}, true); err != nil {
		return "", fmt.Errorf("%w (and spool: %w)", res.err, err)
	}
	metrics.CallbacksSpooled.WithLabelValues(reason).Inc()
	if r.spooling.CompareAndSwap(false, true) {
		r.log.Warn().Err(res.err).Str("reason", reason).Msg("redis unavailable: spooling callbacks to disk")
	}
	return OutcomeSpooled, nil
}

// observe updates the message metrics after ev was stored.
func (r *Receiver) observe(ev *event, res result) {
	if !res.moved {
		return
	}
	switch ev.Status {
	case StatusDelivered:
		metrics.MessagesDelivered.Inc()
	case StatusFailed:
		metrics.MessagesFailed.WithLabelValues("receipt").Inc()
	}
}

// replayLoop replays the spool whenever it is active, backing off while
// Redis stays unreachable.
func (r *Receiver) replayLoop(ctx context.Context) {
	const minWait = 50 * time.Millisecond
	wait := minWait
	lastWarn := time.Now() // the switch to spooling was logged already
	for {
		if r.spool.isActive() {
			err := r.replay(ctx)
			if err == nil {
				done, derr := r.spool.tryDeactivate()
				if derr != nil {
					err = derr
				} else if done {
					wait = minWait
					r.spooling.Store(false)
					r.log.Info().Msg("spool replayed into redis; storing directly again")
					continue
				} else {
					// More arrived meanwhile: let a few gather, then replay
					// them too.
					if !sleepCtx(ctx, 5*time.Millisecond) {
						return
					}
					continue
				}
			}
			if ctx.Err() != nil {
				return
			}
			if time.Since(lastWarn) >= 30*time.Second {
				lastWarn = time.Now()
				r.log.Warn().Err(err).Int64("spooled", r.spool.depth.Load()).Msg("spool waiting for redis")
			}
			if !sleepCtx(ctx, wait) {
				return
			}
			wait = min(2*wait, r.cfg.ReplayInterval)
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-r.spool.wake:
		}
	}
}

// replay rotates the spool and stores every closed file into Redis, oldest
// first, removing each file once all of it is stored. A transient Redis
// error stops it (the file is replayed again later: the dedup key makes
// that harmless); an event Redis refuses for good goes to rejected.log.
func (r *Receiver) replay(ctx context.Context) error {
	if err := r.spool.rotate(); err != nil {
		return err
	}
	names, err := r.spool.closedFiles()
	if err != nil {
		return err
	}
	for _, name := range names {
		var n int64
		err := r.spool.readFile(name, r.cfg.MaxBatch, func(evs []*event) error {
			rctx, cancel := context.WithTimeout(ctx, 4*r.cfg.StoreTimeout)
			defer cancel()
			res := r.st.exec(rctx, evs)
			for _, x := range res {
				if x.err != nil && transient(x.err) {
					return x.err
				}
			}
			for i, x := range res {
				if x.err != nil {
					r.log.Error().Err(x.err).Str("event_id", evs[i].EventID).Msg("redis refused a spooled callback; kept in rejected.log")
					if err := r.spool.reject(evs[i], x.err); err != nil {
						return err
					}
					continue
				}
				r.observe(evs[i], x)
			}
			n += int64(len(evs))
			return nil
		})
		if err != nil {
			return err
		}
		if err := r.spool.remove(name); err != nil {
			return err
		}
		r.spool.depth.Add(-n)
		metrics.SpoolDepth.Set(float64(max(r.spool.depth.Load(), 0)))
	}
	return nil
}

// sleepCtx waits d; false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
