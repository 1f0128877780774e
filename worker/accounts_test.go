package worker

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/internal/testutil"
	"github.com/redoxygen/roxd/rox"
	"github.com/redoxygen/roxd/rox/roxsim"
)

// A second ROX account with its own credentials, callback URLs and ROX
// (a second simulator, which accepts only its credentials): each account's
// messages reach only its own ROX, in requests of their own, with their own
// callback URLs; an authentication failure of one pauses only that one.
func TestAccountsNeverMixAndPauseAlone(t *testing.T) {
	sim2, err := roxsim.New(roxsim.Config{AccountID: "CI00000002", Username: "second@example.com", Password: "second-password"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	srv2 := httptest.NewServer(sim2)
	t.Cleanup(func() { srv2.Close(); _ = sim2.Close(context.Background()) })
	c2, err := rox.NewClient(rox.ClientConfig{URL: srv2.URL + roxsim.SendPath, AccountID: "CI00000002",
		Username: "second@example.com", Password: "second-password", Product: "second", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	b := setup(t, roxsim.Faults{}, func(c *Config) {
		c.Accounts = []Account{{Name: "second", AccountID: "CI00000002", Sender: c2,
			ReceiptCallbackURL: strings.Replace(c.ReceiptCallbackURL, "token=x", "token=second", 1),
			ReplyCallbackURL:   strings.Replace(c.ReplyCallbackURL, "token=x", "token=second", 1)}}
	})
	b.start()
	// Same texts, numbers and modes in both accounts: only the account
	// tells them apart.
	one := b.enqueue(700, "acct", nil)
	two := b.enqueue(700, "acct", func(i int, r *store.Record) { r.ID = "second-" + r.ID; r.Account = "second" })
	sent := func(ids []string) int { return b.countStatus(ids, "submitted") + b.countStatus(ids, "delivered") }
	testutil.Eventually(t, 90*time.Second, func() bool { return sent(one) == 700 && sent(two) == 700 }, "both accounts sent: %d and %d; statuses %v, ROX %+v and %+v",
		sent(one), sent(two), b.countStatus(two, "queued"), b.sim.Stats(), sim2.Stats())
	if g, _ := b.st.Get(b.ctx, two[0]); g == nil || g.Account != "second" || store.GroupAccount(g.Group) != "second" {
		t.Fatalf("record of the second account: %+v", g)
	}
	for name, s := range map[string]*roxsim.Sim{"default": b.sim, "second": sim2} {
		if st := s.Stats(); st.Queued != 700 {
			t.Fatalf("the %s account's ROX accepted %d recipients, want its own 700", name, st.Queued)
		}
		for _, r := range s.Requests() {
			if r.Request == nil {
				continue
			}
			tok := "token=x"
			if name == "second" {
				tok = "token=second"
			}
			if !strings.Contains(r.Request.Messages.ReceiptCallbackURL, tok) {
				t.Fatalf("%s account's request carries the receipt URL of another account", name)
			}
		}
	}

	// ROX refuses the second account's credentials: only it pauses.
	if err := sim2.SetFaults(roxsim.Faults{AuthFail: true}); err != nil {
		t.Fatal(err)
	}
	two = b.enqueue(300, "acct2", func(i int, r *store.Record) { r.ID = "second-" + r.ID; r.Account = "second" })
	testutil.Eventually(t, 10*time.Second, func() bool {
		return b.rdb.Exists(b.ctx, b.st.Keys().AuthPauseOf("second")).Val() == 1
	}, "the second account paused")
	one = b.enqueue(300, "acct2", nil)
	testutil.Eventually(t, 60*time.Second, func() bool { return sent(one) == 300 }, "the default account sends on")
	if b.rdb.Exists(b.ctx, b.st.Keys().AuthPause()).Val() != 0 {
		t.Fatal("the default account is paused by the other account's auth failure")
	}
	if n := sent(two); n != 0 {
		t.Fatalf("%d messages of the paused account sent", n)
	}
	if err := sim2.SetFaults(roxsim.Faults{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 60*time.Second, func() bool { return sent(two) == 300 }, "the second account resumes")
}

func TestAccountsConfigNamesField(t *testing.T) {
	s := &fakeNopSender{}
	for _, tc := range []struct {
		acct Account
		want string
	}{
		{Account{Name: "Bad Name", Sender: s}, "Accounts[0].Name"},
		{Account{Name: DefaultAccount, Sender: s}, "Accounts[0].Name"},
		{Account{Name: "x"}, "nil Sender"},
		{Account{Name: "x", Sender: s, RateLimit: -1}, "Accounts[0].RateLimit"},
		{Account{Name: "x", Sender: s, ReceiptCallbackURL: "ftp://secret"}, "Accounts[0].ReceiptCallbackURL"},
	} {
		err := Config{Accounts: []Account{tc.acct}}.WithDefaults().Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "secret") {
			t.Fatalf("%+v: %v, want an error naming %s", tc.acct, err, tc.want)
		}
	}
}

type fakeNopSender struct{}

func (fakeNopSender) Send(context.Context, rox.Messages) (*rox.SendResponse, error) { return nil, nil }

var _ Sender = fakeNopSender{}
