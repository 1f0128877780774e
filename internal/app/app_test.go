package app

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/config"
	"github.com/redoxygen/roxd/internal/testutil"
)

func mapLookup(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// startDev runs Dev on free ports with an embedded Redis and returns what its
// banner printed. Dev is stopped, and must return nil, when the test ends.
func startDev(t *testing.T, env map[string]string) DevInfo {
	t.Helper()
	return startDevHook(t, env, nil)
}

// startDevHook is startDev with hook added to roxd's Redis client.
func startDevHook(t *testing.T, env map[string]string, hook redis.Hook) DevInfo {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	infoc := make(chan DevInfo, 1)
	done := make(chan error, 1)
	var banner strings.Builder
	go func() {
		done <- Dev(ctx, mapLookup(env), zerolog.Nop(), DevOptions{
			HTTPAddr: "127.0.0.1:0", CallbackAddr: "127.0.0.1:0", SimAddr: "127.0.0.1:0",
			Out: &banner, Ready: func(i DevInfo) { infoc <- i }, RedisHook: hook,
		})
	}()
	var info DevInfo
	select {
	case info = <-infoc:
	case err := <-done:
		t.Fatalf("Dev returned before it was ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("Dev not ready after 30s")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Dev returned %v on shutdown, want nil", err)
			}
		case <-time.After(40 * time.Second):
			t.Error("Dev did not stop within 40s of cancel")
		}
	})
	if !strings.Contains(banner.String(), info.Curl) || !strings.Contains(banner.String(), info.Token) {
		t.Fatalf("banner does not show the curl and the token:\n%s", banner.String())
	}
	return info
}

// TestDevFirstSMS drives exactly the README's first-five-minutes path: the
// curl printed by `roxd dev` sends an SMS that reaches the simulator, and its
// receipt appears on rox:receipts carrying the message id and metadata.
func TestDevFirstSMS(t *testing.T) {
	info := startDev(t, map[string]string{})

	var body []byte
	if _, err := exec.LookPath("curl"); err == nil {
		out, err := exec.Command("sh", "-c", info.Curl).Output()
		if err != nil {
			t.Fatalf("printed curl failed: %v\n%s", err, out)
		}
		body = out
	} else {
		t.Log("curl not on PATH: sending the same request from Go")
		req, _ := http.NewRequest(http.MethodPost, info.APIURL,
			strings.NewReader(`{"to":"`+DevExampleNumber+`","text":"Hello from roxd","metadata":{"order":"42"}}`))
		req.Header.Set("Authorization", "Bearer "+info.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	var accepted struct{ ID, Status string }
	if err := json.Unmarshal(body, &accepted); err != nil || accepted.ID == "" || accepted.Status != "queued" {
		t.Fatalf("curl answer %q: want an id and status queued (%v)", body, err)
	}

	testutil.Eventually(t, 20*time.Second, func() bool {
		for _, r := range info.Sim.Recipients() {
			if r.DestTn == DevExampleNumber && r.Text == "Hello from roxd" {
				return true
			}
		}
		return false
	}, "the simulator never received the SMS")

	opt, err := redis.ParseURL(info.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	var entry map[string]any
	testutil.Eventually(t, 20*time.Second, func() bool {
		msgs, err := rdb.XRange(context.Background(), "rox:receipts", "-", "+").Result()
		if err != nil {
			return false
		}
		for _, m := range msgs {
			if m.Values["message_id"] == accepted.ID {
				entry = m.Values
				return true
			}
		}
		return false
	}, "no receipt for %s on rox:receipts", accepted.ID)
	if entry["status"] != "delivered" || entry["metadata"] != `{"order":"42"}` {
		t.Fatalf("receipt entry %v: want status delivered and the producer's metadata", entry)
	}

	// The API shows the message delivered, with its history.
	var status struct {
		Status  string
		History []struct{ Status string }
	}
	getJSON(t, info.APIURL+"/"+accepted.ID, info.Token, &status)
	if status.Status != "delivered" || len(status.History) < 3 {
		t.Fatalf("status %+v: want delivered with queued, submitted, delivered history", status)
	}

	checkMetrics(t, strings.TrimSuffix(info.MetricsURL, "/metrics"))
	base := strings.TrimSuffix(info.MetricsURL, "/metrics")
	expectStatus(t, base+"/healthz", "", http.StatusOK)
	expectStatus(t, base+"/readyz", "", http.StatusOK)
	expectStatus(t, info.DashboardURL, "", http.StatusUnauthorized)
	expectStatus(t, info.DashboardURL, info.Token, http.StatusOK)
	expectStatus(t, info.APIURL+"/"+accepted.ID, "wrong-token-wrong-token", http.StatusUnauthorized)
}

// checkMetrics scrapes /metrics after traffic and checks that every family the
// operations issue names is exposed, and that the traffic was counted.
func checkMetrics(t *testing.T, base string) {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(b)
	for _, fam := range []string{
		"roxd_queue_size", "roxd_queue_latency_seconds",
		"roxd_messages_accepted_total", "roxd_messages_submitted_total", "roxd_messages_delivered_total",
		"roxd_messages_failed_total", "roxd_messages_retried_total", "roxd_messages_archived_total",
		"roxd_rox_request_duration_seconds", "roxd_rox_recipients_per_request",
		"roxd_callbacks_total", "roxd_callback_spool_depth",
		// Traffic classes (issue 12): tokens waited, current rate, 429s seen.
		"roxd_rate_wait_seconds_total", "roxd_rate_tokens_total", "roxd_rate_current", "roxd_rate_limit",
		"roxd_rox_throttled_total", "roxd_messages_expired_total",
	} {
		if !strings.Contains(text, "\n# TYPE "+fam+" ") {
			t.Errorf("/metrics has no family %s", fam)
		}
	}
	for _, series := range []string{
		`roxd_callbacks_total{kind="receipt",outcome="stored"}`,
		`roxd_rox_request_duration_seconds_count{outcome="ok"}`,
		`roxd_queue_size{queue="messages",state="ready"}`,
		// Every account's series exist before its first wait or 429.
		`roxd_rate_wait_seconds_total{account="default",kind="messages"}`,
		`roxd_rate_wait_seconds_total{account="default",kind="requests"}`,
		`roxd_rate_current{account="default",kind="messages"}`,
		`roxd_rate_current{account="default",kind="requests"}`,
		`roxd_rate_limit{account="default",kind="messages"}`,
		`roxd_rox_throttled_total{account="default"}`,
		// The auth pause is per account, and so is its gauge.
		`roxd_rox_auth_paused{account="default"} 0`,
	} {
		if !strings.Contains(text, series) {
			t.Errorf("/metrics has no series %s", series)
		}
	}
	if strings.Contains(text, "roxd_messages_submitted_total 0\n") {
		t.Error("roxd_messages_submitted_total is 0 after an SMS was submitted")
	}
}

func expectStatus(t *testing.T, url, token string, want int) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		if strings.Contains(url, DashboardPath) {
			req.SetBasicAuth("ops", token)
		} else {
			req.Header.Set("Authorization", "Bearer "+token)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Errorf("GET %s: %d, want %d", url, resp.StatusCode, want)
	}
}

func getJSON(t *testing.T, url, token string, v any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// TestServeRoles runs `roxd serve --roles api` against the test Redis: the
// API accepts a message and no callback listener or worker runs.
func TestServeRoles(t *testing.T) {
	url := testutil.RedisURL(t)
	env := map[string]string{
		"REDIS_URL": url, "ROXD_ROLES": "api", "ROXD_HTTP_ADDR": "127.0.0.1:0",
		"ROXD_API_TOKEN": "api-token-0123456789", "ROXD_KEY_PREFIX": testutil.Name("app"),
		"ROXD_QUEUE": testutil.Name("q"), "ROXD_SPOOL_DIR": t.TempDir(),
	}
	cfg, err := config.Load(mapLookup(env))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan Addrs, 1)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, zerolog.Nop(), Options{Ready: func(a Addrs) { addrc <- a }}) }()
	var a Addrs
	select {
	case a = <-addrc:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("not ready")
	}
	if a.Callback != "" {
		t.Errorf("role api alone bound a callback listener at %s", a.Callback)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+a.HTTP+"/v1/messages", strings.NewReader(`{"to":"+61412345678","text":"hi"}`))
	req.Header.Set("Authorization", "Bearer api-token-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("POST /v1/messages: %d, want 202", resp.StatusCode)
	}
	expectStatus(t, "http://"+a.HTTP+"/readyz", "", http.StatusOK)
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after cancel: %v, want nil", err)
	}
}

// TestServeBadConfig: a bad variable stops the start with its name.
func TestServeBadConfig(t *testing.T) {
	cfg, err := config.Load(mapLookup(map[string]string{"ROXD_ROLES": "api", "ROXD_API_TOKEN": "short"}))
	if err != nil {
		t.Fatal(err)
	}
	err = Run(context.Background(), cfg, zerolog.Nop(), Options{})
	if err == nil || !strings.Contains(err.Error(), "ROXD_API_TOKEN") || strings.Contains(err.Error(), "short") {
		t.Fatalf("Run with a short token: %v; want an error naming ROXD_API_TOKEN without the value", err)
	}
}

// TestMinReplicasRefusedOnCluster: WAIT on a cluster would count the
// replicas of whichever node go-redis picks, so the pair is refused at start,
// before any connection is made, with an error naming the variable.
func TestMinReplicasRefusedOnCluster(t *testing.T) {
	cfg, err := config.Load(mapLookup(map[string]string{
		"ROXD_ROLES":              "api",
		"ROXD_API_TOKEN":          "0123456789abcdef0123456789abcdef",
		"REDIS_URL":               "redis-cluster://127.0.0.1:1,127.0.0.1:2",
		"ROXD_REDIS_MIN_REPLICAS": "1",
	}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = Run(ctx, cfg, zerolog.Nop(), Options{})
	if err == nil || !strings.Contains(err.Error(), "ROXD_REDIS_MIN_REPLICAS") {
		t.Fatalf("Run with a cluster URL and min replicas 1: %v; want an error naming ROXD_REDIS_MIN_REPLICAS", err)
	}
}
