package main

import (
	"io"
	"os"
	"sort"
	"strings"
	"testing"
)

// TestHelpIsNotAnError: `roxd -h`, `roxd help`, `roxd <sub> -h`,
// `roxd <sub> --help` and `roxd help <sub>` exit 0 for every subcommand
// (and every benchmark of `roxd bench`), while an unknown flag is a usage
// error (exit 2).
func TestHelpIsNotAnError(t *testing.T) {
	var names [][]string
	for name := range commands {
		names = append(names, []string{name})
	}
	names = append(names, []string{"bench", "pipeline"}, []string{"bench", "callbacks"})
	sort.Slice(names, func(i, j int) bool {
		return names[i][0]+names[i][len(names[i])-1] < names[j][0]+names[j][len(names[j])-1]
	})
	if len(names) < 10 {
		t.Fatalf("only %d commands registered", len(names))
	}
	for _, top := range [][]string{{"-h"}, {"--help"}, {"help"}} {
		if code := run(top, io.Discard); code != 0 {
			t.Errorf("roxd %v exits %d, want 0", top, code)
		}
	}
	for _, name := range names {
		for _, h := range []string{"-h", "--help", "-help"} {
			args := append(append([]string{}, name...), h)
			if code := run(args, io.Discard); code != 0 {
				t.Errorf("roxd %v exits %d, want 0", args, code)
			}
		}
		args := append(append([]string{}, name...), "--no-such-flag")
		if code := run(args, io.Discard); code != 2 {
			t.Errorf("roxd %v exits %d, want 2", args, code)
		}
		if len(name) == 1 {
			if code := run([]string{"help", name[0]}, io.Discard); code != 0 {
				t.Errorf("roxd help %s exits %d, want 0", name[0], code)
			}
		}
	}
	if code := run([]string{"help", "no-such-command"}, io.Discard); code != 2 {
		t.Errorf("roxd help no-such-command exits %d, want 2", code)
	}
}

// TestHelpShowsNoPassword: `-h` of every subcommand shows the current value
// of each URL it reads ("now ...", or a flag's default taken from the
// environment). A password inside REDIS_URL (also a Sentinel's
// sentinel_password), ROXD_API_URL, ROX_API_URL or ROXD_PUBLIC_URL was shown
// whole, e.g. `roxd tail -h` printed "(now redis://:<password>@host/0)".
func TestHelpShowsNoPassword(t *testing.T) {
	secrets := []string{"redispw", "sentinelpw", "apipw", "roxpw", "publicpw"}
	envs := []map[string]string{
		{
			"REDIS_URL":       "redis://:redispw@127.0.0.1:6379/0",
			"ROXD_API_URL":    "http://bob:apipw@127.0.0.1:8080",
			"ROX_API_URL":     "https://user:roxpw@rox.example.com/smsapi/send",
			"ROXD_PUBLIC_URL": "https://cb:publicpw@cb.example.com",
		},
		{"REDIS_URL": "redis-sentinel://:redispw@10.0.0.1:26379,10.0.0.2:26379/mymaster/0?sentinel_password=sentinelpw"},
		{"REDIS_URL": "redis://:redispw@127.0.0.1:6379/0%zz"}, // does not parse
	}
	var names [][]string
	for name := range commands {
		names = append(names, []string{name})
	}
	for _, b := range []string{"pipeline", "callbacks", "priority", "cluster", "whole"} {
		names = append(names, []string{"bench", b})
	}
	for _, m := range envs {
		withEnv(t, m)
		for _, name := range names {
			args := append(append([]string{}, name...), "-h")
			out := captureStderr(t, func() { run(args, os.Stderr) })
			for _, s := range secrets {
				if strings.Contains(out, s) {
					t.Errorf("roxd %v with %v shows %q:\n%s", args, m, s, out)
				}
			}
		}
	}
}

// captureStderr returns what f writes to os.Stderr (the flag package's
// output). Not for parallel tests.
func captureStderr(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stderr
	os.Stderr = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	defer func() {
		os.Stderr = old
	}()
	f()
	w.Close()
	out := <-done
	r.Close()
	return out
}
