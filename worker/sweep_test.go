package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/internal/metrics"
	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/internal/testutil"
	"github.com/redoxygen/roxd/rox/roxsim"
)

// These tests leave a batch in the states a lost task, a lost lock, a
// refused write or a Redis that lost its last writes can leave it in, and
// check that the sweep finds it and gets every message sent exactly once
// (docs/RELIABILITY.md, "The stuck batch").

// asynqKey is asynq v0.26's key of queue q (the layout taskrepair.go
// relies on; TestAsynqKeyLayout pins it).
func asynqKey(q, suffix string) string { return "asynq:{" + q + "}:" + suffix }

// deadRun forms one batch of the n messages with ids prefix-i and claims
// it as a handler run would, then forgets the run: the messages are
// `sending` and stamped in flight, the lock is gone (expired) and no
// request reached ROX. It returns the batch id.
func (b *bundle) deadRun(n int, prefix string) (string, []string) {
	b.t.Helper()
	ids := b.enqueue(n, prefix, nil)
	bs := b.st.Batches()
	formed, err := bs.Form(b.ctx, store.FormParams{MaxBatch: 500, MaxForm: 1, MaxWaiting: 10, IDPrefix: testutil.Name("bt") + "-"}, time.Now())
	if err != nil || len(formed) != 1 || formed[0].Size != n {
		b.t.Fatalf("form: %v %+v", err, formed)
	}
	bid := formed[0].ID
	c, err := bs.Claim(b.ctx, bid, "dead-run", b.cfg.TaskTimeout, time.Now())
	if err != nil || c.State != store.ClaimOK || len(c.Items) != n {
		b.t.Fatalf("claim: %v %+v", err, c)
	}
	if err := b.rdb.Del(b.ctx, b.st.Keys().Lock(bid)).Err(); err != nil {
		b.t.Fatal(err)
	}
	return bid, ids
}

// enqueueTask enqueues batch bid's task as the former does and marks the
// batch as having one.
func (b *bundle) enqueueTask(bid string) { b.enqueueTaskRetry(bid, b.cfg.MaxAttempts-1) }

func (b *bundle) enqueueTaskRetry(bid string, maxRetry int) {
	b.t.Helper()
	c := asynq.NewClient(b.aopt)
	defer c.Close()
	body, _ := json.Marshal(payload{Batch: bid})
	if _, err := c.Enqueue(asynq.NewTask(TaskType, body), asynq.TaskID(bid), asynq.Queue(b.cfg.Queue),
		asynq.MaxRetry(maxRetry), asynq.Timeout(b.cfg.TaskTimeout), asynq.Retention(time.Hour)); err != nil {
		b.t.Fatal(err)
	}
	if err := b.st.Batches().MarkEnqueued(b.ctx, bid); err != nil {
		b.t.Fatal(err)
	}
}

// sentOnce waits until every message of ids is submitted and checks each
// was accepted by ROX exactly once.
func (b *bundle) sentOnce(ids []string, prefix string, within time.Duration) {
	b.t.Helper()
	end := time.Now().Add(within)
	for b.countStatus(ids, "submitted") != len(ids) {
		if time.Now().After(end) {
			b.t.Fatalf("after %s: not all %d submitted: %v", within, len(ids), b.statusCounts(ids))
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.checkExactlyOnce(prefix, len(ids))
}

func (b *bundle) statusCounts(ids []string) map[string]int {
	out := map[string]int{}
	for _, s := range b.statuses(ids) {
		out[s]++
	}
	return out
}

// sweepCfg: short sweep and reconcile periods, so that a run ends in
// seconds.
func sweepCfg(c *Config) {
	c.ReapInterval = 300 * time.Millisecond
	c.ReapAge = time.Second
	c.ReconcileWindow = time.Second
	c.TaskTimeout = 5 * time.Second
}

// TestSweepRecoversOrphanedActiveTask: asynq's done, retry, requeue and
// archive scripts remove a task from the active list before they check its
// lease, and return NOT FOUND without undoing it when the lease is gone.
// The task is then `active` in its hash and in no list: no server runs it,
// the recoverer never sees it, and the sweep used to leave an active task
// alone: the batch stayed `sending` for good. The same for a task left in
// the lease set but not in the active list (the recoverer's retry answers
// NOT FOUND each minute).
func TestSweepRecoversOrphanedActiveTask(t *testing.T) {
	for _, tc := range []struct {
		name   string
		orphan func(b *bundle, bid string)
	}{
		{"in no list", func(b *bundle, bid string) {
			q := b.cfg.Queue
			b.rdb.LRem(b.ctx, asynqKey(q, "pending"), 0, bid)
			b.rdb.HSet(b.ctx, asynqKey(q, "t:"+bid), "state", "active")
		}},
		{"lease without active entry", func(b *bundle, bid string) {
			q := b.cfg.Queue
			b.rdb.LRem(b.ctx, asynqKey(q, "pending"), 0, bid)
			b.rdb.HSet(b.ctx, asynqKey(q, "t:"+bid), "state", "active")
			b.rdb.ZAdd(b.ctx, asynqKey(q, "lease"), redis.Z{Score: float64(time.Now().Add(-time.Hour).Unix()), Member: bid})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := setup(t, roxsim.Faults{}, sweepCfg)
			prefix := "orph" + fmt.Sprint(len(tc.name))
			bid, ids := b.deadRun(20, prefix)
			b.enqueueTask(bid)
			tc.orphan(b, bid)
			b.start()
			b.sentOnce(ids, prefix, 30*time.Second)
		})
	}
}

// TestSweepRecoversZombieTaskHash: asynq's ResultWriter is a plain HSET on
// the task's hash; a result written after the task was deleted makes a
// hash with only `result`. Inspector.GetTaskInfo then fails and an
// enqueue with the batch's task id answers "task ID conflict", which the
// worker took as "enqueued": the batch was never run again.
func TestSweepRecoversZombieTaskHash(t *testing.T) {
	b := setup(t, roxsim.Faults{}, sweepCfg)
	bid, ids := b.deadRun(20, "zomb")
	// The task existed (marked), then only a late result remains of it.
	b.enqueueTask(bid)
	insp := b.inspector()
	if err := insp.DeleteTask(b.cfg.Queue, bid); err != nil {
		t.Fatal(err)
	}
	b.rdb.HSet(b.ctx, asynqKey(b.cfg.Queue, "t:"+bid), "result", `{"attempt":1}`)
	b.start()
	b.sentOnce(ids, "zomb", 30*time.Second)
}

// TestSweepRequeueOfCompletedTaskSurvivesRefusedEnqueue: a run that ends
// without finishing its batch (last attempt while another run holds the
// lock, or reconciling) completes its task; the sweep deletes the
// completed task and enqueues a new one. Under OOM the delete is allowed
// (it frees memory) and the enqueue refused: the batch was left marked as
// having a task with none, and the next sweep took that for an operator's
// delete and failed every message `deleted by operator`.
func TestSweepRequeueOfCompletedTaskSurvivesRefusedEnqueue(t *testing.T) {
	b, admin := setupPrivate(t, roxsim.Faults{}, sweepCfg)
	bid, ids := b.deadRun(20, "oomq")
	b.enqueueTask(bid)
	// The task completed (as asynq's markAsComplete leaves it).
	q := b.cfg.Queue
	b.rdb.LRem(b.ctx, asynqKey(q, "pending"), 0, bid)
	b.rdb.ZAdd(b.ctx, asynqKey(q, "completed"), redis.Z{Score: float64(time.Now().Add(time.Hour).Unix()), Member: bid})
	b.rdb.HSet(b.ctx, asynqKey(q, "t:"+bid), "state", "completed")
	time.Sleep(b.cfg.ReapAge)

	op, err := NewOperator(b.cfg, b.rdb, b.aopt, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	w := b.newWorker()
	w.client = asynq.NewClient(b.aopt)
	defer w.client.Close()
	op.enq = w.enqueueBatch
	if err := admin.ConfigSet(b.ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	res := op.Sweep(b.ctx, time.Now().Add(-b.cfg.ReapAge))
	if err := admin.ConfigSet(b.ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("sweep under OOM: %+v", res)
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	res = op.Sweep(ctx, time.Now().Add(-b.cfg.ReapAge))
	t.Logf("sweep after OOM: %+v", res)
	if n := b.countStatus(ids, "failed"); n != 0 {
		t.Fatalf("%d messages failed (%q) after a refused enqueue: a lost task taken for an operator's delete",
			n, b.record(ids[0]).Err)
	}
	b.start()
	b.sentOnce(ids, "oomq", 30*time.Second)
}

// TestSweepRecoversBatchWhoseTaskWasLost: Redis restarted and lost its
// last second of writes (AOF everysec): the batch was claimed (its
// messages are `sending`, in flight) but its task and lock are gone, the
// `task` mark with them (it is written after the enqueue). The sweep
// enqueues it; the claim finds the recipients in flight, waits for the
// reconcile window (no evidence: the request never reached ROX) and sends
// them once.
func TestSweepRecoversBatchWhoseTaskWasLost(t *testing.T) {
	b := setup(t, roxsim.Faults{}, sweepCfg)
	_, ids := b.deadRun(20, "lost")
	b.start()
	b.sentOnce(ids, "lost", 30*time.Second)
}

// TestAsynqKeyLayout pins the asynq key layout taskrepair.go relies on: a
// dequeued task is in the active list and the lease set, its hash says
// active.
func TestAsynqKeyLayout(t *testing.T) {
	b := setup(t, roxsim.Faults{}, nil)
	q := b.cfg.Queue
	c := asynq.NewClient(b.aopt)
	defer c.Close()
	if _, err := c.Enqueue(asynq.NewTask("layout", nil), asynq.TaskID("lay-1"), asynq.Queue(q)); err != nil {
		t.Fatal(err)
	}
	if b.rdb.LPos(b.ctx, asynqKey(q, "pending"), "lay-1", redis.LPosArgs{}).Err() != nil ||
		b.rdb.HGet(b.ctx, asynqKey(q, "t:lay-1"), "state").Val() != "pending" {
		t.Fatal("a pending task is not where taskrepair.go looks")
	}
	started := make(chan struct{})
	release := make(chan struct{})
	srv := asynq.NewServer(b.aopt, asynq.Config{Queues: map[string]int{q: 1}, Concurrency: 1, LogLevel: asynq.FatalLevel})
	mux := asynq.NewServeMux()
	mux.HandleFunc("layout", func(context.Context, *asynq.Task) error { close(started); <-release; return nil })
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	defer close(release)
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("task not started")
	}
	if b.rdb.LPos(b.ctx, asynqKey(q, "active"), "lay-1", redis.LPosArgs{}).Err() != nil ||
		b.rdb.ZScore(b.ctx, asynqKey(q, "lease"), "lay-1").Err() != nil ||
		b.rdb.HGet(b.ctx, asynqKey(q, "t:lay-1"), "state").Val() != "active" {
		t.Fatal("an active task is not where taskrepair.go looks")
	}
}

// TestBatchFormedUnderOOMIsEnqueuedBySweep: under OOM the former's script
// runs (its first write, LPOP, frees memory) but asynq refuses the task:
// the batch is formed, has no task and no `task` mark. Once Redis takes
// writes again the sweep enqueues it (a refused enqueue is never taken for
// an operator's delete).
func TestBatchFormedUnderOOMIsEnqueuedBySweep(t *testing.T) {
	b, admin := setupPrivate(t, roxsim.Faults{}, sweepCfg)
	ids := b.enqueue(20, "oomf", nil)
	if err := admin.ConfigSet(b.ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	restored := false
	defer func() {
		if !restored {
			_ = admin.ConfigSet(context.Background(), "maxmemory", "0").Err()
		}
	}()
	b.start()
	var bid string
	testutil.Eventually(t, 20*time.Second, func() bool {
		bs, _ := admin.ZRange(b.ctx, b.st.Keys().Batches(), 0, -1).Result()
		if len(bs) == 1 {
			bid = bs[0]
		}
		return bid != ""
	}, "batch formed under OOM")
	time.Sleep(2 * b.cfg.ReapAge)
	if n := admin.Exists(b.ctx, asynqKey(b.cfg.Queue, "t:"+bid)).Val(); n != 0 {
		t.Fatal("the batch's task was enqueued under OOM: the fault did not bite")
	}
	if m := admin.HGet(b.ctx, b.st.Keys().Batch(bid), "task").Val(); m != "" {
		t.Fatalf("batch marked task=%q without a task", m)
	}
	if err := admin.ConfigSet(b.ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	restored = true
	b.sentOnce(ids, "oomf", 30*time.Second)
}

// TestQuietLastRunLeavesBatchToSweep: a run on the task's last attempt that
// finds the batch locked by another run ends without an error (archiving
// would keep the task id taken): the task completes with the batch still
// live. When that completed task is gone before a sweep sees it (asynq
// deletes it after TaskRetention; here deleted by hand), the batch must
// read as "never enqueued", not as deleted by an operator: it is sent
// once, never failed.
func TestQuietLastRunLeavesBatchToSweep(t *testing.T) {
	b := setup(t, roxsim.Faults{}, func(c *Config) {
		sweepCfg(c)
		c.ReapAge = 4 * time.Second
	})
	ids := b.enqueue(20, "quiet", nil)
	bs := b.st.Batches()
	formed, err := bs.Form(b.ctx, store.FormParams{MaxBatch: 500, MaxForm: 1, MaxWaiting: 10, IDPrefix: testutil.Name("bt") + "-"}, time.Now())
	if err != nil || len(formed) != 1 {
		t.Fatalf("form: %v %+v", err, formed)
	}
	bid := formed[0].ID
	// Another run holds the batch (and then dies: its lock expires below).
	if c, err := bs.Claim(b.ctx, bid, "other-run", time.Minute, time.Now()); err != nil || c.State != store.ClaimOK {
		t.Fatalf("claim: %v %+v", err, c)
	}
	b.enqueueTaskRetry(bid, 0) // its first run is its last
	b.start()
	insp := b.inspector()
	b.waitTasks(insp, "completed", 1)
	if err := insp.DeleteTask(b.cfg.Queue, bid); err != nil {
		t.Fatal(err)
	}
	b.rdb.Del(b.ctx, b.st.Keys().Lock(bid))
	b.sentOnce(ids, "quiet", 30*time.Second)
}

// TestFormerMovesOnAfterALostFormReply: a Form that ran in Redis while its
// reply was lost (the connection cut by a Redis SHUTDOWN) left the former's
// sequence behind; its next Form reused the batch id and overwrote the
// batch, whose first messages then stayed `queued` in no batch for good
// (`roxd chaos`, seed 74: 87 of 1,000 lost). Here the batch the lost reply
// named exists before the worker starts: it must stay as it is, and the
// new messages must go out once under other ids.
func TestFormerMovesOnAfterALostFormReply(t *testing.T) {
	b := setup(t, roxsim.Faults{}, sweepCfg)
	w := b.newWorker()
	lost := w.idPfx + "0"
	if err := b.rdb.HSet(b.ctx, b.st.Keys().Batch(lost), "group", "now|always|http", "ids", `["not-this-run"]`, "created", time.Now().UnixMilli(), "attempt", 0).Err(); err != nil {
		t.Fatal(err)
	}
	ids := b.enqueue(20, "lostrep", nil)
	ctx, cancel := context.WithCancel(b.ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	b.sentOnce(ids, "lostrep", 30*time.Second)
	if got := b.rdb.HGet(b.ctx, b.st.Keys().Batch(lost), "ids").Val(); got != `["not-this-run"]` {
		t.Fatalf("batch %s was overwritten: ids %s", lost, got)
	}
}

// The same for the high former (its own batch ids and sequence): after a
// Form error it moves its sequence on too.
func TestHighFormerMovesOnAfterALostFormReply(t *testing.T) {
	b := setup(t, roxsim.Faults{}, sweepCfg)
	w := b.newWorker()
	lost := w.idPfx + "h0"
	if err := b.rdb.HSet(b.ctx, b.st.Keys().Batch(lost), "group", "now|always|http|p=high", "ids", `["not-this-run"]`, "created", time.Now().UnixMilli(), "attempt", 0).Err(); err != nil {
		t.Fatal(err)
	}
	ids := b.enqueue(20, "lostrephigh", func(_ int, r *store.Record) { r.Priority = store.PriorityHigh })
	ctx, cancel := context.WithCancel(b.ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	b.sentOnce(ids, "lostrephigh", 30*time.Second)
	if got := b.rdb.HGet(b.ctx, b.st.Keys().Batch(lost), "ids").Val(); got != `["not-this-run"]` {
		t.Fatalf("batch %s was overwritten: ids %s", lost, got)
	}
}

// asynqArchived makes a live batch of 3 messages whose task asynq archived
// itself after its last attempt: every run failed with an error the
// handler could not map (e.g. Redis refusing its writes), so the handler
// did not archive it itself. maxRetry is the task's (ROXD_MAX_ATTEMPTS-1).
func asynqArchived(t *testing.T, maxRetry int) (*bundle, []string) {
	b := setup(t, roxsim.Faults{}, sweepCfg)
	bid, ids := b.deadRun(3, "exh")
	b.enqueueTaskRetry(bid, maxRetry)
	srv := asynq.NewServer(b.aopt, asynq.Config{
		Queues: map[string]int{b.cfg.Queue: 1}, Concurrency: 1,
		RetryDelayFunc:           func(int, error, *asynq.Task) time.Duration { return time.Millisecond },
		DelayedTaskCheckInterval: 100 * time.Millisecond,
		Logger:                   asynqNop{}, LogLevel: asynq.FatalLevel,
	})
	if err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		return fmt.Errorf("store: claim: connection refused")
	})); err != nil {
		t.Fatal(err)
	}
	b.waitTasks(b.inspector(), "archived", 1)
	srv.Shutdown()
	return b, ids
}

// TestSweepOfAsynqArchivedBatch: the sweep fails the messages of a batch
// asynq archived after its last attempt with retries_exhausted, and counts
// them as the handler counts its own archive (roxd_messages_failed_total
// and roxd_messages_archived_total), never as an operator's action,
// whatever ROXD_MAX_ATTEMPTS (1 gives a task without retries).
func TestSweepOfAsynqArchivedBatch(t *testing.T) {
	for _, maxRetry := range []int{1, 0} {
		t.Run(fmt.Sprintf("max_retry=%d", maxRetry), func(t *testing.T) {
			b, ids := asynqArchived(t, maxRetry)
			archived := metrics.MessagesArchived.WithLabelValues(ReasonRetriesExhausted)
			failed := metrics.MessagesFailed.WithLabelValues(ReasonRetriesExhausted)
			byOperator := metrics.OperatorActions.WithLabelValues("archive")
			archived0, failed0, op0 := promtest.ToFloat64(archived), promtest.ToFloat64(failed), promtest.ToFloat64(byOperator)
			op, err := NewOperator(b.cfg, b.rdb, b.aopt, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = op.Close() })
			if res := op.Sweep(b.ctx, time.Now()); res.Archived != 1 {
				t.Fatalf("sweep %+v, want one archived batch", res)
			}
			for _, id := range ids {
				if r := b.record(id); r.Status != store.StatusFailed || !strings.HasPrefix(r.Err, ReasonRetriesExhausted+": ") {
					t.Fatalf("message %s: %s %q, want failed %s: <last error>", id, r.Status, r.Err, ReasonRetriesExhausted)
				}
			}
			if d := promtest.ToFloat64(failed) - failed0; d != 3 {
				t.Fatalf("messages_failed_total{retries_exhausted} moved by %v, want 3", d)
			}
			if d := promtest.ToFloat64(archived) - archived0; d != 3 {
				t.Fatalf("messages_archived_total{retries_exhausted} moved by %v, want 3", d)
			}
			if d := promtest.ToFloat64(byOperator) - op0; d != 0 {
				t.Fatalf("operator_actions_total{archive} moved by %v, want 0", d)
			}
		})
	}
}

// asynqNop is an asynq.Logger that writes nothing.
type asynqNop struct{}

func (asynqNop) Debug(...any) {}
func (asynqNop) Info(...any)  {}
func (asynqNop) Warn(...any)  {}
func (asynqNop) Error(...any) {}
func (asynqNop) Fatal(...any) {}
