package browsertest_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/redoxygen/roxd/internal/dashboard"
	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/internal/testutil"
	"github.com/redoxygen/roxd/rox"
	"github.com/redoxygen/roxd/rox/roxsim"
	"github.com/redoxygen/roxd/worker"
)

const (
	opUser     = "operator"
	opPassword = "browser-operator-pw-9a41"
)

// roxdWorld is a real worker (its own prefix and queue) sending to the
// simulator, plus the store its messages live in.
type roxdWorld struct {
	t     *testing.T
	rdb   *redis.Client
	aopt  asynq.RedisClientOpt
	st    *store.Store
	sim   *roxsim.Sim
	cfg   worker.Config
	rox   *rox.Client
	insp  *asynq.Inspector
	queue string
}

func newWorld(t *testing.T) *roxdWorld {
	t.Helper()
	rdb := testutil.Redis(t)
	aopt := testutil.AsynqOpt(t)
	prefix, queue := testutil.Name("bw"), testutil.Name("bq")
	sim, err := roxsim.New(roxsim.Config{Faults: roxsim.Faults{Fail5xx: 1}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	simSrv := httptest.NewServer(sim)
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := rox.NameReceiptResponse
		if strings.Contains(r.URL.Path, "reply") {
			name = rox.NameReplyResponse
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"Name":%q,"Version":1.1,"Result":"0000","ResultText":"OK"}`, name)
	}))
	insp := asynq.NewInspector(aopt)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = sim.Close(ctx)
		simSrv.Close()
		sink.Close()
		if keys, _ := rdb.Keys(context.Background(), store.NewKeys(prefix).Base()+"*").Result(); len(keys) > 0 {
			rdb.Del(context.Background(), keys...)
		}
		_ = insp.DeleteQueue(queue, true)
		if keys, _ := rdb.Keys(context.Background(), "asynq:{"+queue+"}:*").Result(); len(keys) > 0 {
			rdb.Del(context.Background(), keys...)
		}
		_ = insp.Close()
	})
	client, err := rox.NewClient(rox.ClientConfig{URL: simSrv.URL + roxsim.SendPath, AccountID: roxsim.DefaultAccountID,
		Username: roxsim.DefaultUsername, Password: roxsim.DefaultPassword, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cfg := worker.Config{
		Store: store.Config{Prefix: prefix}, Queue: queue,
		RetryInitial: 20 * time.Millisecond, RetryMaxInterval: 100 * time.Millisecond, MaxAttempts: 2,
		DelayedTaskCheckInterval: 50 * time.Millisecond, ShutdownTimeout: 3 * time.Second, TaskTimeout: 10 * time.Second,
		ScheduleInterval: 20 * time.Millisecond, ReapInterval: time.Second, ReapAge: 2 * time.Second,
		ReceiptCallbackURL: sink.URL + "/cb/receipt?token=x", ReplyCallbackURL: sink.URL + "/cb/reply?token=x",
		AccountID: roxsim.DefaultAccountID,
	}
	st, err := store.New(rdb, cfg.Store)
	if err != nil {
		t.Fatal(err)
	}
	return &roxdWorld{t: t, rdb: rdb, aopt: aopt, st: st, sim: sim, cfg: cfg, rox: client, insp: insp, queue: queue}
}

// run starts a worker with cfg; the returned func stops it.
func (w *roxdWorld) run(cfg worker.Config) func() {
	w.t.Helper()
	wk, err := worker.New(cfg, w.rdb, w.aopt, w.rox, zerolog.Nop())
	if err != nil {
		w.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- wk.Run(ctx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	w.t.Cleanup(stop)
	return stop
}

func (w *roxdWorld) enqueue(n int, prefix string, sendAt time.Time) []string {
	w.t.Helper()
	recs := make([]store.Record, n)
	ids := make([]string, n)
	for i := range recs {
		ids[i] = fmt.Sprintf("%s-%d", prefix, i)
		recs[i] = store.Record{ID: ids[i], To: fmt.Sprintf("+6141%07d", i), Text: fmt.Sprintf("%s %d", prefix, i),
			Receipt: "always", Reply: "http", SendAt: sendAt}
	}
	if _, _, err := w.st.Enqueue(context.Background(), recs); err != nil {
		w.t.Fatal(err)
	}
	return ids
}

func (w *roxdWorld) count(ids []string, status store.Status) int {
	n := 0
	for _, id := range ids {
		if r, err := w.st.Get(context.Background(), id); err == nil && r.Status == status {
			n++
		}
	}
	return n
}

func (w *roxdWorld) waitTasks(state string, n int) []*asynq.TaskInfo {
	w.t.Helper()
	var ts []*asynq.TaskInfo
	testutil.Eventually(w.t, 30*time.Second, func() bool {
		switch state {
		case "pending":
			ts, _ = w.insp.ListPendingTasks(w.queue)
		case "scheduled":
			ts, _ = w.insp.ListScheduledTasks(w.queue)
		case "retry":
			ts, _ = w.insp.ListRetryTasks(w.queue)
		case "archived":
			ts, _ = w.insp.ListArchivedTasks(w.queue)
		case "completed":
			ts, _ = w.insp.ListCompletedTasks(w.queue)
		}
		return len(ts) == n
	}, "%d %s tasks (have %d)", n, state, len(ts))
	return ts
}

// TestOperatorActionsInBrowser: a roxd holding pending, scheduled, retrying
// and archived work, seen and repaired by an operator in the dashboard.
func TestOperatorActionsInBrowser(t *testing.T) {
	chromium := findChromium(t)
	w := newWorld(t)
	bg := context.Background()

	// Archived: a batch whose two attempts ROX refused.
	stop := w.run(w.cfg)
	archIDs := w.enqueue(3, "arch", time.Time{})
	archived := w.waitTasks("archived", 1)[0]
	stop()
	// Retrying: a batch ROX refuses, next attempt in an hour.
	slow := w.cfg
	slow.MaxAttempts, slow.RetryInitial, slow.RetryMaxInterval = 30, time.Hour, time.Hour
	w.run(slow)
	retryIDs := w.enqueue(4, "retry", time.Time{})
	w.waitTasks("retry", 1)
	// Pending: the queue is paused by the operator, a new batch waits.
	if err := w.insp.PauseQueue(w.queue); err != nil {
		t.Fatal(err)
	}
	pendIDs := w.enqueue(5, "pend", time.Time{})
	w.waitTasks("pending", 1)
	// Scheduled: two messages due in an hour, one task for their group.
	sendAt := time.Now().Add(time.Hour).Truncate(time.Second)
	schedIDs := w.enqueue(2, "sched", sendAt)
	scheduled := w.waitTasks("scheduled", 1)[0]

	// The dashboard as roxd serves it, with an operator and the sweep
	// that applies actions at once.
	op, err := worker.NewOperator(slow, w.rdb, w.aopt, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = op.Close() })
	hash, _ := bcrypt.GenerateFromPassword([]byte(opPassword), 4)
	h, err := dashboard.New(dashboard.Config{RedisConnOpt: w.aopt, Token: token,
		Operators: map[string][]byte{opUser: hash},
		AfterAction: func(ctx context.Context, a dashboard.Action) {
			if a.Name == "delete" || a.Name == "archive" {
				op.Sweep(ctx, time.Now())
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	mux := http.NewServeMux()
	mux.Handle(dashboard.DefaultRootPath+"/", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	ctx := newBrowser(t, chromium)
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(opUser+":"+opPassword))
	open := func(path, waitJS string) string {
		t.Helper()
		err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+path))
		if err != nil {
			t.Fatalf("open %s: %v", path, err)
		}
		_, perr := chromedp.Run(ctx, chromedp.Poll[bool](waitJS,
			chromedp.WithPollingTimeout(45*time.Second), chromedp.WithPollingInterval(100*time.Millisecond)))
		text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		if perr != nil {
			t.Fatalf("%s: %v\npage:\n%s", path, perr, text)
		}
		return text
	}
	if err := chromedp.Do(ctx,
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, network.SetExtraHTTPHeaders,
				network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}})
			return err
		}),
		chromedp.EmulateViewport(1400, 900),
	); err != nil {
		t.Fatal(err)
	}

	// 1. The queue page: one task per state, counts as put there.
	base := dashboard.DefaultRootPath + "/queues/" + w.queue
	text := open(base+"?status=scheduled", `/Scheduled\s+1\b/.test(document.body.innerText) && /Archived\s+1\b/.test(document.body.innerText) && /Retry\s+1\b/.test(document.body.innerText) && /Pending\s+1\b/.test(document.body.innerText) && document.body.innerText.includes("rox:schedule")`)
	for label, n := range map[string]int{"Pending": 1, "Scheduled": 1, "Retry": 1, "Archived": 1} {
		m := regexp.MustCompile(`\b` + label + `\s+(\d+)\b`).FindStringSubmatch(text)
		if m == nil || m[1] != fmt.Sprint(n) {
			t.Errorf("%s: page shows %v, want %d", label, m, n)
		}
	}
	if !strings.Contains(text, `"messages": 2`) || !strings.Contains(text, sendAt.UTC().Format(time.RFC3339)) {
		t.Errorf("scheduled task payload not shown with count and send time:\n%s", text)
	}
	saveScreenshot(t, ctx, "operator-scheduled")
	text = open(base+"?status=archived", `document.body.innerText.includes(`+jsString(archived.ID)+`)`)
	for _, want := range []string{`"recipients": 3`, `"group": "now|always|http"`, `"priority": "normal"`, `"first_messages"`, "HTTP 500"} {
		if !strings.Contains(text, want) {
			t.Errorf("archived task row lacks %q", want)
		}
	}
	saveScreenshot(t, ctx, "operator-archived")

	// 2. Run the archived task from the page (the request its Run button
	// makes), after ROX recovers and the queue is resumed.
	if err := w.sim.SetFaults(roxsim.Faults{}); err != nil {
		t.Fatal(err)
	}
	post := func(method, path string) int {
		t.Helper()
		status, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(
			`fetch(%q, {method: %q}).then(r => r.status)`, path, method), chromedp.EvalAwaitPromise))
		if err != nil || status >= 400 {
			t.Fatalf("%s %s from the page: %d %v", method, path, status, err)
		}
		return status
	}
	api := dashboard.DefaultRootPath + "/api/queues/" + w.queue
	post("POST", api+":resume")
	post("POST", api+"/archived_tasks/"+archived.ID+":run")
	testutil.Eventually(t, 30*time.Second, func() bool { return w.count(archIDs, store.StatusSubmitted) == 3 },
		"archived task's messages sent after Run")
	testutil.Eventually(t, 30*time.Second, func() bool { return w.count(pendIDs, store.StatusSubmitted) == 5 },
		"pending batch sent after resume")
	r, _ := w.st.Get(bg, archIDs[1])
	hist := make([]string, len(r.History))
	for i, e := range r.History {
		hist[i] = string(e.Status)
	}
	if strings.Join(hist, ",") != "queued,sending,failed,manual_retry,submitted" {
		t.Errorf("history after the run: %v", hist)
	}
	// The run's task: completed, its result names ROX's RequestId.
	w.waitTasks("completed", 2)
	text = open(base+"/tasks/"+archived.ID, `document.body.innerText.includes("Result") && document.body.innerText.includes("request_id")`)
	if !strings.Contains(text, `"accepted": 3`) || !strings.Contains(text, r.RequestID) || !strings.Contains(text, `"manual_retry": true`) {
		t.Errorf("task page lacks the result (accepted 3, request %s):\n%s", r.RequestID, text)
	}
	saveScreenshot(t, ctx, "operator-task-result")

	// 3. Delete the scheduled task: its messages are cancelled at once.
	post("DELETE", api+"/scheduled_tasks/"+scheduled.ID)
	for _, id := range schedIDs {
		r, err := w.st.Get(bg, id)
		if err != nil || r.Status != store.StatusCancelled || r.Err != store.ReasonDeletedByOperator {
			t.Fatalf("%s after deleting its task: %+v %v", id, r, err)
		}
	}
	// The retrying batch is untouched; nothing was sent twice.
	if n := w.count(retryIDs, store.StatusSending); n != 4 {
		t.Errorf("retrying messages: %d sending, want 4", n)
	}
	seen := map[string]int{}
	for _, rr := range w.sim.Recipients() {
		if rr.SMSID != "" {
			seen[rr.Text]++
		}
	}
	for txt, n := range seen {
		if n != 1 {
			t.Errorf("%q accepted %d times", txt, n)
		}
	}
	text = open(base+"?status=retry", `/Scheduled\s+0\b/.test(document.body.innerText) && /Archived\s+0\b/.test(document.body.innerText)`)
	shot := saveScreenshot(t, ctx, "operator-after")
	t.Logf("operator actions done; last screenshot %s", shot)
	_ = text
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
