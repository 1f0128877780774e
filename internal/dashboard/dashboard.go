package dashboard

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"
)

// Defaults.
const (
	// DefaultRootPath is where the dashboard is mounted.
	DefaultRootPath = "/monitor"
	// Realm is the Basic authentication realm a browser shows in its prompt.
	Realm = "roxd dashboard"
	// MaxPayloadShown bounds the payload text shown for one task.
	MaxPayloadShown = 8 << 10
)

// ErrConfig is wrapped by every configuration error New returns.
var ErrConfig = errors.New("dashboard: invalid config")

// Config configures the dashboard.
type Config struct {
	// RootPath is the URL path the dashboard lives under (DefaultRootPath
	// when empty). It starts with '/' and has no trailing slash.
	RootPath string
	// RedisConnOpt is asynq's connection to the Redis holding the queues.
	RedisConnOpt asynq.RedisConnOpt
	// Token is the password every request must present (ROXD_API_TOKEN).
	Token string
	// ReadOnly refuses every request that is not a GET (asynqmon answers
	// 405) and tells the UI to hide its buttons, for everyone.
	ReadOnly bool
	// Operators are the users allowed to act (run, delete, archive, pause):
	// user name -> bcrypt hash (ROXD_DASHBOARD_USERS).
	Operators map[string][]byte
	// OperatorPassword, when set, lets any user name act with it
	// (ROXD_DASHBOARD_PASSWORD).
	OperatorPassword string
	// AfterAction, when set, is called after each action that asynqmon
	// carried out (status < 400), before the answer is written, so that
	// roxd applies it to the messages at once (the worker's sweep would
	// otherwise notice it within a reap interval).
	AfterAction func(ctx context.Context, a Action)
	// Logger receives one debug line per refused request and one line per
	// action (never the credentials presented).
	Logger zerolog.Logger
}

func (c Config) withDefaults() Config {
	if c.RootPath == "" {
		c.RootPath = DefaultRootPath
	}
	c.RootPath = strings.TrimSuffix(c.RootPath, "/")
	return c
}

// Validate reports the first problem with c, naming the field.
func (c Config) Validate() error {
	c = c.withDefaults()
	if !strings.HasPrefix(c.RootPath, "/") || strings.ContainsAny(c.RootPath, "?#% ") {
		return fmt.Errorf("%w: RootPath %q must be a path starting with '/'", ErrConfig, c.RootPath)
	}
	if c.RedisConnOpt == nil {
		return fmt.Errorf("%w: RedisConnOpt is nil", ErrConfig)
	}
	if c.Token == "" {
		return fmt.Errorf("%w: Token is empty (set ROXD_API_TOKEN)", ErrConfig)
	}
	if c.OperatorPassword != "" && c.OperatorPassword == c.Token {
		return fmt.Errorf("%w: OperatorPassword must differ from Token (the API token never grants an action)", ErrConfig)
	}
	return nil
}

// Handler is the authenticated dashboard. Close releases its Redis
// connections.
type Handler struct {
	view, act *asynqmon.HTTPHandler
	next      http.Handler
}

// New builds the dashboard handler. Mount it for both RootPath and
// RootPath+"/" on the internal listener.
//
// Who may do what: HTTP Basic credentials whose password is the API token
// (any user name) see the dashboard read-only (asynqmon's ReadOnly: the UI
// hides its buttons, the API answers 405 to anything but GET). An operator
// (a user of Operators with its password, or any user name with
// OperatorPassword) may act. Without operators configured, or with
// ReadOnly, nobody may act. Anything else is 401.
func New(cfg Config) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	// asynqmon panics on a RedisConnOpt that does not make a go-redis
	// client; check first (making a client does not connect).
	rc, ok := cfg.RedisConnOpt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return nil, fmt.Errorf("%w: RedisConnOpt %T does not make a go-redis v9 client", ErrConfig, cfg.RedisConnOpt)
	}
	_ = rc.Close()

	opts := func(ro bool) asynqmon.Options {
		return asynqmon.Options{
			RootPath:         cfg.RootPath,
			RedisConnOpt:     cfg.RedisConnOpt,
			ReadOnly:         ro,
			PayloadFormatter: PayloadFormatter,
			ResultFormatter:  asynqmon.ResultFormatterFunc(format),
		}
	}
	log := cfg.Logger.With().Str("component", "dashboard").Logger()
	h := &Handler{view: asynqmon.New(opts(true))}
	a := &auth{token: sha256.Sum256([]byte(cfg.Token)), users: cfg.Operators, log: log, ok: map[[32]byte]bool{}}
	if cfg.OperatorPassword != "" {
		a.password = sha256.Sum256([]byte(cfg.OperatorPassword))
		a.hasPassword = true
	}
	var act http.Handler
	if !cfg.ReadOnly && (len(cfg.Operators) > 0 || cfg.OperatorPassword != "") {
		h.act = asynqmon.New(opts(false))
		act = actions(cfg.RootPath, h.act, cfg.AfterAction, log)
	}
	// Basic credentials ride along on cross-site requests too: refuse
	// cross-origin browser requests that would change something.
	cop := http.NewCrossOriginProtection()
	h.next = a.handler(cop.Handler(h.view), nilIfNil(act, cop))
	return h, nil
}

func nilIfNil(h http.Handler, cop *http.CrossOriginProtection) http.Handler {
	if h == nil {
		return nil
	}
	return cop.Handler(h)
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.next.ServeHTTP(w, r) }

// Close closes the dashboard's Redis connections.
func (h *Handler) Close() error {
	err := h.view.Close()
	if h.act != nil {
		err = errors.Join(err, h.act.Close())
	}
	return err
}

type role int

const (
	roleNone role = iota
	roleViewer
	roleOperator
)

type userKey struct{}

// auth checks HTTP Basic credentials. Comparisons with the token and the
// operator password take the same time whatever the input (both sides are
// hashed first). bcrypt checks are slow by design: a successful one is
// remembered (by the SHA-256 of user and password) so that the UI's many
// API calls do not each pay for it.
type auth struct {
	token       [32]byte
	password    [32]byte
	hasPassword bool
	users       map[string][]byte
	log         zerolog.Logger

	mu sync.Mutex
	ok map[[32]byte]bool
}

func (a *auth) role(user, pass string) role {
	got := sha256.Sum256([]byte(pass))
	if hash, ok := a.users[user]; ok {
		key := sha256.Sum256([]byte(user + "\x00" + pass))
		a.mu.Lock()
		hit := a.ok[key]
		a.mu.Unlock()
		if hit {
			return roleOperator
		}
		if bcrypt.CompareHashAndPassword(hash, []byte(pass)) == nil {
			a.mu.Lock()
			if len(a.ok) > 1000 {
				clear(a.ok)
			}
			a.ok[key] = true
			a.mu.Unlock()
			return roleOperator
		}
	}
	if a.hasPassword && subtle.ConstantTimeCompare(got[:], a.password[:]) == 1 {
		return roleOperator
	}
	if subtle.ConstantTimeCompare(got[:], a.token[:]) == 1 {
		return roleViewer
	}
	return roleNone
}

// handler routes viewers to view and operators to act (view when act is
// nil: no operator may act).
func (a *auth) handler(view, act http.Handler) http.Handler {
	challenge := fmt.Sprintf("Basic realm=%q, charset=\"UTF-8\"", Realm)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		rl := roleNone
		if ok {
			rl = a.role(user, pass)
		}
		if rl == roleNone {
			a.log.Debug().Str("remote", r.RemoteAddr).Str("path", r.URL.Path).Bool("credentials", ok).
				Msg("dashboard: authentication refused")
			w.Header().Set("WWW-Authenticate", challenge)
			http.Error(w, "authentication required: an operator's user name and password, or any user name and the API token (read-only)", http.StatusUnauthorized)
			return
		}
		h := w.Header()
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		if rl == roleOperator && act != nil {
			act.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, user)))
			return
		}
		view.ServeHTTP(w, r)
	})
}

// PayloadFormatter shows a task payload readably: JSON indented, other
// printable text as is, anything else as its size. Long payloads are cut at
// MaxPayloadShown bytes.
var PayloadFormatter = asynqmon.PayloadFormatterFunc(format)

func format(_ string, payload []byte) string {
	if len(payload) == 0 {
		return "(empty)"
	}
	if json.Valid(payload) {
		var b bytes.Buffer
		if err := json.Indent(&b, payload, "", "  "); err == nil {
			return truncate(b.String())
		}
	}
	if !printable(payload) {
		return fmt.Sprintf("(%d bytes, not printable)", len(payload))
	}
	return truncate(string(payload))
}

func truncate(s string) string {
	if len(s) <= MaxPayloadShown {
		return s
	}
	cut := MaxPayloadShown
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s\n… (%d more bytes)", s[:cut], len(s)-cut)
}

func printable(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if !unicode.IsPrint(r) && !unicode.IsSpace(r) {
			return false
		}
	}
	return true
}
