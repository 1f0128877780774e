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

	// 2. Run the archived task from the UI (its row's Run button), after
	// ROX recovers and the queue is resumed.
	if err := w.sim.SetFaults(roxsim.Faults{}); err != nil {
		t.Fatal(err)
	}
	api := dashboard.DefaultRootPath + "/api/queues/" + w.queue
	status, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(
		`fetch(%q, {method: "POST"}).then(r => r.status)`, api+":resume"), chromedp.EvalAwaitPromise))
	if err != nil || status >= 400 {
		t.Fatalf("resume the queue from the page: %d %v", status, err)
	}
	ui := &dashboardUI{t: t, ctx: ctx}
	ui.clickTaskAction("Archived", archived.ID, archIDs[0], "Run")
	saveScreenshot(t, ctx, "operator-clicked-run")
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

	// 3. Delete the scheduled task from the UI (its row's Delete button):
	// its messages are cancelled.
	open(base+"?status=pending", `/Scheduled\s+1\b/.test(document.body.innerText)`)
	ui.clickTaskAction("Scheduled", scheduled.ID, sendAt.UTC().Format(time.RFC3339), "Delete")
	saveScreenshot(t, ctx, "operator-clicked-delete")
	testutil.Eventually(t, 30*time.Second, func() bool { return w.count(schedIDs, store.StatusCancelled) == len(schedIDs) },
		"scheduled messages cancelled after Delete")
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

// dashboardUI drives asynqmon's queue page as an operator does: chips for
// the task states, a table row per task, the row's action buttons.
type dashboardUI struct {
	t   *testing.T
	ctx context.Context
}

// uiWait bounds each wait for the page (a loaded machine renders slowly).
const uiWait = 45 * time.Second

// do runs actions with uiWait; on failure it fails the test with the page's
// text and a screenshot.
func (u *dashboardUI) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(u.ctx, uiWait)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		text, _ := chromedp.Run(u.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		shot := saveScreenshot(u.t, u.ctx, "operator-failed")
		u.t.Fatalf("%s: %v\nscreenshot %s\npage:\n%s", what, err, shot, text)
	}
}

// clickTaskAction opens the state's tab of the queue page (its chip, e.g.
// "Archived"), finds the task's row, shows the row's actions (the "more"
// button of its Actions cell) and clicks the action's button ("Run",
// "Delete", "Archive"). The row is the only one whose ID cell shows the
// task id as asynqmon shows it (the part before the first "-") and whose
// text contains marker (something of its payload). asynqmon asks no
// confirmation for one task's action.
func (u *dashboardUI) clickTaskAction(chip, id, marker, action string) {
	u.t.Helper()
	state := strings.ToLower(chip)
	shown, _, _ := strings.Cut(id, "-")
	chipJS := fmt.Sprintf(`[...document.querySelectorAll(".MuiChip-root")].find(c => c.innerText.trim().startsWith(%s + " "))`, jsString(chip))
	u.do("open the "+chip+" tab", chromedp.Click(chromedp.JSPath(chipJS)))
	rowJS := fmt.Sprintf(`(() => {
		const t = document.querySelector(%s);
		if (!t) return null;
		const rows = [...t.querySelectorAll("tbody tr")].filter(r => {
			const th = r.querySelector("th");
			return th && th.innerText.trim() === %s && r.innerText.includes(%s);
		});
		return rows.length === 1 ? rows[0] : null;
	})()`, jsString(`table[aria-label="`+state+` tasks table"]`), jsString(shown), jsString(marker))
	// The Actions cell shows a "more" button until the row is hovered or
	// that button is clicked; then the action buttons, each in a tooltip
	// (title attribute while closed, aria-describedby while open).
	actionsJS := rowJS + `.querySelector("td:last-child")`
	buttonJS := fmt.Sprintf(`(() => {
		const r = %s;
		if (!r) return null;
		return [...r.querySelectorAll("td:last-child button")].find(b => {
			const tip = b.getAttribute("aria-describedby");
			const label = b.getAttribute("title") || (tip && document.getElementById(tip) ? document.getElementById(tip).innerText.trim() : "");
			return label === %s && !b.disabled;
		}) || null;
	})()`, rowJS, jsString(action))
	u.do(fmt.Sprintf("find the row of %s task %s", state, id), chromedp.WaitVisible(chromedp.JSPath(rowJS)))
	saveScreenshot(u.t, u.ctx, "operator-"+state+"-tab")
	n, err := chromedp.Run(u.ctx, chromedp.Evaluate[int](actionsJS+`.querySelectorAll("button").length`))
	if err != nil {
		u.t.Fatalf("actions of task %s: %v", id, err)
	}
	if n == 1 { // only "more": the actions are not shown yet
		u.do(fmt.Sprintf("show the actions of task %s", id), chromedp.Click(chromedp.JSPath(actionsJS+`.querySelector("button")`)))
	}
	u.do(fmt.Sprintf("find %s on task %s", action, id), chromedp.WaitVisible(chromedp.JSPath(buttonJS)))
	saveScreenshot(u.t, u.ctx, "operator-"+state+"-actions")
	u.do(fmt.Sprintf("click %s on task %s", action, id), chromedp.Click(chromedp.JSPath(buttonJS)))
	// The UI drops the row once the server has done the action.
	u.do(fmt.Sprintf("%s task %s leaves the table after %s", state, id, action), chromedp.WaitNotPresent(chromedp.JSPath(rowJS)))
}
