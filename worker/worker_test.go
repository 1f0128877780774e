package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/internal/testutil"
	"github.com/redoxygen/roxd/producer"
	"github.com/redoxygen/roxd/rox"
	"github.com/redoxygen/roxd/rox/roxsim"
)

// bundle is one test's world: its own key prefix and queue on the test
// Redis, a simulator on a loopback HTTP server, a ROX client.
type bundle struct {
	t      *testing.T
	ctx    context.Context
	rdb    *redis.Client
	aopt   asynq.RedisClientOpt
	st     *store.Store
	sim    *roxsim.Sim
	client *rox.Client
	cfg    Config
	simURL string
}

func setup(t *testing.T, f roxsim.Faults, mod func(*Config)) *bundle {
	t.Helper()
	rdb := testutil.Redis(t)
	aopt := testutil.AsynqOpt(t)
	prefix := testutil.Name("wrk")
	queue := testutil.Name("q")
	sim, err := roxsim.New(roxsim.Config{Faults: f}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	simSrv := httptest.NewServer(sim)
	// Callbacks from the simulator land here and are acknowledged.
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := rox.NameReceiptResponse
		if strings.Contains(r.URL.Path, "reply") {
			name = rox.NameReplyResponse
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"Name":%q,"Version":1.1,"Result":"0000","ResultText":"OK"}`, name)
	}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = sim.Close(ctx)
		simSrv.Close()
		sink.Close()
		keys, _ := rdb.Keys(context.Background(), store.NewKeys(prefix).Base()+"*").Result()
		if len(keys) > 0 {
			rdb.Del(context.Background(), keys...)
		}
		insp := asynq.NewInspector(aopt)
		for _, q := range store.PriorityQueues(queue) {
			_ = insp.DeleteQueue(q, true)
			if keys, _ := rdb.Keys(context.Background(), "asynq:{"+q+"}:*").Result(); len(keys) > 0 {
				rdb.Del(context.Background(), keys...)
			}
		}
		_ = insp.Close()
	})
	client, err := rox.NewClient(rox.ClientConfig{
		URL: simSrv.URL + roxsim.SendPath, AccountID: roxsim.DefaultAccountID,
		Username: roxsim.DefaultUsername, Password: roxsim.DefaultPassword, Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Store:                    store.Config{Prefix: prefix},
		Queue:                    queue,
		RetryInitial:             20 * time.Millisecond,
		RetryMaxInterval:         200 * time.Millisecond,
		DelayedTaskCheckInterval: 50 * time.Millisecond,
		MaxAttempts:              30,
		ShutdownTimeout:          3 * time.Second,
		TaskTimeout:              10 * time.Second,
		ScheduleInterval:         20 * time.Millisecond,
		ReapInterval:             time.Second,
		ReapAge:                  2 * time.Second,
		AuthPauseInitial:         200 * time.Millisecond,
		AuthPauseMax:             time.Second,
		ReceiptCallbackURL:       sink.URL + "/cb/receipt?token=x",
		ReplyCallbackURL:         sink.URL + "/cb/reply?token=x",
		AccountID:                roxsim.DefaultAccountID,
		JournalDir:               t.TempDir(),
	}
	if mod != nil {
		mod(&cfg)
	}
	st, err := store.New(rdb, cfg.Store)
	if err != nil {
		t.Fatal(err)
	}
	return &bundle{t: t, ctx: context.Background(), rdb: rdb, aopt: aopt, st: st, sim: sim, client: client, cfg: cfg, simURL: simSrv.URL}
}

// start runs a worker until the returned stop is called (or the test ends).
// stop returns how long Run took to return and its error.
func (b *bundle) start() (w *Worker, stop func() (time.Duration, error)) {
	b.t.Helper()
	w, err := New(b.cfg, b.rdb, b.aopt, b.client, testLogger(b.t))
	if err != nil {
		b.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	var rerr error
	var took time.Duration
	stop = func() (time.Duration, error) {
		once.Do(func() {
			t0 := time.Now()
			cancel()
			select {
			case rerr = <-done:
			case <-time.After(30 * time.Second):
				rerr = errors.New("Run did not return within 30s")
			}
			took = time.Since(t0)
		})
		return took, rerr
	}
	b.t.Cleanup(func() { stop() })
	return w, stop
}

// newWorker returns a worker that is not run (for calling process), with
// its own journal directory so that b.start may run another beside it.
func (b *bundle) newWorker() *Worker {
	b.t.Helper()
	cfg := b.cfg
	cfg.JournalDir = b.t.TempDir()
	w, err := New(cfg, b.rdb, b.aopt, b.client, zerolog.Nop())
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() { _ = w.Close() })
	return w
}

// testLogger logs to the test at warn level when ROXD_TEST_LOG is set.
func testLogger(t *testing.T) zerolog.Logger {
	if os.Getenv("ROXD_TEST_LOG") == "" {
		return zerolog.Nop()
	}
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel).With().Timestamp().Logger()
}

// enqueue stores n messages with unique texts "<prefix> <i>".
func (b *bundle) enqueue(n int, prefix string, mod func(i int, r *store.Record)) []string {
	b.t.Helper()
	ids := make([]string, 0, n)
	for lo := 0; lo < n; lo += 1000 {
		hi := min(lo+1000, n)
		recs := make([]store.Record, 0, hi-lo)
		for i := lo; i < hi; i++ {
			r := store.Record{ID: fmt.Sprintf("%s-%d", prefix, i), To: fmt.Sprintf("+614%08d", i),
				Text: fmt.Sprintf("%s %d", prefix, i), Receipt: "always", Reply: "http"}
			if mod != nil {
				mod(i, &r)
			}
			recs = append(recs, r)
			ids = append(ids, r.ID)
		}
		if _, _, err := b.st.Enqueue(b.ctx, recs); err != nil {
			b.t.Fatal(err)
		}
	}
	return ids
}

// statuses reads the status of each id.
func (b *bundle) statuses(ids []string) map[string]string {
	b.t.Helper()
	out := make(map[string]string, len(ids))
	cmds := make([]*redis.StringCmd, len(ids))
	_, _ = b.rdb.Pipelined(b.ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGet(b.ctx, b.st.Keys().Msg(id), "status")
		}
		return nil
	})
	for i, id := range ids {
		out[id] = cmds[i].Val()
	}
	return out
}

func (b *bundle) countStatus(ids []string, want string) int {
	n := 0
	for _, s := range b.statuses(ids) {
		if s == want {
			n++
		}
	}
	return n
}

// accepted returns, per text, how many times the simulator accepted it.
func (b *bundle) accepted() map[string]int {
	out := map[string]int{}
	for _, r := range b.sim.Recipients() {
		if r.SMSID != "" {
			out[r.Text]++
		}
	}
	return out
}

// checkExactlyOnce fails unless every text "<prefix> i" for i in 0..n-1
// was accepted exactly once and nothing else with that prefix was.
func (b *bundle) checkExactlyOnce(prefix string, n int) {
	b.t.Helper()
	acc := b.accepted()
	for i := 0; i < n; i++ {
		txt := fmt.Sprintf("%s %d", prefix, i)
		if c := acc[txt]; c != 1 {
			b.t.Fatalf("%q accepted %d times, want exactly 1", txt, c)
		}
	}
}

func TestEndToEndWithFaults(t *testing.T) {
	const n = 10000
	b := setup(t, roxsim.Faults{
		Fail5xx: 0.1, Latency: time.Millisecond, Jitter: 5 * time.Millisecond,
		RecipientErrors: 0.05, // 2015 and 2020: retryable
	}, nil)
	b.start()
	// Through the producer (validation, E.164, idempotency), in three
	// groups: receipts always/never, replies http/email.
	prod, err := producer.New(b.rdb, producer.Config{Store: b.cfg.Store}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	msgs := make([]producer.Message, n)
	ids := make([]string, n)
	for i := range msgs {
		ids[i] = fmt.Sprintf("e2e-%d", i)
		msgs[i] = producer.Message{ID: ids[i], To: fmt.Sprintf("+614%08d", i), Text: fmt.Sprintf("e2e %d", i)}
		switch i % 3 {
		case 1:
			msgs[i].Receipt = producer.ReceiptNever
		case 2:
			msgs[i].Reply = producer.ReplyEmail
		}
	}
	for lo := 0; lo < n; lo += 1000 {
		res, err := prod.SendMany(b.ctx, msgs[lo:lo+1000])
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				t.Fatalf("%s: %v", r.ID, r.Err)
			}
		}
	}
	// Idempotent replays (while the worker runs) queue nothing new.
	res, err := prod.SendMany(b.ctx, msgs[:2000])
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if !r.Replayed {
			t.Fatalf("replay of %s: %+v, want Replayed", r.ID, r)
		}
	}
	testutil.Eventually(t, 60*time.Second, func() bool { return b.countStatus(ids, "submitted") == n },
		"all %d messages submitted (have %d)", n, b.countStatus(ids, "submitted"))
	b.checkExactlyOnce("e2e", n)

	// Batches never exceed 500 and never mix groups.
	group := func(txt string) int {
		var i int
		fmt.Sscanf(txt, "e2e %d", &i)
		return i % 3
	}
	byReq := map[string]map[int]bool{}
	for _, r := range b.sim.Recipients() {
		if byReq[r.RequestID] == nil {
			byReq[r.RequestID] = map[int]bool{}
		}
		byReq[r.RequestID][group(r.Text)] = true
	}
	for id, gs := range byReq {
		if len(gs) != 1 {
			t.Fatalf("request %s mixes groups %v", id, gs)
		}
	}
	st := b.sim.Stats()
	for _, rq := range b.sim.Requests() {
		if rq.Recipients > 500 {
			t.Fatalf("request of %d recipients", rq.Recipients)
		}
	}
	if st.Injected5xx == 0 || len(st.RecipientErrors) == 0 {
		t.Fatalf("faults did not fire: %+v", st)
	}
	// SMSId map for the callbacks receiver.
	smsID := b.rdb.HGet(b.ctx, b.st.Keys().Msg(ids[7]), "sms_id").Val()
	if got := b.rdb.Get(b.ctx, b.st.Keys().SMS(smsID)).Val(); got != ids[7] {
		t.Fatalf("sms map %s → %q, want %s", smsID, got, ids[7])
	}
	t.Logf("requests %d (5xx %d), recipient errors %v, accepted %d", st.Requests, st.Injected5xx, st.RecipientErrors, st.Queued)
}

func TestGlobalTextWhenTextsAreEqual(t *testing.T) {
	b := setup(t, roxsim.Faults{}, func(c *Config) { c.Linger = 200 * time.Millisecond })
	ids := b.enqueue(40, "gt", func(i int, r *store.Record) { r.Text = "same text for all" })
	b.start()
	testutil.Eventually(t, 10*time.Second, func() bool { return b.countStatus(ids, "submitted") == 40 }, "submitted")
	for _, rq := range b.sim.Requests() {
		if rq.Request == nil {
			continue
		}
		if rq.Request.Messages.GlobalText != "same text for all" {
			t.Fatalf("request without GlobalText: %+v", rq.Request.Messages)
		}
		for _, r := range rq.Request.Messages.Recipients {
			if r.SMSText != "" {
				t.Fatalf("recipient carries SMSText %q alongside GlobalText", r.SMSText)
			}
		}
	}
}

func TestScheduledMessagesUnmixedWithSendLater(t *testing.T) {
	b := setup(t, roxsim.Faults{}, func(c *Config) { c.Store.ScheduleLead = time.Second })
	b.start()
	at := time.Now().Add(3 * time.Second)
	sched := b.enqueue(30, "sch", func(i int, r *store.Record) { r.SendAt = at })
	now := b.enqueue(30, "now", nil)
	testutil.Eventually(t, 5*time.Second, func() bool { return b.countStatus(now, "submitted") == 30 }, "immediate submitted")
	if n := b.countStatus(sched, "scheduled"); n != 30 {
		t.Fatalf("%d of 30 scheduled messages still scheduled before their lead", n)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return b.countStatus(sched, "submitted") == 30 }, "scheduled submitted")
	b.checkExactlyOnce("sch", 30)
	b.checkExactlyOnce("now", 30)
	wantLater := time.Unix(at.Unix()+1, 0).UTC()
	if at.Nanosecond() == 0 {
		wantLater = time.Unix(at.Unix(), 0).UTC()
	}
	for _, r := range b.sim.Recipients() {
		isSched := strings.HasPrefix(r.Text, "sch ")
		switch {
		case isSched && !r.SendLater.Equal(wantLater):
			t.Fatalf("%q SendLater %v, want %v", r.Text, r.SendLater, wantLater)
		case isSched && r.ReceivedAt.Before(at.Add(-b.cfg.Store.ScheduleLead-time.Second)):
			t.Fatalf("%q handed over at %v, before SendAt-lead (%v)", r.Text, r.ReceivedAt, at)
		case !isSched && !r.SendLater.IsZero():
			t.Fatalf("immediate %q carries SendLater %v", r.Text, r.SendLater)
		}
	}
	// Unmixed: no request carries both.
	kinds := map[string]map[bool]bool{}
	for _, r := range b.sim.Recipients() {
		if kinds[r.RequestID] == nil {
			kinds[r.RequestID] = map[bool]bool{}
		}
		kinds[r.RequestID][strings.HasPrefix(r.Text, "sch ")] = true
	}
	for id, k := range kinds {
		if len(k) != 1 {
			t.Fatalf("request %s mixes scheduled and immediate messages", id)
		}
	}
}

func TestCancelBeforeHandoverSendsNothing(t *testing.T) {
	b := setup(t, roxsim.Faults{}, func(c *Config) { c.Store.ScheduleLead = 500 * time.Millisecond })
	at := time.Now().Add(2 * time.Second)
	ids := b.enqueue(20, "can", func(i int, r *store.Record) { r.SendAt = at })
	for i := 0; i < 20; i += 2 {
		if _, err := b.st.Cancel(b.ctx, ids[i]); err != nil {
			t.Fatal(err)
		}
	}
	// Also cancel messages sitting in a ready list (status queued).
	q := b.enqueue(10, "canq", nil)
	for _, id := range q[:5] {
		if _, err := b.st.Cancel(b.ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	b.start()
	testutil.Eventually(t, 10*time.Second, func() bool {
		return b.countStatus(ids, "submitted") == 10 && b.countStatus(q, "submitted") == 5
	}, "uncancelled submitted")
	acc := b.accepted()
	for i := 0; i < 20; i++ {
		want := i % 2
		if got := acc[fmt.Sprintf("can %d", i)]; got != want {
			t.Fatalf("can %d accepted %d times, want %d", i, got, want)
		}
	}
	for i := 0; i < 10; i++ {
		want := 0
		if i >= 5 {
			want = 1
		}
		if got := acc[fmt.Sprintf("canq %d", i)]; got != want {
			t.Fatalf("canq %d accepted %d times, want %d", i, got, want)
		}
	}
	if n := b.countStatus(ids, "cancelled"); n != 10 {
		t.Fatalf("%d cancelled, want 10", n)
	}
}

func TestPermanentCodesFailWithoutRetry(t *testing.T) {
	b := setup(t, roxsim.Faults{RecipientErrors: 0.3, RecipientErrorCodes: []rox.Code{roxsim.CodeBarred}},
		func(c *Config) { c.PermanentCodes = []rox.Code{roxsim.CodeBarred} })
	b.start()
	ids := b.enqueue(300, "perm", nil)
	testutil.Eventually(t, 10*time.Second, func() bool {
		return b.countStatus(ids, "submitted")+b.countStatus(ids, "failed") == 300
	}, "all settled")
	failed := b.countStatus(ids, "failed")
	if failed == 0 {
		t.Fatal("no message failed: the fault did not fire")
	}
	seen := map[string]int{}
	for _, r := range b.sim.Recipients() {
		seen[r.Text]++
	}
	for txt, c := range seen {
		if c != 1 {
			t.Fatalf("%q reached the simulator %d times: a permanent code was retried", txt, c)
		}
	}
	if s := b.rdb.HGet(b.ctx, b.st.Keys().Msg(firstWith(b, ids, "failed")), "err").Val(); !strings.Contains(s, ReasonPermanent) || !strings.Contains(s, "2015") {
		t.Fatalf("err of a failed message %q", s)
	}
}

func firstWith(b *bundle, ids []string, status string) string {
	for id, s := range b.statuses(ids) {
		if s == status {
			return id
		}
	}
	return ""
}

func TestRetriesExhaustedArchivesWithReason(t *testing.T) {
	b := setup(t, roxsim.Faults{Fail5xx: 1}, func(c *Config) { c.MaxAttempts = 2 })
	b.start()
	ids := b.enqueue(5, "exh", nil)
	testutil.Eventually(t, 10*time.Second, func() bool { return b.countStatus(ids, "failed") == 5 }, "all failed")
	if s := b.rdb.HGet(b.ctx, b.st.Keys().Msg(ids[0]), "err").Val(); !strings.Contains(s, ReasonRetriesExhausted) {
		t.Fatalf("err %q, want %s", s, ReasonRetriesExhausted)
	}
	insp := asynq.NewInspector(b.aopt)
	defer insp.Close()
	var tasks []*asynq.TaskInfo
	testutil.Eventually(t, 5*time.Second, func() bool {
		tasks, _ = insp.ListArchivedTasks(b.cfg.Queue)
		return len(tasks) == 1
	}, "one archived task")
	if !strings.Contains(tasks[0].LastErr, "5 of 5 recipients failed") || !strings.Contains(tasks[0].LastErr, "HTTP 500") {
		t.Fatalf("archived reason %q", tasks[0].LastErr)
	}
	if st := b.sim.Stats(); st.Requests != 2 {
		t.Fatalf("%d requests, want 2 (MaxAttempts)", st.Requests)
	}
}

func TestAuthFailurePausesAndRecovers(t *testing.T) {
	b := setup(t, roxsim.Faults{AuthFail: true}, nil)
	b.start()
	ids := b.enqueue(300, "auth", nil)
	testutil.Eventually(t, 5*time.Second, func() bool {
		return b.rdb.Exists(b.ctx, b.st.Keys().AuthPause()).Val() == 1
	}, "auth pause set")
	// No hot loop: a handful of requests over a second with pauses of
	// 200 ms doubling to 1 s.
	time.Sleep(time.Second) // observing the absence of traffic needs real time
	if st := b.sim.Stats(); st.Requests > 6 {
		t.Fatalf("%d requests within ~1s of auth failures: hot loop", st.Requests)
	}
	if n := b.countStatus(ids, "failed"); n != 0 {
		t.Fatalf("%d failed during the auth pause, want 0", n)
	}
	if err := b.sim.SetFaults(roxsim.Faults{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return b.countStatus(ids, "submitted") == 300 }, "all submitted after recovery")
	b.checkExactlyOnce("auth", 300)
}

func TestStopUnderLoadAndRestartLosesNothing(t *testing.T) {
	const n = 5000
	b := setup(t, roxsim.Faults{Latency: 20 * time.Millisecond, Jitter: 20 * time.Millisecond, RecipientErrors: 0.05},
		func(c *Config) { c.SendConcurrency = 4; c.MaxBatch = 100 })
	ids := b.enqueue(n, "stop", nil)
	_, stop := b.start()
	testutil.Eventually(t, 20*time.Second, func() bool { return b.countStatus(ids, "submitted") > 500 }, "some submitted")
	took, err := stop()
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if took > b.cfg.ShutdownTimeout+2*time.Second {
		t.Fatalf("Run took %s to return, ShutdownTimeout is %s", took, b.cfg.ShutdownTimeout)
	}
	done := b.countStatus(ids, "submitted")
	if done == n {
		t.Fatal("everything was sent before the stop: the test proves nothing")
	}
	t.Logf("stopped after %d of %d in %s", done, n, took)
	b.start()
	testutil.Eventually(t, 60*time.Second, func() bool { return b.countStatus(ids, "submitted") == n },
		"all submitted after restart (have %d)", b.countStatus(ids, "submitted"))
	b.checkExactlyOnce("stop", n)
}

func TestRedeliveredBatchSendsNothingTwice(t *testing.T) {
	b := setup(t, roxsim.Faults{Latency: 50 * time.Millisecond}, nil)
	w := b.newWorker()
	b.enqueue(30, "redo", nil)
	formed, err := w.b.Form(b.ctx, store.FormParams{MaxBatch: 500, MaxWaiting: 10, MaxForm: 4, IDPrefix: "rd-"}, time.Now().Add(time.Second))
	if err != nil || len(formed) != 1 {
		t.Fatalf("form %v %v", formed, err)
	}
	bid := formed[0].ID
	// Two runs at once (a redelivery while the first is in flight), then a
	// third after both.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = w.process(b.ctx, bid, false) }()
	}
	wg.Wait()
	if !(errs[0] == nil && errors.Is(errs[1], errLocked)) && !(errs[1] == nil && errors.Is(errs[0], errLocked)) {
		t.Fatalf("concurrent runs returned %v and %v, want one nil and one errLocked", errs[0], errs[1])
	}
	if err := w.process(b.ctx, bid, false); err != nil {
		t.Fatalf("third run: %v", err)
	}
	b.checkExactlyOnce("redo", 30)
	if n := b.sim.Stats().Requests; n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
}

func TestConfigValidateNamesField(t *testing.T) {
	cases := map[string]func(*Config){
		"MaxBatch":           func(c *Config) { c.MaxBatch = 501 },
		"DequeueLanes":       func(c *Config) { c.DequeueLanes = -1 },
		"PermanentCodes[0]":  func(c *Config) { c.PermanentCodes = []rox.Code{"0000"} },
		"ReceiptCallbackURL": func(c *Config) { c.ReceiptCallbackURL = "ftp://x/?token=secret" },
		"RetryMaxInterval":   func(c *Config) { c.RetryInitial = time.Hour },
	}
	for field, mod := range cases {
		c := Config{}
		mod(&c)
		err := c.WithDefaults().Validate()
		if err == nil || !strings.Contains(err.Error(), field) || !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v", field, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: error quotes the URL token: %v", field, err)
		}
	}
}

func TestRetryDelayGrowsAndHonoursRetryAfter(t *testing.T) {
	w := &Worker{cfg: Config{RetryInitial: 100 * time.Millisecond, RetryMaxInterval: time.Second}}
	if d := w.retryDelay(0, errors.New("x"), nil); d < 50*time.Millisecond || d > 150*time.Millisecond {
		t.Fatalf("first delay %s", d)
	}
	if d := w.retryDelay(10, errors.New("x"), nil); d < 500*time.Millisecond || d > 1500*time.Millisecond {
		t.Fatalf("capped delay %s", d)
	}
	// Retry-After is a minimum: asynq keeps the retry time in whole
	// seconds (truncated), so the delay is rounded up to land on one, never
	// before the answer + Retry-After.
	for i := 0; i < 50; i++ {
		answered := time.Now()
		ra := &BatchError{Last: &rox.Error{Kind: rox.KindHTTP, StatusCode: 429, RetryAfter: 3 * time.Second}}
		d := w.retryDelay(0, ra, nil)
		stored := time.Unix(time.Now().Add(d).Unix(), 0) // what asynq keeps
		if stored.Before(answered.Add(3*time.Second)) || d > 4*time.Second {
			t.Fatalf("delay with Retry-After 3s is %s: the retry is stored for %s, %s after the answer",
				d, stored.Format("15:04:05.000"), stored.Sub(answered))
		}
		time.Sleep(7 * time.Millisecond) // land on other fractions of a second
	}
	// A rate-limit wait is a minimum too.
	d := w.retryDelay(0, &rateWait{Account: "a", Kind: "messages", Delay: 1500 * time.Millisecond}, nil)
	if stored := time.Unix(time.Now().Add(d).Unix(), 0); time.Until(stored) < 1400*time.Millisecond {
		t.Fatalf("rate wait 1.5s: delay %s", d)
	}
}

// TestLockedOnLastAttemptLeavesBatchToReaper: a redelivered run that finds
// the batch locked on its last attempt must not archive the task (its ID
// would stay taken); the reaper then finishes what the lock holder left.
func TestLockedOnLastAttemptLeavesBatchToReaper(t *testing.T) {
	b := setup(t, roxsim.Faults{}, func(c *Config) { c.ReapAge = 300 * time.Millisecond; c.ReapInterval = 200 * time.Millisecond })
	w := b.newWorker()
	ids := b.enqueue(10, "lastlock", nil)
	formed, err := w.b.Form(b.ctx, store.FormParams{MaxBatch: 500, MaxWaiting: 10, MaxForm: 4, IDPrefix: "ll-"}, time.Now().Add(time.Second))
	if err != nil || len(formed) != 1 {
		t.Fatalf("form %v %v", formed, err)
	}
	bid := formed[0].ID
	// Another run holds the lock and then dies: its lock expires, the batch stays.
	if err := b.rdb.Set(b.ctx, b.st.Keys().Lock(bid), "other-run", 700*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	if err := w.process(b.ctx, bid, true); err != nil {
		t.Fatalf("last attempt on a locked batch returned %v, want nil (no archive)", err)
	}
	if n := b.sim.Stats().Requests; n != 0 {
		t.Fatalf("%d requests while locked, want 0", n)
	}
	b.start()
	testutil.Eventually(t, 15*time.Second, func() bool { return b.countStatus(ids, "submitted") == 10 },
		"the reaper never finished the batch left behind")
	b.checkExactlyOnce("lastlock", 10)
}

func TestReaperEnqueuesBatchWithoutTask(t *testing.T) {
	b := setup(t, roxsim.Faults{}, func(c *Config) { c.ReapAge = 300 * time.Millisecond; c.ReapInterval = 200 * time.Millisecond })
	ids := b.enqueue(20, "reap", nil)
	// A crash between forming and enqueueing: a batch record, no task.
	bs := b.st.Batches()
	formed, err := bs.Form(b.ctx, store.FormParams{MaxBatch: 500, MaxWaiting: 10, MaxForm: 4, IDPrefix: "orphan-"}, time.Now().Add(time.Second))
	if err != nil || len(formed) != 1 {
		t.Fatalf("form %v %v", formed, err)
	}
	b.start()
	testutil.Eventually(t, 10*time.Second, func() bool { return b.countStatus(ids, "submitted") == 20 }, "orphan batch sent")
	b.checkExactlyOnce("reap", 20)
}

func TestShutdownTimeoutReturnsInFlightBatches(t *testing.T) {
	const n = 1000
	// Requests take 400 ms; shutdown gives them 100 ms: asynq returns the
	// in-flight tasks to pending and cancels their handlers mid-request.
	b := setup(t, roxsim.Faults{Latency: 400 * time.Millisecond},
		func(c *Config) {
			c.ShutdownTimeout = 100 * time.Millisecond
			c.SendConcurrency = 4
			c.MaxBatch = 50
			// The cut requests' outcome is unknown; the sink gives no
			// evidence, so they are sent again when this window closes.
			c.ReconcileWindow = time.Second
		})
	ids := b.enqueue(n, "abort", nil)
	_, stop := b.start()
	testutil.Eventually(t, 10*time.Second, func() bool { return b.sim.Stats().Requests >= 4 }, "requests in flight")
	took, err := stop()
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if took > 2*time.Second {
		t.Fatalf("Run took %s with ShutdownTimeout 100ms", took)
	}
	if done := b.countStatus(ids, "submitted"); done == n {
		t.Fatal("everything was sent before the stop: the test proves nothing")
	}
	b.cfg.ShutdownTimeout = 3 * time.Second
	b.start()
	testutil.Eventually(t, 30*time.Second, func() bool { return b.countStatus(ids, "submitted") == n },
		"all submitted after restart (have %d)", b.countStatus(ids, "submitted"))
	b.checkExactlyOnce("abort", n)
}

// Texts of 4,000 characters of CJK (12,000 bytes each) are within ROX's
// limits one by one, but 500 of them make a 6 MB request, which the
// simulator (4 MiB) refused with HTTP 413 and the worker took as permanent:
// every message failed. Requests are now sized by bytes at the enqueue
// (store.Enqueue puts such messages in groups of at most 62 per request):
// all are submitted, in requests of at most rox.MaxRequestBytes.
func TestLongTextsSplitIntoRequestsByBytes(t *testing.T) {
	b := setup(t, roxsim.Faults{}, func(c *Config) { c.Linger = 50 * time.Millisecond })
	ids := b.enqueue(500, "big", func(i int, r *store.Record) {
		r.Text = fmt.Sprintf("%d %s", i, strings.Repeat("漢", rox.MaxTextLen-10))
	})
	b.start()
	testutil.Eventually(t, 60*time.Second, func() bool {
		return b.countStatus(ids, "submitted")+b.countStatus(ids, "failed") == len(ids)
	}, "every message submitted or failed")
	if n := b.countStatus(ids, "submitted"); n != len(ids) {
		t.Fatalf("%d of %d submitted: %v", n, len(ids), b.statuses(ids[:3]))
	}
	reqs := 0
	for _, rq := range b.sim.Requests() {
		reqs++
		if rq.BodyBytes > rox.MaxRequestBytes {
			t.Errorf("a request of %d bytes (%d recipients), over rox.MaxRequestBytes %d", rq.BodyBytes, len(rq.Request.Messages.Recipients), rox.MaxRequestBytes)
		}
	}
	if reqs < 6 {
		t.Errorf("%d requests for 500 texts of 12,000 bytes: want at least 6 of at most 1 MiB", reqs)
	}
}
