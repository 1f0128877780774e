package worker

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/redoxygen/roxd/internal/metrics"
	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/internal/testutil"
	"github.com/redoxygen/roxd/rox/roxsim"
)

// These tests act on roxd's tasks through asynq's Inspector, as the
// dashboard and the asynq CLI do, and check what happens to the messages.

func (b *bundle) inspector() *asynq.Inspector {
	b.t.Helper()
	insp := asynq.NewInspector(b.aopt)
	b.t.Cleanup(func() { _ = insp.Close() })
	return insp
}

func (b *bundle) tasks(insp *asynq.Inspector, state string) []*asynq.TaskInfo {
	var ts []*asynq.TaskInfo
	switch state {
	case "pending":
		ts, _ = insp.ListPendingTasks(b.cfg.Queue)
	case "scheduled":
		ts, _ = insp.ListScheduledTasks(b.cfg.Queue)
	case "retry":
		ts, _ = insp.ListRetryTasks(b.cfg.Queue)
	case "archived":
		ts, _ = insp.ListArchivedTasks(b.cfg.Queue)
	case "completed":
		ts, _ = insp.ListCompletedTasks(b.cfg.Queue)
	}
	return ts
}

func (b *bundle) waitTasks(insp *asynq.Inspector, state string, n int) []*asynq.TaskInfo {
	b.t.Helper()
	var ts []*asynq.TaskInfo
	testutil.Eventually(b.t, 20*time.Second, func() bool {
		ts = b.tasks(insp, state)
		return len(ts) == n
	}, "%d %s tasks (have %d)", n, state, len(ts))
	return ts
}

func (b *bundle) record(id string) *store.Record {
	b.t.Helper()
	r, err := b.st.Get(b.ctx, id)
	if err != nil {
		b.t.Fatal(err)
	}
	return r
}

func historyStatuses(r *store.Record) []string {
	out := make([]string, len(r.History))
	for i, e := range r.History {
		out[i] = string(e.Status)
	}
	return out
}

// archivedBatch makes n messages whose batch runs out of attempts (ROX
// answers 500) and returns their ids and the archived task.
func archivedBatch(t *testing.T, n int) (*bundle, *asynq.Inspector, []string, *asynq.TaskInfo) {
	b := setup(t, roxsim.Faults{Fail5xx: 1}, func(c *Config) { c.MaxAttempts = 2 })
	b.start()
	insp := b.inspector()
	ids := b.enqueue(n, "arch", nil)
	testutil.Eventually(t, 15*time.Second, func() bool { return b.countStatus(ids, "failed") == n }, "all failed")
	task := b.waitTasks(insp, "archived", 1)[0]
	if err := b.sim.SetFaults(roxsim.Faults{}); err != nil {
		t.Fatal(err)
	}
	return b, insp, ids, task
}

func TestRunArchivedTaskSendsFailedRecipientsOnce(t *testing.T) {
	b, insp, ids, task := archivedBatch(t, 7)
	if n := len(b.accepted()); n != 0 {
		t.Fatalf("%d accepted before the run", n)
	}
	// The archived task's payload and result say what happened.
	var p payload
	if err := json.Unmarshal(task.Payload, &p); err != nil {
		t.Fatalf("payload %s: %v", task.Payload, err)
	}
	if p.Batch != task.ID || p.Recipients != 7 || p.Priority != PriorityNormal || p.Account != b.cfg.AccountID ||
		p.Group != "now|always|http" || len(p.Messages) != 5 || p.Messages[0] != ids[0] {
		t.Fatalf("payload %s", task.Payload)
	}
	var res attemptResult
	if err := json.Unmarshal(task.Result, &res); err != nil {
		t.Fatalf("result %q: %v", task.Result, err)
	}
	if res.Attempt != 2 || res.Failed != 7 || res.Accepted != 0 || !strings.Contains(res.Error, "500") {
		t.Fatalf("result %s", task.Result)
	}

	if err := insp.RunTask(b.cfg.Queue, task.ID); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 15*time.Second, func() bool { return b.countStatus(ids, "submitted") == 7 },
		"submitted after the run (have %v)", b.statuses(ids))
	b.checkExactlyOnce("arch", 7)
	r := b.record(ids[3])
	h := strings.Join(historyStatuses(r), ",")
	if h != "queued,sending,failed,manual_retry,submitted" || r.Err != "" || r.SMSID == "" {
		t.Fatalf("history %s err %q sms_id %q", h, r.Err, r.SMSID)
	}
	// The run's result: accepted by ROX, with its RequestId.
	done := b.waitTasks(insp, "completed", 1)[0]
	if err := json.Unmarshal(done.Result, &res); err != nil || res.Accepted != 7 || res.RequestID == "" || !res.ManualRun {
		t.Fatalf("result after the run %s (%v)", done.Result, err)
	}
	if r.RequestID != res.RequestID {
		t.Fatalf("message request_id %q, task result %q", r.RequestID, res.RequestID)
	}
	// Nothing more is sent afterwards (sweeps, a second run of nothing).
	time.Sleep(3 * b.cfg.ReapInterval)
	b.checkExactlyOnce("arch", 7)
}

func TestDeleteArchivedTaskLeavesMessagesFailed(t *testing.T) {
	b, insp, ids, task := archivedBatch(t, 4)
	if err := insp.DeleteTask(b.cfg.Queue, task.ID); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 15*time.Second, func() bool {
		return b.rdb.Exists(b.ctx, b.st.Keys().ArchivedBatch(task.ID)).Val() == 0
	}, "kept archived batch forgotten after its task was deleted")
	time.Sleep(2 * b.cfg.ReapInterval)
	for _, id := range ids {
		r := b.record(id)
		if r.Status != store.StatusFailed || !strings.HasPrefix(r.Err, ReasonRetriesExhausted) {
			t.Fatalf("%s: %s %q, want failed with the reason", id, r.Status, r.Err)
		}
	}
	if n := len(b.accepted()); n != 0 {
		t.Fatalf("%d sent after the delete", n)
	}
}

func TestArchiveRetryingTasksFailsTheirMessages(t *testing.T) {
	const n = 1000
	b := setup(t, roxsim.Faults{Fail5xx: 1}, func(c *Config) {
		c.MaxBatch = 100
		c.RetryInitial = time.Hour // they stay in retry
		c.RetryMaxInterval = time.Hour
	})
	ids := b.enqueue(n, "arc", nil) // before the start: 10 full batches
	b.start()
	insp := b.inspector()
	retry := b.waitTasks(insp, "retry", 10)
	archivedBefore := promtest.ToFloat64(metrics.OperatorActions.WithLabelValues("archive"))
	// One from the task's menu, the rest with "archive all".
	if err := insp.ArchiveTask(b.cfg.Queue, retry[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := insp.ArchiveAllRetryTasks(b.cfg.Queue); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, func() bool { return b.countStatus(ids, "failed") == n },
		"all failed after archive (have %d)", b.countStatus(ids, "failed"))
	for _, id := range []string{ids[0], ids[500], ids[999]} {
		if r := b.record(id); r.Err != store.ReasonArchivedByOperator {
			t.Fatalf("%s err %q, want %q", id, r.Err, store.ReasonArchivedByOperator)
		}
	}
	if d := promtest.ToFloat64(metrics.OperatorActions.WithLabelValues("archive")) - archivedBefore; d != 10 {
		t.Fatalf("roxd_operator_actions_total{action=archive} rose by %v, want 10", d)
	}
	// The repair lever: run one archived task, its 100 are sent once.
	if err := b.sim.SetFaults(roxsim.Faults{}); err != nil {
		t.Fatal(err)
	}
	arch := b.waitTasks(insp, "archived", 10)
	if err := insp.RunTask(b.cfg.Queue, arch[0].ID); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 15*time.Second, func() bool { return b.countStatus(ids, "submitted") == 100 },
		"one batch sent (have %d)", b.countStatus(ids, "submitted"))
	time.Sleep(3 * b.cfg.ReapInterval)
	if s, f := b.countStatus(ids, "submitted"), b.countStatus(ids, "failed"); s != 100 || f != n-100 {
		t.Fatalf("%d submitted, %d failed, want 100 and %d", s, f, n-100)
	}
}

func TestDeletePendingTaskFailsMessagesAndIsNotReenqueued(t *testing.T) {
	b := setup(t, roxsim.Faults{}, nil)
	insp := b.inspector()
	// A paused queue keeps the task pending, as an operator would see it.
	b.start()
	ids := b.enqueue(1, "warm", nil)
	testutil.Eventually(t, 10*time.Second, func() bool { return b.countStatus(ids, "submitted") == 1 }, "warm-up sent")
	if err := insp.PauseQueue(b.cfg.Queue); err != nil {
		t.Fatal(err)
	}
	ids = b.enqueue(20, "del", nil)
	task := b.waitTasks(insp, "pending", 1)[0]
	if err := insp.DeleteTask(b.cfg.Queue, task.ID); err != nil {
		t.Fatal(err)
	}
	if err := insp.UnpauseQueue(b.cfg.Queue); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 15*time.Second, func() bool { return b.countStatus(ids, "failed") == 20 }, "failed after delete")
	if r := b.record(ids[7]); r.Err != store.ReasonDeletedByOperator {
		t.Fatalf("err %q", r.Err)
	}
	time.Sleep(3 * b.cfg.ReapInterval)
	if len(b.tasks(insp, "pending")) != 0 || b.countStatus(ids, "submitted") != 0 {
		t.Fatal("a deleted task's batch was re-enqueued or sent")
	}
}

// scheduled enqueues n messages due at sendAt and waits for their task.
func scheduled(b *bundle, insp *asynq.Inspector, n int, prefix string, sendAt time.Time) ([]string, *asynq.TaskInfo) {
	ids := b.enqueue(n, prefix, func(_ int, r *store.Record) { r.SendAt = sendAt })
	var task *asynq.TaskInfo
	testutil.Eventually(b.t, 10*time.Second, func() bool {
		ts := b.tasks(insp, "scheduled")
		if len(ts) != 1 {
			return false
		}
		task = ts[0]
		var p schedulePayload
		return json.Unmarshal(task.Payload, &p) == nil && p.Messages == n
	}, "one scheduled task for the group with %d messages", n)
	return ids, task
}

func TestScheduledGroupTaskFollowsCancelsAndDelete(t *testing.T) {
	b := setup(t, roxsim.Faults{}, nil)
	b.start()
	insp := b.inspector()
	sendAt := time.Now().Add(time.Hour).Truncate(time.Second)
	ids, task := scheduled(b, insp, 5, "sch", sendAt)
	var p schedulePayload
	_ = json.Unmarshal(task.Payload, &p)
	due := sendAt.Add(-store.DefaultScheduleLead)
	if p.SendAt != sendAt.UTC().Format(time.RFC3339) || task.NextProcessAt.Unix() != due.Unix() ||
		task.Type != TaskTypeSchedule || len(p.First) != 5 {
		t.Fatalf("task %+v payload %s (due %s)", task, task.Payload, due)
	}
	// A cancel through the API keeps the count.
	if _, err := b.st.Cancel(b.ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		ti, err := insp.GetTaskInfo(b.cfg.Queue, task.ID)
		return err == nil && json.Unmarshal(ti.Payload, &p) == nil && p.Messages == 4
	}, "count 4 after a cancel")
	// Deleting the task cancels its messages.
	if err := insp.DeleteTask(b.cfg.Queue, task.ID); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 15*time.Second, func() bool { return b.countStatus(ids, "cancelled") == 5 }, "cancelled after delete")
	if r := b.record(ids[2]); r.Err != store.ReasonDeletedByOperator {
		t.Fatalf("err %q", r.Err)
	}
	if r := b.record(ids[0]); r.Err != "" {
		t.Fatalf("the API-cancelled message got err %q", r.Err)
	}
	// Cancelling every message of a group removes its task.
	ids2, task2 := scheduled(b, insp, 2, "sch2", sendAt.Add(time.Minute))
	for _, id := range ids2 {
		if _, err := b.st.Cancel(b.ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		_, err := insp.GetTaskInfo(b.cfg.Queue, task2.ID)
		return err != nil
	}, "task of an emptied group removed")
	if n := len(b.accepted()); n != 0 {
		t.Fatalf("%d sent", n)
	}
}

func TestRunScheduledTaskEarlyHandsOverWithSendLater(t *testing.T) {
	b := setup(t, roxsim.Faults{}, nil)
	b.start()
	insp := b.inspector()
	sendAt := time.Now().Add(2 * time.Hour).Truncate(time.Second)
	ids, task := scheduled(b, insp, 3, "early", sendAt)
	if err := insp.RunTask(b.cfg.Queue, task.ID); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 15*time.Second, func() bool { return b.countStatus(ids, "submitted") == 3 }, "handed over")
	b.checkExactlyOnce("early", 3)
	for _, r := range b.sim.Recipients() {
		if !r.SendLater.Equal(sendAt) {
			t.Fatalf("SendLater %s, want %s", r.SendLater, sendAt)
		}
	}
	if n := b.rdb.ZCard(b.ctx, b.st.Keys().Scheduled()).Val(); n != 0 {
		t.Fatalf("%d left in the scheduled zset", n)
	}
}
