package journal

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func entry(batch string, n int) Entry {
	e := Entry{Batch: batch, Token: "tok-" + batch, RequestID: "req-" + batch, At: time.UnixMilli(1764500000000).UTC()}
	for i := 0; i < n; i++ {
		e.Outcomes = append(e.Outcomes, Outcome{ID: fmt.Sprintf("%s-m%d", batch, i), Kind: "s", Value: fmt.Sprintf("sms-%s-%d", batch, i)})
	}
	return e
}

func mustOpen(t *testing.T, dir string) *Journal {
	t.Helper()
	j, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = j.Close() })
	return j
}

func batches(es []Entry) string {
	var b []string
	for _, e := range es {
		b = append(b, e.Batch)
	}
	return strings.Join(b, ",")
}

func TestReplayOrderAndDone(t *testing.T) {
	dir := t.TempDir()
	j := mustOpen(t, dir)
	var seqs []uint64
	for _, b := range []string{"b3", "b1", "b2", "b4"} {
		e, err := j.Append(entry(b, 3))
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, e.Seq)
	}
	if err := j.Done(seqs[1]); err != nil { // b1
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	j2 := mustOpen(t, dir)
	got := j2.Pending()
	if s := batches(got); s != "b3,b2,b4" {
		t.Fatalf("replayed %q, want b3,b2,b4 (append order, b1 done)", s)
	}
	want := entry("b2", 3)
	want.Seq = got[1].Seq
	if fmt.Sprint(got[1]) != fmt.Sprint(want) {
		t.Fatalf("entry changed on the way through the file:\n got %+v\nwant %+v", got[1], want)
	}
	// New entries come after the replayed ones.
	e, err := j2.Append(entry("b5", 1))
	if err != nil {
		t.Fatal(err)
	}
	if e.Seq <= got[2].Seq {
		t.Fatalf("new seq %d not after replayed %d", e.Seq, got[2].Seq)
	}
	// Done of everything empties the file.
	for _, p := range j2.Pending() {
		if err := j2.Done(p.Seq); err != nil {
			t.Fatal(err)
		}
	}
	if st, err := os.Stat(filepath.Join(dir, FileName)); err != nil || st.Size() != 0 {
		t.Fatalf("file after all done: %v, %v; want empty", st, err)
	}
	if err := j2.Done(12345); err != nil {
		t.Fatalf("Done of an unknown seq: %v", err)
	}
}

// TestTornLastRecord cuts the file inside its last frame, and separately
// flips a byte of the last frame's body: Open keeps every whole frame before
// it, drops the torn one and appends cleanly after.
func TestTornLastRecord(t *testing.T) {
	for _, tc := range []struct {
		name string
		harm func(t *testing.T, path string, lastStart int64)
	}{
		{"short body", func(t *testing.T, path string, lastStart int64) {
			st, _ := os.Stat(path)
			if err := os.Truncate(path, st.Size()-5); err != nil {
				t.Fatal(err)
			}
		}},
		{"short header", func(t *testing.T, path string, lastStart int64) {
			if err := os.Truncate(path, lastStart+3); err != nil {
				t.Fatal(err)
			}
		}},
		{"bad checksum", func(t *testing.T, path string, lastStart int64) {
			b, _ := os.ReadFile(path)
			b[lastStart+20] ^= 0x40
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"garbage tail", func(t *testing.T, path string, lastStart int64) {
			f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			_, _ = f.Write([]byte{0xff, 0xff, 0xff, 0x7f, 1, 2, 3})
			_ = f.Close()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, FileName)
			j, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range []string{"a", "b"} {
				if _, err := j.Append(entry(b, 2)); err != nil {
					t.Fatal(err)
				}
			}
			st, _ := os.Stat(path)
			lastStart := st.Size()
			if _, err := j.Append(entry("c", 2)); err != nil {
				t.Fatal(err)
			}
			_ = j.Close()
			tc.harm(t, path, lastStart)

			j2 := mustOpen(t, dir)
			want := "a,b"
			if tc.name == "garbage tail" {
				want = "a,b,c"
			}
			if s := batches(j2.Pending()); s != want {
				t.Fatalf("after %s: pending %q, want %q", tc.name, s, want)
			}
			if j2.TornBytes() == 0 {
				t.Fatal("TornBytes is 0 after a torn tail")
			}
			if _, err := j2.Append(entry("d", 1)); err != nil {
				t.Fatal(err)
			}
			_ = j2.Close()
			j3 := mustOpen(t, dir)
			if s := batches(j3.Pending()); s != want+",d" {
				t.Fatalf("after append past the torn tail: %q, want %q", s, want+",d")
			}
			if j3.TornBytes() != 0 {
				t.Fatalf("TornBytes %d after a clean reopen", j3.TornBytes())
			}
		})
	}
}

func TestSharedDirectoryRefused(t *testing.T) {
	dir := t.TempDir()
	j := mustOpen(t, dir)
	_, err := Open(dir)
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("second Open: %v, want ErrInUse", err)
	}
	if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), strconv.Itoa(os.Getpid())) {
		t.Fatalf("error %q should name the directory and the holder's pid", err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	mustOpen(t, dir) // released by Close
}

// TestSurvivesKill appends in a child process that is killed -9 right after
// Append returned: every acknowledged entry is there, and the kernel has
// released the directory lock.
func TestSurvivesKill(t *testing.T) {
	if dir := os.Getenv("JOURNAL_TEST_CHILD_DIR"); dir != "" {
		j, err := Open(dir)
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		for i := 0; i < 50; i++ {
			if _, err := j.Append(entry(fmt.Sprintf("k%02d", i), 5)); err != nil {
				fmt.Println("error", err)
				os.Exit(1)
			}
			fmt.Println("acked", i)
		}
		time.Sleep(time.Minute) // killed before this ends
		os.Exit(0)
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSurvivesKill$")
	cmd.Env = append(os.Environ(), "JOURNAL_TEST_CHILD_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	buf := make([]byte, 0, 4096)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(string(buf), "acked 49") {
		if time.Now().After(deadline) {
			t.Fatalf("child did not ack 50 entries: %q", buf)
		}
		tmp := make([]byte, 1024)
		n, err := out.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if err != nil {
			t.Fatalf("child output: %v: %q", err, buf)
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	j := mustOpen(t, dir)
	if n := j.Len(); n != 50 {
		t.Fatalf("after kill -9: %d entries, want 50", n)
	}
}

// BenchmarkAppendDone is the cost of journalling one 500-recipient answer
// and marking it done (two fsyncs), on this machine's disk.
func BenchmarkAppendDone(b *testing.B) {
	j, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	e := entry("bench", 500)
	keep, _ := j.Append(entry("keep", 1)) // so Done writes a frame, not a truncate
	_ = keep
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got, err := j.Append(e)
		if err != nil {
			b.Fatal(err)
		}
		if err := j.Done(got.Seq); err != nil {
			b.Fatal(err)
		}
	}
}
