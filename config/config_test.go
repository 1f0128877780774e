package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redoxygen/roxd/rox"
)

var update = flag.Bool("update", false, "rewrite docs/CONFIG.md")

const (
	password      = "rox-Pa55word-secret"
	apiToken      = "api-token-0123456789abcdef"
	callbackToken = "cb-token_0123456789ABCDEF"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// complete is an environment that validates for every role.
func complete() map[string]string {
	return map[string]string{
		"ROX_ACCOUNT_ID":      "CI00000001",
		"ROX_USERNAME":        "user@example.com",
		"ROX_PASSWORD":        password,
		"ROXD_API_TOKEN":      apiToken,
		"ROXD_CALLBACK_TOKEN": callbackToken,
	}
}

func TestDefaults(t *testing.T) {
	c, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		RedisURL: "redis://127.0.0.1:6379/0", ROXURL: rox.DefaultEndpoint, ROXProduct: "roxd", ROXTimeout: 30 * time.Second,
		Roles: []string{"worker", "callbacks", "api"}, HTTPAddr: "127.0.0.1:8080", CallbackAddr: ":8081",
		PublicURL: "http://127.0.0.1:8081", DefaultRegion: "AU", RetryInitial: 5 * time.Second,
		RetryMaxInterval: 10 * time.Minute, MaxAttempts: 10, KeyPrefix: "roxd", Queue: "roxd", Shards: 1,
		StatusTTL: 168 * time.Hour, ScheduleLead: time.Minute, MaxScheduleAhead: 8760 * time.Hour,
		BatchLinger: 5 * time.Millisecond, SendConcurrency: 16, HighReserve: 8, DequeueLanes: 2, ShutdownTimeout: 25 * time.Second,
		CallbackDrain: 5 * time.Second, APITimeout: 5 * time.Second, RedisWaitTimeout: time.Second,
		Receipt: "always", Reply: "http", ReceiptsStream: "rox:receipts", RepliesStream: "rox:replies",
		StreamMaxLen: 1000000, SpoolDir: "./var/spool", JournalDir: "./var/journal", CallbackMaxBody: 65536, LogLevel: "info", LogFormat: "json",
		Ambiguous: "reconcile", ReconcileWindow: 2 * time.Minute,
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("defaults:\n got %v\nwant %v", c, want)
	}
	// Defaults need only the credentials and tokens to validate.
	if err := c.Validate(); err == nil {
		t.Fatal("defaults validated without credentials")
	}
	for _, role := range []string{RoleWorker, RoleCallbacks, RoleAPI} {
		c, _ := Load(env(complete()))
		if err := c.Validate(role); err != nil {
			t.Fatalf("role %s: %v", role, err)
		}
	}
	c, _ = Load(env(complete()))
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.ReceiptFlag() != rox.ReceiptAlways || c.ReplyType() != rox.ReplyHTTP || !c.HasRole(RoleAPI) {
		t.Fatal("derived values")
	}
	cc := c.ClientConfig()
	if cc.Password != password || cc.URL != rox.DefaultEndpoint || cc.Timeout != 30*time.Second {
		t.Fatalf("ClientConfig %v", cc)
	}
	if _, err := rox.NewClient(cc); err != nil {
		t.Fatalf("ClientConfig does not make a client: %v", err)
	}
}

func TestOverrides(t *testing.T) {
	m := complete()
	m["ROXD_ROLES"] = " worker , api ,"
	m["ROXD_PERMANENT_CODES"] = "2015,2099"
	m["ROXD_DEFAULT_REGION"] = "nz"
	m["ROXD_RECEIPT"] = "on_error"
	m["ROXD_REPLY"] = "both"
	m["ROXD_DASHBOARD_READONLY"] = "true"
	m["ROXD_MAX_ATTEMPTS"] = "3"
	m["ROXD_BATCH_LINGER"] = "0s"
	m["ROXD_PUBLIC_URL"] = "https://sms.example.com/base/"
	m["LOG_LEVEL"] = " " // empty means default here (the table says so)
	// A stream name may carry one hash tag (it picks its cluster slot).
	m["ROXD_RECEIPTS_STREAM"] = "{roxd}:receipts"
	m["ROXD_REPLIES_STREAM"] = "events:{r}"
	c, err := Load(env(m))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Roles, []string{"worker", "api"}) || c.HasRole(RoleCallbacks) ||
		!reflect.DeepEqual(c.PermanentCodes, []rox.Code{"2015", "2099"}) || c.DefaultRegion != "NZ" ||
		c.ReceiptFlag() != rox.ReceiptOnError || c.ReplyType() != rox.ReplyBoth || !c.DashboardReadOnly ||
		c.MaxAttempts != 3 || c.BatchLinger != 0 || c.LogLevel != "info" ||
		c.ReceiptsStream != "{roxd}:receipts" || c.RepliesStream != "events:{r}" {
		t.Fatalf("overrides: %v", c)
	}
	if c.Policy().RetryableCode("2015") || !c.Policy().RetryableCode("2016") {
		t.Fatal("policy")
	}
	rec, rep := c.CallbackURLs()
	if rec != "https://sms.example.com/base/rox/"+callbackToken+"/receipt" ||
		rep != "https://sms.example.com/base/rox/"+callbackToken+"/reply" {
		t.Fatalf("CallbackURLs = %s %s", rec, rep)
	}
	// The callback URLs pass the rox contract check.
	msgs := rox.Messages{ReceiptFlag: rox.ReceiptAlways, ReceiptCallbackURL: rec, ReplyType: rox.ReplyHTTP,
		ReplyCallbackURL: rep, Recipients: []rox.Recipient{{DestTn: "+61407555001", SMSText: "x"}}}
	if err := msgs.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestBadValues(t *testing.T) {
	tests := []struct {
		name, value string
		roles       []string
	}{
		{"REDIS_URL", "http://localhost:6379", nil},
		{"REDIS_URL", "redis://:" + password + "@host:notaport/0", nil},
		{"ROX_API_URL", "awsap.redoxygen.net/smsapi/send", nil},
		{"ROX_ACCOUNT_ID", "", []string{RoleWorker}},
		{"ROX_USERNAME", "", []string{RoleWorker}},
		{"ROX_PASSWORD", "", []string{RoleWorker}},
		{"ROX_TIMEOUT", "30", nil},
		{"ROX_TIMEOUT", "-1s", nil},
		{"ROXD_ROLES", "worker,sender", nil},
		{"ROXD_HTTP_ADDR", "8080", nil},
		{"ROXD_HTTP_ADDR", "127.0.0.1:99999", nil},
		{"ROXD_CALLBACK_ADDR", "localhost", nil},
		{"ROXD_PUBLIC_URL", "example.com", nil},
		{"ROXD_PUBLIC_URL", "ftp://example.com", nil},
		{"ROXD_PUBLIC_URL", "https://example.com/?a=b", nil},
		{"ROXD_API_TOKEN", "", []string{RoleAPI}},
		{"ROXD_API_TOKEN", "short", []string{RoleAPI}},
		{"ROXD_CALLBACK_TOKEN", "", []string{RoleCallbacks}},
		{"ROXD_CALLBACK_TOKEN", "", []string{RoleWorker}},
		{"ROXD_CALLBACK_TOKEN", "short", []string{RoleCallbacks}},
		{"ROXD_CALLBACK_TOKEN", "0123456789abcdef/../x", []string{RoleCallbacks}},
		{"ROXD_CALLBACK_TOKEN", "0123456789abcdef?x=1", []string{RoleWorker}},
		{"ROXD_DEFAULT_REGION", "XX", nil},
		{"ROXD_DEFAULT_REGION", "Australia", nil},
		{"ROXD_RETRY_INITIAL", "0s", nil},
		{"ROXD_RETRY_INITIAL", "soon", nil},
		{"ROXD_RETRY_MAX_INTERVAL", "1s", nil},
		{"ROXD_MAX_ATTEMPTS", "0", nil},
		{"ROXD_MAX_ATTEMPTS", "ten", nil},
		{"ROXD_AMBIGUOUS", "maybe", nil},
		{"ROXD_RECONCILE_WINDOW", "0s", nil},
		{"ROXD_PERMANENT_CODES", "2015,2001", nil},
		{"ROXD_PERMANENT_CODES", "15", nil},
		{"ROXD_KEY_PREFIX", "{roxd}", nil},
		{"ROXD_QUEUE", "my queue", nil},
		{"ROXD_SHARDS", "0", nil},
		{"ROXD_SHARDS", "65", nil},
		{"ROXD_STATUS_TTL", "0s", nil},
		{"ROXD_SCHEDULE_LEAD", "-1m", nil},
		{"ROXD_MAX_SCHEDULE_AHEAD", "0s", nil},
		{"ROXD_BATCH_LINGER", "-5ms", nil},
		{"ROXD_SEND_CONCURRENCY", "0", nil},
		{"ROXD_DEQUEUE_LANES", "0", nil},
		{"ROXD_SHUTDOWN_TIMEOUT", "0s", nil},
		{"ROXD_RECEIPT", "sometimes", nil},
		{"ROXD_REPLY", "H", nil},
		{"ROXD_RECEIPTS_STREAM", "a b", nil},
		{"ROXD_REPLIES_STREAM", "{}x", nil},
		{"ROXD_REPLIES_STREAM", "a}b{c", nil},
		{"ROXD_RECEIPTS_STREAM", "{a}{b}", nil},
		{"ROXD_STREAM_MAXLEN", "0", nil},
		{"ROXD_STREAM_MAXLEN", "lots", nil},
		{"ROXD_CALLBACK_MAX_BODY", "64KiB", nil},
		{"ROXD_CALLBACK_MAX_BODY", "100", nil},
		{"ROXD_DASHBOARD_READONLY", "maybe", nil},
		{"ROXD_DASHBOARD_USERS", "alice", nil},
		{"ROXD_DASHBOARD_USERS", "alice:secret", nil},
		{"ROXD_DASHBOARD_USERS", ":$2a$04$abcdefghijklmnopqrstuu5nT1uVnfYg8y1kY2tP3o2B6vQ0x8fK.", nil},
		{"ROXD_DASHBOARD_PASSWORD", "short", nil},
		{"LOG_LEVEL", "verbose", nil},
		// zerolog's other levels: disabled, panic and fatal silence every
		// error line, trace is not a documented level.
		{"LOG_LEVEL", "disabled", nil},
		{"LOG_LEVEL", "fatal", nil},
		{"LOG_LEVEL", "panic", nil},
		{"LOG_LEVEL", "trace", nil},
		{"LOG_LEVEL", "-1", nil},
		{"LOG_LEVEL", "0", nil},
		{"LOG_FORMAT", "text", nil},
		// Traffic classes (issue 12).
		{"ROXD_DEFAULT_VALIDITY", "-1s", nil},
		{"ROXD_DEFAULT_VALIDITY", "soon", nil},
		{"ROXD_DEFAULT_VALIDITY", "90", nil},
		{"ROXD_DEFAULT_VALIDITY", "8761h", nil},
		{"ROXD_RATE_LIMIT", "-1", nil},
		{"ROXD_RATE_LIMIT", "fast", nil},
		{"ROXD_RATE_LIMIT", "1.5", nil},
		{"ROXD_RATE_LIMIT", "1000001", nil},
		{"ROXD_REQUEST_RATE_LIMIT", "-1", nil},
		{"ROXD_REQUEST_RATE_LIMIT", "ten", nil},
		{"ROXD_REQUEST_RATE_LIMIT", "1000001", nil},
		{"ROX_ACCOUNTS", "/nonexistent/accounts.json", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			m := complete()
			m[tt.name] = tt.value
			if tt.value == "" {
				delete(m, tt.name)
			}
			c, err := Load(env(m))
			if err == nil {
				err = c.Validate(tt.roles...)
			}
			if err == nil {
				t.Fatal("accepted")
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.Var != tt.name {
				t.Fatalf("error %q does not name %s first", err, tt.name)
			}
			if !strings.HasPrefix(err.Error(), tt.name+": ") {
				t.Fatalf("error %q does not start with the variable", err)
			}
			for _, s := range []string{password, apiToken, callbackToken} {
				if strings.Contains(err.Error(), s) {
					t.Fatalf("error holds a secret: %v", err)
				}
			}
		})
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	m := complete()
	m["REDIS_URL"] = "redis://:" + password + "@127.0.0.1:6379/0"
	c, err := Load(env(m))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(f, c)
		for _, s := range []string{password, apiToken, callbackToken} {
			if strings.Contains(out, s) {
				t.Fatalf("%s of Config holds a secret: %s", f, out)
			}
		}
		if !strings.Contains(out, "ROXD_MAX_ATTEMPTS=10") || !strings.Contains(out, "[REDACTED]") {
			t.Fatalf("%s of Config: %s", f, out)
		}
	}
	// Secrets that are invalid are reported without their value.
	m["ROXD_CALLBACK_TOKEN"] = "bad token with spaces " + callbackToken
	m["ROXD_API_TOKEN"] = "x"
	c, _ = Load(env(m))
	err = c.Validate()
	if err == nil || strings.Contains(err.Error(), callbackToken) || strings.Contains(err.Error(), "bad token") {
		t.Fatalf("Validate error: %v", err)
	}
}

func TestErrorsAreJoined(t *testing.T) {
	c, err := Load(env(map[string]string{"ROXD_MAX_ATTEMPTS": "x", "ROX_TIMEOUT": "y"}))
	if err == nil || !strings.Contains(err.Error(), "ROXD_MAX_ATTEMPTS") || !strings.Contains(err.Error(), "ROX_TIMEOUT") {
		t.Fatalf("Load error: %v", err)
	}
	_ = c
}

func TestTableAndDoc(t *testing.T) {
	vars := Table()
	if len(vars) != reflect.TypeOf(Config{}).NumField() {
		t.Fatal("Table misses fields")
	}
	seen := map[string]bool{}
	for _, v := range vars {
		if v.Name == "" || v.Description == "" || seen[v.Name] {
			t.Fatalf("bad table row %+v", v)
		}
		seen[v.Name] = true
	}
	for _, name := range []string{"ROX_PASSWORD", "ROXD_API_TOKEN", "ROXD_CALLBACK_TOKEN"} {
		for _, v := range vars {
			if v.Name == name && !v.Secret {
				t.Fatalf("%s not marked secret", name)
			}
		}
	}
	// The same table stands in docs/CONFIG.md and in the README.
	for _, path := range []string{filepath.Join("..", "docs", "CONFIG.md"), filepath.Join("..", "README.md")} {
		doc, err := os.ReadFile(path)
		if err != nil && !*update {
			t.Fatal(err)
		}
		const begin, end = "<!-- BEGIN CONFIG TABLE (go test ./config -update) -->\n", "<!-- END CONFIG TABLE -->"
		if *update {
			text := string(doc)
			i, j := strings.Index(text, begin), strings.Index(text, end)
			if i < 0 || j < i {
				t.Fatalf("%s lacks the table markers", path)
			}
			text = text[:i+len(begin)] + Markdown() + text[j:]
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			doc = []byte(text)
		}
		if !strings.Contains(string(doc), begin+Markdown()+end) {
			t.Fatalf("%s is out of date: run go test ./config -update", path)
		}
	}
}

// TestURLPasswordsNeverPrinted: every URL variable may carry a password
// (user:password@, and a Sentinel's sentinel_password): %v of Config and the
// flags' defaults (`roxd serve -h`) show it redacted. ROX_API_URL and
// ROXD_PUBLIC_URL were shown whole, and REDIS_URL's sentinel_password too.
func TestURLPasswordsNeverPrinted(t *testing.T) {
	m := complete()
	m["REDIS_URL"] = "redis-sentinel://:redispw@10.0.0.1:26379,10.0.0.2/mymaster/0?sentinel_password=sentinelpw"
	m["ROX_API_URL"] = "https://user:roxpw@rox.example.com/smsapi/send"
	m["ROXD_PUBLIC_URL"] = "https://cb:publicpw@cb.example.com"
	secrets := []string{"redispw", "sentinelpw", "roxpw", "publicpw"}
	c, err := Load(env(m))
	if err != nil {
		t.Fatal(err)
	}
	out := fmt.Sprintf("%v", c)
	fs := flag.NewFlagSet("roxd", flag.ContinueOnError)
	Flags(fs, env(m))
	fs.VisitAll(func(f *flag.Flag) { out += " " + f.DefValue })
	fs2 := flag.NewFlagSet("roxd", flag.ContinueOnError)
	c.RegisterFlags(fs2)
	fs2.VisitAll(func(f *flag.Flag) { out += " " + f.DefValue })
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("%q shown: %s", s, out)
		}
	}
	if !strings.Contains(out, "https://user:xxxxx@rox.example.com/smsapi/send") ||
		!strings.Contains(out, "redis-sentinel://:REDACTED@10.0.0.1:26379,10.0.0.2:26379/mymaster/0?sentinel_password=REDACTED") {
		t.Errorf("URLs not shown redacted: %s", out)
	}
}

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"},
		{"redis://:pw@127.0.0.1:6379/0", "redis://:REDACTED@127.0.0.1:6379/0"},
		{"rediss://bob:pw@h:6380/2", "rediss://bob:REDACTED@h:6380/2"},
		{"redis-cluster://:pw@h1:7000,h2:7000", "redis-cluster://:REDACTED@h1:7000,h2:7000"},
		{"redis-sentinel://h1,h2?master=m&sentinel_password=pw", "redis-sentinel://h1:26379,h2:26379/m/0?sentinel_password=REDACTED"},
		{"redis://:pw@127.0.0.1:6379/0%zz", "[unparsable URL]"},
		{"redis://:pw@h:6379/0?x=pw", "[unparsable URL]"},
		{"https://rox.example.com/smsapi/send", "https://rox.example.com/smsapi/send"},
		{"https://user:pw@rox.example.com/smsapi/send", "https://user:xxxxx@rox.example.com/smsapi/send"},
		{"http://user:pw@h/%zz", "[unparsable URL]"},
	} {
		if got := RedactURL(tc.in); got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestLoggerNamesTheVariable: Config.Logger (what roxd serve builds before
// anything else) names the one variable at fault, as Validate does, and
// takes the documented levels in any case.
func TestLoggerNamesTheVariable(t *testing.T) {
	for _, tt := range []struct{ name, value string }{
		{"LOG_LEVEL", "loud"}, {"LOG_LEVEL", "disabled"}, {"LOG_LEVEL", "trace"},
		{"LOG_FORMAT", "xml"}, {"LOG_FORMAT", "JSON"},
	} {
		c, err := Load(env(setVar(tt.name, tt.value)))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Logger(io.Discard)
		wantVarErr(t, err, tt.name)
		if other := map[string]string{"LOG_LEVEL": "LOG_FORMAT", "LOG_FORMAT": "LOG_LEVEL"}[tt.name]; strings.Contains(err.Error(), other) {
			t.Errorf("%s=%s: %q names %s too", tt.name, tt.value, err, other)
		}
	}
	for _, level := range []string{"debug", "INFO", " Warn ", "error"} {
		c, err := Load(env(setVar("LOG_LEVEL", level)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Logger(io.Discard); err != nil {
			t.Errorf("LOG_LEVEL=%q: %v", level, err)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("LOG_LEVEL=%q: %v", level, err)
		}
	}
}
