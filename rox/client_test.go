package rox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testPassword needs JSON escaping, so a server echoing the request body
// shows it escaped; both forms must be scrubbed.
const testPassword = `s3cr3t<&>"pw`

// testToken is the callback token inside the callback URLs: a secret too.
const testToken = "cbtoken0123456789abcdef"

var passwordForms = []string{testPassword, jsonEscaped(testPassword), "s3cr3t", testToken}

func assertNoPassword(t *testing.T, what, s string) {
	t.Helper()
	for _, p := range passwordForms {
		if strings.Contains(s, p) {
			t.Fatalf("%s contains the password (%q): %s", what, p, s)
		}
	}
}

type clientBundle struct {
	srv    *httptest.Server
	client *Client
	hits   atomic.Int32
	conns  atomic.Int32
	bodies chan []byte
}

func setupClient(t *testing.T, timeout time.Duration, h func(w http.ResponseWriter, r *http.Request, body []byte)) *clientBundle {
	t.Helper()
	b := &clientBundle{bodies: make(chan []byte, 16)}
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		select {
		case b.bodies <- body:
		default:
		}
		h(w, r, body)
	}))
	b.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			b.conns.Add(1)
		}
	}
	b.srv.Start()
	t.Cleanup(b.srv.Close)
	c, err := NewClient(ClientConfig{URL: b.srv.URL, AccountID: "CI00000001", Username: "user@example.com",
		Password: testPassword, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	b.client = c
	return b
}

func twoRecipients() Messages {
	return Messages{ReceiptFlag: ReceiptAlways, ReceiptCallbackURL: "https://cb.example.com/rox/" + testToken + "/receipt",
		ReplyType: ReplyHTTP, ReplyCallbackURL: "https://cb.example.com/rox/" + testToken + "/reply", Recipients: []Recipient{
			{DestTn: "+61407555001", SMSText: "hello"},
			{DestTn: "+61407555001", SMSText: "same number again"},
		}}
}

// answer decodes the request and answers every recipient, in order.
func answer(t *testing.T, w http.ResponseWriter, body []byte, results int, code Code) {
	req, err := DecodeSendRequest(body)
	if err != nil {
		t.Errorf("server: %v", err)
		http.Error(w, "bad", 400)
		return
	}
	resp := SendResponse{Name: NameResponse, Version: Version, Result: CodeOK, ResultText: "Success",
		Messages: ResponseMessages{RequestID: "req-1"}}
	for i := 0; i < results; i++ {
		dest := "+61407555001"
		if i < len(req.Messages.Recipients) {
			dest = req.Messages.Recipients[i].DestTn
		}
		resp.Messages.Results = append(resp.Messages.Results, RecipientResult{
			SMSID: fmt.Sprintf("sms-%d", i+1), DestTn: dest, Result: code, ResultText: "Queued",
			Timestamp: "01-Jan-2030 00:00:01 (UTC)"})
	}
	out, _ := EncodeSendResponse(&resp)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

func TestClientSendOK(t *testing.T) {
	b := setupClient(t, time.Minute, func(w http.ResponseWriter, r *http.Request, body []byte) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("method %s, content type %q", r.Method, r.Header.Get("Content-Type"))
		}
		answer(t, w, body, 2, CodeOK)
	})
	for i := 0; i < 3; i++ {
		resp, err := b.client.Send(context.Background(), twoRecipients())
		if err != nil {
			t.Fatal(err)
		}
		if resp.Messages.RequestID != "req-1" || len(resp.Messages.Results) != 2 || resp.Messages.Results[1].SMSID != "sms-2" {
			t.Fatalf("response %+v", resp)
		}
	}
	req, err := DecodeSendRequest(<-b.bodies)
	if err != nil {
		t.Fatal(err)
	}
	if req.Name != NameRequest || req.Version != Version || req.Product != DefaultProduct ||
		req.Sender.Password != testPassword || req.Messages.Count != 2 {
		t.Fatalf("request sent: %v", req)
	}
	if n := b.conns.Load(); n != 1 {
		t.Fatalf("%d connections for 3 sequential sends, want 1 (keep-alive)", n)
	}
}

func TestClientPerRecipientFailureIsNotAnError(t *testing.T) {
	b := setupClient(t, time.Minute, func(w http.ResponseWriter, r *http.Request, body []byte) {
		answer(t, w, body, 2, "2015")
	})
	resp, err := b.client.Send(context.Background(), twoRecipients())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Messages.Results[0].Result != "2015" {
		t.Fatalf("%+v", resp)
	}
}

func TestClientFailures(t *testing.T) {
	echo := func(status int) func(w http.ResponseWriter, r *http.Request, body []byte) {
		return func(w http.ResponseWriter, r *http.Request, body []byte) {
			w.WriteHeader(status)
			_, _ = w.Write(body) // a misbehaving server echoing the password
		}
	}
	topLevel := func(code Code, messages string) func(w http.ResponseWriter, r *http.Request, body []byte) {
		return func(w http.ResponseWriter, r *http.Request, body []byte) {
			fmt.Fprintf(w, `{"Name":"ROX_API_Response","Version":1.1,"Result":%q,"ResultText":"bad password %s"%s}`,
				code, strings.ReplaceAll(testPassword, `"`, `\"`), messages)
		}
	}
	tests := []struct {
		name      string
		timeout   time.Duration
		handler   func(w http.ResponseWriter, r *http.Request, body []byte)
		ctx       func() (context.Context, context.CancelFunc)
		msgs      func() Messages
		kind      ErrorKind
		status    int
		code      Code
		retryable bool
		retryIn   time.Duration
		withResp  bool
		noHit     bool
	}{
		{name: "500 echo", handler: echo(500), kind: KindHTTP, status: 500, retryable: true},
		{name: "502 echo", handler: echo(502), kind: KindHTTP, status: 502, retryable: true},
		{name: "400 echo", handler: echo(400), kind: KindHTTP, status: 400},
		{name: "401", handler: echo(401), kind: KindHTTP, status: 401},
		{name: "500 quoting secrets", handler: func(w http.ResponseWriter, r *http.Request, body []byte) {
			req, _ := DecodeSendRequest(body)
			w.WriteHeader(500)
			fmt.Fprintf(w, "cannot call %s for %s with %s", req.Messages.ReceiptCallbackURL, req.Sender.Username, req.Sender.Password)
		}, kind: KindHTTP, status: 500, retryable: true},
		{name: "502 long body quoting secrets", handler: func(w http.ResponseWriter, r *http.Request, body []byte) {
			w.WriteHeader(502)
			// The password straddles the 256-byte cut: scrubbed before cutting.
			fmt.Fprintf(w, "%s%s and %s", strings.Repeat("x", 250), testPassword, strings.Repeat("y", 1000))
		}, kind: KindHTTP, status: 502, retryable: true},
		{name: "429 retry-after", handler: func(w http.ResponseWriter, r *http.Request, body []byte) {
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(429)
		}, kind: KindHTTP, status: 429, retryable: true, retryIn: 3 * time.Second},
		{name: "503 retry-after date", handler: func(w http.ResponseWriter, r *http.Request, body []byte) {
			w.Header().Set("Retry-After", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat))
			w.WriteHeader(503)
		}, kind: KindHTTP, status: 503, retryable: true, retryIn: time.Hour},
		{name: "redirect is not followed", handler: func(w http.ResponseWriter, r *http.Request, body []byte) {
			http.Redirect(w, r, "http://127.0.0.1:1/elsewhere", http.StatusTemporaryRedirect)
		}, kind: KindHTTP, status: 307},
		{name: "200 echo is not a response", handler: echo(200), kind: KindDecode, status: 200},
		{name: "200 garbage", handler: func(w http.ResponseWriter, r *http.Request, body []byte) {
			_, _ = io.WriteString(w, "<html>"+testPassword+"</html>")
		}, kind: KindDecode, status: 200},
		{name: "200 empty", handler: func(w http.ResponseWriter, r *http.Request, body []byte) {}, kind: KindDecode, status: 200},
		{name: "200 no Result", handler: func(w http.ResponseWriter, r *http.Request, body []byte) {
			_, _ = io.WriteString(w, `{"Name":"ROX_API_Response"}`)
		}, kind: KindDecode, status: 200},
		{name: "200 too few results", handler: func(w http.ResponseWriter, r *http.Request, body []byte) {
			answer(t, w, body, 1, CodeOK)
		}, kind: KindDecode, status: 200},
		{name: "200 too many results", handler: func(w http.ResponseWriter, r *http.Request, body []byte) {
			answer(t, w, body, 3, CodeOK)
		}, kind: KindDecode, status: 200},
		{name: "200 huge body", handler: func(w http.ResponseWriter, r *http.Request, body []byte) {
			_, _ = io.WriteString(w, `{"Name":"`+strings.Repeat("x", MaxResponseBytes)+`"}`)
		}, kind: KindDecode, status: 200},
		{name: "auth 2001", handler: topLevel("2001", ""), kind: KindAuth, status: 200, code: "2001", withResp: true},
		{name: "auth 2010 with messages", handler: topLevel("2010", `,"Messages":{"Count":0,"RequestId":""}`),
			kind: KindAuth, status: 200, code: "2010", withResp: true},
		{name: "sending 2011", handler: topLevel("2011", ""), kind: KindRejected, status: 200, code: "2011", retryable: true, withResp: true},
		{name: "sending permanent 2050", handler: topLevel("2050", ""), kind: KindRejected, status: 200, code: "2050", withResp: true},
		{name: "unknown code", handler: topLevel("9999", ""), kind: KindRejected, status: 200, code: "9999", withResp: true},
		{name: "hung server", timeout: 100 * time.Millisecond, handler: func(w http.ResponseWriter, r *http.Request, body []byte) {
			<-r.Context().Done()
		}, kind: KindTimeout, retryable: true},
		{name: "slow body", timeout: 200 * time.Millisecond, handler: func(w http.ResponseWriter, r *http.Request, body []byte) {
			_, _ = io.WriteString(w, `{"Name":"ROX_API_Response",`)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}, kind: KindTimeout, retryable: true},
		{name: "caller deadline", ctx: func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		}, handler: func(w http.ResponseWriter, r *http.Request, body []byte) { <-r.Context().Done() },
			kind: KindTimeout, retryable: true},
		{name: "connection dropped", handler: func(w http.ResponseWriter, r *http.Request, body []byte) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{\"Name\":")
				conn.Close()
			}
		}, kind: KindDecode, status: 200},
		{name: "connection closed before answer", handler: func(w http.ResponseWriter, r *http.Request, body []byte) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		}, kind: KindTransport, retryable: true},
		{name: "invalid request", handler: echo(200), msgs: func() Messages {
			m := twoRecipients()
			m.Recipients[1].DestTn = "0407 555 001"
			return m
		}, kind: KindInvalid, noHit: true},
		{name: "no recipients", handler: echo(200), msgs: func() Messages { return Messages{} }, kind: KindInvalid, noHit: true},
	}
	policy := NewPolicy([]Code{"2050"})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timeout := tt.timeout
			if timeout == 0 {
				// Cases that are not about the timeout must never meet it,
				// however loaded the machine: 4 MB through the race
				// detector beside two CPU hogs took over 5 s.
				timeout = time.Minute
			}
			b := setupClient(t, timeout, tt.handler)
			ctx, cancel := context.WithCancel(context.Background())
			if tt.ctx != nil {
				ctx, cancel = tt.ctx()
			}
			defer cancel()
			msgs := twoRecipients()
			if tt.msgs != nil {
				msgs = tt.msgs()
			}
			resp, err := b.client.Send(ctx, msgs)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v (%T), want *Error", err, err)
			}
			if e.Kind != tt.kind || e.StatusCode != tt.status || e.Code != tt.code {
				t.Fatalf("got kind %v status %d code %q (%v), want %v %d %q", e.Kind, e.StatusCode, e.Code, err, tt.kind, tt.status, tt.code)
			}
			if got := policy.Retryable(err); got != tt.retryable {
				t.Fatalf("Retryable = %v, want %v (%v)", got, tt.retryable, err)
			}
			if tt.retryIn > 0 && (e.RetryAfter < tt.retryIn-2*time.Second || e.RetryAfter > tt.retryIn) {
				t.Fatalf("RetryAfter = %v, want about %v", e.RetryAfter, tt.retryIn)
			}
			if (resp != nil) != tt.withResp {
				t.Fatalf("response %v, want one: %v", resp, tt.withResp)
			}
			if tt.withResp && resp.Result != tt.code {
				t.Fatalf("response Result %q", resp.Result)
			}
			if tt.noHit && b.hits.Load() != 0 {
				t.Fatal("an invalid request reached the server")
			}
			if IsAuth(err) != (tt.kind == KindAuth) {
				t.Fatalf("IsAuth = %v", IsAuth(err))
			}
			// The password never shows, whichever way the error is printed.
			for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
				assertNoPassword(t, "error "+f, fmt.Sprintf(f, err))
			}
			for u := errors.Unwrap(err); u != nil; u = errors.Unwrap(u) {
				assertNoPassword(t, "wrapped error", u.Error())
			}
			assertNoPassword(t, "panic", panicMessage(err))
		})
	}
}

func panicMessage(v any) (msg string) {
	defer func() { msg = fmt.Sprint(recover()) }()
	panic(v)
}

func TestClientCallerCancel(t *testing.T) {
	started := make(chan struct{})
	b := setupClient(t, time.Minute, func(w http.ResponseWriter, r *http.Request, body []byte) {
		close(started)
		<-r.Context().Done()
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var err error
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, err = b.client.Send(ctx, twoRecipients())
	}()
	<-started
	cancel()
	wg.Wait()
	if KindOf(err) != KindTransport || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want KindTransport wrapping context.Canceled", err)
	}
}

func TestClientConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := NewClient(ClientConfig{URL: "http://" + addr + "/smsapi/send", AccountID: "a", Username: "u", Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Send(context.Background(), twoRecipients())
	if KindOf(err) != KindTransport || !NewPolicy(nil).Retryable(err) {
		t.Fatalf("err = %v", err)
	}
	assertNoPassword(t, "error", err.Error())
}

func TestClientConfig(t *testing.T) {
	good := ClientConfig{AccountID: "a", Username: "u", Password: testPassword}
	d := good.WithDefaults()
	if d.URL != DefaultEndpoint || d.Product != DefaultProduct || d.Timeout != DefaultTimeout {
		t.Fatalf("defaults: %v", d)
	}
	tests := []struct {
		name  string
		edit  func(c *ClientConfig)
		field string
	}{
		{"relative URL", func(c *ClientConfig) { c.URL = "/smsapi/send" }, "ClientConfig.URL"},
		{"ftp URL", func(c *ClientConfig) { c.URL = "ftp://x/y" }, "ClientConfig.URL"},
		{"credentials in URL", func(c *ClientConfig) { c.URL = "https://u:p@x/y" }, "ClientConfig.URL"},
		{"no account", func(c *ClientConfig) { c.AccountID = "" }, "ClientConfig.AccountID"},
		{"no username", func(c *ClientConfig) { c.Username = "" }, "ClientConfig.Username"},
		{"no password", func(c *ClientConfig) { c.Password = "" }, "ClientConfig.Password"},
		{"negative timeout", func(c *ClientConfig) { c.Timeout = -time.Second }, "ClientConfig.Timeout"},
	}
	for _, tt := range tests {
		c := good
		tt.edit(&c)
		_, err := NewClient(c)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("%s: err = %v, want field %s", tt.name, err, tt.field)
		}
	}
	c, err := NewClient(good)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		assertNoPassword(t, "config "+f, fmt.Sprintf(f, good))
		assertNoPassword(t, "client "+f, fmt.Sprintf(f, c))
	}
}

func TestRequestPrintingRedactsPassword(t *testing.T) {
	r := validRequest()
	r.Sender.Password = testPassword
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		assertNoPassword(t, "request "+f, fmt.Sprintf(f, r))
		assertNoPassword(t, "request pointer "+f, fmt.Sprintf(f, &r))
	}
	assertNoPassword(t, "panic", panicMessage(r))
	assertNoPassword(t, "panic", panicMessage(r.Sender))
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestClientSend500(t *testing.T) {
	b := setupClient(t, time.Minute, func(w http.ResponseWriter, r *http.Request, body []byte) {
		req, err := DecodeSendRequest(body)
		if err != nil || req.Validate() != nil {
			t.Errorf("server: %v", err)
		}
		answer(t, w, body, len(req.Messages.Recipients), CodeOK)
	})
	m := request500().Messages
	resp, err := b.client.Send(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Messages.Results) != MaxRecipients || resp.Messages.Results[499].SMSID != "sms-500" ||
		resp.Messages.Results[499].DestTn != m.Recipients[499].DestTn {
		t.Fatalf("results: %d", len(resp.Messages.Results))
	}
	m.Recipients = append(m.Recipients, Recipient{DestTn: "+61407555001", SMSText: "one too many"})
	if _, err := b.client.Send(context.Background(), m); KindOf(err) != KindInvalid {
		t.Fatalf("501 recipients: %v", err)
	}
}
