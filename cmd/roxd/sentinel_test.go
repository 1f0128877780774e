package main

import (
	"os"
	"os/exec"
	"testing"
	"time"
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
	tally, err := runChaosChild(t, 9*time.Minute, "--faults", "failover", "--failovers", "2",
		"--messages", "5000", "--rate", "250", "--batch", "100", "--settle", "300s", "--seed", "11",
		"--env", "ROXD_REDIS_MIN_REPLICAS=1")
	if tally.Messages != 5000 || tally.SMS == 0 || tally.Failovers != 2 {
		t.Fatalf("the run did not happen as asked: %+v", tally)
	}
	checkTally(t, tally, err,
		tallyCount{"message records missing", tally.RecordsMissing},
		tallyCount{"failovers /readyz did not report", tally.Failovers - tally.ReadyzNotReady})
}
