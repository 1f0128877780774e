package httpapi

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/internal/redisconn"
	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/producer"
)

// Defaults of Config. DefaultMaxBodyBytes leaves room for the largest valid
// message written with JSON escapes (4,000 emoji of text and of name, each
// "\ud83d\ude00", are 96 KB).
const (
	DefaultMaxBodyBytes      = 256 << 10
	DefaultMaxBatchBodyBytes = 16 << 20
	DefaultMaxBatch          = 10_000
	// MaxListCount caps the page size of GET /v1/suppressions.
	MaxListCount = 1000
)

// Config of the API handler.
type Config struct {
	// Token is the bearer token every request must carry (ROXD_API_TOKEN).
	// Required.
	Token string
	// MaxBodyBytes limits every body but a batch's (DefaultMaxBodyBytes).
	MaxBodyBytes int64
	// MaxBatchBodyBytes limits the body of POST /v1/messages/batch
	// (DefaultMaxBatchBodyBytes: room for 10,000 messages).
	MaxBatchBodyBytes int64
	// MaxBatch is the most messages one batch may hold (DefaultMaxBatch).
	MaxBatch int
	// Queue is the asynq queue of roxd's tasks (ROXD_QUEUE), named in a
	// message's task reference (DefaultQueue when empty).
	Queue string
}

// DefaultQueue is the asynq queue named when Config.Queue is empty.
const DefaultQueue = "roxd"

// taskOut names the asynq task that carries a message: open it in the
// dashboard at /monitor/queues/<queue>/tasks/<id>.
type taskOut struct {
	ID    string `json:"id"`
	Queue string `json:"queue"`
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxBatchBodyBytes == 0 {
		c.MaxBatchBodyBytes = DefaultMaxBatchBodyBytes
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	return c
}

// Validate reports the first invalid field of c. It never quotes the token.
func (c Config) Validate() error {
	switch {
	case c.Token == "":
		return errors.New("httpapi: config: Token (ROXD_API_TOKEN) is required")
	case c.MaxBodyBytes < 1024:
		return fmt.Errorf("httpapi: config: MaxBodyBytes %d is below 1024", c.MaxBodyBytes)
	case c.MaxBatchBodyBytes < c.MaxBodyBytes:
		return fmt.Errorf("httpapi: config: MaxBatchBodyBytes %d is below MaxBodyBytes", c.MaxBatchBodyBytes)
	case c.MaxBatch < 1:
		return fmt.Errorf("httpapi: config: MaxBatch %d is below 1", c.MaxBatch)
	}
	return nil
}

// Route is one endpoint of the API, as registered with http.ServeMux.
type Route struct{ Method, Path string }

type api struct {
	p     *producer.Producer
	cfg   Config
	log   zerolog.Logger
	token [sha256.Size]byte
	mux   *http.ServeMux
}

func (a *api) table() []struct {
	Route
	h http.HandlerFunc
} {
	return []struct {
		Route
		h http.HandlerFunc
	}{
		{Route{http.MethodPost, "/v1/messages"}, a.postMessage},
		{Route{http.MethodPost, "/v1/messages/batch"}, a.postBatch},
		{Route{http.MethodGet, "/v1/messages/{id}"}, a.getMessage},
		{Route{http.MethodDelete, "/v1/messages/{id}"}, a.deleteMessage},
		{Route{http.MethodGet, "/v1/suppressions"}, a.listSuppressions},
		{Route{http.MethodGet, "/v1/suppressions/{number}"}, a.getSuppression},
		{Route{http.MethodPut, "/v1/suppressions/{number}"}, a.putSuppression},
		{Route{http.MethodDelete, "/v1/suppressions/{number}"}, a.deleteSuppression},
	}
}

// Routes lists every endpoint New registers (docs/openapi.json documents
// each of them).
func Routes() []Route {
	var a api
	t := a.table()
	out := make([]Route, len(t))
	for i := range t {
		out[i] = t[i].Route
	}
	return out
}

// New returns the API handler (role api of `roxd serve`). Every request
// needs "Authorization: Bearer <cfg.Token>" (the scheme in any case, as
// RFC 9110 says; the token exactly); errors are JSON
// {"error":{"code","message","field"}}. GET /healthz is not here: the
// server answers it before any role is ready.
func New(p *producer.Producer, cfg Config, log zerolog.Logger) (http.Handler, error) {
	if p == nil {
		return nil, errors.New("httpapi: nil producer")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &api{p: p, cfg: cfg, log: log.With().Str("component", "httpapi").Logger(),
		token: sha256.Sum256([]byte(cfg.Token)), mux: http.NewServeMux()}
	for _, r := range a.table() {
		a.mux.HandleFunc(r.Method+" "+r.Path, r.h)
	}
	return a, nil
}

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !a.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="roxd"`)
		writeError(w, http.StatusUnauthorized, apiError{Code: "unauthorized", Message: "missing or wrong bearer token"})
		return
	}
	if _, pattern := a.mux.Handler(r); pattern == "" {
		a.noRoute(w, r)
		return
	}
	a.mux.ServeHTTP(w, r)
}

// noRoute answers a request no route matches: 405 with Allow when the path
// exists for other methods, 404 otherwise; JSON either way.
func (a *api) noRoute(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := a.mux.Handler(probe); pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, http.StatusMethodNotAllowed, apiError{Code: "method_not_allowed",
			Message: r.Method + " is not allowed here; use " + strings.Join(allow, ", ")})
		return
	}
	writeError(w, http.StatusNotFound, apiError{Code: "not_found", Message: "no such endpoint"})
}

// authorized compares digests in constant time, so neither the token nor
// its length leaks through timing.
func (a *api) authorized(r *http.Request) bool {
	tok, ok := bearerToken(r.Header.Get("Authorization"))
	if !ok {
		return false
	}
	got := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(got[:], a.token[:]) == 1
}

// bearerToken is the token of an Authorization header value of scheme
// Bearer. The scheme is case-insensitive (RFC 9110, section 11.1:
// "bearer", "BEARER") and followed by one or more spaces; the token is
// case-sensitive and returned as given, without surrounding white space.
func bearerToken(h string) (string, bool) {
	const scheme = "Bearer"
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) || h[len(scheme)] != ' ' {
		return "", false
	}
	return strings.TrimSpace(h[len(scheme):]), true
}

// apiError is the body of every error answer, under "error".
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, e apiError) {
	writeJSON(w, status, struct {
		Error apiError `json:"error"`
	}{e})
}

// internal answers a storage failure; the detail goes to the log only.
func (a *api) internal(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, redisconn.ErrNotReplicated) {
		// ROXD_REDIS_MIN_REPLICAS: the record is on the master, not yet on
		// enough replicas. The same request again is safe (the ids make it
		// idempotent) and answers the same messages once replicated.
		a.log.Warn().Err(err).Str("method", r.Method).Str("path", r.URL.Path).Msg("not replicated in time; answered 503")
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, apiError{Code: "not_replicated",
			Message: "stored, but not yet confirmed by enough Redis replicas; retry the same request (same ids): it is not sent twice"})
		return
	}
	a.log.Error().Err(err).Str("method", r.Method).Str("path", r.URL.Path).Msg("request failed")
	writeError(w, http.StatusServiceUnavailable, apiError{Code: "unavailable", Message: "message store unavailable, retry later"})
}

// readBody reads at most limit bytes; a larger body answers 413.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, apiError{Code: "too_large",
				Message: fmt.Sprintf("body over %d bytes", limit)})
			return nil, false
		}
		writeError(w, http.StatusBadRequest, apiError{Code: "bad_request", Message: "cannot read body"})
		return nil, false
	}
	return body, true
}

// decodeStrict decodes one JSON value into v, refusing unknown fields and
// trailing data, and names the offending field when it can.
func decodeStrict(data []byte, v any) *apiError {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return &apiError{Code: "invalid_json", Message: "trailing data after the JSON value"}
	}
	return nil
}

func jsonError(err error) *apiError {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field, _, _ := strings.Cut(te.Field, ".")
		msg := "wrong JSON type: " + te.Value + " where " + jsonType(te.Type.Kind().String()) + " is expected"
		return &apiError{Code: "invalid", Message: msg, Field: field}
	case errors.As(err, &se):
		return &apiError{Code: "invalid_json", Message: fmt.Sprintf("malformed JSON at byte %d", se.Offset)}
	case errors.Is(err, io.EOF):
		return &apiError{Code: "invalid_json", Message: "empty body"}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &apiError{Code: "invalid_json", Message: "truncated JSON"}
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		f = strings.Trim(f, `"`)
		return &apiError{Code: "unknown_field", Message: fmt.Sprintf("unknown field %q", f), Field: f}
	}
	return &apiError{Code: "invalid_json", Message: "malformed JSON"}
}

func jsonType(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "map", "struct":
		return "an object"
	case "slice":
		return "an array"
	}
	return kind
}

// decodeMessage decodes one message as posted: strictly (decodeStrict),
// refusing a string that is not valid UTF-8 or holds a lone surrogate
// escape (invalidString) with the field it is in, and a name in another
// case than its field's or given twice (exactKeys).
func decodeMessage(data []byte, v *messageIn) *apiError {
	if e := decodeStrict(data, v); e != nil {
		return e
	}
	if field, bad := invalidString(data); bad {
		return &apiError{Code: producer.CodeInvalid, Field: field,
			Message: "not valid UTF-8 (or a \\u escape of a lone UTF-16 surrogate)"}
	}
	return exactKeys(data, messageNames, true)
}

// messageIn is a message as posted.
type messageIn struct {
	ID       string            `json:"id"`
	To       string            `json:"to"`
	Text     string            `json:"text"`
	Name     string            `json:"name"`
	Email    string            `json:"email"`
	SendAt   string            `json:"send_at"`
	Receipt  string            `json:"receipt"`
	Reply    string            `json:"reply"`
	Metadata map[string]string `json:"metadata"`
	// OnAmbiguous: resend|reconcile|fail, "" = ROXD_AMBIGUOUS.
	OnAmbiguous string `json:"on_ambiguous"`
	// Priority: high|normal|bulk, "" = normal.
	Priority string `json:"priority"`
	// ValidFor: a Go duration string ("90s", "10m") or an integer number
	// of seconds; ExpiresAt: RFC 3339. At most one of them.
	ValidFor  json.RawMessage `json:"valid_for"`
	ExpiresAt string          `json:"expires_at"`
	// Account: a ROX account's name, "" = default.
	Account string `json:"account"`
}

func (m *messageIn) message() (producer.Message, *apiError) {
	out := producer.Message{ID: m.ID, To: m.To, Text: m.Text, Name: m.Name, Email: m.Email,
		Receipt: producer.ReceiptMode(m.Receipt), Reply: producer.ReplyMode(m.Reply), Metadata: m.Metadata,
		OnAmbiguous: producer.AmbiguousMode(m.OnAmbiguous), Priority: producer.Priority(m.Priority), Account: m.Account}
	if m.SendAt != "" {
		t, err := producer.ParseTime(m.SendAt)
		if err != nil {
			return out, &apiError{Code: producer.CodeInvalid, Field: "send_at",
				Message: "not an RFC 3339 date-time such as 2030-01-02T15:04:05Z or 2030-01-02t15:04:05.5+10:00: " +
					strings.TrimPrefix(err.Error(), producer.ErrBadTime.Error()+": ")}
		}
		out.SendAt = t
	}
	if d, given, e := parseValidFor(m.ValidFor); e != nil {
		return out, e
	} else if given {
		out.ValidFor = d
	}
	if m.ExpiresAt != "" {
		t, err := producer.ParseTime(m.ExpiresAt)
		if err != nil {
			return out, &apiError{Code: producer.CodeInvalid, Field: "expires_at",
				Message: "not an RFC 3339 date-time such as 2030-01-02T15:04:05Z: " +
					strings.TrimPrefix(err.Error(), producer.ErrBadTime.Error()+": ")}
		}
		out.ExpiresAt = t
	}
	return out, nil
}

// resultOut is the answer for one message.
type resultOut struct {
	ID       string `json:"id,omitempty"`
	Status   string `json:"status,omitempty"`
	To       string `json:"to,omitempty"`
	Encoding string `json:"encoding,omitempty"`
	Segments int    `json:"segments,omitempty"`
	Replayed bool   `json:"replayed,omitempty"`
	// CancellableUntil: a DELETE before this time is sure to succeed
	// (scheduled messages only).
	CancellableUntil *time.Time `json:"cancellable_until,omitempty"`
	// ExpiresAt: not handed to ROX by then, the message ends expired.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Error     *apiError  `json:"error,omitempty"`
}

// resultError maps a per-message error to its answer; ok is false for an
// error that is not the message's fault.
func resultError(err error) (status int, e apiError, ok bool) {
	var fe *producer.FieldError
	switch {
	case errors.As(err, &fe):
		return http.StatusBadRequest, apiError{Code: fe.Code, Message: fe.Message, Field: fe.Field}, true
	case errors.Is(err, producer.ErrConflict):
		return http.StatusConflict, apiError{Code: "conflict", Field: "id",
			Message: "this id was used for a message with other content"}, true
	}
	return 0, apiError{}, false
}

func toOut(r producer.Result) resultOut {
	return resultOut{ID: r.ID, Status: string(r.Status.Public()), To: r.To, Encoding: r.Encoding,
		Segments: r.Segments, Replayed: r.Replayed, CancellableUntil: timeOrNil(r.CancellableUntil),
		ExpiresAt: timeOrNil(r.ExpiresAt)}
}

// timeOrNil is t in UTC, or nil when t is zero (the field is left out).
// parseValidFor reads valid_for: a JSON string holding a Go duration
// ("90s", "1h30m") or a JSON integer of seconds; absent or null is not
// given. It must be positive (leave it out for ROXD_DEFAULT_VALIDITY).
func parseValidFor(raw json.RawMessage) (time.Duration, bool, *apiError) {
	bad := func(msg string) (time.Duration, bool, *apiError) {
		return 0, false, &apiError{Code: producer.CodeInvalid, Field: "valid_for", Message: msg}
	}
	if len(raw) == 0 || string(raw) == "null" {
		return 0, false, nil
	}
	var d time.Duration
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return bad("not a JSON string")
		}
		v, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return bad(fmt.Sprintf("%q is not a duration such as \"90s\" or \"1h30m\" (or give whole seconds as a number)", truncateStr(s)))
		}
		d = v
	default:
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return bad("want a duration string such as \"90s\" or a whole number of seconds, not " + truncateStr(string(raw)))
		}
		if n > int64(1<<62/time.Second) || n < -int64(1<<62/time.Second) {
			return bad(fmt.Sprintf("%d seconds is out of range", n))
		}
		d = time.Duration(n) * time.Second
	}
	if d <= 0 {
		return bad(fmt.Sprintf("%s is not positive: leave valid_for out for the default (ROXD_DEFAULT_VALIDITY)", d))
	}
	return d, true, nil
}

func truncateStr(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func (a *api) postMessage(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r, a.cfg.MaxBodyBytes)
	if !ok {
		return
	}
	var in messageIn
	if e := decodeMessage(body, &in); e != nil {
		writeError(w, http.StatusBadRequest, *e)
		return
	}
	m, e := in.message()
	if e != nil {
		writeError(w, http.StatusBadRequest, *e)
		return
	}
	res, err := a.p.Send(r.Context(), m)
	if err != nil {
		if status, e, ok := resultError(err); ok {
			writeError(w, status, e)
			return
		}
		a.internal(w, r, err)
		return
	}
	status := http.StatusAccepted
	if res.Replayed {
		status = http.StatusOK
	}
	writeJSON(w, status, toOut(res))
}

func (a *api) postBatch(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r, a.cfg.MaxBatchBodyBytes)
	if !ok {
		return
	}
	var in struct {
		Messages []json.RawMessage `json:"messages"`
	}
	if e := decodeStrict(body, &in); e != nil {
		writeError(w, http.StatusBadRequest, *e)
		return
	}
	if e := exactKeys(body, batchNames, false); e != nil {
		writeError(w, http.StatusBadRequest, *e)
		return
	}
	switch n := len(in.Messages); {
	case n == 0:
		writeError(w, http.StatusBadRequest, apiError{Code: producer.CodeRequired, Field: "messages",
			Message: "no messages"})
		return
	case n > a.cfg.MaxBatch:
		writeError(w, http.StatusRequestEntityTooLarge, apiError{Code: producer.CodeTooMany, Field: "messages",
			Message: fmt.Sprintf("%d messages, at most %d per batch", n, a.cfg.MaxBatch)})
		return
	}
	out := make([]resultOut, len(in.Messages))
	msgs := make([]producer.Message, 0, len(in.Messages))
	idx := make([]int, 0, len(in.Messages))
	for i, raw := range in.Messages {
		var mi messageIn
		e := decodeMessage(raw, &mi)
		var m producer.Message
		if e == nil {
			m, e = mi.message()
		}
		if e != nil {
			out[i] = resultOut{ID: mi.ID, Error: e}
			continue
		}
		msgs = append(msgs, m)
		idx = append(idx, i)
	}
	res, err := a.p.SendMany(r.Context(), msgs)
	if err != nil {
		a.internal(w, r, err)
		return
	}
	for j, i := range idx {
		if res[j].Err != nil {
			_, e, ok := resultError(res[j].Err)
			if !ok {
				e = apiError{Code: "error", Message: res[j].Err.Error()}
			}
			out[i] = resultOut{ID: res[j].ID, Error: &e}
			continue
		}
		out[i] = toOut(res[j])
	}
	writeJSON(w, http.StatusOK, struct {
		Results []resultOut `json:"results"`
	}{out})
}

type eventOut struct {
	Status string    `json:"status"`
	At     time.Time `json:"at"`
}

type messageOut struct {
	ID        string            `json:"id"`
	Status    string            `json:"status"`
	To        string            `json:"to"`
	SMSID     string            `json:"sms_id"`
	RequestID string            `json:"request_id"`
	Error     string            `json:"error"`
	SendAt    *time.Time        `json:"send_at"`
	Receipt   string            `json:"receipt"`
	Reply     string            `json:"reply"`
	Attempts  int               `json:"attempts"`
	Metadata  map[string]string `json:"metadata"`
	History   []eventOut        `json:"history"`
	// OnAmbiguous is the message's own policy, absent when it has none.
	OnAmbiguous string `json:"on_ambiguous,omitempty"`
	// Priority is high, normal or bulk.
	Priority string `json:"priority"`
	// ExpiresAt is when the message expires if not handed to ROX by then
	// (null: never).
	ExpiresAt *time.Time `json:"expires_at"`
	// CancellableUntil: see resultOut.
	CancellableUntil *time.Time `json:"cancellable_until,omitempty"`
	Task             *taskOut   `json:"task,omitempty"`
	// Account is the ROX account that sends it.
	Account string `json:"account"`
}

func (a *api) getMessage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	rec, err := a.p.Get(r.Context(), id)
	switch {
	case errors.Is(err, producer.ErrNotFound):
		writeError(w, http.StatusNotFound, apiError{Code: "not_found", Field: "id", Message: "no message with this id"})
		return
	case err != nil:
		a.internal(w, r, err)
		return
	}
	out := messageOut{ID: rec.ID, Status: string(rec.Status.Public()), To: rec.To, SMSID: rec.SMSID,
		RequestID: rec.RequestID, Error: rec.Err, Receipt: rec.Receipt, Reply: rec.Reply,
		Attempts: rec.Attempts, Metadata: rec.Metadata, History: publicHistory(rec.History),
		CancellableUntil: timeOrNil(a.p.CancellableUntil(rec.Status, rec.SendAt)),
		OnAmbiguous:      rec.OnAmbiguous, Priority: rec.Priority, ExpiresAt: timeOrNil(rec.ExpiresAt), Account: rec.Account}
	if !rec.SendAt.IsZero() {
		t := rec.SendAt.UTC()
		out.SendAt = &t
	}
	if out.Metadata == nil {
		out.Metadata = map[string]string{}
	}
	if id := store.TaskOf(rec); id != "" {
		q := a.cfg.Queue
		if q == "" {
			q = DefaultQueue
		}
		n := a.p.Store().Config().Shards
		q = store.ShardQueue(q, n, store.ShardOf(rec.ID, n))
		if rec.Batch != "" { // a send task: in the queue of its priority
			q = store.PriorityQueue(q, rec.Priority)
		}
		out.Task = &taskOut{ID: id, Queue: q}
	}
	writeJSON(w, http.StatusOK, out)
}

// publicHistory shows statuses as callers know them: the internal
// "sending" reads as queued, and a repeat of the previous status is dropped.
func publicHistory(h []store.Event) []eventOut {
	out := make([]eventOut, 0, len(h))
	for _, e := range h {
		st := string(e.Status.Public())
		if len(out) > 0 && out[len(out)-1].Status == st {
			continue
		}
		out = append(out, eventOut{Status: st, At: e.At.UTC()})
	}
	return out
}

func (a *api) deleteMessage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	st, err := a.p.Cancel(r.Context(), id)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, resultOut{ID: id, Status: string(st)})
	case errors.Is(err, producer.ErrNotFound):
		writeError(w, http.StatusNotFound, apiError{Code: "not_found", Field: "id", Message: "no message with this id"})
	case errors.Is(err, producer.ErrNotCancellable):
		msg := "the message is " + string(st.Public()) + " and can no longer be cancelled"
		if st == store.StatusSending {
			msg = "the message is being handed to ROX and can no longer be cancelled"
		}
		writeJSON(w, http.StatusConflict, struct {
			ID     string   `json:"id"`
			Status string   `json:"status"`
			Error  apiError `json:"error"`
		}{id, string(st.Public()), apiError{Code: "not_cancellable", Message: msg}})
	default:
		a.internal(w, r, err)
	}
}

type suppressionOut struct {
	Number     string `json:"number"`
	Suppressed bool   `json:"suppressed"`
}

// numberError answers a number the producer could not normalise.
func (a *api) numberError(w http.ResponseWriter, r *http.Request, err error) {
	var fe *producer.FieldError
	if errors.As(err, &fe) {
		writeError(w, http.StatusBadRequest, apiError{Code: fe.Code, Message: fe.Message, Field: fe.Field})
		return
	}
	a.internal(w, r, err)
}

func (a *api) listSuppressions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var cursor uint64
	count := int64(100)
	if v := q.Get("cursor"); v != "" {
		c, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, apiError{Code: producer.CodeInvalid, Field: "cursor",
				Message: "not a cursor: use 0 or the next_cursor of the previous page"})
			return
		}
		cursor = c
	}
	if v := q.Get("count"); v != "" {
		c, err := strconv.ParseInt(v, 10, 64)
		if err != nil || c < 1 || c > MaxListCount {
			writeError(w, http.StatusBadRequest, apiError{Code: producer.CodeInvalid, Field: "count",
				Message: fmt.Sprintf("want 1..%d", MaxListCount)})
			return
		}
		count = c
	}
	nums, next, err := a.p.ListSuppressed(r.Context(), cursor, count)
	if err != nil {
		a.internal(w, r, err)
		return
	}
	if nums == nil {
		nums = []string{}
	}
	writeJSON(w, http.StatusOK, struct {
		Numbers    []string `json:"numbers"`
		NextCursor uint64   `json:"next_cursor"`
	}{nums, next})
}

func (a *api) getSuppression(w http.ResponseWriter, r *http.Request) {
	n, ok, err := a.p.IsSuppressed(r.Context(), r.PathValue("number"))
	if err != nil {
		a.numberError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, suppressionOut{n, ok})
}

func (a *api) putSuppression(w http.ResponseWriter, r *http.Request) {
	n, err := a.p.Suppress(r.Context(), r.PathValue("number"))
	if err != nil {
		a.numberError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, suppressionOut{n, true})
}

func (a *api) deleteSuppression(w http.ResponseWriter, r *http.Request) {
	n, err := a.p.Unsuppress(r.Context(), r.PathValue("number"))
	if err != nil {
		a.numberError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, suppressionOut{n, false})
}
