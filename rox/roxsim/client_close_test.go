package roxsim

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/rox"
)

// Close with a context that ends gives up on callbacks still in flight:
// they end at once (their connections are closed), not when their
// CallbackTimeout runs out.
func TestCloseEndsCallbacksInFlight(t *testing.T) {
	entered := make(chan struct{}, 16)
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hang.Close()
	defer close(release)
	sim, err := New(Config{Seed: 7, CallbackTimeout: time.Minute}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	defer srv.Close()
	req := request(2, nil)
	req.Messages.ReceiptFlag = rox.ReceiptAlways
	req.Messages.ReceiptCallbackURL = hang.URL + "/receipt?token=s3cret"
	b := &bundle{sim: sim, srv: srv, sendURL: srv.URL + SendPath}
	if code, _ := b.post(t, encode(t, req)); code != http.StatusOK {
		t.Fatalf("send: HTTP %d", code)
	}
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("no callback reached the receiver")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = sim.Close(ctx)
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close: %v, want the context's deadline", err)
	}
	// A minute is the callbacks' timeout; 20 s leaves room for a slow machine.
	if took > 20*time.Second {
		t.Fatalf("Close took %s: the callbacks in flight were not ended", took)
	}
	for _, c := range sim.Callbacks() {
		if strings.Contains(c.Error, "s3cret") {
			t.Fatalf("callback error carries the URL's token: %q", c.Error)
		}
	}
}

// A callback to a closed port fails with an error naming neither the URL
// nor its token.
func TestCallbackErrorHidesURL(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	b := setup(t, Config{CallbackTimeout: 5 * time.Second})
	req := request(1, nil)
	req.Messages.ReceiptFlag = rox.ReceiptAlways
	req.Messages.ReceiptCallbackURL = "http://" + addr + "/receipt?token=s3cret"
	if code, _ := b.post(t, encode(t, req)); code != http.StatusOK {
		t.Fatalf("send: HTTP %d", code)
	}
	waitIdle(t, b.sim, 30*time.Second)
	cbs := b.sim.Callbacks()
	if len(cbs) == 0 {
		t.Fatal("no callback recorded")
	}
	failed := 0
	for _, c := range cbs {
		if c.Outcome == OutcomeFailed {
			failed++
			if c.Error == "" {
				t.Fatalf("failed callback %+v without an error", c)
			}
		}
		if strings.Contains(c.Error, "s3cret") || strings.Contains(c.Error, "/receipt") {
			t.Fatalf("callback error carries the URL: %q", c.Error)
		}
	}
	if failed == 0 {
		t.Fatalf("callbacks %+v: none failed", cbs)
	}
}
