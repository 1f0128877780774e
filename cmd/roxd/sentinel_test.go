package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/redoxygen/roxd/internal/chaos"
)

// TestSentinelFailover is issue 11's Sentinel proof, in make test: `roxd
// chaos --faults failover` runs the split processes (api, worker,
// callbacks) on a Sentinel group (one master, one replica, three
// sentinels: redis-server --sentinel, started by the run) with
// ROXD_REDIS_MIN_REPLICAS=1, offers 5,000 messages and asks SENTINEL
// FAILOVER twice while ROX requests are in flight. Every message is
// accepted and none lost, none sent twice, every receipt on rox:receipts
// once, every message final, and the API's /readyz answered not ready
// during each failover.
func TestSentinelFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five redis-server processes, the simulator and three roxd processes")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server not on PATH under CI=true")
		}
		t.Skip("redis-server is not on PATH")
	}
	bin := roxdBinary(t)
	began := time.Now()
	cmd := exec.Command(bin, "chaos", "--json", "--faults", "failover", "--failovers", "2",
		"--messages", "5000", "--rate", "250", "--batch", "100", "--settle", "300s", "--seed", "11",
		"--env", "ROXD_REDIS_MIN_REPLICAS=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	tmp := t.TempDir()
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(9 * time.Minute):
		_ = cmd.Process.Signal(syscall.SIGTERM) // it stops its children and cleans up
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		t.Fatalf("roxd chaos --faults failover did not finish within 9m; log:\n%s", stderr.String())
	}
	t.Logf("roxd chaos --faults failover took %s", time.Since(began).Round(time.Second))
	var tally chaos.Tally
	if jerr := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &tally); jerr != nil {
		t.Fatalf("roxd chaos: %v, output %q (%v); log:\n%s", err, stdout.String(), jerr, stderr.String())
	}
	t.Logf("counts: %s", bytes.TrimSpace(stdout.Bytes()))
	if tally.Messages != 5000 || tally.SMS == 0 || tally.Failovers != 2 {
		t.Fatalf("the run did not happen as asked: %+v", tally)
	}
	for _, c := range []struct {
		name string
		n    int
	}{
		{"messages the API never accepted", tally.NotAccepted},
		{"messages lost", tally.Lost},
		{"message records missing", tally.RecordsMissing},
		{"SMS sent twice", tally.SentTwice},
		{"SMS to numbers of no message", tally.StraySMS},
		{"receipts the simulator could not deliver", tally.ForwardedToEmail},
		{"receipts missing on rox:receipts", tally.ReceiptsMissing},
		{"receipts doubled on rox:receipts", tally.ReceiptsDoubled},
		{"messages not in a final status", tally.NotFinal},
		{"failovers /readyz did not report", tally.Failovers - tally.ReadyzNotReady},
	} {
		if c.n != 0 {
			t.Errorf("%s: %d, want 0", c.name, c.n)
		}
	}
	if tally.Bad() != (err != nil) {
		t.Errorf("exit %v with counts bad=%v: want exit status 1 exactly when a count is not zero", err, tally.Bad())
	}
	if t.Failed() {
		t.Logf("step log:\n%s", stderr.String())
	}
	if left, err := os.ReadDir(tmp); err != nil || len(left) != 0 {
		t.Errorf("roxd chaos left %d entries in its TMPDIR (%v)", len(left), err)
	}
}
