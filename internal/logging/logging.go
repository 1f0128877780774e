// Package logging builds the zerolog logger of a roxd process and routes
// the libraries' logs through it: asynq (Asynq), go-redis and the standard
// library's log package (Install). Every line is one JSON object with unique
// keys (UniqueKeys); the libraries' repeated conditions are logged once per
// change and counted (roxd_log_repeats_suppressed_total). Secrets never
// reach it: callers log ids, counts and results, never request bodies.
package logging

import (
	"context"
	"fmt"
	"io"
	stdlog "log"
	"os"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// Format of log output.
const (
	FormatJSON    = "json"
	FormatConsole = "console"
)

// New returns a logger writing to w at level ("debug", "info", "warn",
// "error") in format (FormatJSON or FormatConsole).
func New(w io.Writer, level, format string) (zerolog.Logger, error) {
	lvl, ok := levels[strings.ToLower(strings.TrimSpace(level))]
	if !ok {
		return zerolog.Nop(), fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	switch format {
	case FormatJSON, "":
		w = UniqueKeys(w)
	case FormatConsole:
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	default:
		return zerolog.Nop(), fmt.Errorf("log format %q: want json or console", format)
	}
	return zerolog.New(w).Level(lvl).Hook(repeatHook{}).With().Timestamp().Logger(), nil
}

// levels are the log levels roxd takes (LOG_LEVEL, --log-level), in any
// case. zerolog.ParseLevel alone also reads trace, panic, fatal, disabled
// and numbers ("-1", "5"): the last three would hide every error line.
var levels = map[string]zerolog.Level{"debug": zerolog.DebugLevel, "info": zerolog.InfoLevel,
	"warn": zerolog.WarnLevel, "error": zerolog.ErrorLevel}

// Default is a JSON info logger on stderr, for code paths that run before
// configuration is read.
func Default() zerolog.Logger {
	return zerolog.New(UniqueKeys(os.Stderr)).Hook(repeatHook{}).With().Timestamp().Logger()
}

// Sources of the libraries' lines (the "source" key of their lines and the
// label of roxd_log_repeats_suppressed_total).
const (
	SourceAsynq   = "asynq"
	SourceGoRedis = "go-redis"
	SourceStdlib  = "stdlib"
)

// lib writes one library line through the repeat filter.
func lib(l zerolog.Logger, source string, level zerolog.Level, msg string) {
	msg = strings.TrimSpace(msg)
	if l.GetLevel() > level {
		return
	}
	ok, n := repeats.allow(source, level.String(), msg)
	if !ok {
		return
	}
	ev := l.WithLevel(level).Str("source", source)
	if n > 0 {
		ev = ev.Int("repeats_suppressed", n)
	}
	ev.Msg(msg)
}

// Asynq adapts a zerolog logger to asynq.Logger. Lines keep l's component
// and get "source":"asynq"; repeated conditions (asynq's "All queues are
// empty", its Redis errors while Redis is down) are logged once per change.
func Asynq(l zerolog.Logger) asynq.Logger { return asynqLogger{l} }

type asynqLogger struct{ l zerolog.Logger }

func (a asynqLogger) Debug(args ...any) {
	lib(a.l, SourceAsynq, zerolog.DebugLevel, fmt.Sprint(args...))
}
func (a asynqLogger) Info(args ...any) { lib(a.l, SourceAsynq, zerolog.InfoLevel, fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any) { lib(a.l, SourceAsynq, zerolog.WarnLevel, fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) {
	lib(a.l, SourceAsynq, zerolog.ErrorLevel, fmt.Sprint(args...))
}
func (a asynqLogger) Fatal(args ...any) {
	a.l.Fatal().Str("source", SourceAsynq).Msg(fmt.Sprint(args...))
}

// Install routes the process-wide loggers of the libraries through l:
// go-redis (redis.SetLogger; its lines are warnings with
// "source":"go-redis", dial failures debug) and the standard library's log package (net/http's
// server errors and the like; warnings with "source":"stdlib"), both
// through the repeat filter. Call it once the process logger is built;
// a later call replaces the earlier.
func Install(l zerolog.Logger) {
	redis.SetLogger(redisLogger{l})
	stdlog.SetFlags(0)
	stdlog.SetPrefix("")
	stdlog.SetOutput(stdWriter{l})
}

// redisLogger implements go-redis's internal logging interface
// (Printf(ctx, format, args...)).
type redisLogger struct{ l zerolog.Logger }

func (r redisLogger) Printf(_ context.Context, format string, v ...any) {
	msg := strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: ")
	level := zerolog.WarnLevel
	if strings.Contains(msg, "failed to dial") {
		// Reachability is roxd's to say, once per change (internal/app's
		// Redis watcher); the pool's dial failures are detail.
		level = zerolog.DebugLevel
	}
	lib(r.l, SourceGoRedis, level, msg)
}

// stdWriter receives the standard log package's lines.
type stdWriter struct{ l zerolog.Logger }

func (s stdWriter) Write(p []byte) (int, error) {
	lib(s.l, SourceStdlib, zerolog.WarnLevel, string(p))
	return len(p), nil
}

// AsynqLevel maps a zerolog level to asynq's.
func AsynqLevel(l zerolog.Level) asynq.LogLevel {
	switch {
	case l <= zerolog.DebugLevel:
		return asynq.DebugLevel
	case l == zerolog.InfoLevel:
		return asynq.InfoLevel
	case l == zerolog.WarnLevel:
		return asynq.WarnLevel
	default:
		return asynq.ErrorLevel
	}
}
