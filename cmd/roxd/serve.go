package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/redoxygen/roxd/config"
	"github.com/redoxygen/roxd/internal/app"
	"github.com/redoxygen/roxd/internal/logging"
)

func init() {
	register("serve", "run roxd: worker, callbacks receiver and API (configured by environment)", runServe)
	register("dev", "run everything in one process with an embedded Redis and ROX simulator", runDev)
}

func runServe(ctx context.Context, args []string) error {
	cfg, err := config.Load(os.LookupEnv)
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("roxd serve", flag.ContinueOnError)
	cfg.RegisterFlags(fs) // every variable also as a flag, e.g. --roles worker,api
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: roxd serve [flags]\n\nEvery setting is an environment variable (README.md); a flag overrides it:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := cfg.Logger(os.Stderr)
	if err != nil {
		return err
	}
	logging.Install(log) // go-redis and the log package through zerolog
	return app.Run(ctx, cfg, log, app.Options{})
}

func runDev(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("roxd dev", flag.ContinueOnError)
	httpAddr := fs.String("http-addr", app.DevHTTPAddr, "API, /metrics and /monitor (ROXD_HTTP_ADDR wins when set)")
	cbAddr := fs.String("callback-addr", app.DevCallbackAddr, "callback receiver (ROXD_CALLBACK_ADDR wins when set)")
	simAddr := fs.String("sim-addr", app.DevSimAddr, "embedded ROX simulator")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	level, _ := os.LookupEnv("LOG_LEVEL")
	if level == "" {
		level = "info"
	}
	format, _ := os.LookupEnv("LOG_FORMAT")
	if format == "" {
		format = logging.FormatConsole
	}
	log, err := logging.New(os.Stderr, level, format)
	if err != nil {
		return err
	}
	logging.Install(log)
	return app.Dev(ctx, os.LookupEnv, log, app.DevOptions{HTTPAddr: *httpAddr, CallbackAddr: *cbAddr, SimAddr: *simAddr, Out: os.Stdout})
}
