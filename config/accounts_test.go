package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeAccounts(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "accounts.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const goodAccounts = `{"accounts": [
  {"name": "mkt", "account_id": "CI00000042", "username": "mkt@example.com", "password": "mkt-secret-pw",
   "rate_limit": 50, "callback_token": "mkt-callback-token-01"},
  {"name": "ops", "account_id": "CI00000043", "username": "ops@example.com", "password": "ops-secret-pw",
   "product": "ops-alerts", "callback_token": "ops-callback-token-01"}
]}`

func TestAccountsFile(t *testing.T) {
	m := complete()
	m["ROX_ACCOUNTS"] = writeAccounts(t, goodAccounts)
	m["ROXD_RATE_LIMIT"] = "300"
	c, err := Load(env(m))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	accts, err := c.Accounts()
	if err != nil || len(accts) != 2 {
		t.Fatalf("%v %v", accts, err)
	}
	if *accts[0].RateLimit != 50 || *accts[1].RateLimit != 300 || accts[0].Product != "roxd" || accts[1].Product != "ops-alerts" {
		t.Fatalf("defaults: %+v %+v", accts[0], accts[1])
	}
	names, _ := c.AccountNames()
	if strings.Join(names, ",") != "default,mkt,ops" {
		t.Fatalf("names %v", names)
	}
	// The default account's URLs do not change; each account has its own
	// token in the path.
	r0, _ := c.CallbackURLs()
	r1, p1 := c.AccountCallbackURLs(accts[0])
	if r0 != "http://127.0.0.1:8081/rox/"+callbackToken+"/receipt" || r1 != "http://127.0.0.1:8081/rox/mkt-callback-token-01/receipt" ||
		p1 != "http://127.0.0.1:8081/rox/mkt-callback-token-01/reply" {
		t.Fatalf("callback URLs %s %s %s", r0, r1, p1)
	}
	if cc := c.AccountClientConfig(accts[1]); cc.AccountID != "CI00000043" || cc.Product != "ops-alerts" || cc.URL != c.ROXURL {
		t.Fatalf("client config %+v", cc)
	}
}

// Every bad value names ROX_ACCOUNTS and the field, and never quotes a
// password or token.
func TestAccountsFileBadValues(t *testing.T) {
	acct := func(fields string) string {
		return `{"accounts": [{` + fields + `}]}`
	}
	const ok = `"account_id": "CI1", "username": "u@example.com", "password": "pw-secret-1", "callback_token": "tok-secret-0000001"`
	for _, tc := range []struct {
		name, body, want string
		roles            []string
	}{
		{"not json", `{"accounts": [`, "syntax error", nil},
		{"empty", ``, "empty", nil},
		{"unknown field", acct(`"name": "a", "colour": "red", ` + ok), "unknown field \"colour\"", nil},
		{"two values", `{"accounts": []} {}`, "more than one JSON value", nil},
		{"name missing", acct(ok), "accounts[0].name", nil},
		{"name default", acct(`"name": "default", ` + ok), "accounts[0].name", nil},
		{"name upper case", acct(`"name": "Mkt", ` + ok), "accounts[0].name", nil},
		{"name with a bar", acct(`"name": "a|b", ` + ok), "accounts[0].name", nil},
		{"name twice", `{"accounts": [{"name": "a", ` + ok + `}, {"name": "a", "account_id": "CI1", "username": "u", "password": "p", "callback_token": "tok-secret-0000002"}]}`, "accounts[1].name", nil},
		{"rate limit negative", acct(`"name": "a", "rate_limit": -1, ` + ok), "accounts[0].rate_limit", nil},
		{"rate limit a string", acct(`"name": "a", "rate_limit": "fast", ` + ok), "rate_limit", nil},
		{"password missing", acct(`"name": "a", "account_id": "CI1", "username": "u", "callback_token": "tok-secret-0000001"`), "accounts[0].password", []string{RoleWorker}},
		{"token short", acct(`"name": "a", "account_id": "CI1", "username": "u", "password": "pw-secret-1", "callback_token": "tok-secret"`), "accounts[0].callback_token", []string{RoleCallbacks}},
		{"token not url-safe", acct(`"name": "a", "account_id": "CI1", "username": "u", "password": "pw-secret-1", "callback_token": "tok secret 00000001"`), "accounts[0].callback_token", nil},
		// encoding/json matches keys case-insensitively and lets a repeated
		// key win: a file naming a field twice, or in another case, must not
		// quietly become another account or another password.
		{"key in another case", acct(`"name": "a", "Name": "b", ` + ok), "accounts[0]: key \"Name\"", nil},
		{"key in upper case only", acct(`"NAME": "a", ` + ok), "accounts[0]: key \"NAME\"", nil},
		{"key twice", acct(`"name": "a", "name": "b", ` + ok), "accounts[0]: key \"name\" twice", nil},
		{"top key in another case", `{"Accounts": []}`, "key \"Accounts\"", nil},
		{"top key twice", `{"accounts": [], "accounts": []}`, "key \"accounts\" twice", nil},
		{"token of the default account", acct(`"name": "a", "account_id": "CI1", "username": "u", "password": "pw-secret-1", "callback_token": "` + callbackToken + `"`), "accounts[0].callback_token", nil},
	} {
		m := complete()
		m["ROX_ACCOUNTS"] = writeAccounts(t, tc.body)
		c, err := Load(env(m))
		if err != nil {
			t.Fatal(err)
		}
		err = c.Validate(tc.roles...)
		if err == nil || !strings.Contains(err.Error(), "ROX_ACCOUNTS") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming ROX_ACCOUNTS and %s", tc.name, err, tc.want)
			continue
		}
		for _, secret := range []string{"pw-secret", "tok-secret", "tok secret", callbackToken, password} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("%s: the error quotes a secret: %v", tc.name, err)
			}
		}
	}
	// A file saved by an editor that writes a UTF-8 byte order mark reads
	// as the same file without it.
	m := complete()
	m["ROX_ACCOUNTS"] = writeAccounts(t, "\ufeff"+goodAccounts)
	c, _ := Load(env(m))
	if accts, err := c.Accounts(); err != nil || len(accts) != 2 {
		t.Fatalf("file with a BOM: %v %v", accts, err)
	}
	m = complete()
	m["ROX_ACCOUNTS"] = filepath.Join(t.TempDir(), "missing.json")
	c, _ = Load(env(m))
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "ROX_ACCOUNTS: cannot read the file") {
		t.Fatalf("missing file: %v", err)
	}
}
