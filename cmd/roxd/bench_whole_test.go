package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// runBenchWhole runs the real binary's `bench whole` with args plus -json
// and returns its output and decoded figures.
func runBenchWhole(t *testing.T, args ...string) (string, wholeSummary) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not on PATH")
	}
	bin := roxdBinary(t)
	out, err := exec.Command(bin, append([]string{"bench", "whole", "-json"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("roxd bench whole: %v\n%s", err, out)
	}
	var sum wholeSummary
	found := false
	for _, line := range strings.Split(string(out), "\n") {
		if js, ok := strings.CutPrefix(line, "JSON "); ok {
			if err := json.Unmarshal([]byte(js), &sum); err != nil {
				t.Fatalf("JSON line: %v\n%s", err, out)
			}
			found = true
		}
	}
	if !found {
		t.Fatalf("no JSON line in the output:\n%s", out)
	}
	return string(out), sum
}

// TestBenchWholeShort runs every part of `roxd bench whole` tiny: the
// output parses and the counts add up (not a timed test).
func TestBenchWholeShort(t *testing.T) {
	const n = 1500
	out, sum := runBenchWhole(t, "-n", "1500", "-bare-n", "1000", "-duration", "1s", "-rate", "100", "-idle", "1s")
	for _, want := range []string{"[bare asynq]", "[all roles in one roxd serve]", "[split roles", "[ingest", "[latency]", "[idle]", "[summary]", "load average"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if sum.BareRate <= 0 {
		t.Errorf("bare asynq rate %v", sum.BareRate)
	}
	if m := sum.Machine; m.NumberUS <= 0 || m.RoundTripUS <= 0 || m.PipelinedUS <= 0 || m.LuaCallUS <= 0 {
		t.Errorf("machine reference figures %+v: each must be measured (> 0)", m)
	}
	runs := map[string]wholeResult{}
	for _, r := range sum.Runs {
		runs[r.Run] = r
	}
	for _, name := range []string{"all-roles", "split"} {
		r, ok := runs[name]
		if !ok {
			t.Fatalf("no %s run in %+v", name, sum.Runs)
		}
		if r.Accepted != n || r.Sent != n || r.Stored != n {
			t.Errorf("%s: accepted %d, sent %d, stored %d; want %d each", name, r.Accepted, r.Sent, r.Stored, n)
		}
		if r.RoxdCPU <= 0 || r.RedisCPU <= 0 || r.SimCPU <= 0 || r.Commands <= 0 {
			t.Errorf("%s: a per-message figure is not positive: %+v", name, r)
		}
		if !(r.StoredS > 0 && r.StoredS <= r.SentS*1.0001 && r.SentS > 0) {
			t.Errorf("%s: rates do not add up (stored %.0f/s, sent %.0f/s)", name, r.StoredS, r.SentS)
		}
	}
	if r := runs["ingest"]; r.Accepted != n || r.MemPerMsg <= 0 || r.AcceptedS <= 0 {
		t.Errorf("ingest: %+v", r)
	}
	if r := runs["latency"]; r.Messages != 100 || r.Sent != int64(r.Messages) || r.P50ms <= 0 || r.P99ms < r.P50ms {
		t.Errorf("latency: %+v", r)
	}
	if _, ok := runs["idle"]; !ok {
		t.Error("no idle run")
	}
}

// TestIdleRedisCommands: an idle `roxd serve` (all roles) does not poll
// Redis (it was ~3,500 commands/s with the former's 1 ms tick and asynq's
// 5 ms checks), and a message offered then still leaves at once
// (functional bounds, not a timed test).
func TestIdleRedisCommands(t *testing.T) {
	_, sum := runBenchWhole(t, "-mode", "latency,idle", "-rate", "20", "-duration", "2s", "-idle", "10s")
	runs := map[string]wholeResult{}
	for _, r := range sum.Runs {
		runs[r.Run] = r
	}
	idle, lat := runs["idle"], runs["latency"]
	if idle.IdleCmdS > 200 {
		t.Errorf("idle: %.0f Redis commands/s, want < 200 (target 50)", idle.IdleCmdS)
	}
	if lat.Sent != 40 {
		t.Errorf("latency run: %d of 40 sent", lat.Sent)
	}
	if lat.P50ms > 1000 || lat.MaxMs > 5000 {
		t.Errorf("a message at low rate took p50 %.1f ms, max %.1f ms from POST to ROX", lat.P50ms, lat.MaxMs)
	}
}

// TestBenchWholeByScript: -redis-by-script names the scripts of a
// message's life (enqueue, claim, record, callbacks) with their time, and
// leaves out the commands those scripts ran (logged under "?:0"); with
// -redis-keys the run starts in a filled keyspace and still adds up.
func TestBenchWholeByScript(t *testing.T) {
	out, sum := runBenchWhole(t, "-mode", "all-roles", "-n", "2000", "-redis-by-script", "-redis-keys", "20000")
	if !strings.Contains(out, "[keyspace] 20000 other keys") {
		t.Errorf("output lacks the [keyspace] line:\n%s", out)
	}
	if r := sum.Runs; len(r) == 1 && (r[0].Stored != 2000 || r[0].Sent != 2000) {
		t.Errorf("sent %d, stored %d of 2000", r[0].Sent, r[0].Stored)
	}
	if len(sum.Runs) != 1 {
		t.Fatalf("runs %+v", sum.Runs)
	}
	by := map[string]scriptTime{}
	for _, s := range sum.Runs[0].RedisByScript {
		by[s.Name] = s
	}
	for _, name := range []string{"store.enqueue", "store.form", "store.claim", "store.record", "callbacks.store"} {
		if s := by[name]; s.Calls < 1 || s.US < 1 || s.PerUS <= 0 {
			t.Errorf("%s: %+v; want calls and time (all: %+v)", name, s, sum.Runs[0].RedisByScript)
		}
	}
	// Every message's record is written by a script: a top-level HSET or
	// HMGET would mean the scripts' own commands were counted twice.
	for _, name := range []string{"hset", "hmget", "xadd"} {
		if s, ok := by[name]; ok && s.Calls > 100 {
			t.Errorf("%s counted at top level %d times: a script's commands leaked in", name, s.Calls)
		}
	}
	if !strings.Contains(out, "Redis time per message by script") {
		t.Errorf("output lacks the by-script line:\n%s", out)
	}
}
