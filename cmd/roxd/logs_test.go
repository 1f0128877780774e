package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redoxygen/roxd/internal/logging"
	"github.com/redoxygen/roxd/internal/testutil"
)

// buildRoxd builds the binary once per test.
func buildRoxd(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := roxdBinary(t)
	return bin
}

// logTap collects a child's stderr line by line.
type logTap struct {
	mu    sync.Mutex
	lines [][]byte
	done  chan struct{}
}

func (l *logTap) snapshot() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([][]byte(nil), l.lines...)
}

func (l *logTap) count(msg string) int {
	n := 0
	for _, line := range l.snapshot() {
		var m map[string]any
		if json.Unmarshal(line, &m) == nil && m["message"] == msg {
			n++
		}
	}
	return n
}

func startServeLogged(t *testing.T, bin string, env []string) (*exec.Cmd, *logTap) {
	t.Helper()
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	tap := &logTap{done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(tap.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			tap.mu.Lock()
			tap.lines = append(tap.lines, append([]byte(nil), sc.Bytes()...))
			tap.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd, tap
}

// TestServeLogsAreJSONWithUniqueKeys runs the real `roxd serve` (every
// role, LOG_LEVEL=debug) through a Redis outage at start, a run, an outage
// while running and a recovery, and parses every line it writes: each must
// be one JSON object with unique keys (no go-redis plain text, no repeated
// "component"), the outage at start is said once with the redacted address,
// the libraries' repeated conditions ("All queues are empty", asynq's and
// go-redis's Redis errors) and roxd's own repeated warnings are written
// once per change, not once per poll.
func TestServeLogsAreJSONWithUniqueKeys(t *testing.T) {
	bin := buildRoxd(t)
	srv := testutil.NewServer(t)
	srv.Stop()
	const pw = "log-test-Pa55word"
	cmd, tap := startServeLogged(t, bin, []string{
		"REDIS_URL=redis://default:" + pw + "@" + srv.Addr() + "/0",
		"ROX_API_URL=http://127.0.0.1:1/smsapi/send", "ROX_ACCOUNT_ID=CI00000001", "ROX_USERNAME=u@example.com",
		"ROX_PASSWORD=rox-password-secret", "ROXD_API_TOKEN=api-token-0123456789", "ROXD_CALLBACK_TOKEN=callback-token-0123456789",
		"ROXD_HTTP_ADDR=127.0.0.1:0", "ROXD_CALLBACK_ADDR=127.0.0.1:0", "ROXD_SPOOL_DIR=" + t.TempDir(),
		"ROXD_KEY_PREFIX=" + testutil.Name("logs"), "ROXD_QUEUE=" + testutil.Name("q"),
		"LOG_LEVEL=debug", "LOG_FORMAT=json", "ROXD_SHUTDOWN_TIMEOUT=5s",
	})

	// 1. Redis unreachable at start: one line says so, then silence.
	testutil.Eventually(t, 20*time.Second, func() bool { return len(tap.snapshot()) > 0 }, "no log line")
	time.Sleep(6 * time.Second)
	down := tap.snapshot()
	if n := tap.count("redis unreachable at start: retrying with backoff; roxd starts when it answers"); n != 1 {
		t.Errorf("%d lines say Redis is unreachable, want 1", n)
	}
	if tap.count("roxd started") != 0 {
		t.Error(`"roxd started" logged without Redis`)
	}
	if len(down) > 3 {
		t.Errorf("%d lines in 6 s with Redis down at start, want at most 3:\n%s", len(down), bytes.Join(down, []byte("\n")))
	}

	// 2. Redis comes: started; idle at debug level for 6 s.
	srv.Start()
	testutil.Eventually(t, 30*time.Second, func() bool { return tap.count("roxd started") == 1 }, "not started after Redis came")
	time.Sleep(6 * time.Second)

	// 3. Redis goes away while running, for 6 s, and comes back.
	srv.Stop()
	testutil.Eventually(t, 30*time.Second, func() bool { return tap.count("redis unreachable: retrying with backoff") == 1 },
		"the outage is not logged")
	time.Sleep(6 * time.Second)
	srv.Start()
	testutil.Eventually(t, 30*time.Second, func() bool { return tap.count("redis reachable again") == 2 }, "the recovery is not logged")
	time.Sleep(2 * time.Second)

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("roxd serve after SIGTERM: %v", err)
	}
	<-tap.done

	all := tap.snapshot()
	perMsg := map[string]int{}
	for i, line := range all {
		if err := logging.CheckLine(line); err != nil {
			t.Errorf("line %d: %v: %s", i+1, err, line)
			continue
		}
		if bytes.Contains(line, []byte(pw)) {
			t.Errorf("line %d holds the Redis password: %s", i+1, line)
		}
		var m map[string]any
		_ = json.Unmarshal(line, &m)
		perMsg[strings.SplitN(strings.TrimSpace(m["message"].(string)), ":", 2)[0]]++
	}
	// Once per change: at the first idle poll, and again after each Redis
	// change (outage, recovery); a few lanes may each say it at a change.
	if n := perMsg["All queues are empty"]; n < 1 || n > 8 {
		t.Errorf(`"All queues are empty" written %d times, want once per change`, n)
	}
	for msg, n := range perMsg {
		if n > 8 {
			t.Errorf("%q written %d times in %d lines", msg, n, len(all))
		}
	}
	if len(all) > 150 {
		t.Errorf("%d lines in about 30 s", len(all))
	}
	t.Logf("%d lines; by message: %v", len(all), perMsg)
}
