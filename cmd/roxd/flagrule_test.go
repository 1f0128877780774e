package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/config"
	"github.com/redoxygen/roxd/internal/testutil"
)

func withEnv(t *testing.T, m map[string]string) {
	t.Helper()
	old := environ
	environ = func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	t.Cleanup(func() { environ = old })
}

// kindOf is the Go kind of the Config field of variable name.
func kindOf(t *testing.T, name string) reflect.Type {
	ty := reflect.TypeOf(config.Config{})
	for i := 0; i < ty.NumField(); i++ {
		if n, _, _ := strings.Cut(ty.Field(i).Tag.Get("env"), ","); strings.TrimSpace(n) == name {
			return ty.Field(i).Type
		}
	}
	t.Fatalf("no field for %s", name)
	return nil
}

// twoValues gives two different valid values of a variable's type.
func twoValues(t *testing.T, v config.Var) (string, string) {
	typ := kindOf(t, v.Name)
	switch {
	case v.Min != "" && v.Max != "":
		return v.Max, v.Min
	case typ == reflect.TypeOf(time.Duration(0)):
		return "2s", "3s"
	case typ.Kind() == reflect.Bool:
		return "true", "false"
	case typ.Kind() == reflect.Int || typ.Kind() == reflect.Int64 || typ.Kind() == reflect.Uint:
		return "2", "3"
	case typ.Kind() == reflect.Float64:
		return "0.5", "0.25"
	case v.Name == "ROXD_PERMANENT_CODES":
		return "2015", "2016,2017"
	case v.Name == "ROXD_ROLES":
		return "api", "worker,callbacks"
	}
	return "value-a", "value-b"
}

// TestFlagBeatsEnvironmentEverySubcommand: for `roxd serve` and `roxd dev`,
// every variable given as a flag wins over the same variable in the
// environment, which wins over the default; for dev, that includes
// --http-addr against ROXD_HTTP_ADDR.
func TestFlagBeatsEnvironmentEverySubcommand(t *testing.T) {
	resolve := map[string]func(args []string, env func(string) (string, bool)) (config.Config, error){
		"serve": serveConfig,
		"dev": func(args []string, env func(string) (string, bool)) (config.Config, error) {
			lookup, _, err := devSettings(args, env)
			if err != nil {
				return config.Config{}, err
			}
			return config.Load(lookup)
		},
	}
	for sub, res := range resolve {
		n := 0
		for _, v := range config.Table() {
			if v.Secret {
				continue
			}
			n++
			envVal, flagVal := twoValues(t, v)
			t.Run(sub+"/"+v.Name, func(t *testing.T) {
				env := map[string]string{v.Name: envVal}
				lookup := func(k string) (string, bool) { s, ok := env[k]; return s, ok }
				got, err := res([]string{"--" + config.FlagName(v.Name) + "=" + flagVal}, lookup)
				if err != nil {
					t.Fatal(err)
				}
				want, err := config.Load(func(k string) (string, bool) {
					if k == v.Name {
						return flagVal, true
					}
					return "", false
				})
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("flag %s=%s with env %s=%s:\n got %v\nwant %v", config.FlagName(v.Name), flagVal, v.Name, envVal, got, want)
				}
				// Without the flag, the environment wins over the default.
				got, err = res(nil, lookup)
				if err != nil {
					t.Fatal(err)
				}
				want, _ = config.Load(lookup)
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("env only: got %v, want %v", got, want)
				}
				def, _ := config.Load(func(string) (string, bool) { return "", false })
				if reflect.DeepEqual(got, def) {
					t.Fatalf("env %s=%s changed nothing", v.Name, envVal)
				}
			})
		}
		if n < 30 {
			t.Fatalf("%s: only %d variables", sub, n)
		}
	}
}

// TestAPICommandsFlagBeatsEnvironment: for every command that talks to the
// API, --api wins over ROXD_API_URL and --token over ROXD_API_TOKEN; the
// variables win over the defaults; an empty ROXD_API_URL is an error naming
// it.
func TestAPICommandsFlagBeatsEnvironment(t *testing.T) {
	var mu sync.Mutex
	var tokens []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		tokens = append(tokens, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"m1","status":"queued","numbers":[],"next_cursor":0}`)
	}))
	defer srv.Close()
	cmds := map[string]struct {
		run  func(context.Context, []string, io.Writer, io.Writer) error
		args []string
	}{
		"send":     {runSend, []string{"--to", "+61412345678", "--text", "hi"}},
		"status":   {runStatus, []string{"m1"}},
		"cancel":   {runCancel, []string{"m1"}},
		"suppress": {runSuppress, []string{"check", "+61412345678"}},
	}
	if len(cmds) != 4 {
		t.Fatal("commands")
	}
	last := func() string { mu.Lock(); defer mu.Unlock(); return tokens[len(tokens)-1] }
	for name, c := range cmds {
		t.Run(name, func(t *testing.T) {
			// Flags win over the environment.
			withEnv(t, map[string]string{envAPIURL: "http://127.0.0.1:1", envAPIToken: "env-token"})
			args := append(append([]string{}, c.args...), "--api", srv.URL, "--token", "flag-token")
			if err := c.run(context.Background(), args, io.Discard, io.Discard); err != nil {
				t.Fatalf("with flags: %v", err)
			}
			if last() != "Bearer flag-token" {
				t.Fatalf("token sent %q, want the flag's", last())
			}
			// The environment wins over the defaults.
			withEnv(t, map[string]string{envAPIURL: srv.URL, envAPIToken: "env-token"})
			if err := c.run(context.Background(), c.args, io.Discard, io.Discard); err != nil {
				t.Fatalf("with env: %v", err)
			}
			if last() != "Bearer env-token" {
				t.Fatalf("token sent %q, want the environment's", last())
			}
			// Empty is not the default.
			withEnv(t, map[string]string{envAPIURL: "", envAPIToken: "env-token"})
			err := c.run(context.Background(), c.args, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), envAPIURL) {
				t.Fatalf("empty %s: %v", envAPIURL, err)
			}
		})
	}
}

// TestRedisCommandsFlagBeatsEnvironment: tail's --redis wins over
// REDIS_URL and --receipts-stream over ROXD_RECEIPTS_STREAM; an empty
// REDIS_URL is an error naming it for tail and both benchmarks.
func TestRedisCommandsFlagBeatsEnvironment(t *testing.T) {
	rdb := testutil.Redis(t)
	stream := testutil.Name("tail")
	ctx := context.Background()
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: map[string]any{"k": "v"}}).Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Del(ctx, stream) })
	withEnv(t, map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0", envReceiptsStream: "no-such-stream"})
	var out strings.Builder
	err := tail(ctx, []string{"receipts", "--redis", testutil.RedisURL(t), "--receipts-stream", stream, "--from", "0", "--count", "1"}, &out, io.Discard)
	if err != nil || !strings.Contains(out.String(), `"k":"v"`) {
		t.Fatalf("tail with flags: %v %q", err, out.String())
	}
	withEnv(t, map[string]string{"REDIS_URL": testutil.RedisURL(t), envReceiptsStream: stream})
	out.Reset()
	if err := tail(ctx, []string{"receipts", "--from", "0", "--count", "1"}, &out, io.Discard); err != nil || !strings.Contains(out.String(), `"k":"v"`) {
		t.Fatalf("tail with env: %v %q", err, out.String())
	}
	withEnv(t, map[string]string{"REDIS_URL": " "})
	for name, run := range map[string]func() error{
		"tail":            func() error { return tail(ctx, []string{"receipts", "--count", "1"}, io.Discard, io.Discard) },
		"bench pipeline":  func() error { return benchPipeline(ctx, []string{"-mode", "bare", "-bare-n", "1"}, io.Discard) },
		"bench callbacks": func() error { return benchCallbacks(ctx, []string{"-count", "1", "-warmup", "0"}) },
		"bench cluster":   func() error { return benchCluster(ctx, []string{"-n", "1"}, io.Discard) },
		"tail empty flag": func() error { return tail(ctx, []string{"receipts", "--redis="}, io.Discard, io.Discard) },
	} {
		err := run()
		if err == nil || !strings.Contains(err.Error(), "REDIS_URL") {
			t.Errorf("%s with REDIS_URL blank: %v", name, err)
		}
	}
}

// TestSimFlagBeatsEnvironment: roxd sim's --log-level wins over LOG_LEVEL.
func TestSimFlagBeatsEnvironment(t *testing.T) {
	withEnv(t, map[string]string{"LOG_LEVEL": "verbose"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // start, then stop at once
	if err := runSim(ctx, []string{"--addr", "127.0.0.1:0", "--log-level", "error"}); err != nil {
		t.Fatalf("flag did not win: %v", err)
	}
	err := runSim(ctx, []string{"--addr", "127.0.0.1:0"})
	if err == nil || !strings.Contains(err.Error(), "log") {
		t.Fatalf("LOG_LEVEL=verbose without the flag: %v", err)
	}
}

// TestDevAndServeFlagWinsOnTheWire is the example on the real
// binary: `roxd dev --http-addr X` and `roxd serve --http-addr X` listen on
// X although ROXD_HTTP_ADDR names another address.
func TestDevAndServeFlagWinsOnTheWire(t *testing.T) {
	bin := buildRoxd(t)
	redisURL := testutil.RedisURL(t)
	for _, sub := range []string{"dev", "serve"} {
		t.Run(sub, func(t *testing.T) {
			flagAddr, envAddr := freeAddr(t), freeAddr(t)
			args := []string{sub, "--http-addr", flagAddr, "--callback-addr", "127.0.0.1:0"}
			env := []string{"ROXD_HTTP_ADDR=" + envAddr, "ROXD_SPOOL_DIR=" + t.TempDir(), "LOG_LEVEL=warn",
				"ROXD_API_TOKEN=api-token-0123456789", "ROXD_CALLBACK_TOKEN=callback-token-0123456789"}
			if sub == "dev" {
				args = append(args, "--sim-addr", "127.0.0.1:0")
			} else {
				env = append(env, "REDIS_URL="+redisURL, "ROXD_ROLES=api", "ROXD_KEY_PREFIX="+testutil.Name("flag"))
			}
			cmd := exec.Command(bin, args...)
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "REDIS_URL=") && !strings.HasPrefix(kv, "ROXD_") {
					cmd.Env = append(cmd.Env, kv)
				}
			}
			cmd.Env = append(cmd.Env, env...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
			testutil.Eventually(t, 60*time.Second, func() bool {
				resp, err := http.Get("http://" + flagAddr + "/healthz")
				if err != nil {
					return false
				}
				resp.Body.Close()
				return resp.StatusCode == http.StatusOK
			}, "roxd %s does not listen on the flag's address %s", sub, flagAddr)
			if resp, err := http.Get("http://" + envAddr + "/healthz"); err == nil {
				resp.Body.Close()
				t.Fatalf("roxd %s also listens on the environment's address", sub)
			}
		})
	}
}
