package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redoxygen/roxd/internal/testutil"
	"github.com/redoxygen/roxd/rox/roxsim"
	"github.com/rs/zerolog"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binOut  []byte
)

// roxdBinary builds cmd/roxd once per test binary run and returns its path.
func roxdBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "roxd-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "roxd")
		binOut, binErr = exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
	})
	if binErr != nil {
		t.Fatalf("go build: %v\n%s", binErr, binOut)
	}
	return binPath
}

// freeAddr returns a loopback host:port nobody listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// child is a running `roxd serve`.
type child struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan error
	http   string
}

// startServe starts `roxd serve` with env (added to the test's environment)
// and waits until GET /healthz answers on httpAddr. It is killed at cleanup
// if still running.
func startServe(t *testing.T, env []string, httpAddr string) *child {
	t.Helper()
	c := launchServe(t, env, httpAddr)
	client := &http.Client{Timeout: time.Second}
	testutil.Eventually(t, 30*time.Second, func() bool {
		select {
		case err := <-c.done:
			c.done <- err
			t.Fatalf("roxd serve exited before it was up: %v\n%s", err, lastBytes(c.stderr.String(), 4000))
		default:
		}
		resp, err := client.Get("http://" + httpAddr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "roxd serve did not answer /healthz on %s", httpAddr)
	return c
}

// launchServe starts `roxd serve` like startServe without waiting for it.
func launchServe(t *testing.T, env []string, httpAddr string) *child {
	t.Helper()
	cmd := exec.Command(roxdBinary(t), "serve")
	cmd.Env = append(os.Environ(), env...)
	c := &child{t: t, cmd: cmd, stderr: &syncBuffer{}, done: make(chan error, 1), http: httpAddr}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.done
		c.done <- nil
		if t.Failed() {
			t.Logf("roxd stderr (tail):\n%s", lastBytes(c.stderr.String(), 6000))
		}
	})
	return c
}

// sigterm sends SIGTERM and waits at most limit for the exit; it returns
// how long the exit took and the exit error (nil for status 0).
func (c *child) sigterm(limit time.Duration) (time.Duration, error) {
	c.t.Helper()
	began := time.Now()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		c.t.Fatal(err)
	}
	select {
	case err := <-c.done:
		c.done <- err
		return time.Since(began), err
	case <-time.After(limit):
		c.t.Fatalf("roxd serve did not exit within %s of SIGTERM\n%s", limit, lastBytes(c.stderr.String(), 4000))
		return 0, nil
	}
}

func lastBytes(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// startSim serves a ROX simulator with faults on loopback until t ends.
func startSim(t *testing.T, faults roxsim.Faults) (*roxsim.Sim, *httptest.Server) {
	t.Helper()
	sim, err := roxsim.New(roxsim.Config{Faults: faults}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { srv.Close(); _ = sim.Close(context.Background()) })
	return sim, srv
}
