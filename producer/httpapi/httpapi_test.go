package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/internal/testutil"
	"github.com/redoxygen/roxd/producer"
)

const token = "test-token-1234"

type bundle struct {
	ctx context.Context
	rdb *redis.Client
	p   *producer.Producer
	srv *httptest.Server
}

func setup(t *testing.T) *bundle {
	t.Helper()
	rdb := testutil.Redis(t)
	p, err := producer.New(rdb, producer.Config{Store: store.Config{Prefix: testutil.Name("httpapi")}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(p, Config{Token: token}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		keys, _ := rdb.Keys(context.Background(), p.Store().Keys().Base()+"*").Result()
		if len(keys) > 0 {
			rdb.Del(context.Background(), keys...)
		}
	})
	return &bundle{ctx: context.Background(), rdb: rdb, p: p, srv: srv}
}

type resp struct {
	code int
	body map[string]any
	raw  string
	hdr  http.Header
}

func (b *bundle) do(t *testing.T, method, path string, body any) resp {
	t.Helper()
	return b.doAuth(t, method, path, body, "Bearer "+token)
}

func (b *bundle) doAuth(t *testing.T, method, path string, body any, auth string) resp {
	t.Helper()
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(v)
	case []byte:
		rd = bytes.NewReader(v)
	default:
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(b.ctx, method, b.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := resp{code: res.StatusCode, raw: string(raw), hdr: res.Header}
	_ = json.Unmarshal(raw, &out.body)
	return out
}

func (r resp) errField() (code, field string) {
	e, _ := r.body["error"].(map[string]any)
	c, _ := e["code"].(string)
	f, _ := e["field"].(string)
	return c, f
}

// keys lists every key of the test's prefix: the proof that nothing was
// queued.
func (b *bundle) keys(t *testing.T) []string {
	t.Helper()
	k, err := b.rdb.Keys(b.ctx, b.p.Store().Keys().Base()+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(k)
	return k
}

func TestConfigValidate(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	p, err := producer.New(rdb, producer.Config{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "Token"},
		{Config{Token: "x", MaxBodyBytes: 10}, "MaxBodyBytes"},
		{Config{Token: "x", MaxBatchBodyBytes: 2048}, "MaxBatchBodyBytes"},
		{Config{Token: "x", MaxBatch: -1}, "MaxBatch"},
	} {
		if _, err := New(p, tc.cfg, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error naming %s", tc.cfg, err, tc.want)
		}
	}
	if _, err := New(nil, Config{Token: "x"}, zerolog.Nop()); err == nil {
		t.Error("nil producer accepted")
	}
}

func TestAuth(t *testing.T) {
	b := setup(t)
	for _, auth := range []string{"", "Bearer", "Bearer wrong", "Basic " + token, "Bearer " + token + "x",
		"Bearer " + strings.ToUpper(token), "bearer" + token, "Bearer\t" + token, "Bearertest " + token, "Token " + token} {
		for _, rt := range Routes() {
			path := strings.NewReplacer("{id}", "x", "{number}", "0412345678").Replace(rt.Path)
			r := b.doAuth(t, rt.Method, path, `{"to":"0412345678","text":"hi"}`, auth)
			if c, _ := r.errField(); r.code != http.StatusUnauthorized || c != "unauthorized" {
				t.Errorf("%s %s with %q: %d %s", rt.Method, path, auth, r.code, r.raw)
			}
		}
	}
	if k := b.keys(t); len(k) != 0 {
		t.Errorf("unauthorized requests wrote %v", k)
	}
}

// TestAuthSchemeAnyCase: the auth scheme is case-insensitive (RFC 9110,
// section 11.1), so "bearer", "BEARER" and "BeArEr" are Bearer; "bearer
// <token>" was answered 401. The token itself stays case-sensitive
// (TestAuth).
func TestAuthSchemeAnyCase(t *testing.T) {
	b := setup(t)
	for _, auth := range []string{"Bearer " + token, "bearer " + token, "BEARER " + token, "BeArEr " + token, "bearer   " + token} {
		r := b.doAuth(t, "GET", "/v1/messages/no-such-id", nil, auth)
		if r.code != http.StatusNotFound {
			t.Errorf("GET with %q: %d %s, want 404 (authorized, no such message)", auth, r.code, r.raw)
		}
	}
}

func TestPostMessage(t *testing.T) {
	b := setup(t)
	r := b.do(t, "POST", "/v1/messages", map[string]any{"id": "m1", "to": "0412 345 678", "text": "Hi €",
		"name": "Ann", "email": "ann@example.com", "receipt": "on_error", "reply": "both", "metadata": map[string]string{"o": "1"}})
	if r.code != http.StatusAccepted || r.body["id"] != "m1" || r.body["status"] != "queued" || r.body["to"] != "+61412345678" ||
		r.body["encoding"] != "GSM-7" || r.body["segments"] != 1.0 {
		t.Fatalf("post: %d %s", r.code, r.raw)
	}
	// Replay: 200, same shape.
	r = b.do(t, "POST", "/v1/messages", map[string]any{"id": "m1", "to": "+61412345678", "text": "Hi €",
		"name": "Ann", "email": "ann@example.com", "receipt": "on_error", "reply": "both", "metadata": map[string]string{"o": "1"}})
	if r.code != http.StatusOK || r.body["id"] != "m1" || r.body["status"] != "queued" || r.body["replayed"] != true {
		t.Fatalf("replay: %d %s", r.code, r.raw)
	}
	// Conflict: 409.
	r = b.do(t, "POST", "/v1/messages", map[string]any{"id": "m1", "to": "+61412345678", "text": "other"})
	if c, f := r.errField(); r.code != http.StatusConflict || c != "conflict" || f != "id" {
		t.Fatalf("conflict: %d %s", r.code, r.raw)
	}
	if n, _ := b.rdb.LLen(b.ctx, b.p.Store().Keys().Ready("now|on_error|both")).Result(); n != 1 {
		t.Errorf("ready list has %d, want 1", n)
	}
	// Scheduled, generated id, UCS-2.
	at := time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339)
	r = b.do(t, "POST", "/v1/messages", map[string]any{"to": "+447911123456", "text": "😀", "send_at": at})
	if r.code != http.StatusAccepted || r.body["status"] != "scheduled" || r.body["encoding"] != "UCS-2" || len(r.body["id"].(string)) != 36 {
		t.Fatalf("scheduled: %d %s", r.code, r.raw)
	}
	// The largest valid message, every character JSON-escaped, fits the
	// body limit.
	emoji := strings.Repeat(`\ud83d\ude00`, 4000)
	r = b.do(t, "POST", "/v1/messages", `{"to":"0412345678","text":"`+emoji+`","name":"`+emoji+`"}`)
	if r.code != http.StatusAccepted || r.body["encoding"] != "UCS-2" {
		t.Fatalf("largest message: %d %.300s", r.code, r.raw)
	}
	// Suppressed.
	if r := b.do(t, "PUT", "/v1/suppressions/0400000001", nil); r.code != 200 {
		t.Fatal(r.raw)
	}
	r = b.do(t, "POST", "/v1/messages", map[string]any{"id": "s1", "to": "+61400000001", "text": "x"})
	if r.code != http.StatusAccepted || r.body["status"] != "suppressed" {
		t.Fatalf("suppressed: %d %s", r.code, r.raw)
	}
}

func TestBadInputQueuesNothing(t *testing.T) {
	b := setup(t)
	// Something already queued, so "unchanged" is checked against a non-empty state.
	if r := b.do(t, "POST", "/v1/messages", map[string]any{"id": "base", "to": "0412345678", "text": "x"}); r.code != 202 {
		t.Fatal(r.raw)
	}
	before := b.keys(t)
	ready := b.p.Store().Keys().Ready("now|always|http")
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	ahead := time.Now().Add(9000 * time.Hour).UTC().Format(time.RFC3339)
	bigMeta := map[string]string{}
	for i := 0; i < 40; i++ {
		bigMeta[fmt.Sprint("k", i)] = "v"
	}
	for _, tc := range []struct {
		name  string
		body  any
		code  int
		field string
	}{
		{"no to", `{"text":"hi"}`, 400, "to"},
		{"bad to", `{"to":"hello","text":"hi"}`, 400, "to"},
		{"short to", `{"to":"+61 4123","text":"hi"}`, 400, "to"},
		{"to not a string", `{"to":61412345678,"text":"hi"}`, 400, "to"},
		{"no text", `{"to":"0412345678"}`, 400, "text"},
		{"long text", map[string]any{"to": "0412345678", "text": strings.Repeat("a", 4001)}, 400, "text"},
		{"long name", map[string]any{"to": "0412345678", "text": "x", "name": strings.Repeat("a", 4001)}, 400, "name"},
		{"bad email", `{"to":"0412345678","text":"x","email":"nope"}`, 400, "email"},
		{"bad id", `{"id":"a b","to":"0412345678","text":"x"}`, 400, "id"},
		{"send_at format", `{"to":"0412345678","text":"x","send_at":"tomorrow"}`, 400, "send_at"},
		{"send_at past", map[string]any{"to": "0412345678", "text": "x", "send_at": past}, 400, "send_at"},
		{"send_at ahead", map[string]any{"to": "0412345678", "text": "x", "send_at": ahead}, 400, "send_at"},
		{"receipt", `{"to":"0412345678","text":"x","receipt":"maybe"}`, 400, "receipt"},
		{"reply", `{"to":"0412345678","text":"x","reply":"fax"}`, 400, "reply"},
		{"on_ambiguous", `{"to":"0412345678","text":"x","on_ambiguous":"maybe"}`, 400, "on_ambiguous"},
		{"on_ambiguous not a string", `{"to":"0412345678","text":"x","on_ambiguous":true}`, 400, "on_ambiguous"},
		{"account unknown", `{"to":"0412345678","text":"x","account":"nope"}`, 400, "account"},
		{"account not a string", `{"to":"0412345678","text":"x","account":7}`, 400, "account"},
		{"metadata keys", map[string]any{"to": "0412345678", "text": "x", "metadata": bigMeta}, 400, "metadata"},
		{"metadata bytes", map[string]any{"to": "0412345678", "text": "x", "metadata": map[string]string{"a": strings.Repeat("v", 3000)}}, 400, "metadata"},
		{"metadata not strings", `{"to":"0412345678","text":"x","metadata":{"a":1}}`, 400, "metadata"},
		{"unknown field", `{"to":"0412345678","text":"x","urgency":1}`, 400, "urgency"},
		{"priority", `{"to":"0412345678","text":"x","priority":"urgent"}`, 400, "priority"},
		{"priority not a string", `{"to":"0412345678","text":"x","priority":1}`, 400, "priority"},
		{"valid_for negative", `{"to":"0412345678","text":"x","valid_for":-5}`, 400, "valid_for"},
		{"valid_for negative duration", `{"to":"0412345678","text":"x","valid_for":"-5s"}`, 400, "valid_for"},
		{"valid_for zero", `{"to":"0412345678","text":"x","valid_for":0}`, 400, "valid_for"},
		{"valid_for not a duration", `{"to":"0412345678","text":"x","valid_for":"soon"}`, 400, "valid_for"},
		{"valid_for fraction", `{"to":"0412345678","text":"x","valid_for":1.5}`, 400, "valid_for"},
		{"valid_for bool", `{"to":"0412345678","text":"x","valid_for":true}`, 400, "valid_for"},
		{"valid_for too long", `{"to":"0412345678","text":"x","valid_for":"100000h"}`, 400, "valid_for"},
		{"valid_for and expires_at", map[string]any{"to": "0412345678", "text": "x", "valid_for": "1m", "expires_at": ahead}, 400, "expires_at"},
		{"expires_at before send_at", map[string]any{"to": "0412345678", "text": "x",
			"send_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "expires_at": time.Now().Add(30 * time.Minute).UTC().Format(time.RFC3339)}, 400, "expires_at"},
		{"expires_at past", map[string]any{"to": "0412345678", "text": "x", "expires_at": past}, 400, "expires_at"},
		{"expires_at format", `{"to":"0412345678","text":"x","expires_at":"tomorrow"}`, 400, "expires_at"},
		{"malformed", `{"to":"0412345678",`, 400, ""},
		{"empty", ``, 400, ""},
		{"trailing", `{"to":"0412345678","text":"x"} {}`, 400, ""},
		{"too large", map[string]any{"to": "0412345678", "text": strings.Repeat("a", 300<<10)}, 413, ""},
	} {
		r := b.do(t, "POST", "/v1/messages", tc.body)
		c, f := r.errField()
		if r.code != tc.code || f != tc.field || c == "" {
			t.Errorf("%s: %d %s, want %d naming %q", tc.name, r.code, r.raw, tc.code, tc.field)
		}
	}
	if after := b.keys(t); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("bad input changed the keys: %v -> %v", before, after)
	}
	if n, _ := b.rdb.LLen(b.ctx, ready).Result(); n != 1 {
		t.Errorf("ready list has %d, want 1", n)
	}
}

func TestBatch(t *testing.T) {
	b := setup(t)
	if r := b.do(t, "POST", "/v1/messages", map[string]any{"id": "old", "to": "0412345678", "text": "x"}); r.code != 202 {
		t.Fatal(r.raw)
	}
	body := `{"messages":[
		{"id":"b1","to":"0412 345 678","text":"one"},
		{"id":"b2","to":"nope","text":"two"},
		{"id":"old","to":"0412345678","text":"x"},
		{"id":"old","to":"0412345678","text":"changed"},
		{"id":"b3","to":"0412345678","text":"x","colour":"red"},
		{"id":"b4","to":"0412345678","text":"x","send_at":"soon"},
		"not an object",
		{"id":"b5","to":"+447911123456","text":"Привет"}
	]}`
	r := b.do(t, "POST", "/v1/messages/batch", body)
	if r.code != 200 {
		t.Fatalf("batch: %d %s", r.code, r.raw)
	}
	results, _ := r.body["results"].([]any)
	if len(results) != 8 {
		t.Fatalf("%d results: %s", len(results), r.raw)
	}
	item := func(i int) (map[string]any, string, string) {
		m := results[i].(map[string]any)
		e, _ := m["error"].(map[string]any)
		c, _ := e["code"].(string)
		f, _ := e["field"].(string)
		return m, c, f
	}
	if m, c, _ := item(0); c != "" || m["id"] != "b1" || m["status"] != "queued" || m["to"] != "+61412345678" {
		t.Errorf("0: %v", m)
	}
	if m, c, f := item(1); c != "invalid" || f != "to" || m["id"] != "b2" || m["status"] != nil {
		t.Errorf("1: %v", m)
	}
	if m, c, _ := item(2); c != "" || m["replayed"] != true {
		t.Errorf("2: %v", m)
	}
	if m, c, f := item(3); c != "conflict" || f != "id" {
		t.Errorf("3: %v", m)
	}
	if m, c, f := item(4); c != "unknown_field" || f != "colour" {
		t.Errorf("4: %v", m)
	}
	if m, _, f := item(5); f != "send_at" {
		t.Errorf("5: %v", m)
	}
	if m, c, _ := item(6); c != "invalid" {
		t.Errorf("6: %v", m)
	}
	if m, c, _ := item(7); c != "" || m["encoding"] != "UCS-2" || m["status"] != "queued" {
		t.Errorf("7: %v", m)
	}
	// Only old, b1 and b5 were queued.
	got, _ := b.rdb.LRange(b.ctx, b.p.Store().Keys().Ready("now|always|http"), 0, -1).Result()
	if strings.Join(got, ",") != "old,b1,b5" {
		t.Errorf("ready list %v, want old,b1,b5", got)
	}
	for _, id := range []string{"b2", "b3", "b4"} {
		if n, _ := b.rdb.Exists(b.ctx, b.p.Store().Keys().Msg(id)).Result(); n != 0 {
			t.Errorf("refused %s has a record", id)
		}
	}
	// Whole-batch refusals.
	for _, tc := range []struct {
		name, body string
		code       int
		field      string
	}{
		{"empty list", `{"messages":[]}`, 400, "messages"},
		{"no list", `{}`, 400, "messages"},
		{"unknown top field", `{"messages":[],"x":1}`, 400, "x"},
		{"malformed", `{"messages":[`, 400, ""},
	} {
		r := b.do(t, "POST", "/v1/messages/batch", tc.body)
		if _, f := r.errField(); r.code != tc.code || f != tc.field {
			t.Errorf("%s: %d %s", tc.name, r.code, r.raw)
		}
	}
}

func TestBatchLimits(t *testing.T) {
	b := setup(t)
	msgs := make([]map[string]string, 10_001)
	for i := range msgs {
		msgs[i] = map[string]string{"id": fmt.Sprintf("x%05d", i), "to": fmt.Sprintf("+614%08d", i), "text": "Your code is 123456"}
	}
	r := b.do(t, "POST", "/v1/messages/batch", map[string]any{"messages": msgs})
	if c, f := r.errField(); r.code != http.StatusRequestEntityTooLarge || c != "too_many" || f != "messages" {
		t.Fatalf("10,001: %d %.200s", r.code, r.raw)
	}
	if k := b.keys(t); len(k) != 0 {
		t.Fatalf("10,001 messages wrote %d keys", len(k))
	}
	// 10,000 realistic messages fit the body limit and are all queued.
	start := time.Now()
	r = b.do(t, "POST", "/v1/messages/batch", map[string]any{"messages": msgs[:10_000]})
	took := time.Since(start)
	if r.code != 200 {
		t.Fatalf("10,000: %d %.300s", r.code, r.raw)
	}
	if res, _ := r.body["results"].([]any); len(res) != 10_000 {
		t.Fatalf("%d results", len(res))
	}
	if n, _ := b.rdb.LLen(b.ctx, b.p.Store().Keys().Ready("now|always|http")).Result(); n != 10_000 {
		t.Errorf("ready list has %d, want 10000", n)
	}
	t.Logf("POST /v1/messages/batch with 10,000 messages: %s", took)
	// A body over the batch limit: 413.
	big := `{"messages":[{"to":"0412345678","text":"` + strings.Repeat("a", 17<<20) + `"}]}`
	if r := b.do(t, "POST", "/v1/messages/batch", big); r.code != http.StatusRequestEntityTooLarge {
		t.Errorf("17 MiB body: %d %.200s", r.code, r.raw)
	}
}

func TestGetAndCancel(t *testing.T) {
	b := setup(t)
	at := time.Now().Add(time.Hour).Truncate(time.Second).UTC()
	b.do(t, "POST", "/v1/messages", map[string]any{"id": "g1", "to": "0412345678", "text": "x",
		"send_at": at.Format(time.RFC3339), "metadata": map[string]string{"k": "v"}})
	r := b.do(t, "GET", "/v1/messages/g1", nil)
	if r.code != 200 || r.body["id"] != "g1" || r.body["status"] != "scheduled" || r.body["to"] != "+61412345678" ||
		r.body["send_at"] != at.Format(time.RFC3339) || r.body["metadata"].(map[string]any)["k"] != "v" {
		t.Fatalf("get: %d %s", r.code, r.raw)
	}
	hist, _ := r.body["history"].([]any)
	if len(hist) != 1 || hist[0].(map[string]any)["status"] != "scheduled" {
		t.Errorf("history %v", hist)
	}
	r = b.do(t, "DELETE", "/v1/messages/g1", nil)
	if r.code != 200 || r.body["status"] != "cancelled" || r.body["id"] != "g1" {
		t.Fatalf("cancel: %d %s", r.code, r.raw)
	}
	r = b.do(t, "GET", "/v1/messages/g1", nil)
	if hist, _ := r.body["history"].([]any); r.body["status"] != "cancelled" || len(hist) != 2 {
		t.Errorf("after cancel: %s", r.raw)
	}
	// After hand-over: 409 with the current status; sending shows as queued,
	// and the history shows it once.
	b.do(t, "POST", "/v1/messages", map[string]any{"id": "g2", "to": "0412345678", "text": "x"})
	for _, st := range []store.Status{store.StatusSending, store.StatusSubmitted} {
		if ok, _, err := b.p.Store().Transition(b.ctx, "g2", st, map[string]string{"sms_id": "S1", "request_id": "R1"}); !ok || err != nil {
			t.Fatal(ok, err)
		}
		want := string(st.Public())
		r = b.do(t, "DELETE", "/v1/messages/g2", nil)
		if c, _ := r.errField(); r.code != http.StatusConflict || c != "not_cancellable" || r.body["status"] != want {
			t.Errorf("cancel when %s: %d %s", st, r.code, r.raw)
		}
	}
	r = b.do(t, "GET", "/v1/messages/g2", nil)
	hist, _ = r.body["history"].([]any)
	if r.body["status"] != "submitted" || r.body["sms_id"] != "S1" || r.body["request_id"] != "R1" || len(hist) != 2 ||
		hist[0].(map[string]any)["status"] != "queued" || hist[1].(map[string]any)["status"] != "submitted" {
		t.Errorf("submitted: %s", r.raw)
	}
	for _, m := range []string{"GET", "DELETE"} {
		r = b.do(t, m, "/v1/messages/nope", nil)
		if c, _ := r.errField(); r.code != 404 || c != "not_found" {
			t.Errorf("%s unknown: %d %s", m, r.code, r.raw)
		}
	}
}

func TestSuppressions(t *testing.T) {
	b := setup(t)
	r := b.do(t, "PUT", "/v1/suppressions/0412%20345%20678", nil)
	if r.code != 200 || r.body["number"] != "+61412345678" || r.body["suppressed"] != true {
		t.Fatalf("put: %d %s", r.code, r.raw)
	}
	r = b.do(t, "GET", "/v1/suppressions/+61412345678", nil)
	if r.code != 200 || r.body["suppressed"] != true {
		t.Fatalf("get: %d %s", r.code, r.raw)
	}
	r = b.do(t, "GET", "/v1/suppressions/%2B61412345679", nil)
	if r.code != 200 || r.body["suppressed"] != false || r.body["number"] != "+61412345679" {
		t.Fatalf("get other: %d %s", r.code, r.raw)
	}
	for i := 0; i < 30; i++ {
		b.do(t, "PUT", fmt.Sprintf("/v1/suppressions/+614000000%02d", i), nil)
	}
	seen := map[string]bool{}
	cursor := 0.0
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("list does not end")
		}
		r = b.do(t, "GET", fmt.Sprintf("/v1/suppressions?count=7&cursor=%d", int64(cursor)), nil)
		if r.code != 200 {
			t.Fatalf("list: %d %s", r.code, r.raw)
		}
		for _, n := range r.body["numbers"].([]any) {
			seen[n.(string)] = true
		}
		cursor = r.body["next_cursor"].(float64)
		if cursor == 0 {
			break
		}
	}
	if len(seen) != 31 || !seen["+61412345678"] {
		t.Errorf("listed %d numbers", len(seen))
	}
	r = b.do(t, "DELETE", "/v1/suppressions/+61412345678", nil)
	if r.code != 200 || r.body["suppressed"] != false {
		t.Fatalf("delete: %d %s", r.code, r.raw)
	}
	if r = b.do(t, "GET", "/v1/suppressions/+61412345678", nil); r.body["suppressed"] != false {
		t.Errorf("still suppressed: %s", r.raw)
	}
	for _, tc := range []struct{ method, path, field string }{
		{"PUT", "/v1/suppressions/hello", "number"},
		{"DELETE", "/v1/suppressions/123", "number"},
		{"GET", "/v1/suppressions/123", "number"},
		{"GET", "/v1/suppressions?cursor=x", "cursor"},
		{"GET", "/v1/suppressions?count=0", "count"},
		{"GET", "/v1/suppressions?count=5000", "count"},
	} {
		r := b.do(t, tc.method, tc.path, nil)
		if _, f := r.errField(); r.code != 400 || f != tc.field {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, r.code, r.raw)
		}
	}
}

func TestUnknownRoutes(t *testing.T) {
	b := setup(t)
	for _, tc := range []struct {
		method, path string
		code         int
		allow        string
	}{
		{"GET", "/v1/nothing", 404, ""},
		{"GET", "/", 404, ""},
		{"GET", "/v1/messages", 405, "POST"},
		{"PUT", "/v1/messages/x", 405, "GET, DELETE"},
		{"POST", "/v1/suppressions/0412345678", 405, "GET, PUT, DELETE"},
	} {
		req, _ := http.NewRequest(tc.method, b.srv.URL+tc.path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Error struct{ Code string } `json:"error"`
		}
		err = json.NewDecoder(res.Body).Decode(&body)
		res.Body.Close()
		if res.StatusCode != tc.code || err != nil || body.Error.Code == "" || res.Header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d allow %q code %q (%v)", tc.method, tc.path, res.StatusCode, res.Header.Get("Allow"), body.Error.Code, err)
		}
	}
}

func TestRedisDown(t *testing.T) {
	srv := testutil.NewServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	p, err := producer.New(rdb, producer.Config{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(p, Config{Token: token}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	srv.Stop()
	b := &bundle{ctx: context.Background(), srv: hs}
	for _, tc := range []struct {
		method, path string
		body         any
	}{
		{"POST", "/v1/messages", `{"to":"0412345678","text":"x"}`},
		{"POST", "/v1/messages/batch", `{"messages":[{"to":"0412345678","text":"x"}]}`},
		{"GET", "/v1/messages/x", nil},
		{"DELETE", "/v1/messages/x", nil},
		{"GET", "/v1/suppressions", nil},
		{"PUT", "/v1/suppressions/0412345678", nil},
	} {
		r := b.do(t, tc.method, tc.path, tc.body)
		if c, _ := r.errField(); r.code != http.StatusServiceUnavailable || c != "unavailable" {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, r.code, r.raw)
		}
	}
}

// TestOpenAPI keeps docs/openapi.json and the registered routes in step.
func TestOpenAPI(t *testing.T) {
	raw, err := os.ReadFile("../../docs/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.0") {
		t.Errorf("openapi version %q", doc.OpenAPI)
	}
	inDoc := map[string]bool{}
	for path, ops := range doc.Paths {
		for m, op := range ops {
			switch m {
			case "get", "put", "post", "delete", "patch", "head", "options":
			default:
				continue
			}
			var o map[string]json.RawMessage
			if err := json.Unmarshal(op, &o); err != nil {
				t.Fatalf("%s %s: %v", m, path, err)
			}
			if _, other := o["x-roxd-served-by"]; other {
				continue // /healthz, /readyz: served by roxd serve itself
			}
			inDoc[strings.ToUpper(m)+" "+path] = true
		}
	}
	inMux := map[string]bool{}
	for _, r := range Routes() {
		inMux[r.Method+" "+r.Path] = true
	}
	for k := range inMux {
		if !inDoc[k] {
			t.Errorf("route %s is not in docs/openapi.json", k)
		}
	}
	for k := range inDoc {
		if !inMux[k] {
			t.Errorf("docs/openapi.json has %s, which is not a route", k)
		}
	}
	// And the mux really serves each route: with the token, an unknown id
	// or a bad number reaches the handler, whose errors name a field; the
	// no-route answers (404 without a field, 405) do not.
	b := setup(t)
	for _, r := range Routes() {
		path := strings.NewReplacer("{id}", "unknown", "{number}", "x").Replace(r.Path)
		res := b.do(t, r.Method, path, "{}")
		code, field := res.errField()
		if code == "method_not_allowed" || res.code == http.StatusNotFound && field == "" {
			t.Errorf("%s %s is not served: %d %s", r.Method, path, res.code, res.raw)
		}
	}
	if res := b.do(t, "GET", "/v1/not-a-route", nil); res.code != http.StatusNotFound {
		t.Errorf("the check above cannot tell: an unknown route answered %d", res.code)
	} else if _, f := res.errField(); f != "" {
		t.Errorf("an unknown route's 404 names field %q", f)
	}
}

// TestOpenAPIMessageFields keeps the MessageStatus schema of
// docs/openapi.json (what GET /v1/messages/{id} answers) and the handler's
// JSON fields in step, nested objects included.
func TestOpenAPIMessageFields(t *testing.T) {
	raw, err := os.ReadFile("../../docs/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	type schema struct {
		Properties map[string]json.RawMessage `json:"properties"`
		Items      *struct {
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"items"`
	}
	var doc struct {
		Components struct {
			Schemas map[string]schema `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	props := func(name string, m map[string]json.RawMessage, key string) map[string]json.RawMessage {
		t.Helper()
		if _, ok := m[key]; !ok {
			return nil // reported by compare as missing fields
		}
		var s schema
		if err := json.Unmarshal(m[key], &s); err != nil {
			t.Fatalf("%s.%s: %v", name, key, err)
		}
		if s.Items != nil {
			return s.Items.Properties
		}
		return s.Properties
	}
	compare := func(name string, inDoc map[string]json.RawMessage, v any) {
		t.Helper()
		typ := reflect.TypeOf(v)
		inGo := map[string]bool{}
		for i := range typ.NumField() {
			tag, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			if tag != "" && tag != "-" {
				inGo[tag] = true
			}
		}
		for k := range inGo {
			if _, ok := inDoc[k]; !ok {
				t.Errorf("%s: field %q of %s is not in docs/openapi.json", name, k, typ.Name())
			}
		}
		for k := range inDoc {
			if !inGo[k] {
				t.Errorf("%s: docs/openapi.json lists %q, which %s does not have", name, k, typ.Name())
			}
		}
	}
	msg := doc.Components.Schemas["MessageStatus"].Properties
	if len(msg) == 0 {
		t.Fatal("docs/openapi.json has no MessageStatus properties")
	}
	compare("MessageStatus", msg, messageOut{})
	compare("MessageStatus.task", props("MessageStatus", msg, "task"), taskOut{})
	compare("MessageStatus.history", props("MessageStatus", msg, "history"), eventOut{})
}

// on_ambiguous is stored with the message and shown by GET.
func TestOnAmbiguous(t *testing.T) {
	b := setup(t)
	if r := b.do(t, "POST", "/v1/messages", map[string]any{"id": "otp-1", "to": "0412345678", "text": "code 1234", "on_ambiguous": "fail"}); r.code != 202 {
		t.Fatal(r.raw)
	}
	if v := b.rdb.HGet(b.ctx, b.p.Store().Keys().Msg("otp-1"), "on_ambiguous").Val(); v != "fail" {
		t.Fatalf("stored on_ambiguous %q, want fail", v)
	}
	r := b.do(t, "GET", "/v1/messages/otp-1", nil)
	if r.code != 200 || r.body["on_ambiguous"] != "fail" {
		t.Fatalf("GET: %d %s", r.code, r.raw)
	}
	// The same id with another policy is other content: a conflict.
	if r := b.do(t, "POST", "/v1/messages", map[string]any{"id": "otp-1", "to": "0412345678", "text": "code 1234", "on_ambiguous": "resend"}); r.code != 409 {
		t.Fatalf("replay with another on_ambiguous: %d %s, want 409", r.code, r.raw)
	}
}

func TestValidity(t *testing.T) {
	b := setup(t)
	t0 := time.Now()
	for _, tc := range []struct {
		id   string
		body map[string]any
		want time.Time
	}{
		{"v-dur", map[string]any{"valid_for": "90s"}, t0.Add(90 * time.Second)},
		{"v-sec", map[string]any{"valid_for": 600}, t0.Add(600 * time.Second)},
		{"v-at", map[string]any{"expires_at": t0.Add(time.Hour).UTC().Format(time.RFC3339Nano)}, t0.Add(time.Hour)},
		{"v-sched", map[string]any{"send_at": t0.Add(2 * time.Hour).UTC().Format(time.RFC3339Nano), "valid_for": "30m"}, t0.Add(150 * time.Minute)},
	} {
		body := map[string]any{"id": tc.id, "to": "0412345678", "text": "code"}
		for k, v := range tc.body {
			body[k] = v
		}
		r := b.do(t, "POST", "/v1/messages", body)
		if r.code != 202 {
			t.Fatalf("%s: %d %s", tc.id, r.code, r.raw)
		}
		got, err := time.Parse(time.RFC3339Nano, fmt.Sprint(r.body["expires_at"]))
		if err != nil || got.Sub(tc.want).Abs() > 2*time.Second {
			t.Errorf("%s: expires_at %v, want about %s", tc.id, r.body["expires_at"], tc.want)
		}
		g := b.do(t, "GET", "/v1/messages/"+tc.id, nil)
		if g.code != 200 || g.body["expires_at"] != r.body["expires_at"] {
			t.Errorf("%s: GET expires_at %v, POST said %v", tc.id, g.body["expires_at"], r.body["expires_at"])
		}
		// The same message again is a replay; another validity is a conflict.
		if r := b.do(t, "POST", "/v1/messages", body); r.code != 200 {
			t.Errorf("%s: replay %d %s", tc.id, r.code, r.raw)
		}
	}
	if r := b.do(t, "POST", "/v1/messages", map[string]any{"id": "v-dur", "to": "0412345678", "text": "code", "valid_for": "91s"}); r.code != 409 {
		t.Errorf("other valid_for: %d %s, want 409", r.code, r.raw)
	}
	// Without a validity: none (the default ROXD_DEFAULT_VALIDITY is 0).
	if r := b.do(t, "POST", "/v1/messages", map[string]any{"id": "v-none", "to": "0412345678", "text": "x"}); r.code != 202 || r.body["expires_at"] != nil {
		t.Errorf("no validity: %d %s", r.code, r.raw)
	}
	if g := b.do(t, "GET", "/v1/messages/v-none", nil); g.body["expires_at"] != nil {
		t.Errorf("GET without validity: %s", g.raw)
	}
}

// account picks a configured ROX account, is part of the message's
// content (a replay under another account is a conflict) and is shown by
// GET; an unknown one is a 400 naming it, and nothing is stored.
func TestAccount(t *testing.T) {
	b := setup(t)
	p, err := producer.New(b.rdb, producer.Config{Store: b.p.Store().Config(), Accounts: []string{"mkt"}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(p, Config{Token: token}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	b.srv = srv
	before := b.keys(t)
	for _, acct := range []string{"nope", "MKT", "default|x"} {
		r := b.do(t, "POST", "/v1/messages", map[string]any{"id": "a-0", "to": "0412345678", "text": "x", "account": acct})
		if c, f := r.errField(); r.code != 400 || f != "account" || c == "" || !strings.Contains(r.raw, "mkt") {
			t.Fatalf("account %q: %d %s, want 400 naming account and the known accounts", acct, r.code, r.raw)
		}
	}
	if after := b.keys(t); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Fatalf("an unknown account changed the keys: %v -> %v", before, after)
	}
	if r := b.do(t, "POST", "/v1/messages", map[string]any{"id": "a-1", "to": "0412345678", "text": "x", "account": "mkt"}); r.code != 202 {
		t.Fatal(r.raw)
	}
	if r := b.do(t, "POST", "/v1/messages", map[string]any{"id": "a-2", "to": "0412345678", "text": "x"}); r.code != 202 {
		t.Fatal(r.raw)
	}
	for id, want := range map[string]string{"a-1": "mkt", "a-2": "default"} {
		if r := b.do(t, "GET", "/v1/messages/"+id, nil); r.code != 200 || r.body["account"] != want {
			t.Fatalf("GET %s: %d %s, want account %s", id, r.code, r.raw, want)
		}
	}
	if g := b.rdb.HGet(b.ctx, b.p.Store().Keys().Msg("a-1"), "group").Val(); store.GroupAccount(g) != "mkt" {
		t.Fatalf("group %q", g)
	}
	if r := b.do(t, "POST", "/v1/messages", map[string]any{"id": "a-1", "to": "0412345678", "text": "x"}); r.code != 409 {
		t.Fatalf("replay under another account: %d %s, want 409", r.code, r.raw)
	}
	if r := b.do(t, "POST", "/v1/messages", map[string]any{"id": "a-2", "to": "0412345678", "text": "x", "account": "default"}); r.code != 200 && r.code != 202 {
		t.Fatalf("replay naming the default account: %d %s", r.code, r.raw)
	}
}

// Bad values of the traffic-class fields (issue 12) in a batch: each item
// gets an error naming its field, the good item beside it is queued, and
// the bad one leaves no key.
func TestBatchTrafficClassFieldsNamed(t *testing.T) {
	b := setup(t)
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	later := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	sooner := time.Now().Add(30 * time.Minute).UTC().Format(time.RFC3339)
	for i, tc := range []struct {
		name  string
		bad   map[string]any
		field string
	}{
		{"priority", map[string]any{"priority": "urgent"}, "priority"},
		{"priority not a string", map[string]any{"priority": 1}, "priority"},
		{"valid_for negative", map[string]any{"valid_for": -5}, "valid_for"},
		{"valid_for negative duration", map[string]any{"valid_for": "-5s"}, "valid_for"},
		{"valid_for zero", map[string]any{"valid_for": 0}, "valid_for"},
		{"valid_for not a duration", map[string]any{"valid_for": "soon"}, "valid_for"},
		{"valid_for fraction", map[string]any{"valid_for": 1.5}, "valid_for"},
		{"valid_for too long", map[string]any{"valid_for": "100000h"}, "valid_for"},
		{"valid_for and expires_at", map[string]any{"valid_for": "1m", "expires_at": later}, "expires_at"},
		{"expires_at past", map[string]any{"expires_at": past}, "expires_at"},
		{"expires_at format", map[string]any{"expires_at": "tomorrow"}, "expires_at"},
		{"expires_at before send_at", map[string]any{"send_at": later, "expires_at": sooner}, "expires_at"},
		{"account unknown", map[string]any{"account": "nope"}, "account"},
		{"account not a string", map[string]any{"account": 7}, "account"},
	} {
		good := fmt.Sprintf("tc-good-%d", i)
		bad := map[string]any{"id": fmt.Sprintf("tc-bad-%d", i), "to": "0412345678", "text": "x"}
		for k, v := range tc.bad {
			bad[k] = v
		}
		r := b.do(t, "POST", "/v1/messages/batch", map[string]any{"messages": []any{
			map[string]any{"id": good, "to": "0412345678", "text": "x"}, bad}})
		results, _ := r.body["results"].([]any)
		if r.code != 200 || len(results) != 2 {
			t.Errorf("%s: %d %s", tc.name, r.code, r.raw)
			continue
		}
		ok, _ := results[0].(map[string]any)
		m, _ := results[1].(map[string]any)
		e, _ := m["error"].(map[string]any)
		if ok["status"] != "queued" || e["field"] != tc.field || e["message"] == "" || m["status"] != nil {
			t.Errorf("%s: results %v, want the good item queued and the bad one naming %s", tc.name, results, tc.field)
		}
		if n, _ := b.rdb.Exists(b.ctx, b.p.Store().Keys().Msg(bad["id"].(string))).Result(); n != 0 {
			t.Errorf("%s: the refused item has a record", tc.name)
		}
	}
}
