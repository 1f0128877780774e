package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/config"
	"github.com/redoxygen/roxd/rox/roxsim"
)

// Defaults of `roxd dev`.
const (
	DevHTTPAddr      = "127.0.0.1:8080"
	DevCallbackAddr  = "127.0.0.1:8081"
	DevSimAddr       = "127.0.0.1:9090"
	DevReceiptDelay  = 500 * time.Millisecond
	DevExampleNumber = "+61412345678"
)

// DevOptions adjust Dev. Addresses may use port 0 (tests).
type DevOptions struct {
	HTTPAddr, CallbackAddr, SimAddr string
	// Out gets the banner (URLs, token, a curl that sends a first SMS).
	Out io.Writer
	// Ready, when set, is called once everything listens.
	Ready func(DevInfo)
	// RedisHook, when set, is added to the Redis client (tests).
	RedisHook redis.Hook
}

// DevInfo is what the banner prints. RedisURL is the URL roxd connects
// to, password included (for the caller: Ready); the banner prints it
// through config.RedactURL.
type DevInfo struct {
	APIURL, DashboardURL, MetricsURL, CallbackBase, SimURL, RedisURL string
	Token                                                            string
	EmbeddedRedis                                                    bool
	Curl                                                             string
	Sim                                                              *roxsim.Sim
}

// Dev runs the whole product in one process: an embedded Redis (miniredis;
// REDIS_URL set uses that Redis instead), the ROX simulator, the worker, the
// callback receiver, the API and the dashboard. Other settings come from the
// environment through lookup as for `roxd serve`; what dev needs and is not
// set gets a development value (ROX credentials and URL point at the
// simulator, tokens are generated, the spool goes to a temporary directory).
func Dev(ctx context.Context, lookup func(string) (string, bool), log zerolog.Logger, opts DevOptions) error {
	set := func(name string) bool { v, ok := lookup(name); return ok && strings.TrimSpace(v) != "" }
	if opts.HTTPAddr == "" {
		opts.HTTPAddr = DevHTTPAddr
	}
	if opts.CallbackAddr == "" {
		opts.CallbackAddr = DevCallbackAddr
	}
	if opts.SimAddr == "" {
		opts.SimAddr = DevSimAddr
	}
	if opts.Out == nil {
		opts.Out = os.Stdout
	}
	cfg, err := config.Load(lookup)
	if err != nil {
		return err
	}
	info := DevInfo{}

	embedded := !set("REDIS_URL")
	if embedded {
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr("127.0.0.1:0"); err != nil {
			return fmt.Errorf("embedded redis: %w", err)
		}
		defer mr.Close()
		defer runMiniredisClock(mr, devClockTick)()
		cfg.RedisURL = "redis://" + mr.Addr() + "/0"
		info.EmbeddedRedis = true
	}
	info.RedisURL = cfg.RedisURL

	sim, err := roxsim.New(roxsim.Config{Faults: roxsim.Faults{ReceiptDelay: DevReceiptDelay}},
		log.With().Str("component", "roxsim").Logger())
	if err != nil {
		return fmt.Errorf("simulator: %w", err)
	}
	simLn, err := net.Listen("tcp", opts.SimAddr)
	if err != nil {
		return fmt.Errorf("simulator: listen %s: %w", opts.SimAddr, err)
	}
	simSrv := newServer(sim)
	simDone := make(chan error, 1)
	go func() { simDone <- simSrv.Serve(simLn) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = simSrv.Shutdown(sctx)
		<-simDone
		_ = sim.Close(sctx)
	}()
	info.SimURL = "http://" + simLn.Addr().String()
	info.Sim = sim

	if !set("ROX_API_URL") {
		cfg.ROXURL = info.SimURL + "/smsapi/send"
	}
	if !set("ROX_ACCOUNT_ID") && !set("ROX_USERNAME") && !set("ROX_PASSWORD") {
		cfg.ROXAccountID, cfg.ROXUsername, cfg.ROXPassword = roxsim.DefaultAccountID, roxsim.DefaultUsername, roxsim.DefaultPassword
	}
	if !set("ROXD_API_TOKEN") {
		cfg.APIToken = randomToken()
	}
	if !set("ROXD_DASHBOARD_USERS") && !set("ROXD_DASHBOARD_PASSWORD") {
		cfg.DashboardPassword = randomToken()
	}
	if !set("ROXD_CALLBACK_TOKEN") {
		cfg.CallbackToken = randomToken()
	}
	if !set("LOG_FORMAT") {
		cfg.LogFormat = "console"
	}
	if !set("ROXD_SPOOL_DIR") {
		cfg.SpoolDir = filepath.Join(os.TempDir(), "roxd-dev-spool")
	}
	if !set("ROXD_JOURNAL_DIR") {
		// With the embedded Redis nothing outlives the run: a journal of
		// its own (two `roxd dev` never share one), removed at exit.
		cfg.JournalDir = filepath.Join(os.TempDir(), "roxd-dev-journal")
		if info.EmbeddedRedis {
			d, err := os.MkdirTemp("", "roxd-dev-journal-")
			if err != nil {
				return fmt.Errorf("journal dir: %w", err)
			}
			defer os.RemoveAll(d)
			cfg.JournalDir = d
		}
	}
	if !set("ROXD_HTTP_ADDR") {
		cfg.HTTPAddr = opts.HTTPAddr
	}
	if !set("ROXD_CALLBACK_ADDR") {
		if cfg.CallbackAddr, err = resolvePort(opts.CallbackAddr); err != nil {
			return err
		}
	}
	if !set("ROXD_PUBLIC_URL") {
		cfg.PublicURL = "http://" + cfg.CallbackAddr
	}
	cfg.Roles = []string{config.RoleWorker, config.RoleCallbacks, config.RoleAPI}
	if !set("ROXD_ALLOW_VOLATILE_REDIS") {
		cfg.AllowVolatile = true // the embedded Redis keeps nothing by design
	}

	ready := func(a Addrs) {
		base := "http://" + a.HTTP
		info.APIURL = base + "/v1/messages"
		info.DashboardURL = base + DashboardPath + "/"
		info.MetricsURL = base + "/metrics"
		info.CallbackBase = cfg.PublicURL + "/rox/<callback token>/"
		info.Token = cfg.APIToken
		info.Curl = fmt.Sprintf(`curl -sS -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' -d '{"to":"%s","text":"Hello from roxd","metadata":{"order":"42"}}' %s`,
			cfg.APIToken, DevExampleNumber, info.APIURL)
		printBanner(opts.Out, info, cfg)
		if opts.Ready != nil {
			opts.Ready(info)
		}
	}
	err = Run(ctx, cfg, log, Options{Ready: ready, EmbeddedRedis: embedded, RedisHook: opts.RedisHook})
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func printBanner(w io.Writer, in DevInfo, cfg config.Config) {
	shown := config.RedactURL(in.RedisURL) // REDIS_URL may carry a password
	redis, tail := shown, ""
	if in.EmbeddedRedis {
		redis += "  (embedded miniredis: gone when roxd dev stops)"
	}
	if strings.Contains(shown, "REDACTED") {
		tail = "\n  (REDACTED stands for your REDIS_URL's password, never printed)"
	}
	fmt.Fprintf(w, `
roxd dev is running.

  API          %s
  dashboard    %s   (any user name; password %s acts, the API token only looks)
  metrics      %s
  simulator    %s/sim/recipients   (what "ROX" received)
  callbacks    %s
  redis        %s
  API token    %s

Send a first SMS:

  %s

Then watch its receipt arrive:

  REDIS_URL=%s go run ./cmd/roxd tail receipts --from 0%s

`, in.APIURL, in.DashboardURL, dashPassword(cfg), in.MetricsURL, in.SimURL, in.CallbackBase, redis, in.Token, in.Curl, shown, tail)
}

func dashPassword(cfg config.Config) string {
	if cfg.DashboardPassword == "" {
		return "(ROXD_DASHBOARD_USERS)"
	}
	return cfg.DashboardPassword
}

func randomToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// resolvePort turns host:0 into host:<a free port>, since the callback URL
// given to ROX must name the real port before the receiver listens.
func resolvePort(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port != "0" {
		return addr, err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// devClockTick is how often roxd dev moves the embedded Redis's clock: a
// TTL runs out at most this late.
const devClockTick = 50 * time.Millisecond

// runMiniredisClock makes mr's TTLs run out with the wall clock, as a real
// Redis's do, until the returned stop is called. miniredis decreases TTLs
// only when told to (FastForward): without this, every key roxd gives a
// lifetime would live for ever in roxd dev (an account's 429 or auth pause,
// and with it every later SMS of the account). A ticker rather than
// miniredis's ClockTTL, which walks every key with a TTL on every command.
func runMiniredisClock(mr *miniredis.Miniredis, every time.Duration) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				mr.FastForward(now.Sub(last))
				last = now
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}
