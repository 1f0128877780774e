package main

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redoxygen/roxd/internal/testutil"
	"github.com/redoxygen/roxd/rox/roxsim"
)

const budgetToken = "api-token-0123456789abcdef"

// budgetEnv is the environment of an all-roles `roxd serve` on free ports
// against redisURL, with a simulator as ROX.
func budgetEnv(t *testing.T, redisURL, httpAddr string) []string {
	t.Helper()
	_, simSrv := startSim(t, roxsim.Faults{})
	cb := freeAddr(t)
	return []string{
		"REDIS_URL=" + redisURL, "ROX_API_URL=" + simSrv.URL + "/smsapi/send",
		"ROX_ACCOUNT_ID=" + roxsim.DefaultAccountID, "ROX_USERNAME=" + roxsim.DefaultUsername,
		"ROX_PASSWORD=" + roxsim.DefaultPassword, "ROXD_ROLES=worker,callbacks,api",
		"ROXD_API_TOKEN=" + budgetToken, "ROXD_CALLBACK_TOKEN=callback-token-0123456789",
		"ROXD_HTTP_ADDR=" + httpAddr, "ROXD_CALLBACK_ADDR=" + cb, "ROXD_PUBLIC_URL=http://" + cb,
		"ROXD_KEY_PREFIX=" + testutil.Name("budget"), "ROXD_QUEUE=" + testutil.Name("q"),
		"ROXD_SHUTDOWN_TIMEOUT=10s", "ROXD_API_TIMEOUT=3s", "ROXD_CALLBACK_DRAIN=1s",
		"ROXD_SPOOL_DIR=" + t.TempDir(), "ROXD_ALLOW_VOLATILE_REDIS=true", "LOG_LEVEL=warn",
	}
}

// timed runs an HTTP request with a client that gives up after limit and
// returns the status (0 on a transport error) and how long it took.
func timed(t *testing.T, method, url, body string, limit time.Duration) (int, time.Duration) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+budgetToken)
	req.Header.Set("Content-Type", "application/json")
	began := time.Now()
	resp, err := (&http.Client{Timeout: limit}).Do(req)
	took := time.Since(began)
	if err != nil {
		t.Errorf("%s %s: no answer within %s: %v", method, url, limit, err)
		return 0, took
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, took
}

// TestHungRedisKeepsBudgets is issue 8 fault 7: with the redis-server
// stopped (SIGSTOP: connections open, nothing answered) POST /v1/messages
// answers 503 within ROXD_API_TIMEOUT, /readyz answers 503 within its 1 s
// budget, and SIGTERM ends the process within ROXD_SHUTDOWN_TIMEOUT.
func TestHungRedisKeepsBudgets(t *testing.T) {
	srv := testutil.NewServer(t)
	httpAddr := freeAddr(t)
	c := startServe(t, budgetEnv(t, srv.URL(), httpAddr), httpAddr)
	base := "http://" + httpAddr
	msg := `{"to":"+61400000081","text":"budget"}`
	testutil.Eventually(t, 30*time.Second, func() bool {
		code, _ := timed(t, http.MethodGet, base+"/readyz", "", 10*time.Second)
		return code == http.StatusOK
	}, "roxd never became ready")
	if code, _ := timed(t, http.MethodPost, base+"/v1/messages", msg, 10*time.Second); code != http.StatusAccepted {
		t.Fatalf("POST with Redis up: %d, want 202", code)
	}

	srv.Pause()
	t.Cleanup(srv.Resume)
	const margin = 1500 * time.Millisecond // scheduling under `stress --cpu 2`
	for i := 0; i < 3; i++ {               // the first one, and ones that find the pool busy
		code, took := timed(t, http.MethodPost, base+"/v1/messages", msg, 30*time.Second)
		t.Logf("POST /v1/messages with Redis hung: %d after %s", code, took.Round(time.Millisecond))
		if code != http.StatusServiceUnavailable {
			t.Errorf("POST with Redis hung: %d, want 503", code)
		}
		if took > 3*time.Second+margin {
			t.Errorf("POST with Redis hung took %s, budget ROXD_API_TIMEOUT=3s", took)
		}
		code, took = timed(t, http.MethodGet, base+"/readyz", "", 30*time.Second)
		t.Logf("GET /readyz with Redis hung: %d after %s", code, took.Round(time.Millisecond))
		if code != http.StatusServiceUnavailable {
			t.Errorf("readyz with Redis hung: %d, want 503", code)
		}
		if took > time.Second+margin {
			t.Errorf("readyz with Redis hung took %s, budget 1s", took)
		}
	}
	took, err := c.sigterm(40 * time.Second)
	t.Logf("SIGTERM with Redis hung: exited after %s (%v)", took.Round(time.Millisecond), err)
	if took > 10*time.Second+3*time.Second {
		t.Errorf("SIGTERM with Redis hung took %s, ROXD_SHUTDOWN_TIMEOUT=10s", took)
	}
}

// TestUnreachableSentinelSIGTERM: with REDIS_URL naming Sentinels that do
// not answer (a closed port, and a port that accepts but never answers),
// roxd says so once and waits; SIGTERM still ends the process within
// ROXD_SHUTDOWN_TIMEOUT.
func TestUnreachableSentinelSIGTERM(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() {
		silent.Close()
		for _, c := range held {
			c.Close()
		}
	})
	for _, tc := range []struct{ name, sentinels string }{
		{"closed port", freeAddr(t)},
		{"silent port", silent.Addr().String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			httpAddr := freeAddr(t)
			// Start-up waits for Redis (saying once that it is unreachable)
			// before it serves anything: nothing to probe yet, but SIGTERM
			// during that wait must keep its budget.
			c := launchServe(t, budgetEnv(t, "redis-sentinel://"+tc.sentinels+"/mymaster/0", httpAddr), httpAddr)
			testutil.Eventually(t, 30*time.Second, func() bool {
				return strings.Contains(c.stderr.String(), "redis unreachable at start")
			}, "roxd serve never said that Redis is unreachable")
			took, err := c.sigterm(60 * time.Second)
			t.Logf("SIGTERM: exited after %s (%v)", took.Round(time.Millisecond), err)
			if took > 13*time.Second {
				t.Errorf("SIGTERM with Sentinels unreachable took %s, ROXD_SHUTDOWN_TIMEOUT=10s", took)
			}
		})
	}
}
