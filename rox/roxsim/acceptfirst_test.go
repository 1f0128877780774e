package roxsim

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/redoxygen/roxd/internal/testutil"
)

// With AcceptFirst a client that gives up while the answer is slow has
// still sent its SMS: the recipients are recorded and their receipts come.
// Without it, the same client sends nothing.
func TestAcceptFirstClientGoneStillSent(t *testing.T) {
	const latency = 2 * time.Second
	for _, tc := range []struct {
		acceptFirst bool
		want        int
	}{{true, 3}, {false, 0}} {
		sk := newSink(t)
		b := setup(t, Config{AcceptFirst: tc.acceptFirst, Faults: Faults{Latency: latency}})
		ctx, cancel := context.WithCancel(context.Background())
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.sendURL, bytes.NewReader(encode(t, request(3, sk))))
		if err != nil {
			t.Fatal(err)
		}
		answered := make(chan error, 1)
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			answered <- err
		}()
		// The client gives up once the simulator has read the request,
		// well within the latency.
		testutil.Eventually(t, 30*time.Second, func() bool { return len(b.sim.Requests()) == 1 }, "request not read")
		cancel()
		if err := <-answered; err == nil {
			t.Fatalf("AcceptFirst=%v: the client got an answer before giving up", tc.acceptFirst)
		}
		if tc.acceptFirst {
			testutil.Eventually(t, 30*time.Second, func() bool { return len(b.sim.Recipients()) == tc.want },
				"recipients not recorded")
		} else {
			// Absence can only be waited for: past the latency, a handler
			// that would still accept has done so.
			time.Sleep(latency + time.Second)
		}
		waitIdle(t, b.sim, 30*time.Second)
		if got := len(b.sim.Recipients()); got != tc.want {
			t.Errorf("AcceptFirst=%v: %d recipients recorded, want %d", tc.acceptFirst, got, tc.want)
		}
		if got, _ := sk.counts(); got != tc.want {
			t.Errorf("AcceptFirst=%v: %d receipts, want %d", tc.acceptFirst, got, tc.want)
		}
		sk.check(t)
	}
}
