package callbacks

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/internal/testutil"
	"github.com/redoxygen/roxd/producer"
	"github.com/redoxygen/roxd/producer/httpapi"
	"github.com/redoxygen/roxd/rox"
)

// Field reports of issue 9 ("Opt-out", "Callbacks that do not match byte
// for byte"), each through the real HTTP receiver on the test Redis.

const apiToken = "api-token-9c1e"

// api is the producer and its HTTP API on the bundle's prefix, as `roxd
// serve` wires them (default region AU).
type api struct {
	prod *producer.Producer
	srv  *httptest.Server
}

func (b *bundle) api(t testing.TB) *api {
	t.Helper()
	p, err := producer.New(b.rdb, producer.Config{Store: store.Config{Prefix: b.cfg.Prefix}}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	h, err := httpapi.New(p, httpapi.Config{Token: apiToken}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &api{prod: p, srv: srv}
}

// getMessage is GET /v1/messages/{id}: its status and history statuses.
func (a *api) getMessage(t testing.TB, id string) (string, []string, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, a.srv.URL+"/v1/messages/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", id, resp.StatusCode, body)
	}
	var out struct {
		Status  string `json:"status"`
		History []struct {
			Status string `json:"status"`
		} `json:"history"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	var all map[string]any
	_ = json.Unmarshal(body, &all)
	h := make([]string, len(out.History))
	for i, e := range out.History {
		h[i] = e.Status
	}
	return out.Status, h, all
}

func (b *bundle) suppressed(t testing.TB, n string) bool {
	t.Helper()
	return b.rdb.SIsMember(context.Background(), b.keys.Suppressed(), n).Val()
}

// A STOP from a number in national or decorated form opts out the E.164
// number that `to` normalises to, so that the next send to it is
// suppressed; the stream entry keeps the raw ReplyFrom.
func TestStopFromNationalReplyFromSuppressesE164(t *testing.T) {
	b := setup(t, nil, nil)
	a := b.api(t)
	ctx := context.Background()
	b.record(t, "m-opt", "sms-opt", "delivered", nil)
	cases := []struct{ from, want string }{
		{"0400000042", "+61400000042"}, // the field report
		{"0400 000 043", "+61400000043"},
		{"(04) 0000-0044", "+61400000044"},
		{"+61 400 000 045", "+61400000045"},
		{"61400000046", "+61400000046"},   // bare international digits
		{"0061400000047", "+61400000047"}, // 00 international prefix
		{" +61400000048\t", "+61400000048"},
		{"+64 21 123 4567", "+64211234567"}, // another country, international form
		{"6421 123 4568", "+64211234568"},   // another country, bare digits
	}
	for i, c := range cases {
		ts := fmt.Sprintf("01-Jan-2030 00:01:%02d (UTC)", i)
		b.mustOK(t, KindReply, replyBody("ROX_API_Reply", testAccount, "sms-opt", c.from, "STOP", ts))
		if !b.suppressed(t, c.want) {
			t.Errorf("STOP from %q: %s not on the suppression list (list: %v)", c.from, c.want,
				b.rdb.SMembers(ctx, b.keys.Suppressed()).Val())
		}
		res, err := a.prod.Send(ctx, producer.Message{To: c.want, Text: "hello again"})
		if err != nil {
			t.Fatalf("send to %s: %v", c.want, err)
		}
		if res.Status != store.StatusSuppressed {
			t.Errorf("send to %s after STOP from %q: status %s, want suppressed", c.want, c.from, res.Status)
		}
	}
	msgs := b.entries(t, b.cfg.RepliesStream)
	if len(msgs) != len(cases) {
		t.Fatalf("%d reply entries, want %d", len(msgs), len(cases))
	}
	for i, m := range msgs {
		v := m.Values
		if v["reply_from"] != cases[i].from || v["optout"] != "stop" || v["optout_number"] != cases[i].want || v["keyword"] != "stop" {
			t.Errorf("entry %d: reply_from %q optout %q optout_number %q keyword %q; want %q stop %q stop",
				i, v["reply_from"], v["optout"], v["optout_number"], v["keyword"], cases[i].from, cases[i].want)
		}
	}
	for _, bad := range []string{"+0400000042", "+0400000043"} {
		if b.suppressed(t, bad) {
			t.Errorf("%s (the raw national form) is on the suppression list", bad)
		}
	}
}

// A STOP whose ReplyFrom is missing or unreadable opts out the number the
// message was sent to (the record's `to`).
func TestStopWithUnreadableReplyFromUsesRecord(t *testing.T) {
	b := setup(t, nil, nil)
	b.record(t, "m-unr", "sms-unr", "delivered", nil) // to +61407555001
	b.mustOK(t, KindReply, replyBody("ROX_API_Reply", testAccount, "sms-unr", "", "Stop.", ts1))
	if !b.suppressed(t, "+61407555001") {
		t.Fatalf("STOP with empty ReplyFrom did not opt out the record's number: %v",
			b.rdb.SMembers(context.Background(), b.keys.Suppressed()).Val())
	}
	v := b.entries(t, b.cfg.RepliesStream)[0].Values
	if v["optout"] != "stop" || v["optout_number"] != "+61407555001" {
		t.Errorf("entry %v", v)
	}
}

// A STOP whose SMSId is not yet known and whose ReplyFrom is unreadable is
// applied once the SMSId is recorded, from the record's `to`.
func TestDeferredStopWithUnreadableReplyFrom(t *testing.T) {
	b := setup(t, nil, func(c *Config) {
		// Generous: the record lands long before the last attempt, even on
		// a loaded machine.
		c.DeferDelays = []time.Duration{20 * time.Millisecond, 200 * time.Millisecond, 5 * time.Second, 10 * time.Second}
	})
	b.claim(t, "m-dst", "{}")
	b.mustOK(t, KindReply, replyBody("ROX_API_Reply", testAccount, "sms-dst", "n/a", "STOP", ts1))
	b.recordSent(t, "m-dst", "sms-dst")
	testutil.Eventually(t, 30*time.Second, func() bool {
		return len(b.entries(t, b.cfg.RepliesStream)) == 1
	}, "reply not pushed: %s", b.dump(t, "m-dst"))
	if !b.suppressed(t, "+61407555001") {
		t.Error("deferred STOP did not opt out the record's number")
	}
	v := b.entries(t, b.cfg.RepliesStream)[0].Values
	if v["optout"] != "stop" || v["optout_number"] != "+61407555001" || v["message_id"] != "m-dst" {
		t.Errorf("entry %v", v)
	}
}

// Keywords as people type them, through the receiver.
func TestOptOutKeywordsAsTyped(t *testing.T) {
	b := setup(t, nil, nil)
	b.record(t, "m-kw", "sms-kw", "delivered", nil)
	cases := []struct{ text, keyword string }{
		{"Stop.", "stop"},
		{"ＳＴＯＰ", "stop"},
		{" stop\n", "stop"},
		{"STOP!!", "stop"},
		{"\u200bSTOP\u200b", "stop"},
		{"\ufeffstop", "stop"},
		{"stop\u00a0", "stop"},
		{"Ｓｔｏｐ。", "stop"},
		{"𝐒𝐓𝐎𝐏", "stop"},
		{"OPTOUT", "stop"},
		{"opt out", "stop"},
		{"Opt-Out!", "stop"},
		{"revoke", "stop"},
		{"Unsubscribe.", "stop"},
		{"stop all", "stop"},
		{"HELP", "help"},
		{"info?", "help"},
		{"please stop", ""},
		{"stopp", ""},
		{"Start.", "start"},
		{"ＵＮＳＴＯＰ", "start"},
	}
	ctx := context.Background()
	for i, c := range cases {
		from := fmt.Sprintf("+614000001%02d", i)
		if c.keyword == "start" {
			b.rdb.SAdd(ctx, b.keys.Suppressed(), from)
		}
		ts := fmt.Sprintf("01-Jan-2030 00:02:%02d (UTC)", i)
		b.mustOK(t, KindReply, replyBody("ROX_API_Reply", testAccount, "sms-kw", from, c.text, ts))
		got := b.suppressed(t, from)
		if want := c.keyword == "stop"; got != want {
			t.Errorf("%q: suppressed %v, want %v", c.text, got, want)
		}
	}
	msgs := b.entries(t, b.cfg.RepliesStream)
	if len(msgs) != len(cases) {
		t.Fatalf("%d entries, want %d: every reply is pushed", len(msgs), len(cases))
	}
	for i, m := range msgs {
		v := m.Values
		wantOpt := ""
		if c := cases[i].keyword; c == "stop" || c == "start" {
			wantOpt = c
		}
		if v["keyword"] != cases[i].keyword || v["optout"] != wantOpt || v["reply_text"] != cases[i].text {
			t.Errorf("%q: keyword %q optout %q reply_text %q; want %q %q (raw text)", cases[i].text, v["keyword"], v["optout"],
				v["reply_text"], cases[i].keyword, wantOpt)
		}
	}
}

// START lifts an opt-out made by keyword, not a suppression the operator
// made (roxd suppress, the API).
func TestStartDoesNotLiftOperatorSuppression(t *testing.T) {
	b := setup(t, nil, nil)
	a := b.api(t)
	ctx := context.Background()
	b.record(t, "m-op", "sms-op", "delivered", nil)
	if _, err := a.prod.Suppress(ctx, "+61400000201"); err != nil {
		t.Fatal(err)
	}
	b.mustOK(t, KindReply, replyBody("ROX_API_Reply", testAccount, "sms-op", "+61400000201", "START", ts1))
	if !b.suppressed(t, "+61400000201") {
		t.Error("START lifted an operator's suppression")
	}
	b.mustOK(t, KindReply, replyBody("ROX_API_Reply", testAccount, "sms-op", "+61400000202", "STOP", ts1))
	b.mustOK(t, KindReply, replyBody("ROX_API_Reply", testAccount, "sms-op", "+61400000202", "START", "01-Jan-2030 00:00:05 (UTC)"))
	if b.suppressed(t, "+61400000202") {
		t.Error("START did not lift a keyword opt-out")
	}
	v := b.entries(t, b.cfg.RepliesStream)[0].Values
	if v["keyword"] != "start" || v["optout"] != "" {
		t.Errorf("START on an operator suppression: entry %v; want keyword start, optout empty (nothing changed)", v)
	}
	// The operator lifts it: gone for good.
	if _, err := a.prod.Unsuppress(ctx, "+61400000201"); err != nil {
		t.Fatal(err)
	}
	if b.suppressed(t, "+61400000201") {
		t.Error("Unsuppress left the number suppressed")
	}
}

// A receipt whose SMSId differs in letter case (or braces, spaces) from
// the one ROX returned, recorded by the worker's record script, is matched.
func TestReceiptSMSIdCanonical(t *testing.T) {
	b := setup(t, nil, func(c *Config) { c.DeferDelays = noDefer })
	ctx := context.Background()
	bat := store.NewBatches(b.rdb, b.keys, time.Hour)
	cases := []struct{ returned, receipt string }{
		{"123e4567-e89b-12d3-a456-426614174001", "123E4567-E89B-12D3-A456-426614174001"},
		{"ABCDEF01-E89B-12D3-A456-426614174002", "abcdef01-e89b-12d3-a456-426614174002"},
		{"123e4567-e89b-12d3-a456-426614174003", "{123e4567-e89b-12d3-a456-426614174003}"},
		{"123e4567-e89b-12d3-a456-426614174004", " 123e4567e89b12d3a456426614174004 "},
		{"Sms-Opaque-0005", "SMS-OPAQUE-0005"},
	}
	for i, c := range cases {
		id := fmt.Sprintf("m-case-%d", i)
		b.claim(t, id, "{}")
		if _, err := bat.Record(ctx, "batch-"+id, "tok", "req-1",
			[]store.SendOutcome{{ID: id, Kind: store.OutcomeSubmitted, Value: c.returned}}, time.Now()); err != nil {
			t.Fatal(err)
		}
		b.mustOK(t, KindReceipt, receiptBody(testAccount, c.receipt, "0000", ts1))
		if st := b.status(t, id); st["status"] != "delivered" || st["sms_id"] != c.returned {
			t.Errorf("%q returned, receipt %q: record %v; want delivered, sms_id as returned", c.returned, c.receipt, st)
		}
	}
	msgs := b.entries(t, b.cfg.ReceiptsStream)
	for i, m := range msgs {
		if m.Values["message_id"] != fmt.Sprintf("m-case-%d", i) || m.Values["sms_id"] != cases[i].receipt {
			t.Errorf("entry %d: message_id %q sms_id %q; want m-case-%d and the raw %q", i, m.Values["message_id"],
				m.Values["sms_id"], i, cases[i].receipt)
		}
	}
	// The same receipt in two spellings is one event.
	b.mustOK(t, KindReceipt, receiptBody(testAccount, strings.ToLower(cases[0].receipt), "0000", ts1))
	if n := len(b.entries(t, b.cfg.ReceiptsStream)); n != len(cases) {
		t.Errorf("%d entries after a re-post in other case, want %d", n, len(cases))
	}
}

// The same receipt re-posted with a new Timestamp (or ResultText, or
// spacing) is one event: same SMSId, same result.
func TestRepostedReceiptIsOneEvent(t *testing.T) {
	b := setup(t, nil, nil)
	b.record(t, "m-rp", "sms-rp", "submitted", nil)
	b.mustOK(t, KindReceipt, receiptBody(testAccount, "sms-rp", "0000", ts1))
	b.mustOK(t, KindReceipt, receiptBody(testAccount, "sms-rp", "0000", "01-Jan-2030 00:00:09 (UTC)"))
	b.mustOK(t, KindReceipt, strings.Replace(receiptBody(testAccount, "sms-rp", "0000", "01-Jan-2030 00:05:00 (UTC)"),
		`"Delivered"`, `"DELIVRD"`, 1))
	b.mustOK(t, KindReceipt, receiptBody(testAccount, " sms-rp ", " 0000 ", "02-Jan-2030 00:00:00 (UTC)"))
	if n := len(b.entries(t, b.cfg.ReceiptsStream)); n != 1 {
		t.Errorf("%d entries for one receipt posted 4 times, want 1", n)
	}
	// Another result is another event.
	b.mustOK(t, KindReceipt, receiptBody(testAccount, "sms-rp", "2015", ts1))
	if n := len(b.entries(t, b.cfg.ReceiptsStream)); n != 2 {
		t.Errorf("%d entries after a different result, want 2", n)
	}
}

// A receipt that arrives before the send's answer is recorded: history is
// in the order of the state machine.
func TestHistoryInStateMachineOrder(t *testing.T) {
	b := setup(t, nil, nil)
	a := b.api(t)
	ctx := context.Background()
	res, err := a.prod.Send(ctx, producer.Message{ID: "m-hist", To: "+61407555001", Text: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	b.rdb.HSet(ctx, b.keys.Msg(res.ID), "status", "sending")
	b.mustOK(t, KindReceipt, receiptBody(testAccount, "sms-hist", "0000", ts1))
	// The worker records the answer after the receipt arrived.
	time.Sleep(5 * time.Millisecond) // a later clock reading, not a condition
	bat := store.NewBatches(b.rdb, b.keys, time.Hour)
	if _, err := bat.Record(ctx, "batch-hist", "tok", "req-1",
		[]store.SendOutcome{{ID: "m-hist", Kind: store.OutcomeSubmitted, Value: "sms-hist"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, func() bool { return b.status(t, "m-hist")["status"] == "delivered" },
		"receipt not applied: %s", b.dump(t, "m-hist"))
	st, hist, _ := a.getMessage(t, "m-hist")
	if st != "delivered" || strings.Join(hist, ",") != "queued,submitted,delivered" {
		t.Errorf("GET: status %s history %v; want delivered, [queued submitted delivered]", st, hist)
	}
}

// failed then delivered for one SMSId: the delivered receipt is proof of
// delivery, so GET says delivered and so does the last entry's
// status_after; delivered then failed stays delivered.
func TestFailedThenDeliveredAgree(t *testing.T) {
	b := setup(t, nil, nil)
	a := b.api(t)
	cases := []struct {
		results    []string
		wantStatus string
		wantAfter  []string
		wantHist   string
	}{
		{[]string{"2015", "0000"}, "delivered", []string{"failed", "delivered"}, "queued,submitted,failed,delivered"},
		{[]string{"0000", "2015"}, "delivered", []string{"delivered", "delivered"}, "queued,submitted,delivered"},
		{[]string{"2015", "2016"}, "failed", []string{"failed", "failed"}, "queued,submitted,failed"},
		{[]string{"0000"}, "delivered", []string{"delivered"}, "queued,submitted,delivered"},
	}
	for i, c := range cases {
		id, sms := fmt.Sprintf("m-fd-%d", i), fmt.Sprintf("sms-fd-%d", i)
		if _, err := a.prod.Send(context.Background(), producer.Message{ID: id, To: "+61407555001", Text: "hi"}); err != nil {
			t.Fatal(err)
		}
		b.rdb.HSet(context.Background(), b.keys.Msg(id), "status", "submitted", "t_submitted", time.Now().UnixMilli())
		b.rdb.Set(context.Background(), b.keys.SMS(sms), id, time.Hour)
		for j, r := range c.results {
			b.mustOK(t, KindReceipt, receiptBody(testAccount, sms, r, fmt.Sprintf("01-Jan-2030 00:00:%02d (UTC)", j)))
		}
		st, hist, all := a.getMessage(t, id)
		var after []string
		for _, m := range b.entries(t, b.cfg.ReceiptsStream) {
			if m.Values["sms_id"] != sms {
				continue
			}
			s, _ := m.Values["status_after"].(string)
			after = append(after, s)
		}
		if st != c.wantStatus || strings.Join(after, ",") != strings.Join(c.wantAfter, ",") || strings.Join(hist, ",") != c.wantHist {
			t.Errorf("receipts %v: GET %s history %v, status_after %v; want %s %s %v", c.results, st, hist, after,
				c.wantStatus, c.wantHist, c.wantAfter)
		}
		if last := after[len(after)-1]; last != st {
			t.Errorf("receipts %v: last entry says %s, GET says %s", c.results, last, st)
		}
		if st == "delivered" && all["error"] != "" {
			t.Errorf("receipts %v: delivered with error %q", c.results, all["error"])
		}
	}
}

// Every answer to ROX is a JSON ROX_API_*_Response with a non-zero Result
// and a readable ResultText, whatever went wrong.
func TestEveryErrorAnswerIsJSON(t *testing.T) {
	b := setup(t, nil, nil)
	b.record(t, "m-err", "sms-err", "submitted", nil)
	good := receiptBody(testAccount, "sms-err", "0000", ts1)
	goodReply := replyBody("ROX_API_Reply", testAccount, "sms-err", "+61407555001", "hi", ts1)
	big := strings.Replace(good, `"Delivered"`, `"`+strings.Repeat("x", DefaultMaxBody)+`"`, 1)
	rt := "/rox/" + testToken + "/receipt"
	rp := "/rox/" + testToken + "/reply"
	cases := []struct {
		name, method, path, body string
		chunked                  bool
		code                     int
		respName, result, text   string
	}{
		{"bad json", "POST", rt, `{"Name": "ROX_API_Receipt",`, false, 400, rox.NameReceiptResponse, "2011", "JSON"},
		{"bad json reply", "POST", rp, `nope`, false, 400, rox.NameReplyResponse, "2011", "JSON"},
		{"wrong token", "POST", "/rox/nope/receipt", good, false, 404, rox.NameReceiptResponse, "2001", "token"},
		{"wrong token reply", "POST", "/rox/nope/reply", goodReply, false, 404, rox.NameReplyResponse, "2001", "token"},
		{"wrong method", "GET", rt, "", false, 405, rox.NameReceiptResponse, "2011", "POST"},
		{"wrong method reply", "PUT", rp, goodReply, false, 405, rox.NameReplyResponse, "2011", "POST"},
		{"too large", "POST", rt, big, false, 413, rox.NameReceiptResponse, "2012", "large"},
		{"too large chunked", "POST", rt, big, true, 413, rox.NameReceiptResponse, "2012", "large"},
		{"wrong name", "POST", rt, strings.Replace(good, "ROX_API_Receipt", "ROX_API_Request", 1), false, 400, rox.NameReceiptResponse, "2011", "Name"},
		{"wrong name reply", "POST", rp, good, false, 400, rox.NameReplyResponse, "2011", "Name"},
		{"missing SMSId", "POST", rt, receiptBody(testAccount, "", "0000", ts1), false, 400, rox.NameReceiptResponse, "2011", "SMSId"},
		{"wrong account", "POST", rt, receiptBody("CI99999999", "sms-err", "0000", ts1), false, 403, rox.NameReceiptResponse, "2002", "account"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(c.body)
			if c.chunked {
				body = io.MultiReader(strings.NewReader(c.body)) // no length: chunked
			}
			req, _ := http.NewRequest(c.method, b.srv.URL+c.path, body)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			out, _ := io.ReadAll(resp.Body)
			checkErrorAnswer(t, resp, out, c.code, c.respName, c.result, c.text)
			if strings.Contains(string(out), testToken) {
				t.Errorf("answer leaks the token: %s", out)
			}
		})
	}
}

// Redis down and no spool: 503 with a JSON answer saying to try again.
func TestStoreFailureAnswerIsJSON(t *testing.T) {
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { dead.Close() })
	b := startReceiver(t, dead, Config{Token: testToken, StoreTimeout: 100 * time.Millisecond})
	for _, kind := range []string{KindReceipt, KindReply} {
		body := receiptBody(testAccount, "sms-x", "0000", ts1)
		name := rox.NameReceiptResponse
		if kind == KindReply {
			body = replyBody("ROX_API_Reply", testAccount, "sms-x", "+61407555001", "hi", ts1)
			name = rox.NameReplyResponse
		}
		resp, err := http.Post(b.url(kind), "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		checkErrorAnswer(t, resp, out, 503, name, "2013", "not stored")
	}
}

func checkErrorAnswer(t *testing.T, resp *http.Response, out []byte, code int, name, result, text string) {
	t.Helper()
	if resp.StatusCode != code {
		t.Errorf("status %d, want %d (%s)", resp.StatusCode, code, out)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var r rox.CallbackResponse
	dec := json.NewDecoder(strings.NewReader(string(out)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("answer %q is not a ROX callback response: %v", out, err)
	}
	if r.Name != name || r.Version != rox.Version || string(r.Result) != result || r.Result == rox.CodeOK ||
		!strings.Contains(strings.ToLower(r.ResultText), strings.ToLower(text)) {
		t.Errorf("answer %+v; want Name %s Version %v Result %s and ResultText naming %q", r, name, rox.Version, result, text)
	}
}

// A STOP opts the number out whatever else in the callback is odd: the
// callback is still refused (ROX forwards it by e-mail), but the number is
// on the list. Nothing else is salvaged, and nothing without the token.
func TestStopInRefusedCallbackStillOptsOut(t *testing.T) {
	b := setup(t, nil, nil)
	b.record(t, "m-sv", "sms-sv", "delivered", nil) // to +61407555001
	ctx := context.Background()
	rp, rt := b.url(KindReply), b.url(KindReceipt)
	cases := []struct {
		name, url, body string
		code            int
		number          string // suppressed afterwards; "" none
	}{
		{"wrong name", rp, replyBody("ROX_API_Request", testAccount, "sms-sv", "0400000301", "STOP", ts1), 400, "+61400000301"},
		{"no SMSId", rp, replyBody("ROX_API_Reply", testAccount, "", "0400 000 302", "Stop.", ts1), 400, "+61400000302"},
		{"ReplyFrom a number", rp, strings.Replace(replyBody("ROX_API_Reply", testAccount, "sms-sv", "X", "ＳＴＯＰ", ts1),
			`"ReplyFrom": "X"`, `"ReplyFrom": 61400000303`, 1), 400, "+61400000303"},
		{"Version a string", rp, strings.Replace(replyBody("ROX_API_Reply", testAccount, "sms-sv", "+61400000304", "stop", ts1),
			`"Version": 1.1`, `"Version": "1.1"`, 1), 400, "+61400000304"},
		{"reply on the receipt URL", rt, replyBody("ROX_API_Reply", testAccount, "sms-sv", "+61400000305", "STOP", ts1), 400, "+61400000305"},
		{"wrong account", rp, replyBody("ROX_API_Reply", "CI99999999", "sms-sv", "+61400000306", "unsubscribe", ts1), 403, "+61400000306"},
		{"unreadable ReplyFrom, known SMSId", rp, replyBody("ROX_API_Request", testAccount, "SMS-SV", "private", "STOP", ts1), 400, "+61407555001"},
		{"wrong token", b.srv.URL + "/rox/nope/reply", replyBody("ROX_API_Reply", testAccount, "sms-sv", "+61400000308", "STOP", ts1), 404, ""},
		{"not a keyword", rp, replyBody("ROX_API_Request", testAccount, "sms-sv", "+61400000309", "stop it", ts1), 400, ""},
	}
	for _, c := range cases {
		code, out := b.post(t, c.url, c.body)
		if code != c.code {
			t.Errorf("%s: status %d, want %d (%s)", c.name, code, c.code, out)
		}
		if c.number != "" && !b.suppressed(t, c.number) {
			t.Errorf("%s: %s not opted out", c.name, c.number)
		}
		if c.number != "" && !strings.Contains(out, "STOP was applied") {
			t.Errorf("%s: answer %s does not say the STOP was applied", c.name, out)
		}
	}
	if n := b.rdb.SCard(ctx, b.keys.Suppressed()).Val(); n != 7 {
		t.Errorf("%d numbers suppressed, want 7: %v", n, b.rdb.SMembers(ctx, b.keys.Suppressed()).Val())
	}
	// A refused START lifts nothing.
	b.post(t, rp, replyBody("ROX_API_Request", testAccount, "sms-sv", "0400000301", "START", ts1))
	if !b.suppressed(t, "+61400000301") {
		t.Error("a refused START lifted an opt-out")
	}
	for _, s := range []string{b.cfg.ReceiptsStream, b.cfg.RepliesStream} {
		if n := b.rdb.XLen(ctx, s).Val(); n != 0 {
			t.Errorf("stream %s has %d entries from refused callbacks", s, n)
		}
	}
}
