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

// tallyCount is one count of a chaos run that must be zero.
type tallyCount struct {
	name string
	n    int
}

// chaosCounts are the counts every chaos run must bring back zero.
func chaosCounts(c chaos.Tally) []tallyCount {
	return []tallyCount{
		{"messages the API never accepted", c.NotAccepted},
		{"messages lost", c.Lost},
		{"SMS sent twice", c.SentTwice},
		{"SMS to numbers of no message", c.StraySMS},
		{"receipts the simulator could not deliver", c.ForwardedToEmail},
		{"receipts missing on rox:receipts", c.ReceiptsMissing},
		{"receipts doubled on rox:receipts", c.ReceiptsDoubled},
		{"messages not in a final status", c.NotFinal},
	}
}

// runChaosChild runs `roxd chaos --json args...` as a child process in a
// private TMPDIR, SIGTERMs it after limit (then kills it 30 s later) and
// fails t when it does not finish or print its tally. It returns the tally
// and the exit error; on a failed test it logs the run's step log, and it
// checks the run left nothing in its TMPDIR.
func runChaosChild(t *testing.T, limit time.Duration, args ...string) (chaos.Tally, error) {
	t.Helper()
	bin := roxdBinary(t)
	began := time.Now()
	cmd := exec.Command(bin, append([]string{"chaos", "--json"}, args...)...)
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
	case <-time.After(limit):
		_ = cmd.Process.Signal(syscall.SIGTERM) // it stops its children and cleans up
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		t.Fatalf("roxd chaos %v did not finish within %s; log:\n%s", args, limit, stderr.String())
	}
	t.Logf("roxd chaos took %s", time.Since(began).Round(time.Second))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("step log:\n%s", stderr.String())
		}
		// It cleaned up after itself (t.TempDir's own cleanup runs after this one).
		if left, err := os.ReadDir(tmp); err != nil || len(left) != 0 {
			t.Errorf("roxd chaos left %d entries in its TMPDIR (%v)", len(left), err)
		}
	})
	var tally chaos.Tally
	if jerr := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &tally); jerr != nil {
		t.Fatalf("roxd chaos: %v, output %q (%v)", err, stdout.String(), jerr)
	}
	t.Logf("counts: %s", bytes.TrimSpace(stdout.Bytes()))
	return tally, err
}

// checkTally fails t for each count that is not zero, and when the exit
// status disagrees with the counts (1 exactly when a count is not zero).
func checkTally(t *testing.T, tally chaos.Tally, exit error, more ...tallyCount) {
	t.Helper()
	for _, c := range append(chaosCounts(tally), more...) {
		if c.n != 0 {
			t.Errorf("%s: %d, want 0", c.name, c.n)
		}
	}
	if tally.Bad() != (exit != nil) {
		t.Errorf("exit %v with counts bad=%v: want exit status 1 exactly when a count is not zero", exit, tally.Bad())
	}
}
