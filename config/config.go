package config

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"
	"github.com/rs/zerolog"
	"github.com/sethvargo/go-envconfig"

	"github.com/redoxygen/roxd/internal/logging"
	"github.com/redoxygen/roxd/internal/redisconn"
	"github.com/redoxygen/roxd/rox"
)

// Roles a roxd process can run (ROXD_ROLES).
const (
	RoleWorker    = "worker"    // forms batches and sends them to ROX
	RoleCallbacks = "callbacks" // receives ROX receipts and replies
	RoleAPI       = "api"       // the HTTP API, /metrics and /monitor
)

// Values of ROXD_RECEIPT and ROXD_REPLY.
const (
	ReceiptAlways  = "always"
	ReceiptOnError = "on_error"
	ReceiptNever   = "never"

	ReplyHTTP  = "http"
	ReplyEmail = "email"
	ReplySMS   = "sms"
	ReplyBoth  = "both"
)

// Maxima of ROXD_CALLBACK_DRAIN and ROXD_API_TIMEOUT.
const (
	MaxCallbackDrain = time.Minute
	MaxAPITimeout    = time.Minute
)

// MinTokenLen is the shortest ROXD_API_TOKEN or ROXD_CALLBACK_TOKEN.
const MinTokenLen = 16

// Config is every setting of roxd. The struct tags are the single source of
// the variable names, defaults and descriptions (see Table); `secret:"true"`
// marks values that are never printed; `empty:"default"` marks the few
// variables where a set but empty (or blank) value means unset (elsewhere it
// is an error when the default is not empty: REDIS_URL="" is a mistake, not
// a wish for 127.0.0.1); every int, int64 and duration variable has
// `min:"..."` and `max:"..."`, checked by Validate and shown in the table.
type Config struct {
	RedisURL string `env:"REDIS_URL, default=redis://127.0.0.1:6379/0" desc:"Redis to queue in: redis://, rediss:// (TLS), redis-sentinel:// or redis-cluster:// (a password in it is a secret)"`

	ROXURL       string        `env:"ROX_API_URL, default=https://awsap.redoxygen.net/smsapi/send" desc:"ROX send endpoint"`
	ROXAccountID string        `env:"ROX_ACCOUNT_ID" desc:"Red Oxygen account id (required for role worker)"`
	ROXUsername  string        `env:"ROX_USERNAME" desc:"Red Oxygen user (email) (required for role worker)"`
	ROXPassword  string        `env:"ROX_PASSWORD" secret:"true" desc:"Red Oxygen password (required for role worker; secret)"`
	ROXProduct   string        `env:"ROX_PRODUCT, default=roxd" empty:"default" desc:"Product name sent to ROX (reporting only)"`
	ROXTimeout   time.Duration `env:"ROX_TIMEOUT, default=30s" min:"1ms" max:"10m" desc:"Timeout of one ROX send request"`
	ROXAccounts  string        `env:"ROX_ACCOUNTS" desc:"Path of a JSON file of further ROX accounts, each with name, credentials, product, rate limit and callback token (README: Several ROX accounts); the variables above are the account named default"`

	Roles         []string `env:"ROXD_ROLES, default=worker,callbacks,api" desc:"Roles this process runs: comma list of worker, callbacks, api"`
	HTTPAddr      string   `env:"ROXD_HTTP_ADDR, default=127.0.0.1:8080" desc:"Listen address of the API, /metrics and /monitor"`
	CallbackAddr  string   `env:"ROXD_CALLBACK_ADDR, default=:8081" desc:"Listen address of the ROX callback receiver"`
	PublicURL     string   `env:"ROXD_PUBLIC_URL, default=http://127.0.0.1:8081" desc:"Absolute http(s) base URL at which ROX reaches the callback receiver"`
	APIToken      string   `env:"ROXD_API_TOKEN" secret:"true" desc:"Bearer token of the HTTP API (required for role api; >= 16 characters; secret)"`
	CallbackToken string   `env:"ROXD_CALLBACK_TOKEN" secret:"true" desc:"Secret path segment of the callback URLs (required for roles worker and callbacks; >= 16 URL-safe characters)"`
	DefaultRegion string   `env:"ROXD_DEFAULT_REGION, default=AU" desc:"Region for numbers without a country code (a libphonenumber region such as AU, NZ, GB)"`

	RetryInitial     time.Duration `env:"ROXD_RETRY_INITIAL, default=5s" min:"1ms" max:"1h" desc:"First retry delay of a failed batch"`
	RetryMaxInterval time.Duration `env:"ROXD_RETRY_MAX_INTERVAL, default=10m" min:"1ms" max:"24h" desc:"Longest retry delay"`
	MaxAttempts      int           `env:"ROXD_MAX_ATTEMPTS, default=10" min:"1" max:"100" desc:"Attempts per message before it fails"`
	PermanentCodes   []rox.Code    `env:"ROXD_PERMANENT_CODES" desc:"Comma list of ROX sending-error codes (2011-2100) never retried"`
	Ambiguous        string        `env:"ROXD_AMBIGUOUS, default=reconcile" desc:"What happens to a recipient whose ROX outcome is unknown (crash or timeout mid-request): reconcile (wait for its receipt or reply, resend only without one), resend, or fail (failed outcome_unknown, never resent); a message's on_ambiguous overrides it"`
	ReconcileWindow  time.Duration `env:"ROXD_RECONCILE_WINDOW, default=2m" min:"1s" max:"24h" desc:"How long after its request left a reconciling recipient waits for a receipt or reply before it is sent again"`

	KeyPrefix        string        `env:"ROXD_KEY_PREFIX, default=roxd" desc:"Prefix (Redis hash tag) of roxd's keys"`
	Queue            string        `env:"ROXD_QUEUE, default=roxd" desc:"asynq queue of send tasks"`
	Shards           int           `env:"ROXD_SHARDS, default=1" min:"1" max:"64" desc:"Shards of the keyspace, spread over a Redis Cluster's masters: hash tags {P:i-k} (1: {P}), each with its own ready lists, schedule, batches and asynq queue; fixed once a Redis holds data (a change is refused at start)"`
	StatusTTL        time.Duration `env:"ROXD_STATUS_TTL, default=168h" min:"1s" max:"8784h" desc:"How long a message record (its status and history) stays readable after the message ended (submitted, delivered, failed, cancelled, expired, suppressed); a message that can still be sent (queued, scheduled, sending, reconciling) is kept however long it waits"`
	ScheduleLead     time.Duration `env:"ROXD_SCHEDULE_LEAD, default=1m" min:"0s" max:"24h" desc:"How long before SendAt a scheduled message is handed to ROX with SendLater"`
	MaxScheduleAhead time.Duration `env:"ROXD_MAX_SCHEDULE_AHEAD, default=8760h" min:"1s" max:"87600h" desc:"Furthest SendAt accepted"`
	DefaultValidity  time.Duration `env:"ROXD_DEFAULT_VALIDITY, default=0s" min:"0s" max:"8760h" desc:"Validity of a message that gives neither valid_for nor expires_at, counted from its send_at (or from when it is accepted): not handed to ROX by then, it ends expired and is never sent; 0 = no limit"`
	BatchLinger      time.Duration `env:"ROXD_BATCH_LINGER, default=5ms" min:"0s" max:"10s" desc:"How long the former waits to fill a batch"`
	SendConcurrency  int           `env:"ROXD_SEND_CONCURRENCY, default=16" min:"1" max:"4096" desc:"Concurrent ROX requests per process"`
	HighReserve      int           `env:"ROXD_HIGH_RESERVE, default=8" min:"1" max:"256" desc:"Handlers per process that send only high-priority batches, beyond ROXD_SEND_CONCURRENCY (while high tasks flow), so a high message never waits for a bulk request to end"`
	DequeueLanes     int           `env:"ROXD_DEQUEUE_LANES, default=2" min:"1" max:"64" desc:"asynq servers per process"`
	RateLimit        int           `env:"ROXD_RATE_LIMIT, default=0" min:"0" max:"1000000" desc:"Most messages per second sent to ROX per account, over every worker process sharing the Redis (0: no limit); a batch is at most one second of it"`
	RequestRateLimit int           `env:"ROXD_REQUEST_RATE_LIMIT, default=0" min:"0" max:"1000000" desc:"Most ROX requests per second per account, over every worker process sharing the Redis (0: no limit)"`
	ShutdownTimeout  time.Duration `env:"ROXD_SHUTDOWN_TIMEOUT, default=25s" min:"1ms" max:"1h" desc:"Grace period to drain on shutdown"`
	CallbackDrain    time.Duration `env:"ROXD_CALLBACK_DRAIN, default=5s" min:"0s" max:"60s" desc:"On shutdown, how long the callback listener keeps answering after the worker stopped (the whole shutdown stays within ROXD_SHUTDOWN_TIMEOUT, drain included)"`
	APITimeout       time.Duration `env:"ROXD_API_TIMEOUT, default=5s" min:"1s" max:"60s" desc:"Budget of one API call (1s..60s): past it the call answers 503; POST /v1/messages/batch gets four times it"`
	RedisMinReplicas int           `env:"ROXD_REDIS_MIN_REPLICAS, default=0" min:"0" max:"16" desc:"Replicas that must acknowledge (WAIT) a message record, a callback and a recorded ROX answer before it is reported done (0: do not wait); short of them the API answers 503 and the callback is spooled"`
	RedisWaitTimeout time.Duration `env:"ROXD_REDIS_WAIT_TIMEOUT, default=1s" min:"1ms" max:"2s" desc:"How long one WAIT for ROXD_REDIS_MIN_REPLICAS replicas may take (at most 2s: it is read within the 3 s socket budget of a Redis call)"`
	AllowVolatile    bool          `env:"ROXD_ALLOW_VOLATILE_REDIS, default=false" desc:"Accept a Redis without persistence (appendonly/save) without the loud warning; roxd dev sets it"`
	Pprof            bool          `env:"ROXD_PPROF, default=false" desc:"Serve Go's profiler (net/http/pprof) at /debug/pprof/ on ROXD_HTTP_ADDR, without authentication: for benchmarks and diagnosis on a private listener only"`

	Receipt string `env:"ROXD_RECEIPT, default=always" desc:"Default receipts: always, on_error or never"`
	Reply   string `env:"ROXD_REPLY, default=http" desc:"Default reply routing: http, email, sms or both"`

	ReceiptsStream  string `env:"ROXD_RECEIPTS_STREAM, default=rox:receipts" desc:"Redis stream of receipt events"`
	RepliesStream   string `env:"ROXD_REPLIES_STREAM, default=rox:replies" desc:"Redis stream of reply events"`
	StreamMaxLen    int64  `env:"ROXD_STREAM_MAXLEN, default=1000000" min:"1" max:"1000000000" desc:"Approximate MAXLEN of each event stream"`
	SpoolDir        string `env:"ROXD_SPOOL_DIR, default=./var/spool" desc:"Directory where callbacks are spooled while Redis is down"`
	JournalDir      string `env:"ROXD_JOURNAL_DIR, default=./var/journal" desc:"Directory where the worker keeps ROX answers Redis refused to record, until Redis takes them (one worker process per directory)"`
	CallbackMaxBody int64  `env:"ROXD_CALLBACK_MAX_BODY, default=65536" min:"1024" max:"16777216" desc:"Largest callback body accepted, in bytes"`

	DashboardReadOnly bool   `env:"ROXD_DASHBOARD_READONLY, default=false" desc:"Serve the /monitor dashboard read-only"`
	DashboardUsers    string `env:"ROXD_DASHBOARD_USERS" secret:"true" desc:"Dashboard operators allowed to act (run, delete, archive, pause): comma list of user:bcrypt-hash (htpasswd -nbB); without them or ROXD_DASHBOARD_PASSWORD the dashboard is read-only"`
	DashboardPassword string `env:"ROXD_DASHBOARD_PASSWORD" secret:"true" desc:"One dashboard operator password (any user name; >= 16 characters; secret), when ROXD_DASHBOARD_USERS is not used"`
	LogLevel          string `env:"LOG_LEVEL, default=info" empty:"default" desc:"debug, info, warn or error"`
	LogFormat         string `env:"LOG_FORMAT, default=json" empty:"default" desc:"json, or console for people"`
}

// Var describes one environment variable.
type Var struct {
	Name        string
	Default     string
	Description string
	Secret      bool
	// EmptyIsUnset: a set but empty or blank value takes the default.
	// Otherwise such a value is an error if Default is not empty.
	EmptyIsUnset bool
	// Min and Max bound a number or duration ("" for other kinds).
	Min, Max string
}

// Table lists every variable in declaration order.
func Table() []Var {
	t := reflect.TypeOf(Config{})
	vars := make([]Var, 0, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		vars = append(vars, Var{
			Name:         envName(f),
			Default:      envDefault(f),
			Description:  f.Tag.Get("desc"),
			Secret:       f.Tag.Get("secret") == "true",
			EmptyIsUnset: f.Tag.Get("empty") == "default",
			Min:          f.Tag.Get("min"),
			Max:          f.Tag.Get("max"),
		})
	}
	return vars
}

func envName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
	return strings.TrimSpace(name)
}

func envDefault(f reflect.StructField) string {
	_, def, ok := strings.Cut(f.Tag.Get("env"), "default=")
	if !ok {
		return ""
	}
	return def
}

// Error names the variable at fault. It never holds a secret value.
type Error struct {
	Var    string
	Reason string
}

func (e *Error) Error() string { return e.Var + ": " + e.Reason }

func varErr(name, format string, args ...any) *Error {
	return &Error{Var: name, Reason: fmt.Sprintf(format, args...)}
}

// Load reads every variable through lookup (os.LookupEnv in main, a map in
// tests) with github.com/sethvargo/go-envconfig. A variable that is unset
// takes its default; one set to an empty or blank value takes its default
// only where the table says so (Var.EmptyIsUnset) or the default is empty,
// and is an *Error otherwise. Load only parses; call Validate for the roles
// the process runs. A parse error is an *Error naming the variable.
func Load(lookup func(string) (string, bool)) (Config, error) {
	var c Config
	var blanks, numErrs []error
	badNumber := map[string]bool{}
	for _, v := range Table() {
		s, ok := lookup(v.Name)
		if !ok {
			continue
		}
		if strings.TrimSpace(s) == "" {
			if err := v.checkBlank(); err != nil {
				blanks = append(blanks, err)
			}
		} else if _, err := numberText(v.Name, s); err != nil {
			numErrs = append(numErrs, err)
			badNumber[v.Name] = true
		}
	}
	if len(blanks) > 0 {
		return c, errors.Join(blanks...)
	}
	l := envconfig.LookuperFunc(func(key string) (string, bool) {
		if badNumber[key] {
			return "", false // reported in numErrs; the others are still read
		}
		v, ok := lookup(key)
		v = strings.TrimSpace(v)
		if ok && v != "" {
			v, _ = numberText(key, v)
		}
		return v, ok && v != ""
	})
	if err := envconfig.ProcessWith(context.Background(), &envconfig.Config{Target: &c, Lookuper: l}); err != nil {
		// go-envconfig stops at the first bad variable; report them all by
		// reading each variable alone.
		var errs []error
		t := reflect.TypeOf(Config{})
		for i := 0; i < t.NumField(); i++ {
			name := envName(t.Field(i))
			only := envconfig.LookuperFunc(func(key string) (string, bool) {
				if key != name {
					return "", false
				}
				return l.Lookup(key)
			})
			var tmp Config
			if err := envconfig.ProcessWith(context.Background(), &envconfig.Config{Target: &tmp, Lookuper: only}); err != nil {
				errs = append(errs, loadError(err))
			}
		}
		if len(errs) == 0 {
			errs = append(errs, loadError(err))
		}
		return c, errors.Join(append(numErrs, errs...)...)
	}
	if len(numErrs) > 0 {
		return c, errors.Join(numErrs...)
	}
	c.DefaultRegion = strings.ToUpper(c.DefaultRegion)
	c.Roles = trimList(c.Roles)
	c.PermanentCodes = trimList(c.PermanentCodes)
	return c, nil
}

// checkBlank is the error of v set to an empty or blank value, or nil when
// that means unset.
func (v Var) checkBlank() error {
	if v.EmptyIsUnset || v.Default == "" {
		return nil
	}
	return varErr(v.Name, "set but empty: unset it for the default %s, or give a value", v.Default)
}

// wholeNumberVars are the variables of kind int or int64 that are not
// durations: whole numbers, written in decimal.
var wholeNumberVars = func() map[string]bool {
	m := map[string]bool{}
	t := reflect.TypeOf(Config{})
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if k := f.Type.Kind(); (k == reflect.Int || k == reflect.Int64) && f.Type != reflect.TypeOf(time.Duration(0)) {
			m[envName(f)] = true
		}
	}
	return m
}()

// numberText returns the text of variable name as go-envconfig is to read
// it. For a whole-number variable s (white space around it ignored) must be
// decimal digits, with an optional leading minus (a negative value is then
// refused by its bound, with the range); leading zeros are dropped, because
// go-envconfig parses with strconv's base 0, where "0500" is octal (320),
// "0x10" is 16 and "1_0" is 10. Anything else, a "+" included, is an
// *Error naming the variable. Other variables' text is returned as is.
func numberText(name, s string) (string, error) {
	if !wholeNumberVars[name] {
		return s, nil
	}
	s = strings.TrimSpace(s)
	digits, neg := strings.CutPrefix(s, "-")
	if digits == "" || strings.TrimLeft(digits, "0123456789") != "" {
		return "", varErr(name, "%s", notWholeNumber)
	}
	digits = strings.TrimLeft(digits, "0")
	switch {
	case digits == "":
		return "0", nil
	case neg:
		return "-" + digits, nil
	}
	return digits, nil
}

// notWholeNumber is the reason of a whole-number variable that does not
// read: it says what to write, not strconv's words.
const notWholeNumber = "not a whole number such as 1000 (decimal digits only), or out of range"

// trimList trims the items of a comma list and drops empty ones; an empty
// list is nil.
func trimList[T ~string](in []T) []T {
	var out []T
	for _, v := range in {
		if v = T(strings.TrimSpace(string(v))); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// loadError turns go-envconfig's "Field: reason" into an *Error naming the
// variable. A secret's reason is dropped: it could quote the value.
func loadError(err error) error {
	field, reason, _ := strings.Cut(err.Error(), ": ")
	f, ok := reflect.TypeOf(Config{}).FieldByName(field)
	if !ok {
		return fmt.Errorf("config: %w", err)
	}
	name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
	if f.Tag.Get("secret") == "true" {
		return varErr(name, "cannot be read")
	}
	if f.Type == reflect.TypeOf(time.Duration(0)) {
		return varErr(name, "not a duration such as 30s or 10m (%s)", reason)
	}
	switch f.Type.Kind() {
	case reflect.Int, reflect.Int64, reflect.Int32:
		// strconv's own words ("strconv.ParseInt: parsing ...") say Go, not
		// what to write.
		return varErr(name, "%s", notWholeNumber)
	case reflect.Bool:
		return varErr(name, "not a boolean: true or false")
	}
	return varErr(name, "%s", reason)
}

// Validate checks c for the given roles (default: c.Roles) and returns one
// *Error per problem, joined, each naming its variable, e.g.
// "ROXD_MAX_ATTEMPTS: 0 is below the minimum 1 (range 1...100)". A value out
// of its range is reported once, by its range. Secret values are never
// quoted.
func (c Config) Validate(roles ...string) error {
	// A value out of its range is reported once, by its range: no other
	// check (of its own or against another variable) adds a second line
	// for that variable.
	errs := c.checkBounds()
	outOfRange := map[string]bool{}
	for _, err := range errs {
		if ce, ok := err.(*Error); ok {
			outOfRange[ce.Var] = true
		}
	}
	bad := func(name, format string, args ...any) {
		if !outOfRange[name] {
			errs = append(errs, varErr(name, format, args...))
		}
	}

	if len(roles) == 0 {
		roles = c.Roles
		if len(roles) == 0 {
			bad("ROXD_ROLES", "at least one of worker, callbacks, api")
		}
	}
	has := map[string]bool{}
	for _, r := range roles {
		switch r {
		case RoleWorker, RoleCallbacks, RoleAPI:
			has[r] = true
		default:
			bad("ROXD_ROLES", "unknown role %q: want worker, callbacks or api", r)
		}
	}

	if _, err := redisconn.Parse(c.RedisURL); err != nil {
		bad("REDIS_URL", "not a redis://, rediss://, redis-sentinel:// or redis-cluster:// URL")
	}
	if !absHTTP(c.ROXURL) {
		bad("ROX_API_URL", "must be an absolute http(s) URL")
	}
	if has[RoleWorker] {
		if c.ROXAccountID == "" {
			bad("ROX_ACCOUNT_ID", "required for role worker")
		}
		if c.ROXUsername == "" {
			bad("ROX_USERNAME", "required for role worker")
		}
		if c.ROXPassword == "" {
			bad("ROX_PASSWORD", "required for role worker")
		}
	}
	if c.ROXProduct == "" {
		bad("ROX_PRODUCT", "must not be empty")
	}
	checkAddr := func(name, addr string) {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			bad(name, "not host:port")
			return
		}
		if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			bad(name, "port must be 0..65535")
		}
	}
	checkAddr("ROXD_HTTP_ADDR", c.HTTPAddr)
	checkAddr("ROXD_CALLBACK_ADDR", c.CallbackAddr)
	if u, err := url.Parse(c.PublicURL); !absHTTP(c.PublicURL) || err != nil || u.RawQuery != "" || u.Fragment != "" {
		bad("ROXD_PUBLIC_URL", "must be an absolute http(s) URL without query or fragment")
	}
	if has[RoleAPI] {
		switch {
		case c.APIToken == "":
			bad("ROXD_API_TOKEN", "required for role api")
		case len(c.APIToken) < MinTokenLen:
			bad("ROXD_API_TOKEN", "must be at least %d characters", MinTokenLen)
		}
	}
	if has[RoleWorker] || has[RoleCallbacks] {
		switch {
		case c.CallbackToken == "":
			bad("ROXD_CALLBACK_TOKEN", "required for roles worker and callbacks")
		case len(c.CallbackToken) < MinTokenLen:
			bad("ROXD_CALLBACK_TOKEN", "must be at least %d characters", MinTokenLen)
		case !urlSafe(c.CallbackToken):
			bad("ROXD_CALLBACK_TOKEN", "may hold only A-Z a-z 0-9 - _ . ~")
		}
	}
	if _, err := c.Accounts(); err != nil {
		errs = append(errs, err)
	}
	if !phonenumbers.GetSupportedRegions()[c.DefaultRegion] {
		bad("ROXD_DEFAULT_REGION", "%q is not a region libphonenumber knows (e.g. AU, NZ, GB, US)", c.DefaultRegion)
	}
	if c.RetryMaxInterval < c.RetryInitial && c.RetryInitial > 0 {
		bad("ROXD_RETRY_MAX_INTERVAL", "must be >= ROXD_RETRY_INITIAL (%s)", c.RetryInitial)
	}
	switch c.Ambiguous {
	case "resend", "reconcile", "fail":
	default:
		bad("ROXD_AMBIGUOUS", "%q: want resend, reconcile or fail", truncate(c.Ambiguous, 16))
	}
	for _, code := range c.PermanentCodes {
		if code.Class() != rox.ClassSending {
			bad("ROXD_PERMANENT_CODES", "%q is not a ROX sending-error code (2011..2100)", truncate(string(code), 16))
		}
	}
	checkName := func(name, v string) {
		if v == "" {
			bad(name, "must not be empty")
		} else if strings.ContainsAny(v, "{} \t\r\n") {
			bad(name, "must not contain braces or spaces")
		}
	}
	checkName("ROXD_KEY_PREFIX", c.KeyPrefix)
	checkName("ROXD_QUEUE", c.Queue)
	// Stream names are whole keys: one hash tag is allowed (it picks the
	// stream's Redis Cluster slot), other braces are not.
	checkStream := func(name, v string) {
		if v == "" {
			bad(name, "must not be empty")
		} else if err := redisconn.CheckTaggedName(v); err != nil {
			bad(name, "%s", err.Error())
		}
	}
	checkStream("ROXD_RECEIPTS_STREAM", c.ReceiptsStream)
	checkStream("ROXD_REPLIES_STREAM", c.RepliesStream)
	switch c.Receipt {
	case ReceiptAlways, ReceiptOnError, ReceiptNever:
	default:
		bad("ROXD_RECEIPT", "%q: want always, on_error or never", truncate(c.Receipt, 32))
	}
	switch c.Reply {
	case ReplyHTTP, ReplyEmail, ReplySMS, ReplyBoth:
	default:
		bad("ROXD_REPLY", "%q: want http, email, sms or both", truncate(c.Reply, 32))
	}
	if _, err := c.DashboardOperators(); err != nil {
		bad("ROXD_DASHBOARD_USERS", "%s", err.Error())
	}
	if c.DashboardPassword != "" && len(c.DashboardPassword) < MinTokenLen {
		bad("ROXD_DASHBOARD_PASSWORD", "must be at least %d characters", MinTokenLen)
	}
	if c.DashboardPassword != "" && c.DashboardPassword == c.APIToken {
		bad("ROXD_DASHBOARD_PASSWORD", "must differ from ROXD_API_TOKEN (the API token never grants a dashboard action)")
	}
	if strings.TrimSpace(c.SpoolDir) == "" {
		bad("ROXD_SPOOL_DIR", "must not be empty")
	}
	if strings.TrimSpace(c.JournalDir) == "" {
		bad("ROXD_JOURNAL_DIR", "must not be empty")
	}
	if err := CheckLog(c.LogLevel, c.LogFormat); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// CheckLog checks the values of LOG_LEVEL and LOG_FORMAT and returns one
// *Error per bad one, naming it (roxd dev checks its own defaults with it).
func CheckLog(level, format string) error {
	var errs []error
	if _, err := logging.New(io.Discard, level, logging.FormatJSON); err != nil {
		errs = append(errs, varErr("LOG_LEVEL", "%q: want debug, info, warn or error", truncate(level, 32)))
	}
	switch format {
	case logging.FormatJSON, logging.FormatConsole:
	default:
		errs = append(errs, varErr("LOG_FORMAT", "%q: want json or console", truncate(format, 32)))
	}
	return errors.Join(errs...)
}

// CallbackURLs returns the receipt and reply callback URLs handed to ROX:
// ROXD_PUBLIC_URL + "/rox/" + ROXD_CALLBACK_TOKEN + "/receipt" and
// ".../reply". They hold the callback token: never log them.
func (c Config) CallbackURLs() (receipt, reply string) {
	base := strings.TrimRight(c.PublicURL, "/") + "/rox/" + c.CallbackToken
	return base + "/receipt", base + "/reply"
}

// ShardCallbackURLs are CallbackURLs for the requests of shard i: with
// more than one shard they carry the query parameter s=<i>, so that the
// receiver finds the messages' shard without a lookup.
func (c Config) ShardCallbackURLs(i int) (receipt, reply string) {
	receipt, reply = c.CallbackURLs()
	if c.Shards > 1 {
		q := "?s=" + strconv.Itoa(i)
		receipt, reply = receipt+q, reply+q
	}
	return receipt, reply
}

// HasRole reports whether role is among c.Roles.
func (c Config) HasRole(role string) bool {
	for _, r := range c.Roles {
		if r == role {
			return true
		}
	}
	return false
}

// ClientConfig is the ROX client configuration.
func (c Config) ClientConfig() rox.ClientConfig {
	return rox.ClientConfig{URL: c.ROXURL, AccountID: c.ROXAccountID, Username: c.ROXUsername,
		Password: c.ROXPassword, Product: c.ROXProduct, Timeout: c.ROXTimeout}
}

// Policy is the retry policy with ROXD_PERMANENT_CODES.
func (c Config) Policy() rox.Policy { return rox.NewPolicy(c.PermanentCodes) }

// ReceiptFlag maps ROXD_RECEIPT to the wire value (always when unknown).
func (c Config) ReceiptFlag() rox.ReceiptFlag {
	switch c.Receipt {
	case ReceiptOnError:
		return rox.ReceiptOnError
	case ReceiptNever:
		return rox.ReceiptNever
	default:
		return rox.ReceiptAlways
	}
}

// ReplyType maps ROXD_REPLY to the wire value (H when unknown).
func (c Config) ReplyType() rox.ReplyType {
	switch c.Reply {
	case ReplyEmail:
		return rox.ReplyEmail
	case ReplySMS:
		return rox.ReplySMS
	case ReplyBoth:
		return rox.ReplyBoth
	default:
		return rox.ReplyHTTP
	}
}

// Logger builds the process logger from LOG_LEVEL and LOG_FORMAT.
func (c Config) Logger(w io.Writer) (zerolog.Logger, error) {
	if err := CheckLog(c.LogLevel, c.LogFormat); err != nil {
		return zerolog.Nop(), err
	}
	return logging.New(w, c.LogLevel, c.LogFormat)
}

// String lists every variable with its value, secrets redacted (and the
// password inside every URL variable: RedactURL).
func (c Config) String() string {
	var b strings.Builder
	v := reflect.ValueOf(c)
	t := v.Type()
	b.WriteString("{")
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString(envName(f))
		b.WriteString("=")
		switch {
		case f.Tag.Get("secret") == "true":
			if v.Field(i).String() == "" {
				b.WriteString(`""`)
			} else {
				b.WriteString("[REDACTED]")
			}
		case isURLVar(envName(f)):
			b.WriteString(RedactURL(v.Field(i).String()))
		default:
			fmt.Fprint(&b, v.Field(i).Interface())
		}
	}
	b.WriteString("}")
	return b.String()
}

// GoString keeps secrets out of %#v.
func (c Config) GoString() string { return "config.Config" + c.String() }

// RedactURL is s, a URL, safe to print: a Redis URL (every REDIS_URL form)
// in redisconn's canonical form with each password, sentinel_password
// included, replaced by REDACTED; any other URL with its password replaced
// by net/url (xxxxx). A value that does not parse is not shown at all
// ("[unparsable URL]"): where its password ends is unknown. Every place that
// shows a URL variable (Config's String, the flags' defaults, `roxd dev`'s
// banner, the other subcommands' -h) goes through it.
func RedactURL(s string) string {
	if s == "" {
		return ""
	}
	if scheme, _, ok := strings.Cut(s, "://"); ok && strings.HasPrefix(strings.ToLower(scheme), "redis") {
		c, err := redisconn.Parse(s)
		if err != nil {
			return "[unparsable URL]"
		}
		return c.String()
	}
	u, err := url.Parse(s)
	if err != nil {
		return "[unparsable URL]"
	}
	return u.Redacted()
}

// isURLVar: the variable holds a URL, shown through RedactURL.
func isURLVar(name string) bool { return strings.HasSuffix(name, "_URL") }

func absHTTP(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func urlSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Markdown renders Table as the Markdown table of docs/CONFIG.md: name,
// default, what a set but empty value means ("default" or "error"), the
// range of numbers and durations (min...max), meaning.
func Markdown() string {
	var b strings.Builder
	b.WriteString("| Variable | Default | Empty | Range | Meaning |\n| --- | --- | --- | --- | --- |\n")
	for _, v := range Table() {
		def := "`" + v.Default + "`"
		if v.Default == "" {
			def = "(empty)"
		}
		empty := "default"
		if v.checkBlank() != nil {
			empty = "error"
		}
		rng := ""
		if v.Min != "" || v.Max != "" {
			rng = v.Min + "..." + v.Max
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", v.Name, def, empty, rng, strings.ReplaceAll(v.Description, "|", "\\|"))
	}
	return b.String()
}
