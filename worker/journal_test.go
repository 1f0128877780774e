package worker

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/internal/journal"
	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/internal/testutil"
	"github.com/redoxygen/roxd/producer"
	"github.com/redoxygen/roxd/producer/httpapi"
	"github.com/redoxygen/roxd/rox"
	"github.com/redoxygen/roxd/rox/roxsim"
)

// setupPrivate is setup on a private redis-server, for tests that make
// Redis refuse writes (CONFIG SET maxmemory, REPLICAOF) without disturbing
// the shared test Redis.
func setupPrivate(t *testing.T, f roxsim.Faults, mod func(*Config)) (*bundle, *redis.Client) {
	t.Helper()
	srv := testutil.NewServer(t)
	b := setup(t, f, mod)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	// A second client for the faults: it must not share the worker's pool.
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = admin.Close() })
	st, err := store.New(rdb, b.cfg.Store)
	if err != nil {
		t.Fatal(err)
	}
	b.rdb, b.aopt, b.st = rdb, asynq.RedisClientOpt{Addr: srv.Addr()}, st
	return b, admin
}

// acceptedTo returns the SMSIds the simulator gave to DestTn to.
func (b *bundle) acceptedTo(to string) []string {
	var ids []string
	for _, r := range b.sim.Recipients() {
		if r.DestTn == to && r.SMSID != "" {
			ids = append(ids, r.SMSID)
		}
	}
	return ids
}

// stays fails the test if cond turns false within d (polling).
func stays(t *testing.T, d time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if !cond() {
			t.Fatalf(format, args...)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// refusalTest is issue 8 fault 2: a ROX stand-in that accepts and answers
// after 3 s; POST /v1/messages {"to":"+61400000081",...,"receipt":"never"};
// Redis refuses writes (refuse) from before the answer until
// ~2 s after it, then takes them again (restore). Exactly one SMS must be
// accepted for the number, and the message ends `submitted` with that
// SMSId, never sent again (on the code before the journal it was sent again
// once the batch lock expired).
func refusalTest(t *testing.T, name string, refuse, restore func(ctx context.Context, admin *redis.Client) error) {
	refusalTestFor(t, name, 3*time.Second, 8*time.Second, 2*time.Second, refuse, restore)
}

// refusalMayLand names the refusals under which the record script may land
// anyway: under OOM Redis refuses a script's first memory-growing command
// only while the script has written nothing, and the record script's first
// write is the in-flight stamp's removal (HDEL, store.ReconcileLua), after
// which Redis lets the script finish. The outcome the issue asks for (one
// SMS, ROX's first SMSId) is checked either way; the journal's own OOM path
// is pinned by TestLockKeptWhileHeldUnderOOM.
var refusalMayLand = map[string]bool{"oom": true}

// refusalTestFor is refusalTest with ROX's latency, the task timeout and
// how long Redis keeps refusing after ROX answered.
func refusalTestFor(t *testing.T, name string, latency, taskTimeout, hold time.Duration, refuse, restore func(ctx context.Context, admin *redis.Client) error) {
	const to = "+61400000081"
	b, admin := setupPrivate(t, roxsim.Faults{Latency: latency},
		func(c *Config) { c.TaskTimeout = taskTimeout })
	// The reproduction, through the HTTP API.
	prod, err := producer.New(b.rdb, producer.Config{Store: b.cfg.Store}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	const token = "api-token-0123456789"
	api, err := httpapi.New(prod, httpapi.Config{Token: token}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	apiSrv := httptest.NewServer(api)
	defer apiSrv.Close()
	req, _ := http.NewRequest(http.MethodPost, apiSrv.URL+"/v1/messages",
		strings.NewReader(`{"to":"`+to+`","text":"`+name+` window","receipt":"never"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var accepted struct {
		ID string `json:"id"`
	}
	err = json.NewDecoder(resp.Body).Decode(&accepted)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusAccepted || accepted.ID == "" {
		t.Fatalf("POST /v1/messages: %d %+v %v", resp.StatusCode, accepted, err)
	}
	id := accepted.ID
	w, _ := b.start()
	// The request is at ROX (answer due in 3 s): Redis starts refusing.
	testutil.Eventually(t, 20*time.Second, func() bool { return b.sim.Stats().Requests >= 1 }, "request reached the simulator")
	if err := refuse(b.ctx, admin); err != nil {
		t.Fatal(err)
	}
	restored := false
	defer func() {
		if !restored {
			_ = restore(context.Background(), admin)
		}
	}()
	testutil.Eventually(t, 20*time.Second, func() bool { return len(b.acceptedTo(to)) >= 1 }, "ROX accepted the message")
	first := b.acceptedTo(to)[0]
	// Hold the refusal past the answer: the record fails and its retries
	// too (the 4 s window).
	time.Sleep(hold)
	if st := admin.HGet(b.ctx, b.st.Keys().Msg(id), "status").Val(); st == "submitted" && !refusalMayLand[name] {
		t.Fatalf("message submitted while Redis refused writes: the fault did not bite")
	}
	if err := restore(b.ctx, admin); err != nil {
		t.Fatal(err)
	}
	restored = true

	testutil.Eventually(t, 30*time.Second, func() bool {
		return admin.HGet(b.ctx, b.st.Keys().Msg(id), "status").Val() == "submitted"
	}, "message submitted after Redis came back")
	if got := admin.HGet(b.ctx, b.st.Keys().Msg(id), "sms_id").Val(); got != first {
		t.Fatalf("sms_id %q, want ROX's first SMSId %q", got, first)
	}
	if got := admin.Get(b.ctx, b.st.Keys().SMS(first)).Val(); got != id {
		t.Fatalf("SMSId map %s -> %q, want %s", first, got, id)
	}
	// Long enough for the old path to resend: batch lock (TaskTimeout)
	// expired, task retried, ROX's latency.
	stays(t, taskTimeout+latency+3*time.Second, func() bool { return len(b.acceptedTo(to)) == 1 },
		"%s accepted %d times (%v), want exactly 1", to, len(b.acceptedTo(to)), b.acceptedTo(to))
	if st := admin.HGet(b.ctx, b.st.Keys().Msg(id), "status").Val(); st != "submitted" {
		t.Fatalf("status %q at the end, want submitted", st)
	}
	if w.ans.len() != 0 || w.jr.Len() != 0 {
		t.Fatalf("held %d, journal %d at the end; want 0, 0", w.ans.len(), w.jr.Len())
	}
}

func TestRedisOOMAfterROXAcceptedSendsOnce(t *testing.T) {
	refusalTest(t, "oom",
		func(ctx context.Context, a *redis.Client) error { return a.ConfigSet(ctx, "maxmemory", "1").Err() },
		func(ctx context.Context, a *redis.Client) error { return a.ConfigSet(ctx, "maxmemory", "0").Err() })
}

func TestRedisReadonlyAfterROXAcceptedSendsOnce(t *testing.T) {
	refusalTest(t, "readonly",
		func(ctx context.Context, a *redis.Client) error {
			return a.Do(ctx, "REPLICAOF", "127.0.0.1", "1").Err()
		},
		func(ctx context.Context, a *redis.Client) error { return a.Do(ctx, "REPLICAOF", "NO", "ONE").Err() })
}

// TestLongReadonlyOutlivesTaskTimeout: Redis stays READONLY for twice the
// task timeout after ROX answered. The handler gives up waiting before its
// deadline (errJournalled, not a failure), the batch lock expires, asynq
// retries the task once Redis is back; the retry finds the answer held or
// applied and sends nothing.
func TestLongReadonlyOutlivesTaskTimeout(t *testing.T) {
	refusalTestFor(t, "longro", time.Second, 4*time.Second, 8*time.Second,
		func(ctx context.Context, a *redis.Client) error {
			return a.Do(ctx, "REPLICAOF", "127.0.0.1", "1").Err()
		},
		func(ctx context.Context, a *redis.Client) error { return a.Do(ctx, "REPLICAOF", "NO", "ONE").Err() })
}

// TestJournalReplayedBeforeClaiming: a worker process died holding ROX's
// answer in its journal (Redis refused the record; the batch's lock has
// since expired and its task is pending again). A new worker on the same
// directory applies the answer before it claims anything: the message ends
// submitted with the first SMSId and is not sent again; the journal empties.
func TestJournalReplayedBeforeClaiming(t *testing.T) {
	const to = "+61400000082"
	b := setup(t, roxsim.Faults{}, nil)
	ids := b.enqueue(3, "replay", func(i int, r *store.Record) {
		r.Receipt = "never"
		if i == 0 {
			r.To = to
		}
	})
	bs := b.st.Batches()
	formed, err := bs.Form(b.ctx, store.FormParams{MaxBatch: 500, MaxWaiting: 10, MaxForm: 4, IDPrefix: testutil.Name("rp") + "-"}, time.Now().Add(time.Second))
	if err != nil || len(formed) != 1 {
		t.Fatalf("form %v %v", formed, err)
	}
	bid := formed[0].ID
	// The dead run: claim, send, and its answer went to the journal only.
	claim, err := bs.Claim(b.ctx, bid, "dead-run", time.Minute, time.Now())
	if err != nil || claim.State != store.ClaimOK || len(claim.Items) != 3 {
		t.Fatalf("claim %+v %v", claim, err)
	}
	var rcpts []rox.Recipient
	for _, it := range claim.Items {
		rcpts = append(rcpts, rox.Recipient{DestTn: it.To, SMSText: it.Text})
	}
	resp, err := b.client.Send(b.ctx, rox.Messages{ReceiptFlag: rox.ReceiptNever, ReplyType: rox.ReplyEmail, Recipients: rcpts})
	if err != nil {
		t.Fatal(err)
	}
	e := journal.Entry{Batch: bid, Token: "dead-run", RequestID: resp.Messages.RequestID, At: time.Now().UTC()}
	for i, it := range claim.Items {
		e.Outcomes = append(e.Outcomes, journal.Outcome{ID: it.ID, Kind: "s", Value: resp.Messages.Results[i].SMSID})
	}
	j, err := journal.Open(b.cfg.JournalDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Append(e); err != nil {
		t.Fatal(err)
	}
	_ = j.Close() // the process "dies"
	// Its lock expired during the outage, and the task is pending again.
	b.rdb.Del(b.ctx, b.st.Keys().Lock(bid))
	body, _ := json.Marshal(payload{Batch: bid})
	ac := asynq.NewClient(b.aopt)
	defer ac.Close()
	if _, err := ac.Enqueue(asynq.NewTask(TaskType, body), asynq.TaskID(bid), asynq.Queue(b.cfg.Queue)); err != nil {
		t.Fatal(err)
	}

	b.start()
	testutil.Eventually(t, 20*time.Second, func() bool { return b.countStatus(ids, "submitted") == 3 }, "journalled answer applied")
	for i, it := range claim.Items {
		if got := b.rdb.HGet(b.ctx, b.st.Keys().Msg(it.ID), "sms_id").Val(); got != e.Outcomes[i].Value {
			t.Fatalf("%s sms_id %q, want the journalled %q", it.ID, got, e.Outcomes[i].Value)
		}
	}
	insp := asynq.NewInspector(b.aopt)
	defer insp.Close()
	testutil.Eventually(t, 20*time.Second, func() bool {
		_, err := insp.GetTaskInfo(b.cfg.Queue, bid)
		return errors.Is(err, asynq.ErrTaskNotFound)
	}, "the batch's task ran and completed")
	if n := b.sim.Stats().Requests; n != 1 {
		t.Fatalf("%d ROX requests, want 1 (the dead run's): the batch was sent again", n)
	}
	if got := b.acceptedTo(to); len(got) != 1 {
		t.Fatalf("%s accepted %d times", to, len(got))
	}
}

// TestJournalledBatchIsNotClaimed: while a batch's answer is held (Redis
// still refusing), a redelivered task of it neither claims nor sends; it
// ends with errJournalled (not a failure) when its budget runs out.
func TestJournalledBatchIsNotClaimed(t *testing.T) {
	b := setup(t, roxsim.Faults{}, nil)
	w := b.newWorker()
	b.enqueue(2, "held", nil)
	formed, err := w.b.Form(b.ctx, store.FormParams{MaxBatch: 500, MaxWaiting: 10, MaxForm: 4, IDPrefix: testutil.Name("hd") + "-"}, time.Now().Add(time.Second))
	if err != nil || len(formed) != 1 {
		t.Fatalf("form %v %v", formed, err)
	}
	bid := formed[0].ID
	je, err := w.jr.Append(journal.Entry{Batch: bid, Token: "t", At: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	w.ans.add(&held{e: je, durable: true, since: time.Now(), applied: make(chan struct{})})
	ctx, cancel := context.WithTimeout(b.ctx, 500*time.Millisecond)
	defer cancel()
	err = w.process(ctx, bid, false)
	if !errors.Is(err, errJournalled) || isFailure(err) {
		t.Fatalf("process of a held batch: %v, want errJournalled (not a failure)", err)
	}
	if err := w.process(ctx, bid, true); err != nil {
		t.Fatalf("last attempt on a held batch: %v, want nil (no archive)", err)
	}
	if n := b.sim.Stats().Requests; n != 0 {
		t.Fatalf("%d ROX requests for a held batch, want 0", n)
	}
	if ex := b.rdb.Exists(b.ctx, b.st.Keys().Lock(bid)).Val(); ex != 0 {
		t.Fatal("a held batch was claimed (its lock is set)")
	}
}

// TestSharedJournalDirRefused: a second worker on the same directory is
// refused, naming the field; the first keeps it.
func TestSharedJournalDirRefused(t *testing.T) {
	b := setup(t, roxsim.Faults{}, nil)
	w1, err := New(b.cfg, b.rdb, b.aopt, b.client, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer w1.Close()
	_, err = New(b.cfg, b.rdb, b.aopt, b.client, testLogger(t))
	if !errors.Is(err, journal.ErrInUse) || !errors.Is(err, ErrJournalDir) || !strings.Contains(err.Error(), "JournalDir") || !strings.Contains(err.Error(), b.cfg.JournalDir) {
		t.Fatalf("second worker on %s: %v, want ErrInUse naming JournalDir and the directory", b.cfg.JournalDir, err)
	}
	if err := w1.Close(); err != nil {
		t.Fatal(err)
	}
	w3, err := New(b.cfg, b.rdb, b.aopt, b.client, testLogger(t))
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	_ = w3.Close()
}

// TestLockKeptWhileHeldUnderOOM: while Redis refuses the record for memory,
// the applier keeps the batch lock alive (PEXPIRE allocates nothing and is
// not refused under OOM) well past its TTL, so no other host can claim the
// batch; once Redis takes the record, the lock is released.
func TestLockKeptWhileHeldUnderOOM(t *testing.T) {
	b, admin := setupPrivate(t, roxsim.Faults{}, func(c *Config) { c.TaskTimeout = time.Second })
	w := b.newWorker()
	ids := b.enqueue(1, "keep", nil)
	formed, err := w.b.Form(b.ctx, store.FormParams{MaxBatch: 500, MaxWaiting: 10, MaxForm: 4, IDPrefix: testutil.Name("kp") + "-"}, time.Now().Add(time.Second))
	if err != nil || len(formed) != 1 {
		t.Fatalf("form %v %v", formed, err)
	}
	bid := formed[0].ID
	if c, err := w.b.Claim(b.ctx, bid, "tok", time.Second, time.Now()); err != nil || c.State != store.ClaimOK {
		t.Fatalf("claim %+v %v", c, err)
	}
	// Without an in-flight stamp the record script's first write is a
	// memory-growing one, which Redis refuses under OOM (see refusalMayLand).
	if err := admin.HDel(b.ctx, b.st.Keys().Msg(ids[0]), "flight").Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.ConfigSet(b.ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	defer admin.ConfigSet(context.Background(), "maxmemory", "0")
	je, err := w.jr.Append(journal.Entry{Batch: bid, Token: "tok", RequestID: "r1", At: time.Now(),
		Outcomes: []journal.Outcome{{ID: ids[0], Kind: "s", Value: "sms-keep-1"}}})
	if err != nil {
		t.Fatal(err)
	}
	h := &held{e: je, durable: true, since: time.Now(), applied: make(chan struct{})}
	w.ans.add(h)
	ctx, cancel := context.WithCancel(b.ctx)
	loopDone := make(chan struct{})
	go func() { defer close(loopDone); w.applyLoop(ctx) }()
	defer func() { cancel(); <-loopDone }()

	lock := b.st.Keys().Lock(bid)
	stays(t, 3*time.Second, func() bool { return admin.Get(b.ctx, lock).Val() == "tok" },
		"the batch lock (TTL 1 s) expired while its answer was held under OOM")
	if st := admin.HGet(b.ctx, b.st.Keys().Msg(ids[0]), "status").Val(); st == "submitted" {
		t.Fatal("recorded under OOM: the fault did not bite")
	}
	if err := admin.ConfigSet(b.ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.applied:
	case <-time.After(15 * time.Second):
		t.Fatal("not applied after Redis took writes again")
	}
	if got := admin.HGet(b.ctx, b.st.Keys().Msg(ids[0]), "sms_id").Val(); got != "sms-keep-1" {
		t.Fatalf("sms_id %q after apply", got)
	}
	if admin.Exists(b.ctx, lock).Val() != 0 {
		t.Fatal("lock still held after the apply")
	}
	if w.jr.Len() != 0 || w.ans.len() != 0 {
		t.Fatalf("journal %d, held %d after apply; want 0, 0", w.jr.Len(), w.ans.len())
	}
}
