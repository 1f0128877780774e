package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is one child process: redis-server, `roxd sim` or `roxd serve`.
type child struct {
	name string
	cmd  *exec.Cmd
	log  string // file its stdout and stderr go to
	done chan struct{}
	err  error // set before done is closed
}

// procs owns every child the run starts, so that each is killed on exit.
type procs struct {
	dir string
	mu  sync.Mutex
	all map[*child]bool
	seq map[string]int
}

func newProcs(dir string) *procs {
	return &procs{dir: dir, all: map[*child]bool{}, seq: map[string]int{}}
}

// start starts bin with args in workdir (created); output goes to
// <dir>/logs/<name>-<n>.log.
func (p *procs) start(name, workdir string, env []string, bin string, args ...string) (*child, error) {
	p.mu.Lock()
	p.seq[name]++
	n := p.seq[name]
	p.mu.Unlock()
	logDir := filepath.Join(p.dir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(workdir, 0o755); err != nil {
		return nil, err
	}
	logPath := filepath.Join(logDir, fmt.Sprintf("%s-%d.log", name, n))
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = workdir, env, f, f
	// A child outlives nothing: it is killed when this process dies, even
	// by SIGKILL.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	p.mu.Lock()
	p.all[c] = true
	p.mu.Unlock()
	go func() {
		c.err = cmd.Wait()
		f.Close()
		p.mu.Lock()
		delete(p.all, c)
		p.mu.Unlock()
		close(c.done)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends sig and waits up to grace for the exit, then SIGKILLs. It
// returns how long the exit took and whether it needed the SIGKILL.
func (c *child) stop(sig syscall.Signal, grace time.Duration) (time.Duration, bool) {
	began := time.Now()
	if c.exited() {
		return 0, false
	}
	_ = c.cmd.Process.Signal(sig)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.done:
		return time.Since(began), false
	case <-t.C:
	}
	_ = c.cmd.Process.Kill()
	<-c.done
	return time.Since(began), true
}

// tail returns the last n bytes of the child's log.
func (c *child) tail(n int64) string {
	f, err := os.Open(c.log)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		_, _ = f.Seek(st.Size()-n, 0)
	}
	b := make([]byte, n)
	k, _ := f.Read(b)
	return strings.TrimSpace(string(b[:k]))
}

// killAll SIGTERMs every child still running, waits up to grace, then
// SIGKILLs the rest and waits for them.
func (p *procs) killAll(grace time.Duration) {
	p.mu.Lock()
	cs := make([]*child, 0, len(p.all))
	for c := range p.all {
		cs = append(cs, c)
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() { c.stop(syscall.SIGTERM, grace) })
	}
	wg.Wait()
}

// freePort returns a loopback port nobody listens on now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func loopback(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// waitHTTP polls url until it answers 200, the child exits, or timeout.
func waitHTTP(ctx context.Context, c *child, url string, timeout time.Duration) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if c != nil && c.exited() {
			return fmt.Errorf("%s exited while starting (%v): %s", c.name, c.err, c.tail(2000))
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("%s not ready after %s", url, timeout)
			if c != nil {
				msg += ": " + c.tail(2000)
			}
			return errors.New(msg)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
