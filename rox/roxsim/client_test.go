package roxsim

import (
	"context"
	"errors"
	"net/http"
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
