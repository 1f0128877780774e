package roxsim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/internal/testutil"
	"github.com/redoxygen/roxd/rox"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestAccepts500Recipients(t *testing.T) {
	b := setup(t, Config{})
	req := request(500, nil)
	req.Messages.GlobalText = "global wins"
	before := time.Now().Add(-time.Second)
	status, resp := b.post(t, encode(t, req))
	if status != http.StatusOK || resp.Result != rox.CodeOK || resp.ResultText != "Success" {
		t.Fatalf("status %d, Result %q %q", status, resp.Result, resp.ResultText)
	}
	if !uuidRE.MatchString(resp.Messages.RequestID) {
		t.Fatalf("RequestId %q is not a uuid", resp.Messages.RequestID)
	}
	if resp.Messages.Count != 500 || len(resp.Messages.Results) != 500 {
		t.Fatalf("Count %d, %d results", resp.Messages.Count, len(resp.Messages.Results))
	}
	seen := map[string]bool{resp.Messages.RequestID: true}
	for i, r := range resp.Messages.Results {
		if !uuidRE.MatchString(r.SMSID) || seen[r.SMSID] {
			t.Fatalf("result %d: SMSId %q not a fresh uuid", i+1, r.SMSID)
		}
		seen[r.SMSID] = true
		if r.DestTn != req.Messages.Recipients[i].DestTn || r.Result != rox.CodeOK || r.ResultText != "Queued" {
			t.Fatalf("result %d: %+v", i+1, r)
		}
		ts, err := rox.ParseTimestamp(r.Timestamp)
		if err != nil || ts.Before(before) || ts.After(time.Now().Add(time.Second)) {
			t.Fatalf("result %d: Timestamp %q (%v)", i+1, r.Timestamp, err)
		}
	}
	recs := b.sim.Recipients()
	if len(recs) != 500 {
		t.Fatalf("recorded %d recipients", len(recs))
	}
	for i, r := range recs {
		if r.Key != i+1 || r.SMSID != resp.Messages.Results[i].SMSID || r.Text != "global wins" ||
			r.RequestID != resp.Messages.RequestID || r.DestTn != req.Messages.Recipients[i].DestTn {
			t.Fatalf("record %d: %+v", i, r)
		}
	}
	reqs := b.sim.Requests()
	if len(reqs) != 1 || reqs[0].Request == nil || reqs[0].Request.Sender.Password != Redacted ||
		reqs[0].RequestID != resp.Messages.RequestID || reqs[0].HTTPStatus != 200 || reqs[0].Recipients != 500 {
		t.Fatalf("recorded request: %+v", reqs)
	}
	// The inspection endpoint shows the request without the password.
	raw := get(t, b.srv.URL+RequestsPath)
	if strings.Contains(raw, DefaultPassword) || !strings.Contains(raw, Redacted) {
		t.Fatalf("GET %s leaks or lacks the redaction:\n%.300s", RequestsPath, raw)
	}
	st := b.sim.Stats()
	if st.Requests != 1 || st.Accepted != 1 || st.Recipients != 500 || st.Queued != 500 {
		t.Fatalf("stats %+v", st)
	}
}

func get(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

func TestRejectsMalformed(t *testing.T) {
	b := setup(t, Config{})
	valid := func() rox.SendRequest { return request(3, nil) }
	tests := []struct {
		name       string
		body       func() []byte
		method     string
		status     int
		code       rox.Code
		textPrefix string
	}{
		{name: "count mismatch", body: func() []byte {
			return bytes.Replace(encode(t, valid()), []byte(`"Count":3`), []byte(`"Count":4`), 1)
		}, status: 200, code: CodeInvalid, textPrefix: "Messages.Count: "},
		{name: "501 recipients", body: func() []byte { return encode(t, request(501, nil)) },
			status: 200, code: CodeInvalid, textPrefix: "Messages.Count: "},
		{name: "no recipients", body: func() []byte { return encode(t, request(0, nil)) },
			status: 200, code: CodeInvalid, textPrefix: "Messages.Count: "},
		{name: "bad DestTn", body: func() []byte {
			r := valid()
			r.Messages.Recipients[2].DestTn = "0407 555 001"
			return encode(t, r)
		}, status: 200, code: CodeInvalid, textPrefix: "Messages.3.DestTn: "},
		{name: "missing text without GlobalText", body: func() []byte {
			r := valid()
			r.Messages.Recipients[1].SMSText = ""
			return encode(t, r)
		}, status: 200, code: CodeInvalid, textPrefix: "Messages.2.SMSText: "},
		{name: "missing receipt URL with ReceiptFlag 1", body: func() []byte {
			r := valid()
			r.Messages.ReceiptFlag = rox.ReceiptAlways
			return encode(t, r)
		}, status: 200, code: CodeInvalid, textPrefix: "Messages.ReceiptCallbackURL: "},
		{name: "missing reply URL with ReplyType H", body: func() []byte {
			r := valid()
			r.Messages.ReplyType = rox.ReplyHTTP
			return encode(t, r)
		}, status: 200, code: CodeInvalid, textPrefix: "Messages.ReplyCallbackURL: "},
		{name: "ReceiptFlag 3", body: func() []byte {
			return bytes.Replace(encode(t, valid()), []byte(`"ReceiptFlag":0`), []byte(`"ReceiptFlag":3`), 1)
		}, status: 200, code: CodeInvalid, textPrefix: "Messages.ReceiptFlag: "},
		{name: "wrong Name", body: func() []byte {
			r := valid()
			r.Name = "ROX_API_Receipt"
			return encode(t, r)
		}, status: 200, code: CodeInvalid, textPrefix: "Name: "},
		{name: "wrong password", body: func() []byte {
			r := valid()
			r.Sender.Password = "not-the-password"
			return encode(t, r)
		}, status: 200, code: CodeAuthFailed, textPrefix: "Authentication failed"},
		{name: "wrong account", body: func() []byte {
			r := valid()
			r.Sender.AccountID = "CI99999999"
			return encode(t, r)
		}, status: 200, code: CodeAuthFailed, textPrefix: "Authentication failed"},
		{name: "wrong JSON type", body: func() []byte {
			return bytes.Replace(encode(t, valid()), []byte(`"ReceiptFlag":0`), []byte(`"ReceiptFlag":"0"`), 1)
		}, status: 200, code: CodeInvalid, textPrefix: "Messages.ReceiptFlag: "},
		{name: "JSON array", body: func() []byte { return []byte(`[1,2]`) },
			status: 200, code: CodeMalformed, textPrefix: "request is not a ROX_API_Request"},
		{name: "not JSON", body: func() []byte { return []byte(`Name=ROX_API_Request&Password=x`) },
			status: 400, code: CodeMalformed, textPrefix: "request body is not JSON"},
		{name: "GET", method: http.MethodGet, body: func() []byte { return nil },
			status: 405, code: CodeMalformed, textPrefix: "method GET not allowed"},
		{name: "too large", body: func() []byte {
			r := valid()
			r.Messages.GlobalText = strings.Repeat("x", DefaultMaxBody)
			return encode(t, r)
		},
			status: 413, code: CodeMalformed, textPrefix: "body larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			hr, _ := http.NewRequest(method, b.sendURL, bytes.NewReader(tt.body()))
			resp, err := http.DefaultClient.Do(hr)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %.300s", resp.StatusCode, tt.status, raw)
			}
			out, err := rox.DecodeSendResponse(raw)
			if err != nil {
				t.Fatalf("not a ROX_API_Response: %v: %s", err, raw)
			}
			if out.Name != rox.NameResponse || out.Result != tt.code || !strings.HasPrefix(out.ResultText, tt.textPrefix) {
				t.Fatalf("got %s %q %q, want %q %q...", out.Name, out.Result, out.ResultText, tt.code, tt.textPrefix)
			}
			if strings.Contains(string(raw), DefaultPassword) || strings.Contains(string(raw), "not-the-password") {
				t.Fatalf("answer echoes a password: %s", raw)
			}
		})
	}
	st := b.sim.Stats()
	if st.Accepted != 0 || st.Recipients != 0 || st.Rejected[CodeAuthFailed] != 2 || st.HTTPErrors != 3 {
		t.Fatalf("stats %+v", st)
	}
	for _, r := range b.sim.Requests() {
		if r.Request != nil && r.Request.Sender.Password != Redacted {
			t.Fatalf("recorded password %q", r.Request.Sender.Password)
		}
	}
}

func TestFires500Receipts(t *testing.T) {
	sk := newSink(t)
	b := setup(t, Config{})
	req := request(500, sk)
	_, resp := b.post(t, encode(t, req))
	if resp.Result != rox.CodeOK {
		t.Fatalf("Result %q %q", resp.Result, resp.ResultText)
	}
	waitIdle(t, b.sim, 30*time.Second)
	sk.check(t)
	sk.mu.Lock()
	defer sk.mu.Unlock()
	if len(sk.receipts) != 500 || len(sk.replies) != 0 {
		t.Fatalf("%d receipts, %d replies, want 500, 0", len(sk.receipts), len(sk.replies))
	}
	want := map[string]string{}
	for _, r := range resp.Messages.Results {
		want[r.SMSID] = r.DestTn
	}
	seen := map[string]int{}
	for _, rc := range sk.receipts {
		d := rc.Messages.Receipt
		seen[d.SMSID]++
		if want[d.SMSID] != d.DestTn || d.Result != rox.CodeOK || d.ResultText != "Delivered" ||
			rc.Messages.RequestID != resp.Messages.RequestID || rc.Sender.AccountID != DefaultAccountID ||
			rc.Sender.Username != DefaultUsername || rc.Version != rox.Version {
			t.Fatalf("receipt %+v", rc)
		}
		if _, err := rox.ParseTimestamp(d.Timestamp); err != nil {
			t.Fatalf("receipt Timestamp %q: %v", d.Timestamp, err)
		}
	}
	for id := range want {
		if seen[id] != 1 {
			t.Fatalf("SMSId %s got %d receipts", id, seen[id])
		}
	}
	st := b.sim.Stats()
	if st.ReceiptsSent != 500 || st.Delivered != 500 || st.ReceiptsFailed != 0 || st.Pending != 0 {
		t.Fatalf("stats %+v", st)
	}
	if n := len(b.sim.Callbacks()); n != 500 {
		t.Fatalf("%d callbacks recorded", n)
	}
}

func TestReceiptFlag(t *testing.T) {
	t.Run("0 sends none", func(t *testing.T) {
		sk := newSink(t)
		b := setup(t, Config{Faults: Faults{DeliveryFailures: 0.5}})
		req := request(50, sk)
		req.Messages.ReceiptFlag = rox.ReceiptNever
		b.post(t, encode(t, req))
		waitIdle(t, b.sim, 10*time.Second)
		st := b.sim.Stats()
		if n, _ := sk.counts(); n != 0 || st.Delivered+st.DeliveryFailed != 50 || st.ReceiptsSent != 0 {
			t.Fatalf("%d receipts; stats %+v", n, st)
		}
	})
	t.Run("2 sends failures only", func(t *testing.T) {
		sk := newSink(t)
		b := setup(t, Config{Faults: Faults{DeliveryFailures: 0.5, DeliveryFailureCode: "2077"}})
		req := request(100, sk)
		req.Messages.ReceiptFlag = rox.ReceiptOnError
		b.post(t, encode(t, req))
		waitIdle(t, b.sim, 10*time.Second)
		st := b.sim.Stats()
		sk.mu.Lock()
		defer sk.mu.Unlock()
		if st.DeliveryFailed == 0 || st.Delivered == 0 || int64(len(sk.receipts)) != st.DeliveryFailed {
			t.Fatalf("%d receipts; stats %+v", len(sk.receipts), st)
		}
		for _, rc := range sk.receipts {
			if d := rc.Messages.Receipt; d.Result != "2077" || d.ResultText == "Delivered" {
				t.Fatalf("receipt %+v", d)
			}
		}
	})
}

func TestSendLaterHeldUntilDue(t *testing.T) {
	sk := newSink(t)
	b := setup(t, Config{})
	req := request(3, sk)
	// Second precision on the wire: the due time is a whole second 2-3 s
	// ahead, in UTC+10:00 to exercise TimeZoneOffset.
	due := time.Now().Truncate(time.Second).Add(3 * time.Second)
	req.Messages.SendLater = due
	req.Messages.TimeZoneOffset = -600
	_, resp := b.post(t, encode(t, req))
	if resp.Result != rox.CodeOK {
		t.Fatalf("Result %q %q", resp.Result, resp.ResultText)
	}
	if st := b.sim.Stats(); st.Held != 3 || st.Pending != 1 {
		t.Fatalf("stats %+v", st)
	}
	for _, r := range b.sim.Recipients() {
		if !r.DueAt.Equal(due) || !r.SendLater.Equal(due) {
			t.Fatalf("DueAt %v SendLater %v, want %v", r.DueAt, r.SendLater, due)
		}
	}
	var arrived time.Time
	testutil.Eventually(t, 10*time.Second, func() bool {
		n, _ := sk.counts()
		if n > 0 && arrived.IsZero() {
			arrived = time.Now()
		}
		return n == 3
	}, "3 receipts")
	if arrived.Before(due) {
		t.Fatalf("first receipt arrived at %v, before SendLater %v", arrived, due)
	}
	if arrived.After(due.Add(2 * time.Second)) {
		t.Fatalf("first receipt arrived at %v, long after SendLater %v", arrived, due)
	}
	for _, r := range b.sim.Recipients() {
		if r.DeliveredAt.Before(due) {
			t.Fatalf("delivered at %v before %v", r.DeliveredAt, due)
		}
	}
}

func TestFault5xx(t *testing.T) {
	b := setup(t, Config{Faults: Faults{Fail5xx: 1}})
	status, _ := b.post(t, encode(t, request(5, nil)))
	if status != http.StatusInternalServerError {
		t.Fatalf("status %d", status)
	}
	st := b.sim.Stats()
	if st.Injected5xx != 1 || st.Accepted != 0 || st.Requests != 1 {
		t.Fatalf("stats %+v", st)
	}
	if r := b.sim.Requests(); len(r) != 1 || r[0].Fault != "5xx" || r[0].HTTPStatus != 500 {
		t.Fatalf("requests %+v", r)
	}
}

func TestFaultHang(t *testing.T) {
	b := setup(t, Config{Faults: Faults{Hang: 1}})
	c := &http.Client{Timeout: 200 * time.Millisecond}
	start := time.Now()
	_, err := c.Post(b.sendURL, "application/json", bytes.NewReader(encode(t, request(2, nil))))
	var ne interface{ Timeout() bool }
	if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("want a client timeout, got %v", err)
	}
	if time.Since(start) < 200*time.Millisecond {
		t.Fatal("answered before the client gave up")
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return b.sim.Stats().Hung == 1 }, "Hung counted")
	if st := b.sim.Stats(); st.Accepted != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestHungRequestReleasedByClose(t *testing.T) {
	b := setup(t, Config{Faults: Faults{Hang: 1}})
	errc := make(chan error, 1)
	go func() {
		resp, err := http.Post(b.sendURL, "application/json", bytes.NewReader(encode(t, request(1, nil))))
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	testutil.Eventually(t, 5*time.Second, func() bool { return b.sim.Stats().Hung == 1 }, "request held")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.sim.Close(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("a held request got an answer; want the connection dropped")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("hung request not released by Close")
	}
	if err := b.sim.WaitIdle(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("WaitIdle after Close: %v", err)
	}
}

func TestFaultAuthFail(t *testing.T) {
	b := setup(t, Config{Faults: Faults{AuthFail: true}})
	_, resp := b.post(t, encode(t, request(2, nil)))
	if resp.Result != CodeAuthFailed || resp.Result.Class() != rox.ClassAuth {
		t.Fatalf("Result %q", resp.Result)
	}
	// Switched off at runtime, the same request is accepted.
	if err := b.sim.SetFaults(Faults{}); err != nil {
		t.Fatal(err)
	}
	if _, resp := b.post(t, encode(t, request(2, nil))); resp.Result != rox.CodeOK {
		t.Fatalf("Result %q after SetFaults", resp.Result)
	}
}

func TestFaultRecipientErrors(t *testing.T) {
	sk := newSink(t)
	codes := []rox.Code{"2015", "2020"}
	b := setup(t, Config{Faults: Faults{RecipientErrors: 1, RecipientErrorCodes: codes}})
	_, resp := b.post(t, encode(t, request(40, sk)))
	if resp.Result != rox.CodeOK {
		t.Fatalf("top-level Result %q: the request as a whole succeeds", resp.Result)
	}
	got := map[rox.Code]int{}
	for i, r := range resp.Messages.Results {
		if r.SMSID != "" || (r.Result != "2015" && r.Result != "2020") || r.ResultText == "" {
			t.Fatalf("result %d: %+v", i+1, r)
		}
		got[r.Result]++
	}
	if got["2015"] == 0 || got["2020"] == 0 {
		t.Fatalf("codes drawn %v, want both", got)
	}
	waitIdle(t, b.sim, 5*time.Second)
	st := b.sim.Stats()
	if n, _ := sk.counts(); n != 0 || st.Delivered != 0 || st.Queued != 0 ||
		st.RecipientErrors["2015"]+st.RecipientErrors["2020"] != 40 {
		t.Fatalf("%d receipts, stats %+v", n, st)
	}
}

func TestFaultPartialRecipientErrors(t *testing.T) {
	sk := newSink(t)
	b := setup(t, Config{Faults: Faults{RecipientErrors: 0.3}})
	_, resp := b.post(t, encode(t, request(200, sk)))
	queued := 0
	for _, r := range resp.Messages.Results {
		if r.Result.OK() {
			queued++
		}
	}
	if queued == 0 || queued == 200 {
		t.Fatalf("%d of 200 queued at rate 0.3", queued)
	}
	waitIdle(t, b.sim, 10*time.Second)
	if n, _ := sk.counts(); n != queued {
		t.Fatalf("%d receipts for %d queued", n, queued)
	}
}

func TestFaultDuplicates(t *testing.T) {
	sk := newSink(t)
	b := setup(t, Config{Faults: Faults{Duplicates: 1}})
	_, resp := b.post(t, encode(t, request(50, sk)))
	waitIdle(t, b.sim, 10*time.Second)
	sk.mu.Lock()
	seen := map[string]int{}
	for _, rc := range sk.receipts {
		seen[rc.Messages.Receipt.SMSID]++
	}
	sk.mu.Unlock()
	for _, r := range resp.Messages.Results {
		if seen[r.SMSID] != 2 {
			t.Fatalf("SMSId %s received %d times, want 2", r.SMSID, seen[r.SMSID])
		}
	}
	if st := b.sim.Stats(); st.Duplicates != 50 || st.ReceiptsSent != 100 {
		t.Fatalf("stats %+v", st)
	}
}

func TestFaultLatency(t *testing.T) {
	b := setup(t, Config{Faults: Faults{Latency: 150 * time.Millisecond, Jitter: 50 * time.Millisecond}})
	start := time.Now()
	_, resp := b.post(t, encode(t, request(1, nil)))
	if d := time.Since(start); d < 150*time.Millisecond || resp.Result != rox.CodeOK {
		t.Fatalf("answered %q after %v, want >= 150ms", resp.Result, d)
	}
}

func TestCallbackFailureForwardedToEmail(t *testing.T) {
	sk := newSink(t)
	sk.answer = http.StatusServiceUnavailable
	b := setup(t, Config{RetryCallbacks: true})
	b.post(t, encode(t, request(5, sk)))
	waitIdle(t, b.sim, 10*time.Second)
	st := b.sim.Stats()
	if st.ForwardedToEmail != 5 || st.ReceiptsFailed != 10 || st.Retries != 5 || st.ReceiptsSent != 0 {
		t.Fatalf("stats %+v", st)
	}
	var fwd int
	for _, c := range b.sim.Callbacks() {
		if c.Outcome == OutcomeForwardedToEmail {
			fwd++
		} else if c.Outcome != OutcomeFailed || c.HTTPStatus != 503 || strings.Contains(c.Error, "s3cret") {
			t.Fatalf("callback %+v", c)
		}
	}
	if fwd != 5 {
		t.Fatalf("%d forwarded records", fwd)
	}
}

func TestCallbackResultNotOK(t *testing.T) {
	bad := newSinkFunc(t, `{"Name":"ROX_API_Receipt_Response","Version":1.1,"Result":"2011","ResultText":"nope"}`)
	b := setup(t, Config{})
	req := request(2, nil)
	req.Messages.ReceiptFlag = rox.ReceiptAlways
	req.Messages.ReceiptCallbackURL = bad.URL + "/r"
	b.post(t, encode(t, req))
	waitIdle(t, b.sim, 10*time.Second)
	if st := b.sim.Stats(); st.ForwardedToEmail != 2 || st.ReceiptsFailed != 2 {
		t.Fatalf("stats %+v", st)
	}
	// The document's trailing comma is forgiven.
	ok := newSinkFunc(t, `{"Name":"ROX_API_Receipt_Response","Version":1.1,"Result":"0000","ResultText":"OK",}`)
	b.sim.Reset()
	req.Messages.ReceiptCallbackURL = ok.URL + "/r"
	b.post(t, encode(t, req))
	waitIdle(t, b.sim, 10*time.Second)
	if st := b.sim.Stats(); st.ReceiptsSent != 2 || st.ForwardedToEmail != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func newSinkFunc(t *testing.T, answer string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestReply(t *testing.T) {
	sk := newSink(t)
	b := setup(t, Config{})
	req := request(3, sk)
	req.Messages.ReceiptFlag = rox.ReceiptNever
	_, resp := b.post(t, encode(t, req))
	target := resp.Messages.Results[1]

	// By SMSId, through the HTTP endpoint.
	body := `{"sms_id":"` + target.SMSID + `","text":"Thanks No Problem"}`
	hr, err := http.Post(b.srv.URL+ReplyPath, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	hr.Body.Close()
	if hr.StatusCode != http.StatusAccepted {
		t.Fatalf("POST %s: %d", ReplyPath, hr.StatusCode)
	}
	// By DestTn, through the Go API.
	if _, err := b.sim.Reply(context.Background(), "", resp.Messages.Results[2].DestTn, "STOP"); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, b.sim, 10*time.Second)
	sk.check(t)
	sk.mu.Lock()
	replies := append([]*rox.Reply(nil), sk.replies...)
	sk.mu.Unlock()
	if len(replies) != 2 {
		t.Fatalf("%d replies", len(replies))
	}
	byText := map[string]*rox.Reply{}
	for _, r := range replies {
		byText[r.Messages.Reply.ReplyText] = r
	}
	r := byText["Thanks No Problem"]
	if r == nil || r.Name != rox.NameReplyResponse || r.Messages.RequestID != resp.Messages.RequestID ||
		r.Messages.Reply.SMSID != target.SMSID || r.Messages.Reply.ReplyFrom != target.DestTn ||
		r.Messages.Reply.SMSText != "hello 2" || r.Sender.AccountID != DefaultAccountID {
		t.Fatalf("reply %+v", r)
	}
	if r := byText["STOP"]; r == nil || r.Messages.Reply.SMSID != resp.Messages.Results[2].SMSID {
		t.Fatalf("reply by DestTn %+v", r)
	}

	// Unknown message: 404.
	hr, err = http.Post(b.srv.URL+ReplyPath, "application/json", strings.NewReader(`{"sms_id":"nope","text":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	hr.Body.Close()
	if hr.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown sms_id: %d", hr.StatusCode)
	}
}

func TestReplyNameAndEmailReplyType(t *testing.T) {
	sk := newSink(t)
	b := setup(t, Config{ReplyName: rox.NameReply})
	req := request(2, sk)
	req.Messages.ReplyType = rox.ReplyEmail
	req.Messages.ReplyCallbackURL = ""
	_, resp := b.post(t, encode(t, req))
	if _, err := b.sim.Reply(context.Background(), resp.Messages.Results[0].SMSID, "", "hi"); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, b.sim, 10*time.Second)
	if _, n := sk.counts(); n != 0 || b.sim.Stats().ForwardedToEmail != 1 {
		t.Fatalf("%d replies, stats %+v", n, b.sim.Stats())
	}

	req = request(1, sk)
	req.Messages.ReceiptFlag = rox.ReceiptNever
	_, resp = b.post(t, encode(t, req))
	if _, err := b.sim.Reply(context.Background(), resp.Messages.Results[0].SMSID, "", "hi"); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, b.sim, 10*time.Second)
	sk.mu.Lock()
	defer sk.mu.Unlock()
	if len(sk.replies) != 1 || sk.replies[0].Name != rox.NameReply {
		t.Fatalf("replies %+v", sk.replies)
	}
}

func TestAutoReply(t *testing.T) {
	sk := newSink(t)
	b := setup(t, Config{Faults: Faults{AutoReplyRate: 1, AutoReplyText: "auto"}})
	req := request(20, sk)
	req.Messages.ReceiptFlag = rox.ReceiptNever
	b.post(t, encode(t, req))
	waitIdle(t, b.sim, 10*time.Second)
	sk.mu.Lock()
	defer sk.mu.Unlock()
	if len(sk.replies) != 20 || len(sk.receipts) != 0 || sk.replies[0].Messages.Reply.ReplyText != "auto" {
		t.Fatalf("%d replies, %d receipts", len(sk.replies), len(sk.receipts))
	}
}

func TestInspectionEndpoints(t *testing.T) {
	b := setup(t, Config{})
	req := request(5, nil)
	req.Messages.Recipients[3].SMSText = "special offer"
	b.post(t, encode(t, req))

	var recs []RecordedRecipient
	if err := json.Unmarshal([]byte(get(t, b.srv.URL+RecipientsPath+"?text=special")), &recs); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].DestTn != "+61407000004" || recs[0].Key != 4 {
		t.Fatalf("text filter: %+v", recs)
	}
	if err := json.Unmarshal([]byte(get(t, b.srv.URL+RecipientsPath+"?dest_tn=%2B61407000002")), &recs); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Text != "hello 2" {
		t.Fatalf("dest_tn filter: %+v", recs)
	}
	if err := json.Unmarshal([]byte(get(t, b.srv.URL+RecipientsPath+"?limit=2")), &recs); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[1].Key != 5 {
		t.Fatalf("limit: %+v", recs)
	}
	var st Stats
	if err := json.Unmarshal([]byte(get(t, b.srv.URL+StatsPath)), &st); err != nil || st.Recipients != 5 {
		t.Fatalf("stats %+v %v", st, err)
	}

	// PUT /sim/faults changes only the named fields.
	put := func(body string) int {
		hr, _ := http.NewRequest(http.MethodPut, b.srv.URL+FaultsPath, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := put(`{"fail_5xx":0.25,"latency":"20ms"}`); c != 200 {
		t.Fatalf("PUT: %d", c)
	}
	if c := put(`{"recipient_error_codes":["2016"]}`); c != 200 {
		t.Fatalf("PUT: %d", c)
	}
	f := b.sim.Faults()
	if f.Fail5xx != 0.25 || f.Latency != 20*time.Millisecond || len(f.RecipientErrorCodes) != 1 || f.RecipientErrorCodes[0] != "2016" {
		t.Fatalf("faults %+v", f)
	}
	if c := put(`{"hang":2}`); c != 400 {
		t.Fatalf("PUT bad rate: %d", c)
	}
	if c := put(`{"recipient_error_codes":["0000"]}`); c != 400 {
		t.Fatalf("PUT bad code: %d", c)
	}
	if b.sim.Faults().Hang != 0 {
		t.Fatal("a rejected PUT changed the faults")
	}

	hr, _ := http.Post(b.srv.URL+ResetPath, "", nil)
	hr.Body.Close()
	if st := b.sim.Stats(); st.Requests != 0 || len(b.sim.Recipients()) != 0 || len(b.sim.Requests()) != 0 {
		t.Fatalf("after reset: %+v", st)
	}
}

func TestCountOnly(t *testing.T) {
	sk := newSink(t)
	b := setup(t, Config{CountOnly: true})
	b.post(t, encode(t, request(10, sk)))
	waitIdle(t, b.sim, 10*time.Second)
	if n, _ := sk.counts(); n != 10 || len(b.sim.Recipients()) != 0 || len(b.sim.Requests()) != 0 ||
		len(b.sim.Callbacks()) != 0 || b.sim.Stats().ReceiptsSent != 10 {
		t.Fatalf("%d receipts, stats %+v", n, b.sim.Stats())
	}
	if _, err := b.sim.Reply(context.Background(), "x", "", "y"); !errors.Is(err, ErrNotRecording) {
		t.Fatalf("Reply: %v", err)
	}
}

func TestMaxRecords(t *testing.T) {
	b := setup(t, Config{MaxRecords: 100})
	for i := 0; i < 5; i++ {
		b.post(t, encode(t, request(40, nil)))
	}
	n := len(b.sim.Recipients())
	if n > 100 || n < 40 || b.sim.Stats().RecordsDropped == 0 {
		t.Fatalf("%d recorded, stats %+v", n, b.sim.Stats())
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		cfg   Config
		field string
	}{
		{Config{Faults: Faults{Fail5xx: 1.5}}, "Faults.Fail5xx"},
		{Config{Faults: Faults{Latency: -1}}, "Faults.Latency"},
		{Config{Faults: Faults{RecipientErrorCodes: []rox.Code{"2001"}}}, "Faults.RecipientErrorCodes[0]"},
		{Config{Faults: Faults{DeliveryFailureCode: "9999"}}, "Faults.DeliveryFailureCode"},
		{Config{ReplyName: "x"}, "ReplyName"},
		{Config{Workers: -1}, "Workers"},
		{Config{MaxBody: 10}, "MaxBody"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("%+v: %v, want an error naming %s", tt.cfg, err, tt.field)
		}
		if _, err := New(tt.cfg, zerolog.Nop()); err == nil {
			t.Errorf("New accepted %+v", tt.cfg)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestSeedReproducible(t *testing.T) {
	ids := func() []string {
		b := setup(t, Config{Seed: 7, Faults: Faults{RecipientErrors: 0.5}})
		_, resp := b.post(t, encode(t, request(20, nil)))
		out := []string{resp.Messages.RequestID}
		for _, r := range resp.Messages.Results {
			out = append(out, r.SMSID+string(r.Result))
		}
		return out
	}
	a, c := ids(), ids()
	if strings.Join(a, ",") != strings.Join(c, ",") {
		t.Fatalf("same seed, different answers:\n%v\n%v", a, c)
	}
}

func TestConcurrentSendsAndFaultChanges(t *testing.T) {
	sk := newSink(t)
	b := setup(t, Config{Workers: 8})
	const clients, per = 16, 50
	var wg sync.WaitGroup
	ids := make(chan string, clients*per)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, resp := b.post(t, encode(t, request(per, sk)))
			for _, r := range resp.Messages.Results {
				ids <- r.SMSID
			}
		}()
	}
	wg.Add(1)
	go func() { // faults change while requests are served
		defer wg.Done()
		for i := 0; i < 50; i++ {
			if err := b.sim.SetFaults(Faults{ReceiptDelay: time.Duration(i%3) * time.Millisecond}); err != nil {
				t.Error(err)
			}
			_ = b.sim.Stats()
			_ = b.sim.Recipients()
		}
	}()
	wg.Wait()
	close(ids)
	waitIdle(t, b.sim, 30*time.Second)
	want := map[string]bool{}
	for id := range ids {
		if id == "" || want[id] {
			t.Fatalf("SMSId %q empty or repeated", id)
		}
		want[id] = true
	}
	sk.mu.Lock()
	defer sk.mu.Unlock()
	if len(sk.receipts) != clients*per || len(want) != clients*per {
		t.Fatalf("%d receipts, %d ids, want %d", len(sk.receipts), len(want), clients*per)
	}
	for _, rc := range sk.receipts {
		if !want[rc.Messages.Receipt.SMSID] {
			t.Fatalf("receipt for unknown SMSId %s", rc.Messages.Receipt.SMSID)
		}
		delete(want, rc.Messages.Receipt.SMSID)
	}
}

func TestReceiptDelay(t *testing.T) {
	sk := newSink(t)
	b := setup(t, Config{Faults: Faults{ReceiptDelay: 400 * time.Millisecond}})
	sent := time.Now()
	b.post(t, encode(t, request(2, sk)))
	var arrived time.Time
	testutil.Eventually(t, 10*time.Second, func() bool {
		n, _ := sk.counts()
		if n > 0 && arrived.IsZero() {
			arrived = time.Now()
		}
		return n == 2
	}, "2 receipts")
	if d := arrived.Sub(sent); d < 400*time.Millisecond {
		t.Fatalf("receipt after %v, want >= 400ms", d)
	}
}

// Callbacks reuse connections: 500 receipts over a bounded number of
// keep-alive connections, not one each.
func TestCallbacksKeepAlive(t *testing.T) {
	var mu sync.Mutex
	conns := 0
	sk := newSinkWith(t, func(srv *httptest.Server) {
		srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				mu.Lock()
				conns++
				mu.Unlock()
			}
		}
	})
	b := setup(t, Config{Workers: 16})
	b.post(t, encode(t, request(500, sk)))
	waitIdle(t, b.sim, 30*time.Second)
	if n, _ := sk.counts(); n != 500 {
		t.Fatalf("%d receipts", n)
	}
	mu.Lock()
	defer mu.Unlock()
	// A dial racing a connection going idle may add a few; without
	// keep-alive it would be ~500.
	if conns > 32 {
		t.Fatalf("%d connections for 500 callbacks from 16 workers", conns)
	}
}
