package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"time"

	"github.com/redoxygen/roxd/internal/logging"
	"github.com/redoxygen/roxd/rox"
	"github.com/redoxygen/roxd/rox/roxsim"
)

func init() { register("sim", "run the ROX simulator", runSim) }

// runSim serves the ROX simulator until ctx is cancelled.
func runSim(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("roxd sim", flag.ContinueOnError)
	var (
		cfg       roxsim.Config
		f         roxsim.Faults
		codes     string
		logLevel  string
		seed      uint64
		countOnly bool
	)
	addr := fs.String("addr", "127.0.0.1:9090", "listen address")
	fs.StringVar(&cfg.AccountID, "account", roxsim.DefaultAccountID, "accepted Sender.AccountId")
	fs.StringVar(&cfg.Username, "username", roxsim.DefaultUsername, "accepted Sender.Username")
	password := envString(fs, "password", "ROXSIM_PASSWORD", roxsim.DefaultPassword, "accepted Sender.Password", true)
	fs.Uint64Var(&seed, "seed", 0, "random seed (0: random)")
	fs.StringVar(&cfg.ReplyName, "reply-name", roxsim.DefaultReplyName, "Name of reply bodies: ROX_API_Reply_Response or ROX_API_Reply")
	fs.BoolVar(&countOnly, "count-only", false, "keep only counters, no records (long runs, benchmarks)")
	fs.IntVar(&cfg.MaxRecords, "max-records", roxsim.DefaultMaxRecords, "records kept per list before the oldest are dropped")
	fs.IntVar(&cfg.Workers, "workers", roxsim.DefaultWorkers, "callback workers")
	fs.DurationVar(&cfg.CallbackTimeout, "callback-timeout", roxsim.DefaultCallbackTimeout, "timeout of one callback POST")
	fs.BoolVar(&cfg.RetryCallbacks, "retry-callbacks", false, "retry a failed callback once before forwarding it to email")
	fs.BoolVar(&cfg.AcceptFirst, "accept-first", false, "accept a send request when read, then spend the latency before answering (a client gone meanwhile still sent its SMS)")
	level := envString(fs, "log-level", "LOG_LEVEL", "info", "debug, info, warn or error", false)
	withPprof := fs.Bool("pprof", false, "serve Go's profiler at /debug/pprof/ (benchmarks)")

	fs.Float64Var(&f.Fail5xx, "fail-5xx", 0, "rate of send requests answered HTTP 500 (0..1)")
	fs.Float64Var(&f.Throttle, "throttle", 0, "rate of send requests answered HTTP 429 (0..1)")
	fs.DurationVar(&f.ThrottleRetryAfter, "throttle-retry-after", 0, "Retry-After of a --throttle answer, rounded up to whole seconds (0: no header)")
	fs.DurationVar(&f.Latency, "latency", 0, "added before every send answer")
	fs.DurationVar(&f.Jitter, "jitter", 0, "random 0..jitter added to latency")
	fs.Float64Var(&f.Hang, "hang", 0, "rate of send requests held without an answer")
	fs.BoolVar(&f.AuthFail, "auth-fail", false, "answer every send request with an authentication error (2001)")
	fs.Float64Var(&f.RecipientErrors, "recipient-errors", 0, "rate of recipients refused with a sending error")
	fs.StringVar(&codes, "recipient-error-codes", "2015,2020", "comma-separated sending-error codes for refused recipients")
	fs.Float64Var(&f.Duplicates, "duplicates", 0, "rate of callbacks posted twice")
	fs.DurationVar(&f.ReceiptDelay, "receipt-delay", 0, "time from due to delivery and receipt")
	fs.Float64Var(&f.DeliveryFailures, "delivery-failures", 0, "rate of queued messages whose delivery fails")
	fs.StringVar((*string)(&f.DeliveryFailureCode), "delivery-failure-code", string(roxsim.DefaultDeliveryFailureCode), "Result of a failed delivery receipt")
	fs.Float64Var(&f.AutoReplyRate, "auto-reply-rate", 0, "rate of delivered messages (ReplyType H) that get an automatic reply")
	fs.Float64Var(&f.LateAnswer, "late-answer", 0, "rate of send requests accepted and answered only after --late-answer-delay")
	fs.DurationVar(&f.LateAnswerDelay, "late-answer-delay", 0, "how late a --late-answer request is answered (0: off)")
	fs.StringVar(&f.AutoReplyText, "auto-reply-text", roxsim.DefaultAutoReplyText, "text of automatic replies")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "roxd sim: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	var err error
	if cfg.Password, err = password(); err != nil {
		return err
	}
	if logLevel, err = level(); err != nil {
		return err
	}
	for _, c := range strings.Split(codes, ",") {
		if c = strings.TrimSpace(c); c != "" {
			f.RecipientErrorCodes = append(f.RecipientErrorCodes, rox.Code(c))
		}
	}
	cfg.Seed, cfg.CountOnly, cfg.Faults = seed, countOnly, f

	log, err := logging.New(os.Stderr, logLevel, logging.FormatConsole)
	if err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	sim, err := roxsim.New(cfg, log) // adds component=roxsim
	log = log.With().Str("component", "roxd-sim").Logger()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		_ = sim.Close(context.Background())
		return fmt.Errorf("--addr: %w", err)
	}
	var h http.Handler = sim
	if *withPprof {
		mux := http.NewServeMux()
		mux.Handle("/", sim)
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		h = mux
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	base := "http://" + ln.Addr().String()
	fmt.Printf("ROX simulator listening on %s\n", base)
	fmt.Printf("  send:        POST %s%s  (AccountId %s, Username %s)\n", base, roxsim.SendPath, cfg.AccountID, cfg.Username)
	fmt.Printf("  requests:    GET  %s%s\n", base, roxsim.RequestsPath)
	fmt.Printf("  recipients:  GET  %s%s?dest_tn=&text=&limit=\n", base, roxsim.RecipientsPath)
	fmt.Printf("  callbacks:   GET  %s%s\n", base, roxsim.CallbacksPath)
	fmt.Printf("  stats:       GET  %s%s\n", base, roxsim.StatsPath)
	fmt.Printf("  faults:      GET|PUT %s%s\n", base, roxsim.FaultsPath)
	fmt.Printf("  reply:       POST %s%s {\"sms_id\":\"...\",\"text\":\"...\"}\n", base, roxsim.ReplyPath)
	fmt.Printf("  reset:       POST %s%s\n", base, roxsim.ResetPath)
	log.Info().Str("addr", ln.Addr().String()).Interface("faults", sim.Faults()).Msg("roxd sim started")

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		_ = sim.Close(context.Background())
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info().Msg("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Close the simulator first: it releases hung requests, which
	// Shutdown would otherwise wait for.
	serr := sim.Close(sctx)
	if err := srv.Shutdown(sctx); err != nil {
		serr = errors.Join(serr, err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		serr = errors.Join(serr, err)
	}
	st := sim.Stats()
	log.Info().Int64("requests", st.Requests).Int64("recipients", st.Recipients).
		Int64("receipts_sent", st.ReceiptsSent).Int64("forwarded_to_email", st.ForwardedToEmail).Msg("stopped")
	return serr
}
