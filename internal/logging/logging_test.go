package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/internal/metrics"
)

func lines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		if err := CheckLine(l); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		var m map[string]any
		_ = json.Unmarshal(l, &m)
		out = append(out, m)
	}
	return out
}

// TestUniqueKeys: whatever keys loggers derived with With() repeat, every
// line written is one JSON object with unique keys, the last value winning.
func TestUniqueKeys(t *testing.T) {
	var buf bytes.Buffer
	l, err := New(&buf, "debug", FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	w := l.With().Str("component", "worker").Logger().With().Str("component", "worker").Logger()
	w.Info().Str("component", "asynq").Str("batch", "b1").Msg("x")
	w.Warn().Int("n", 1).Int("n", 2).Str("message", "shadow").Msg("real")
	w.Error().Str("level", "spoof").Err(fmt.Errorf("e1")).Err(fmt.Errorf("e2")).Msg("")
	l.Info().Str("time", "t").Msg("time twice")
	l.Info().Str("a", "1").Msg("no repeats")
	got := lines(t, &buf)
	if len(got) != 5 {
		t.Fatalf("%d lines", len(got))
	}
	want := []map[string]any{
		{"component": "asynq", "batch": "b1", "message": "x", "level": "info"},
		{"n": 2.0, "message": "real", "level": "warn"},
		{"error": "e2"},
		{"message": "time twice"},
		{"a": "1", "message": "no repeats"},
	}
	for i, w := range want {
		for k, v := range w {
			if got[i][k] != v {
				t.Errorf("line %d: %s = %v, want %v (%v)", i, k, got[i][k], v, got[i])
			}
		}
	}
	// Not JSON: passed on unchanged.
	buf.Reset()
	_, _ = UniqueKeys(&buf).Write([]byte("plain\n"))
	if buf.String() != "plain\n" {
		t.Fatalf("%q", buf.String())
	}
}

// FuzzUniqueKeys: for any fields, a line written is valid JSON with unique
// keys.
func FuzzUniqueKeys(f *testing.F) {
	f.Add("component", "worker", "component", "asynq")
	f.Add("message", "x", "level", "y")
	f.Add("a\"b", "\x00\xff", "a\"b", "")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		var buf bytes.Buffer
		l, _ := New(&buf, "info", FormatJSON)
		d := l.With().Str(k1, v1).Logger()
		d.Info().Str(k2, v2).Str(k1, v2).Msg(v1)
		if err := CheckLine(bytes.TrimSpace(buf.Bytes())); err != nil {
			t.Fatalf("%q: %v", buf.String(), err)
		}
	})
}

func withClock(t *testing.T) *time.Time {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	old := repeats.now
	repeats.now = func() time.Time { return now }
	ConditionChanged()
	t.Cleanup(func() { repeats.now = old; ConditionChanged() })
	return &now
}

// TestRepeatsOncePerChange: a library's repeated condition is written once,
// counted while it repeats, written again (with the count) after a quiet
// spell or a change, and kept apart from other conditions and levels.
func TestRepeatsOncePerChange(t *testing.T) {
	now := withClock(t)
	var buf bytes.Buffer
	l, _ := New(&buf, "debug", FormatJSON)
	a := Asynq(l.With().Str("component", "worker").Logger())
	before := testutil.ToFloat64(metrics.LogRepeats.WithLabelValues(SourceAsynq))
	for i := 0; i < 5537; i++ {
		a.Debug("All queues are empty")
		if i%100 == 0 {
			a.Error(fmt.Sprintf("Dequeue error: dial tcp 127.0.0.1:%d: connection refused", 6000+i))
			a.Warn("All queues are empty") // another level: another condition
		}
		*now = now.Add(3 * time.Millisecond) // 16 s in all
	}
	got := lines(t, &buf)
	count := map[string]int{}
	for _, g := range got {
		count[g["level"].(string)+" "+g["message"].(string)[:10]]++
		if g["component"] != "worker" || g["source"] != SourceAsynq {
			t.Fatalf("line %v: want component worker and source asynq", g)
		}
	}
	if len(got) != 3 || count["debug All queues"] != 1 || count["error Dequeue er"] != 1 || count["warn All queues"] != 1 {
		t.Fatalf("lines %v", count)
	}
	after := testutil.ToFloat64(metrics.LogRepeats.WithLabelValues(SourceAsynq))
	if after-before != 5537+56+56-3 {
		t.Fatalf("suppressed counted %v, want %d", after-before, 5537+56+56-3)
	}
	// After a quiet spell: written again, with how many were left out.
	buf.Reset()
	*now = now.Add(RepeatQuiet)
	a.Debug("All queues are empty")
	got = lines(t, &buf)
	if len(got) != 1 || got[0]["repeats_suppressed"] != 5536.0 {
		t.Fatalf("after quiet: %v", got)
	}
	// After a change: written again at once.
	buf.Reset()
	a.Debug("All queues are empty")
	ConditionChanged()
	a.Debug("All queues are empty")
	if got = lines(t, &buf); len(got) != 1 {
		t.Fatalf("after change: %v", got)
	}
	// Below the logger's level: nothing, and not remembered.
	buf.Reset()
	info, _ := New(&buf, "info", FormatJSON)
	Asynq(info).Debug("only debug")
	if buf.Len() != 0 {
		t.Fatal(buf.String())
	}
}

// TestDegradedFiltersOwnWarnings: while a dependency is down, roxd's own
// repeated warnings and errors are written once per change; info lines and
// other messages are not affected, and nothing is filtered once it is back.
func TestDegradedFiltersOwnWarnings(t *testing.T) {
	withClock(t)
	var buf bytes.Buffer
	l, _ := New(&buf, "info", FormatJSON)
	for i := 0; i < 3; i++ {
		l.Warn().Msg("form batches")
	}
	SetDegraded(true)
	t.Cleanup(func() { SetDegraded(false) })
	for i := 0; i < 10; i++ {
		l.Warn().Err(fmt.Errorf("dial %d", i)).Msg("form batches")
		l.Error().Msg("move due")
		l.Info().Msg("batch sent")
	}
	SetDegraded(false)
	for i := 0; i < 3; i++ {
		l.Warn().Msg("form batches")
	}
	n := map[string]int{}
	for _, g := range lines(t, &buf) {
		n[g["message"].(string)]++
	}
	if n["form batches"] != 3+1+3 || n["move due"] != 1 || n["batch sent"] != 10 {
		t.Fatalf("%v", n)
	}
}

// TestInstallRoutesLibraries: go-redis's pool and the standard log package
// write JSON lines through the process logger, never plain text.
func TestInstallRoutesLibraries(t *testing.T) {
	withClock(t)
	var buf syncBuf
	l, _ := New(&buf, "debug", FormatJSON)
	Install(l)
	t.Cleanup(func() { Install(zerolog.New(io.Discard)); stdlog.SetOutput(io.Discard) })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: the pool fails to dial
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: 0, DialTimeout: 200 * time.Millisecond})
	defer rdb.Close()
	for i := 0; i < 3; i++ {
		_ = rdb.Ping(context.Background()).Err()
	}
	stdlog.Printf("http: TLS handshake error from %s: EOF", addr)
	stdlog.Printf("http: TLS handshake error from %s: EOF", addr)

	buf.mu.Lock()
	defer buf.mu.Unlock()
	got := lines(t, &buf.b)
	src := map[string]int{}
	for _, g := range got {
		src[fmt.Sprint(g["source"])]++
		if strings.HasPrefix(fmt.Sprint(g["message"]), "redis: ") {
			t.Errorf("prefix kept: %v", g)
		}
	}
	if src[SourceGoRedis] != 1 || src[SourceStdlib] != 1 {
		t.Fatalf("lines by source %v:\n%s", src, buf.b.String())
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
