package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// The benchmarks read REDIS_URL (-redis) as roxd tail does: a malformed
// URL's error never quotes it, password included (go-redis's ParseURL
// error did: parse "redis://:<password>@...").
func TestBenchRedisURLPasswordNotShown(t *testing.T) {
	const secret = "hunter2secret"
	benches := map[string]func(ctx context.Context, args []string) error{
		"pipeline":  func(ctx context.Context, args []string) error { return benchPipeline(ctx, args, io.Discard) },
		"callbacks": benchCallbacks,
		"priority":  func(ctx context.Context, args []string) error { return benchPriority(ctx, args, io.Discard) },
	}
	for name, run := range benches {
		for _, u := range []string{
			"redis://:" + secret + "@127.0.0.1:port/0",
			"redis://:" + secret + "@127.0.0.1:6379/0%",
			"redis://:" + secret + "@127.0.0.1:6379/abc",
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := run(ctx, []string{"-redis", u})
			cancel()
			if err == nil || strings.Contains(err.Error(), secret) {
				t.Errorf("bench %s, %s: error %v: want an error without the password", name, u, err)
			}
		}
	}
}
