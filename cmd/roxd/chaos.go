package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/redoxygen/roxd/internal/chaos"
	"github.com/redoxygen/roxd/internal/logging"
)

func init() {
	register("chaos", "run roxd under crashes and Redis faults, then count lost, doubled and missing", runChaos)
}

// errChaosFound: the run found messages lost, sent twice, or receipts
// missing (exit status 1).
var errChaosFound = errors.New("the run found failures (see the counts above)")

// multiFlag collects a repeated flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func runChaos(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("roxd chaos", flag.ContinueOnError)
	var (
		cfg    chaos.Config
		faults string
		env    multiFlag
	)
	fs.IntVar(&cfg.Messages, "messages", chaos.DefaultMessages, "messages offered through POST /v1/messages/batch")
	fs.IntVar(&cfg.Rate, "rate", chaos.DefaultRate, "messages offered per second")
	fs.IntVar(&cfg.Batch, "batch", chaos.DefaultBatch, "messages per API request")
	fs.StringVar(&faults, "faults", strings.Join(chaos.AllFaults, ","),
		"comma list of faults: "+strings.Join(chaos.AllFaults, ", ")+", or failover (alone or with kill, term, allroles); \"none\" for a run without faults")
	fs.IntVar(&cfg.Kills, "kills", chaos.DefaultKills, "SIGKILLs of the worker (fault kill)")
	fs.IntVar(&cfg.Terms, "terms", chaos.DefaultTerms, "SIGTERMs of the worker (fault term)")
	fs.IntVar(&cfg.Failovers, "failovers", chaos.DefaultFailovers, "SENTINEL FAILOVERs (fault failover: the run uses a Sentinel group, master, replica and three sentinels, instead of one Redis)")
	fs.DurationVar(&cfg.Latency, "latency", chaos.DefaultLatency, "ROX answer latency (simulator)")
	fs.DurationVar(&cfg.Jitter, "jitter", chaos.DefaultJitter, "random 0..jitter added to the latency")
	fs.DurationVar(&cfg.ReceiptDelay, "receipt-delay", chaos.DefaultReceiptDelay, "time from ROX accepting an SMS to its receipt")
	fs.DurationVar(&cfg.WriteBlock, "write-block", chaos.DefaultWriteBlock, "how long Redis refuses writes (faults oom, readonly)")
	fs.DurationVar(&cfg.Settle, "settle", chaos.DefaultSettle, "longest wait for the work to finish after the faults")
	fs.Var(&env, "env", "KEY=VALUE added to the environment of every roxd serve (repeatable), e.g. ROXD_AMBIGUOUS=resend")
	fs.IntVar(&cfg.InjectDuplicates, "inject-duplicates", 0, "self-check: send this many accepted SMS once more; the count must show them")
	fs.Uint64Var(&cfg.Seed, "seed", 0, "random seed of the fault schedule and the simulator (0: random)")
	fs.BoolVar(&cfg.Keep, "keep", false, "keep the temporary directory (child logs, AOF)")
	reportOnly := fs.Bool("report-only", false, "exit 0 even when the counts are not zero")
	asJSON := fs.Bool("json", false, "print the counts as one JSON object")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", logging.FormatJSON, "json, or console for people")
	redisServer := fs.String("redis-server", "redis-server", "redis-server executable")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: roxd chaos [flags]\n\nStarts redis-server, the ROX simulator and roxd (api, worker, callbacks) as child processes on\nloopback, injects the faults while the messages flow, waits for the work to finish and prints the counts.\nExit status 1 when a count is not zero (unless --report-only).\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "roxd chaos: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	if err := chaosPositive(fs); err != nil {
		return err
	}
	cfg.Faults = []string{}
	if faults != "none" {
		for _, f := range strings.Split(faults, ",") {
			if f = strings.TrimSpace(f); f != "" {
				cfg.Faults = append(cfg.Faults, f)
			}
		}
	}
	cfg.Env, cfg.RedisServer = env, *redisServer
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("own executable: %w", err)
	}
	cfg.Binary = bin
	log, err := logging.New(os.Stderr, *logLevel, *logFormat)
	if err != nil {
		return fmt.Errorf("--log-level/--log-format: %w", err)
	}
	cfg.Log = log.With().Str("component", "chaos").Logger()

	t, err := chaos.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		b, _ := json.Marshal(t)
		fmt.Println(string(b))
	} else {
		t.Print(os.Stdout)
	}
	if t.Bad() && !*reportOnly {
		return errChaosFound
	}
	return nil
}

// chaosPositiveFlags are the flags chaos.Config reads 0 of as "the
// default": given 0, the run would quietly use the default instead.
var chaosPositiveFlags = map[string]bool{"messages": true, "batch": true, "rate": true, "failovers": true,
	"latency": true, "jitter": true, "receipt-delay": true, "write-block": true, "settle": true}

// chaosPositive refuses one of chaosPositiveFlags given 0 or less, naming
// it (a usage error).
func chaosPositive(fs *flag.FlagSet) error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		g, ok := f.Value.(flag.Getter)
		if err != nil || !chaosPositiveFlags[f.Name] || !ok {
			return
		}
		bad := false
		switch v := g.Get().(type) {
		case int:
			bad = v < 1
		case time.Duration:
			bad = v <= 0
		}
		if bad {
			err = fmt.Errorf("%w: --%s %s: want more than 0 (leave it out for the default, %s)",
				errUsage, f.Name, f.Value, f.DefValue)
		}
	})
	return err
}
