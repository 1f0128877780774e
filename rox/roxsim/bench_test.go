package roxsim

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/rox"
)

// discardWriter is a minimal http.ResponseWriter that keeps the status.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(s int)           { w.status = s }

// BenchmarkSend500 measures the simulator's own work for one 500-recipient
// request: decode, validate, accept, answer. Recording is off and no
// callbacks are asked for, as in a throughput benchmark of the product.
func BenchmarkSend500(b *testing.B) {
	sim, err := New(Config{Seed: 1, CountOnly: true}, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sim.Close(b.Context()) })
	body := encode(b, request(500, nil))
	w := &discardWriter{h: http.Header{}}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, SendPath, io.NopCloser(bytes.NewReader(body)))
		r.ContentLength = int64(len(body))
		sim.ServeHTTP(w, r)
		if w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
	}
	b.StopTimer()
	if got := sim.Stats().Queued; got < 500 {
		b.Fatalf("queued %d", got)
	}
}

// BenchmarkDecodeValidate500 is the rox codec's share of BenchmarkSend500
// (decode and Validate of the same body): the simulator's own work is the
// difference.
func BenchmarkDecodeValidate500(b *testing.B) {
	body := encode(b, request(500, nil))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		req, err := rox.DecodeSendRequest(body)
		if err != nil {
			b.Fatal(err)
		}
		if err := req.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}
