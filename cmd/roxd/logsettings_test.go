package main

import (
	"context"
	"strings"
	"testing"
)

// TestLogSettingsNamed: a bad LOG_LEVEL or LOG_FORMAT (environment or flag)
// stops roxd serve and roxd dev with an error naming that one variable,
// before anything starts, and roxd serve reports the other bad variables
// with it (the logger used to be built first: "LOG_LEVEL/LOG_FORMAT: ..."
// alone from serve, "log format ..." naming nothing from dev).
func TestLogSettingsNamed(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // nothing may start
	for _, tt := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{"LOG_FORMAT": "xml"}, nil, "LOG_FORMAT: "},
		{map[string]string{"LOG_LEVEL": "loud"}, nil, "LOG_LEVEL: "},
		{nil, []string{"--log-level", "loud"}, "LOG_LEVEL: "},
		{nil, []string{"--log-format", "xml"}, "LOG_FORMAT: "},
	} {
		other := map[string]string{"LOG_LEVEL: ": "LOG_FORMAT", "LOG_FORMAT: ": "LOG_LEVEL"}[tt.want]
		for name, run := range map[string]func(context.Context, []string) error{"serve": runServe, "dev": runDev} {
			env := map[string]string{"ROXD_MAX_ATTEMPTS": "0"}
			for k, v := range tt.env {
				env[k] = v
			}
			withEnv(t, env)
			err := run(ctx, tt.args)
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), other) {
				t.Errorf("roxd %s %v with %v: %v; want an error naming %q only", name, tt.args, tt.env, err, strings.TrimSuffix(tt.want, ": "))
				continue
			}
			if name == "serve" && !strings.Contains(err.Error(), "ROXD_MAX_ATTEMPTS") {
				t.Errorf("roxd serve %v with %v: %v; want ROXD_MAX_ATTEMPTS reported too", tt.args, tt.env, err)
			}
		}
	}
}
