package dashboard

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
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
	// 405) and tells the UI to hide its buttons.
	ReadOnly bool
	// Logger receives one debug line per refused request (never the
	// credentials presented).
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
	return nil
}

// Handler is the authenticated dashboard. Close releases its Redis
// connections.
type Handler struct {
	mon  *asynqmon.HTTPHandler
	next http.Handler
}

// New builds the dashboard handler. Mount it for both RootPath and
// RootPath+"/" on the internal listener.
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

	mon := asynqmon.New(asynqmon.Options{
		RootPath:         cfg.RootPath,
		RedisConnOpt:     cfg.RedisConnOpt,
		ReadOnly:         cfg.ReadOnly,
		PayloadFormatter: PayloadFormatter,
		ResultFormatter:  asynqmon.ResultFormatterFunc(format),
	})
	// Basic credentials ride along on cross-site requests too: refuse
	// cross-origin browser requests that would change something.
	var next http.Handler = http.NewCrossOriginProtection().Handler(mon)
	next = basicAuth(cfg.Token, cfg.Logger.With().Str("component", "dashboard").Logger(), next)
	return &Handler{mon: mon, next: next}, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.next.ServeHTTP(w, r) }

// Close closes the dashboard's Redis connections.
func (h *Handler) Close() error { return h.mon.Close() }

// basicAuth requires HTTP Basic credentials whose password is token; the
// user name is ignored. The comparison takes the same time whatever the
// input (both sides are hashed first, so not even the length leaks).
func basicAuth(token string, log zerolog.Logger, next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(token))
	challenge := fmt.Sprintf("Basic realm=%q, charset=\"UTF-8\"", Realm)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pass, ok := r.BasicAuth()
		got := sha256.Sum256([]byte(pass))
		if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			log.Debug().Str("remote", r.RemoteAddr).Str("path", r.URL.Path).Bool("credentials", ok).
				Msg("dashboard: authentication refused")
			w.Header().Set("WWW-Authenticate", challenge)
			http.Error(w, "authentication required: any user name, the API token as password", http.StatusUnauthorized)
			return
		}
		h := w.Header()
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
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
