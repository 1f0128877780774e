package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/rox"
)

// DefaultAccountName is the name of the account of the single-account
// variables (ROX_ACCOUNT_ID, ROX_USERNAME, ROX_PASSWORD, ROX_PRODUCT,
// ROXD_RATE_LIMIT, ROXD_CALLBACK_TOKEN).
const DefaultAccountName = store.DefaultAccount

// MaxAccounts bounds the accounts of a ROX_ACCOUNTS file.
const MaxAccounts = 100

// Account is one ROX account of the ROX_ACCOUNTS file. Password and
// CallbackToken are secrets: no error or log line ever quotes them.
type Account struct {
	// Name picks the account in a message's `account` field (1..32 of
	// a-z 0-9 _ -, starting with a letter or digit; not "default").
	Name      string `json:"name"`
	AccountID string `json:"account_id"`
	Username  string `json:"username"`
	Password  string `json:"password"`
	// Product is sent to ROX (ROX_PRODUCT when absent).
	Product string `json:"product,omitempty"`
	// RateLimit is its messages per second (ROXD_RATE_LIMIT when absent;
	// 0: none).
	RateLimit *int `json:"rate_limit,omitempty"`
	// CallbackToken is the secret path segment of its callback URLs: a
	// callback is taken for this account only under this token.
	CallbackToken string `json:"callback_token"`
}

// accountsFile is the ROX_ACCOUNTS document.
type accountsFile struct {
	Accounts []Account `json:"accounts"`
}

// Accounts reads and checks the ROX_ACCOUNTS file (none when the variable
// is unset). Each account is completed with its defaults (Product,
// RateLimit). Credentials are required for role worker, callback tokens for
// roles worker and callbacks. An error names ROX_ACCOUNTS and the field.
func (c Config) Accounts() ([]Account, error) {
	if strings.TrimSpace(c.ROXAccounts) == "" {
		return nil, nil
	}
	b, err := os.ReadFile(c.ROXAccounts)
	if err != nil {
		return nil, varErr("ROX_ACCOUNTS", "cannot read the file: %v", errors.Unwrap(err))
	}
	// An editor may save the file with a UTF-8 byte order mark, which
	// encoding/json takes for a syntax error.
	b = bytes.TrimPrefix(b, []byte("\ufeff"))
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f accountsFile
	if err := dec.Decode(&f); err != nil {
		return nil, varErr("ROX_ACCOUNTS", "not a JSON object {\"accounts\": [...]} of known fields: %s", jsonErr(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, varErr("ROX_ACCOUNTS", "more than one JSON value in the file")
	}
	if err := exactKeys(b); err != nil {
		return nil, varErr("ROX_ACCOUNTS", "%v", err)
	}
	if len(f.Accounts) > MaxAccounts {
		return nil, varErr("ROX_ACCOUNTS", "%d accounts, at most %d", len(f.Accounts), MaxAccounts)
	}
	has := map[string]bool{}
	for _, r := range c.Roles {
		has[r] = true
	}
	names := map[string]bool{DefaultAccountName: true}
	tokens := map[string]string{}
	if c.CallbackToken != "" {
		tokens[c.CallbackToken] = DefaultAccountName
	}
	var errs []error
	for i := range f.Accounts {
		a := &f.Accounts[i]
		at := fmt.Sprintf("accounts[%d]", i)
		bad := func(field, format string, args ...any) {
			errs = append(errs, varErr("ROX_ACCOUNTS", "%s.%s: %s", at, field, fmt.Sprintf(format, args...)))
		}
		switch {
		case a.Name == DefaultAccountName:
			bad("name", "%q is the account of ROX_ACCOUNT_ID and the other single-account variables", DefaultAccountName)
		case !store.ValidAccountName(a.Name):
			bad("name", "%q: want %s", truncate(a.Name, 40), store.AccountNameRule)
		case names[a.Name]:
			bad("name", "%q is used twice", a.Name)
		}
		names[a.Name] = true
		if a.Product == "" {
			a.Product = c.ROXProduct
		}
		if a.RateLimit == nil {
			v := c.RateLimit
			a.RateLimit = &v
		} else if *a.RateLimit < 0 || *a.RateLimit > 1_000_000 {
			bad("rate_limit", "%d: want 0 (none) .. 1000000 messages per second", *a.RateLimit)
		}
		if has[RoleWorker] {
			if strings.TrimSpace(a.AccountID) == "" {
				bad("account_id", "required for role worker")
			}
			if strings.TrimSpace(a.Username) == "" {
				bad("username", "required for role worker")
			}
			if a.Password == "" {
				bad("password", "required for role worker")
			}
		}
		if has[RoleWorker] || has[RoleCallbacks] {
			switch {
			case a.CallbackToken == "":
				bad("callback_token", "required for roles worker and callbacks")
			case len(a.CallbackToken) < MinTokenLen:
				bad("callback_token", "must be at least %d characters", MinTokenLen)
			case !urlSafe(a.CallbackToken):
				bad("callback_token", "may hold only A-Z a-z 0-9 - _ . ~")
			case tokens[a.CallbackToken] != "":
				bad("callback_token", "is the callback token of %s: each account needs its own (it tells the callbacks apart)", tokens[a.CallbackToken])
			default:
				tokens[a.CallbackToken] = a.Name
			}
		}
		if has[RoleWorker] && a.AccountID != "" && a.Username != "" && a.Password != "" {
			if _, err := rox.NewClient(c.AccountClientConfig(*a)); err != nil {
				bad("account_id", "the ROX client refuses it: %v", err)
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return f.Accounts, nil
}

// AccountNames returns every account name: DefaultAccountName and those of
// ROX_ACCOUNTS.
func (c Config) AccountNames() ([]string, error) {
	accts, err := c.Accounts()
	if err != nil {
		return nil, err
	}
	names := []string{DefaultAccountName}
	for _, a := range accts {
		names = append(names, a.Name)
	}
	return names, nil
}

// AccountClientConfig is the ROX client configuration of account a.
func (c Config) AccountClientConfig(a Account) rox.ClientConfig {
	return rox.ClientConfig{URL: c.ROXURL, AccountID: a.AccountID, Username: a.Username,
		Password: a.Password, Product: a.Product, Timeout: c.ROXTimeout}
}

// AccountCallbackURLs returns account a's receipt and reply callback URLs:
// those of CallbackURLs with a's own token in the path. They hold the
// token: never log them.
func (c Config) AccountCallbackURLs(a Account) (receipt, reply string) {
	base := strings.TrimRight(c.PublicURL, "/") + "/rox/" + a.CallbackToken
	return base + "/receipt", base + "/reply"
}

// jsonErr describes a JSON decoding error without quoting the document
// (it holds passwords).
func jsonErr(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %s must be a JSON %s, not %s", te.Field, te.Type.Kind(), te.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "syntax error: the file ends inside a JSON value"
	case errors.Is(err, io.EOF):
		return "the file is empty"
	}
	return "cannot decode"
}

// accountsKeys are the keys of the ROX_ACCOUNTS file, spelled as they must
// be.
var accountsKeys = map[string]bool{"accounts": true, "name": true, "account_id": true,
	"username": true, "password": true, "product": true, "rate_limit": true, "callback_token": true}

// exactKeys refuses what encoding/json lets through quietly: a key in
// another case than its field's ("Name" fills name) and a key given twice
// in one object (the last wins). Either would turn a typo into another
// account name or another password. b has decoded already; errors name keys,
// never values.
func exactKeys(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	type frame struct {
		object bool
		keys   map[string]bool
		at     string
		next   int // arrays: index of the next element
		key    bool
	}
	var stack []*frame
	where := func() string {
		for i := len(stack) - 1; i >= 0; i-- {
			if stack[i].at != "" {
				return stack[i].at + ": "
			}
		}
		return ""
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return errors.New(jsonErr(err))
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if k, isKey := tok.(string); isKey && top != nil && top.object && top.key {
			top.key = false
			switch {
			case top.keys[k]:
				return fmt.Errorf("%skey %q twice", where(), truncate(k, 40))
			case !accountsKeys[k]:
				for want := range accountsKeys {
					if strings.EqualFold(k, want) {
						return fmt.Errorf("%skey %q: spell it %q", where(), truncate(k, 40), want)
					}
				}
			}
			top.keys[k] = true
			continue
		}
		// A value (or the start of one).
		at := ""
		if top != nil && !top.object {
			if len(stack) == 2 {
				at = fmt.Sprintf("accounts[%d]", top.next)
			}
			top.next++
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, keys: map[string]bool{}, at: at, key: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{at: at})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].key = true
		}
	}
}
