package roxsim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/rox"
)

// bundle is one test's simulator behind a real HTTP server.
type bundle struct {
	sim     *Sim
	srv     *httptest.Server
	sendURL string
}

func setup(t testing.TB, cfg Config) *bundle {
	t.Helper()
	if cfg.Seed == 0 {
		cfg.Seed = 42
	}
	sim, err := New(cfg, zerolog.Nop())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := sim.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		srv.Close()
	})
	return &bundle{sim: sim, srv: srv, sendURL: srv.URL + SendPath}
}

// post sends body and decodes the answer as a ROX_API_Response.
func (b *bundle) post(t testing.TB, body []byte) (int, *rox.SendResponse) {
	t.Helper()
	resp, err := http.Post(b.sendURL, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if resp.StatusCode == http.StatusInternalServerError {
		return resp.StatusCode, nil
	}
	out, err := rox.DecodeSendResponse(raw)
	if err != nil {
		t.Fatalf("HTTP %d: answer is not a ROX_API_Response: %v\n%s", resp.StatusCode, err, raw)
	}
	if out.Name != rox.NameResponse || out.Version != rox.Version {
		t.Fatalf("answer Name/Version = %q/%v\n%s", out.Name, out.Version, raw)
	}
	return resp.StatusCode, out
}

// request builds a valid request of n recipients with the simulator's
// default credentials; callbacks go to sink when it is not nil.
func request(n int, sk *sink) rox.SendRequest {
	req := rox.SendRequest{Name: rox.NameRequest, Version: rox.Version, Product: "test",
		Sender: rox.Sender{AccountID: DefaultAccountID, Username: DefaultUsername, Password: DefaultPassword}}
	m := &req.Messages
	if sk != nil {
		m.ReceiptFlag = rox.ReceiptAlways
		m.ReceiptCallbackURL = sk.srv.URL + "/receipt?token=s3cret"
		m.ReplyType = rox.ReplyHTTP
		m.ReplyCallbackURL = sk.srv.URL + "/reply?token=s3cret"
	}
	m.Recipients = make([]rox.Recipient, n)
	for i := range m.Recipients {
		m.Recipients[i] = rox.Recipient{DestTn: fmt.Sprintf("+61407%06d", i+1), SMSText: fmt.Sprintf("hello %d", i+1)}
	}
	m.Count = n
	return req
}

func encode(t testing.TB, req rox.SendRequest) []byte {
	t.Helper()
	b, err := rox.EncodeSendRequest(&req)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return b
}

// sink is a callback receiver counting what it got.
type sink struct {
	srv *httptest.Server

	mu       sync.Mutex
	receipts []*rox.Receipt
	replies  []*rox.Reply
	bad      []string
	answer   int // HTTP status to answer; 0 = 200
}

func newSink(t testing.TB) *sink { return newSinkWith(t, nil) }

// newSinkWith lets configure change the server before it starts.
func newSinkWith(t testing.TB, configure func(*httptest.Server)) *sink {
	t.Helper()
	sk := &sink{}
	sk.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		sk.mu.Lock()
		defer sk.mu.Unlock()
		if r.URL.Query().Get("token") != "s3cret" {
			sk.bad = append(sk.bad, "no token: "+r.URL.String())
		}
		var resp rox.CallbackResponse
		switch r.URL.Path {
		case "/receipt":
			rc, err := rox.DecodeReceipt(body)
			if err != nil {
				sk.bad = append(sk.bad, err.Error())
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			if strings.Contains(string(body), "Password") {
				sk.bad = append(sk.bad, "receipt carries a Password field")
			}
			sk.receipts = append(sk.receipts, rc)
			resp = rox.ReceiptResponse()
		case "/reply":
			rp, err := rox.DecodeReply(body)
			if err != nil {
				sk.bad = append(sk.bad, err.Error())
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			sk.replies = append(sk.replies, rp)
			resp = rox.ReplyResponse()
		default:
			sk.bad = append(sk.bad, "path "+r.URL.Path)
		}
		if sk.answer != 0 {
			w.WriteHeader(sk.answer)
			return
		}
		_ = json.NewEncoder(w).Encode(resp)
	}))
	if configure != nil {
		configure(sk.srv)
	}
	sk.srv.Start()
	t.Cleanup(sk.srv.Close)
	return sk
}

func (sk *sink) counts() (receipts, replies int) {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	return len(sk.receipts), len(sk.replies)
}

func (sk *sink) check(t testing.TB) {
	t.Helper()
	sk.mu.Lock()
	defer sk.mu.Unlock()
	if len(sk.bad) > 0 {
		t.Fatalf("sink saw bad callbacks: %q", sk.bad)
	}
}

func waitIdle(t testing.TB, s *Sim, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := s.WaitIdle(ctx); err != nil {
		t.Fatalf("WaitIdle: %v (stats %+v)", err, s.Stats())
	}
}
