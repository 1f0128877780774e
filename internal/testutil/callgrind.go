package testutil

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Callgrind counts the instructions a redis-server executes between two
// points of a benchmark: scripts/redis-instructions.sh runs the server under
// `valgrind --tool=callgrind` and gives its pid and output file in
// ROXD_CALLGRIND_PID and ROXD_CALLGRIND_OUT. Unlike CPU time, the count does
// not move with the machine's load (two runs of the same build agree to
// ~0.1%), so a change to a Lua script can be compared with its parent on a
// busy shared machine. It counts instructions, not time: a cache miss (a key
// lookup in a large keyspace) costs no more than a hit.
type Callgrind struct {
	pid, out string
}

// NewCallgrind returns the server's counter, or skips tb when the
// benchmark was not started by scripts/redis-instructions.sh. It zeroes the
// count.
func NewCallgrind(tb testing.TB) *Callgrind {
	tb.Helper()
	c := &Callgrind{pid: os.Getenv("ROXD_CALLGRIND_PID"), out: os.Getenv("ROXD_CALLGRIND_OUT")}
	if c.pid == "" || c.out == "" {
		tb.Skip("counts Redis's instructions: run through scripts/redis-instructions.sh")
	}
	c.Zero(tb)
	return c
}

// Zero starts a new count (callgrind_control -z).
func (c *Callgrind) Zero(tb testing.TB) {
	tb.Helper()
	if out, err := exec.Command("callgrind_control", "-z", c.pid).CombinedOutput(); err != nil {
		tb.Fatalf("callgrind_control -z: %v: %s", err, out)
	}
}

// Dump returns the instructions the server executed since the last Zero or
// Dump (callgrind_control -d writes them to ROXD_CALLGRIND_OUT.<n>, n
// counting the server's dumps from 1, and zeroes the count).
func (c *Callgrind) Dump(tb testing.TB) int64 {
	tb.Helper()
	// dumps are numbered from 1 over the server's life
	next := 1
	for ; ; next++ {
		if _, err := os.Stat(c.out + "." + strconv.Itoa(next)); err != nil {
			break
		}
	}
	if out, err := exec.Command("callgrind_control", "-d", c.pid).CombinedOutput(); err != nil {
		tb.Fatalf("callgrind_control -d: %v: %s", err, out)
	}
	name := c.out + "." + strconv.Itoa(next)
	deadline := time.Now().Add(time.Minute)
	for {
		if n, ok := callgrindTotal(name); ok {
			return n
		}
		if time.Now().After(deadline) {
			tb.Fatalf("callgrind dump %s: no totals line after a minute", name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// callgrindTotal reads the "totals:" line of a callgrind output file (the
// last line written: its presence means the file is complete).
func callgrindTotal(name string) (int64, bool) {
	f, err := os.Open(name)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "totals: "); ok {
			n, err := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
