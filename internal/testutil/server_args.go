package testutil

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// NewServerArgs is NewServer with extra redis-server arguments appended to
// the defaults (later ones win), e.g. "--appendonly", "yes" or
// "--maxmemory-policy", "allkeys-lru" or "--enable-debug-command", "yes".
func NewServerArgs(t testing.TB, args ...string) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server not on PATH under CI=true")
		}
		t.Skip("redis-server not on PATH")
	}
	s := &Server{t: t, Port: freePort(t), dir: t.TempDir(), args: args}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Pause stops the server process with SIGSTOP: connections stay open but
// nothing is answered (a hung Redis). Resume undoes it; Stop resumes first.
func (s *Server) Pause() {
	s.t.Helper()
	if s.cmd == nil {
		s.t.Fatal("Pause: server not running")
	}
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		s.t.Fatalf("SIGSTOP redis-server: %v", err)
	}
}

// Resume continues a paused server (SIGCONT); harmless when not paused.
func (s *Server) Resume() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT)
}

// Dir is the server's working directory (RDB and AOF files live there).
func (s *Server) Dir() string { return s.dir }
