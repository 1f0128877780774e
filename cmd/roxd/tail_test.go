package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/internal/testutil"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestTailPrintsEntriesAsTheyArrive(t *testing.T) {
	rdb := testutil.Redis(t)
	ctx := context.Background()
	stream := testutil.Name("receipts")
	t.Cleanup(func() { rdb.Del(ctx, stream) })
	t.Setenv("ROXD_RECEIPTS_STREAM", stream)
	url := testutil.RedisURL(t)
	add := func(sms string) {
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"kind", "receipt", "sms_id", sms, "status", "delivered"}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	add("old")

	// --from 0 reads the whole stream.
	var out, errOut syncBuffer
	if err := tail(ctx, []string{"receipts", "--redis", url, "--from", "0", "--count", "1"}, &out, &errOut); err != nil {
		t.Fatalf("tail --from 0: %v (%s)", err, errOut.String())
	}
	if !strings.Contains(out.String(), `"sms_id":"old"`) {
		t.Errorf("--from 0 printed %q", out.String())
	}

	// Default "$": only what arrives after the start.
	out, errOut = syncBuffer{}, syncBuffer{}
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- tail(tctx, []string{"--redis", url, "--count", "2", "receipts"}, &out, &errOut) }()
	testutil.Eventually(t, 10*time.Second, func() bool { return strings.Contains(errOut.String(), "roxd tail: "+stream) }, "tail did not start")
	add("new1")
	add("new2")
	if err := <-done; err != nil {
		t.Fatalf("tail: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("printed %d lines, want 2: %q", len(lines), out.String())
	}
	for i, want := range []string{"new1", "new2"} {
		var m map[string]string
		if err := json.Unmarshal([]byte(lines[i]), &m); err != nil {
			t.Fatalf("line %d is not JSON: %v", i, err)
		}
		if m["sms_id"] != want || m["kind"] != "receipt" || m["id"] == "" {
			t.Errorf("line %d: %v, want sms_id %s with an id", i, m, want)
		}
	}
}

func TestTailUsage(t *testing.T) {
	var out, errOut syncBuffer
	for _, args := range [][]string{nil, {"other"}, {"receipts", "extra"}} {
		if err := tail(context.Background(), args, &out, &errOut); !errors.Is(err, errUsage) {
			t.Errorf("tail %v: %v, want errUsage", args, err)
		}
	}
}

// TestTailRedisURL: `roxd tail` reads REDIS_URL in every form the README
// lists, and never prints its password. It parsed the URL with go-redis's
// ParseURL: a malformed URL's error quoted it whole, password included
// (parse "redis://:hunter2secret@...": invalid port), and the Sentinel and
// Cluster forms were refused ("invalid URL scheme: redis-sentinel").
func TestTailRedisURL(t *testing.T) {
	const secret = "hunter2secret"
	for _, u := range []string{
		"redis://:" + secret + "@127.0.0.1:port/0",
		"redis://:" + secret + "@127.0.0.1:6379/0%",
		"redis://:" + secret + "@[::1:6379/0",
		"redis://:" + secret + "@127.0.0.1:6379/abc",
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var out, errOut syncBuffer
		err := tail(ctx, []string{"receipts", "--redis", u, "--count", "1"}, &out, &errOut)
		cancel()
		if err == nil || strings.Contains(err.Error(), secret) || strings.Contains(errOut.String(), secret) {
			t.Errorf("%s: error %v, stderr %q: want an error without the password", u, err, errOut.String())
		}
	}
	for _, u := range []string{"redis-sentinel://:" + secret + "@127.0.0.1:1/mymaster/0", "redis-cluster://:" + secret + "@127.0.0.1:1"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var out, errOut syncBuffer
		err := tail(ctx, []string{"receipts", "--redis", u, "--count", "1"}, &out, &errOut)
		cancel()
		if err != nil && (strings.Contains(err.Error(), "scheme") || strings.Contains(err.Error(), secret)) {
			t.Errorf("%s: %v: want the form accepted (and a connection error at most)", u, err)
		}
	}
}
