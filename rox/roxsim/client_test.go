package roxsim

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redoxygen/roxd/rox"
)

// The product's real client against the simulator.
func TestRoxClient(t *testing.T) {
	sk := newSink(t)
	b := setup(t, Config{})
	client := func(password string, timeout time.Duration) *rox.Client {
		c, err := rox.NewClient(rox.ClientConfig{URL: b.sendURL, AccountID: DefaultAccountID,
			Username: DefaultUsername, Password: password, Timeout: timeout})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ctx := context.Background()
	msgs := request(25, sk).Messages

	resp, err := client(DefaultPassword, 5*time.Second).Send(ctx, msgs)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if len(resp.Messages.Results) != 25 || !resp.Result.OK() {
		t.Fatalf("response %+v", resp)
	}
	for i, r := range resp.Messages.Results {
		if !r.Result.OK() || r.SMSID == "" || r.DestTn != msgs.Recipients[i].DestTn {
			t.Fatalf("result %d: %+v", i+1, r)
		}
	}
	waitIdle(t, b.sim, 10*time.Second)
	if n, _ := sk.counts(); n != 25 {
		t.Fatalf("%d receipts", n)
	}
	if reqs := b.sim.Requests(); reqs[0].Request.Product == "" || reqs[0].Request.Sender.Password != Redacted {
		t.Fatalf("recorded %+v", reqs[0].Request)
	}

	// Wrong password: an authentication error, not retryable.
	_, err = client("wrong", 5*time.Second).Send(ctx, msgs)
	if !rox.IsAuth(err) || (rox.Policy{}).Retryable(err) {
		t.Fatalf("wrong password: %v", err)
	}

	// Injected 500: a retryable HTTP error.
	if err := b.sim.SetFaults(Faults{Fail5xx: 1}); err != nil {
		t.Fatal(err)
	}
	_, err = client(DefaultPassword, 5*time.Second).Send(ctx, msgs)
	var re *rox.Error
	if !errors.As(err, &re) || re.Kind != rox.KindHTTP || re.StatusCode != http.StatusInternalServerError ||
		!(rox.Policy{}).Retryable(err) {
		t.Fatalf("5xx: %v", err)
	}

	// Hung request: the client's timeout ends it.
	if err := b.sim.SetFaults(Faults{Hang: 1}); err != nil {
		t.Fatal(err)
	}
	_, err = client(DefaultPassword, 300*time.Millisecond).Send(ctx, msgs)
	if rox.KindOf(err) != rox.KindTimeout {
		t.Fatalf("hang: %v", err)
	}

	// Per-recipient errors: Send succeeds, entries carry the codes.
	if err := b.sim.SetFaults(Faults{RecipientErrors: 1, RecipientErrorCodes: []rox.Code{"2030"}}); err != nil {
		t.Fatal(err)
	}
	resp, err = client(DefaultPassword, 5*time.Second).Send(ctx, msgs)
	if err != nil {
		t.Fatalf("Send with recipient errors: %v", err)
	}
	for _, r := range resp.Messages.Results {
		if r.Result != "2030" || r.SMSID != "" || !(rox.Policy{}).RetryableCode(r.Result) {
			t.Fatalf("result %+v", r)
		}
	}
}

// Faults.Throttle: HTTP 429, Retry-After rounded up to whole seconds (or
// absent), nothing accepted; the real client reports the wait.
func TestFaultThrottle(t *testing.T) {
	for _, tc := range []struct {
		after time.Duration
		want  time.Duration
	}{{1500 * time.Millisecond, 2 * time.Second}, {0, 0}} {
		b := setup(t, Config{Faults: Faults{Throttle: 1, ThrottleRetryAfter: tc.after}})
		c, err := rox.NewClient(rox.ClientConfig{URL: b.sendURL, AccountID: DefaultAccountID,
			Username: DefaultUsername, Password: DefaultPassword, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Send(context.Background(), request(3, nil).Messages)
		var re *rox.Error
		if !errors.As(err, &re) || re.Kind != rox.KindHTTP || re.StatusCode != http.StatusTooManyRequests || re.RetryAfter != tc.want {
			t.Fatalf("Retry-After %s: got %v, want HTTP 429 retry after %s", tc.after, err, tc.want)
		}
		if ra, ok := rox.RetryAfterOf(err); tc.want > 0 && (!ok || ra != tc.want) {
			t.Fatalf("RetryAfterOf = %s %v", ra, ok)
		}
		st := b.sim.Stats()
		if st.Throttled != 1 || st.Accepted != 0 || st.Queued != 0 {
			t.Fatalf("stats %+v", st)
		}
		if r := b.sim.Requests(); len(r) != 1 || r[0].Fault != "429" || r[0].HTTPStatus != 429 {
			t.Fatalf("requests %+v", r)
		}
	}
	if err := (Faults{Throttle: 2}).Validate(); err == nil || !strings.Contains(err.Error(), "Faults.Throttle") {
		t.Fatalf("Throttle 2: %v", err)
	}
	if err := (Faults{ThrottleRetryAfter: -time.Second}).Validate(); err == nil || !strings.Contains(err.Error(), "Faults.ThrottleRetryAfter") {
		t.Fatalf("ThrottleRetryAfter -1s: %v", err)
	}
}
