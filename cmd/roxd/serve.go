package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"strings"

	"github.com/redoxygen/roxd/config"
	"github.com/redoxygen/roxd/internal/app"
	"github.com/redoxygen/roxd/internal/logging"
)

func init() {
	register("serve", "run roxd: worker, callbacks receiver and API (configured by environment)", runServe)
	register("dev", "run everything in one process with an embedded Redis and ROX simulator", runDev)
}

// DefaultGCPercent is the Go GC target `roxd serve` runs with when GOGC
// is not set: at 200 the all-roles whole-life bench cost 78.8 µs of roxd
// CPU per message against 83.4 at Go's default 100 (8 alternated runs,
// each lower), for 96-105 MiB of peak RSS instead of 76-80 MiB
// (docs/BENCHMARKS.md, "Allocations, callbacks decode and GOGC").
const DefaultGCPercent = 200

// defaultGC sets DefaultGCPercent unless GOGC is set (then Go has read it).
func defaultGC(env func(string) (string, bool)) {
	if _, set := env("GOGC"); !set {
		debug.SetGCPercent(DefaultGCPercent)
	}
}

func runServe(ctx context.Context, args []string) error {
	defaultGC(os.LookupEnv) // the runtime read GOGC from the real environment
	cfg, err := serveConfig(args, environ)
	if err != nil {
		return err
	}
	log, err := cfg.Logger(os.Stderr)
	if err != nil {
		if verr := cfg.Validate(); verr != nil {
			return verr // every bad variable, the log settings' among them
		}
		return err
	}
	logging.Install(log) // go-redis and the log package through zerolog
	return app.Run(ctx, cfg, log, app.Options{})
}

// serveConfig is the configuration of `roxd serve args`: every variable
// also as a flag (config.Flags: flag, then environment, then default).
func serveConfig(args []string, env func(string) (string, bool)) (config.Config, error) {
	fs := flag.NewFlagSet("roxd serve", flag.ContinueOnError)
	lookup := config.Flags(fs, env) // every variable also as a flag, e.g. --roles worker,api
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: roxd serve [flags]\n\nEvery setting is an environment variable (README.md); a flag given wins over it:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return config.Config{}, err
	}
	if fs.NArg() > 0 {
		return config.Config{}, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return config.Load(lookup)
}

func runDev(ctx context.Context, args []string) error {
	lookup, opts, err := devSettings(args, environ)
	if err != nil {
		return err
	}
	level, _ := lookup("LOG_LEVEL")
	if level = strings.TrimSpace(level); level == "" {
		level = "info"
	}
	format, _ := lookup("LOG_FORMAT")
	if format = strings.TrimSpace(format); format == "" {
		format = logging.FormatConsole
	}
	if err := config.CheckLog(level, format); err != nil {
		return err // naming LOG_LEVEL or LOG_FORMAT (or its flag's variable)
	}
	log, err := logging.New(os.Stderr, level, format)
	if err != nil {
		return err
	}
	logging.Install(log)
	opts.Out = os.Stdout
	return app.Dev(ctx, lookup, log, opts)
}

// devSettings parses `roxd dev args`: the same flags as `roxd serve`, with
// the same rule (a flag given wins over the environment, which wins over
// the default; dev's own defaults, such as 127.0.0.1:8080, apply only to
// what neither sets), and -sim-addr.
func devSettings(args []string, env func(string) (string, bool)) (func(string) (string, bool), app.DevOptions, error) {
	fs := flag.NewFlagSet("roxd dev", flag.ContinueOnError)
	lookup := config.Flags(fs, env)
	simAddr := fs.String("sim-addr", app.DevSimAddr, "embedded ROX simulator")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: roxd dev [flags]\n\nLike roxd serve, with an embedded Redis (unless REDIS_URL is set) and ROX simulator.\n"+
			"A flag given wins over the environment; without either, dev listens on %s (API) and %s (callbacks).\n", app.DevHTTPAddr, app.DevCallbackAddr)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return nil, app.DevOptions{}, err
	}
	if fs.NArg() > 0 {
		return nil, app.DevOptions{}, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return lookup, app.DevOptions{HTTPAddr: app.DevHTTPAddr, CallbackAddr: app.DevCallbackAddr, SimAddr: *simAddr}, nil
}
