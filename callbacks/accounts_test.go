package callbacks

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// Each ROX account has its own callback token; the token names the
// account, and a callback under it must claim that account. The default
// account's URLs are unchanged.
func TestAccountTokens(t *testing.T) {
	const mktToken, mktAccount = "mkt-token-8b1f0c3a9d", "CI00000042"
	b := setup(t, nil, func(c *Config) {
		c.Accounts = []Account{{Name: "mkt", Token: mktToken, AccountID: mktAccount}}
	})
	ts := time.Now().UTC().Format("02-Jan-2006 15:04:05") + " (UTC)"
	mkt := func(kind string) string { return b.srv.URL + "/rox/" + mktToken + "/" + kind }
	for _, tc := range []struct {
		name, url, body string
		want            int
	}{
		{"default account, default token", b.url("receipt"), receiptBody(testAccount, "acc-1", "0000", ts), http.StatusOK},
		{"mkt account, mkt token", mkt("receipt"), receiptBody(mktAccount, "acc-2", "0000", ts), http.StatusOK},
		{"mkt reply, mkt token", mkt("reply"), replyBody("ROX_API_Reply", mktAccount, "acc-3", "+61407555001", "hi", ts), http.StatusOK},
		{"mkt account under the default token", b.url("receipt"), receiptBody(mktAccount, "acc-4", "0000", ts), http.StatusForbidden},
		{"default account under the mkt token", mkt("receipt"), receiptBody(testAccount, "acc-5", "0000", ts), http.StatusForbidden},
		{"unknown token", b.srv.URL + "/rox/not-a-token-000000/receipt", receiptBody(mktAccount, "acc-6", "0000", ts), http.StatusNotFound},
	} {
		code, out := b.post(t, tc.url, tc.body)
		if code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, code, out, tc.want)
		}
		if code == http.StatusForbidden && !strings.Contains(out, "this callback URL's token") {
			t.Errorf("%s: the refusal does not say why: %s", tc.name, out)
		}
	}
	for _, cfg := range []Config{
		{Token: testToken, Accounts: []Account{{Name: "x", Token: testToken}}},
		{Token: testToken, Accounts: []Account{{Name: "x", Token: ""}}},
		{Token: testToken, Accounts: []Account{{Name: "x", Token: "a/b"}}},
	} {
		err := cfg.WithDefaults().Validate()
		if err == nil || !strings.Contains(err.Error(), "Accounts[0].Token") || strings.Contains(err.Error(), testToken) {
			t.Errorf("%+v: %v, want an error naming Accounts[0].Token without the token", cfg.Accounts, err)
		}
	}
}
