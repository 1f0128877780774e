package browsertest_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/hibiken/asynq"

	"github.com/redoxygen/roxd/internal/dashboard"
	"github.com/redoxygen/roxd/internal/testutil"
)

const (
	// EnvChromium overrides where the browser is looked for.
	envChromium = "ROXD_CHROMIUM"
	// EnvScreenshotDir is where screenshots are saved (default t.TempDir()).
	envScreenshotDir = "ROXD_SCREENSHOT_DIR"
	// testTimeout bounds the whole browser session.
	testTimeout = 2 * time.Minute
	token       = "browser-test-token-4f1d2c"
)

// TestDashboardInBrowser opens the dashboard in headless chromium, checks
// that the queue shows with the counts put there, and saves a screenshot.
func TestDashboardInBrowser(t *testing.T) {
	chromium := findChromium(t)
	opt := testutil.AsynqOpt(t)
	queue := testutil.Name("browser")
	fillQueue(t, opt, queue, 3, 2, 1)

	h, err := dashboard.New(dashboard.Config{RedisConnOpt: opt, Token: token, OperatorPassword: opPassword})
	if err != nil {
		t.Fatalf("dashboard.New: %v", err)
	}
	t.Cleanup(func() { _ = h.Close() })
	mux := http.NewServeMux()
	mux.Handle(dashboard.DefaultRootPath+"/", h)
	srv := httptest.NewServer(mux) // loopback only
	t.Cleanup(srv.Close)

	ctx := newBrowser(t, chromium)
	start := time.Now()
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("operator:"+opPassword))
	pageURL := srv.URL + dashboard.DefaultRootPath + "/queues/" + queue + "?status=pending"
	err = chromedp.Do(ctx,
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, network.SetExtraHTTPHeaders,
				network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}})
			return err
		}),
		chromedp.EmulateViewport(1400, 900),
		chromedp.Navigate(pageURL),
	)
	if err != nil {
		t.Fatalf("open %s: %v", pageURL, err)
	}

	// The counts arrive from the API after the page loads: wait for them.
	wantCounts := map[string]int{"Pending": 3, "Scheduled": 2, "Archived": 1, "Active": 0, "Retry": 0}
	_, pollErr := chromedp.Run(ctx, chromedp.Poll[bool](fmt.Sprintf(
		`document.body && document.body.innerText.includes(%q) && /Pending\s+3\b/.test(document.body.innerText) && /Archived\s+1\b/.test(document.body.innerText)`, queue),
		chromedp.WithPollingTimeout(45*time.Second), chromedp.WithPollingInterval(100*time.Millisecond)))
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if err != nil {
		t.Fatalf("read page text: %v", err)
	}
	shot := saveScreenshot(t, ctx, queue)
	if pollErr != nil {
		t.Fatalf("dashboard did not show queue %s with its counts: %v\npage text:\n%s\nscreenshot: %s", queue, pollErr, text, shot)
	}

	if !strings.Contains(text, queue) {
		t.Errorf("page does not name queue %s", queue)
	}
	for label, n := range wantCounts {
		re := regexp.MustCompile(`\b` + label + `\s+(\d+)\b`)
		m := re.FindStringSubmatch(text)
		if m == nil || m[1] != fmt.Sprint(n) {
			t.Errorf("%s count: page shows %v, want %d", label, m, n)
		}
	}
	// The pending tab lists our three tasks, payloads through our formatter.
	if c := strings.Count(text, "rox:send"); c < 3 {
		t.Errorf("pending table shows %d rox:send tasks, want 3", c)
	}
	if t.Failed() {
		t.Logf("page text:\n%s", text)
	}

	// The UI's own mutating calls are same-origin: the cross-origin guard
	// in front of asynqmon must let them through. Pause the queue the way
	// the UI's button does.
	status, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(
		`fetch(%q, {method: "POST"}).then(r => r.status)`, dashboard.DefaultRootPath+"/api/queues/"+queue+":pause"),
		chromedp.EvalAwaitPromise))
	if err != nil || (status != http.StatusOK && status != http.StatusNoContent) {
		t.Errorf("same-origin pause from the page: status %d, %v", status, err)
	}
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	if info, err := insp.GetQueueInfo(queue); err != nil || !info.Paused {
		t.Errorf("queue not paused by the page's request: %+v, %v", info, err)
	}
	t.Logf("dashboard rendered queue %s in %s; screenshot: %s", queue, time.Since(start).Round(time.Millisecond), shot)
}

// TestDashboardInBrowserNeedsAuth: without credentials the browser does
// not get the dashboard. Headless chromium cannot show the Basic prompt, so
// it either fails the navigation with ERR_INVALID_AUTH_CREDENTIALS or shows
// the 401 page.
func TestDashboardInBrowserNeedsAuth(t *testing.T) {
	chromium := findChromium(t)
	h, err := dashboard.New(dashboard.Config{RedisConnOpt: testutil.AsynqOpt(t), Token: token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	ctx := newBrowser(t, chromium)
	resp, err := chromedp.RunResponse(ctx, chromedp.Navigate(srv.URL+dashboard.DefaultRootPath+"/"))
	switch {
	case err != nil && strings.Contains(err.Error(), "ERR_INVALID_AUTH_CREDENTIALS"):
		return
	case err != nil:
		t.Fatalf("navigate: %v", err)
	case resp.Status != http.StatusUnauthorized:
		t.Fatalf("status %d without credentials, want 401", resp.Status)
	}
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(text, "Queues") || !strings.Contains(text, "authentication required") {
		t.Fatalf("unexpected page without credentials: %q", text)
	}
}

// fillQueue puts pending, scheduled and archived tasks in queue and deletes
// the queue when the test ends.
func fillQueue(t *testing.T, opt asynq.RedisConnOpt, queue string, pending, scheduled, archived int) {
	t.Helper()
	client := asynq.NewClient(opt)
	t.Cleanup(func() { _ = client.Close() })
	insp := asynq.NewInspector(opt)
	t.Cleanup(func() { _ = insp.Close() })
	t.Cleanup(func() { _ = insp.DeleteQueue(queue, true) })
	enqueue := func(id string, opts ...asynq.Option) {
		t.Helper()
		payload := []byte(fmt.Sprintf(`{"batch":%q,"recipients":2}`, id))
		opts = append(opts, asynq.Queue(queue), asynq.TaskID(id))
		if _, err := client.Enqueue(asynq.NewTask("rox:send", payload), opts...); err != nil {
			t.Fatalf("enqueue %s: %v", id, err)
		}
	}
	for i := range pending {
		enqueue(fmt.Sprintf("pending-%d", i))
	}
	for i := range scheduled {
		enqueue(fmt.Sprintf("scheduled-%d", i), asynq.ProcessIn(time.Hour))
	}
	for i := range archived {
		id := fmt.Sprintf("archived-%d", i)
		enqueue(id, asynq.ProcessIn(time.Hour))
		if err := insp.ArchiveTask(queue, id); err != nil {
			t.Fatalf("archive %s: %v", id, err)
		}
	}
}

// newBrowser starts headless chromium with a fresh profile and returns a
// tab context bounded by testTimeout. The browser is stopped, and waited
// for, when the test ends; its output is logged if the test failed.
func newBrowser(t *testing.T, execPath string) context.Context {
	t.Helper()
	out := &syncBuffer{}
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(execPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		chromedp.Flag("password-store", "basic"),
		chromedp.WindowSize(1400, 900),
		chromedp.CombinedOutput(out),
		// No UserDataDir: chromedp makes a fresh temporary profile and
		// removes it (and any leftover child process) when it stops.
	)
	ctx, cancel := chromedp.NewContext(allocCtx)
	// The first Run starts the browser; it must not carry a timeout (that
	// would stop the browser), so start it now and bound the rest.
	startCtx, startCancel := context.WithTimeout(ctx, 30*time.Second)
	defer startCancel()
	done := make(chan error, 1)
	go func() { done <- chromedp.Do(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			cancel()
			allocCancel()
			t.Fatalf("start chromium %s: %v\n%s", execPath, err, out.String())
		}
	case <-startCtx.Done():
		cancel()
		allocCancel()
		<-done
		t.Fatalf("chromium did not start within 30s\n%s", out.String())
	}
	tctx, tcancel := context.WithTimeout(ctx, testTimeout)
	t.Cleanup(func() {
		tcancel()
		cancel()      // closes the tab and the browser
		allocCancel() // kills the process if still there, and waits for it
		if t.Failed() {
			t.Logf("chromium output:\n%s", out.String())
		}
	})
	return tctx
}

// saveScreenshot writes a full-page PNG and returns its path.
func saveScreenshot(t *testing.T, ctx context.Context, name string) string {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot: %v", err)
		return ""
	}
	dir := os.Getenv(envScreenshotDir)
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Errorf("screenshot dir: %v", err)
		return ""
	}
	path := filepath.Join(dir, "dashboard-"+name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Errorf("write screenshot: %v", err)
		return ""
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Errorf("screenshot %s is not a PNG", path)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
	return path
}

// findChromium returns the browser to drive. When it is missing it installs
// it under CI=true (failing the test if that does not work) and skips the
// test elsewhere.
func findChromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(envChromium); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s=%s: %v", envChromium, p, err)
		}
		return p
	}
	if p, err := lookChromium(); err == nil {
		return p
	}
	script := filepath.Join(repoRoot(t), "scripts", "install-chromium.sh")
	if os.Getenv("CI") != "true" {
		t.Skipf("chromium not found: install it with %s (as root), or set %s; under CI=true the test installs it itself", script, envChromium)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, script)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium is missing under CI=true and %s failed: %v\n%s", script, err, stderr.String())
	}
	p, err := lookChromium()
	if err != nil {
		t.Fatalf("chromium still missing after %s: %v", script, err)
	}
	return p
}

func lookChromium() (string, error) {
	for _, name := range []string{"chromium", "chromium-browser", "/usr/bin/chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("chromium not on PATH")
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatalf("no go.mod above %s", dir)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 1<<20 {
		return len(p), nil // enough to diagnose
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
