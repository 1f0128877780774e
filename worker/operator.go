package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/internal/metrics"
	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/rox"
)

// TaskTypeSchedule is the asynq task type of one schedule group: it waits in
// asynq's scheduled state until hand-over time (SendAt - ScheduleLead), and
// its run hands the group's messages over (with their SendLater intact).
const TaskTypeSchedule = "rox:schedule"

// PriorityNormal is the priority of a group without one (shown in task
// payloads); see store.GroupPriority.
const PriorityNormal = store.PriorityNormal

// payloadFirstIDs is how many message ids a task payload names.
const payloadFirstIDs = 5

// payload is the body of a rox:send task: readable JSON for the dashboard
// and the asynq CLI. Only Batch is needed to run it; old payloads
// ({"batch":"..."}) still run.
type payload struct {
	Batch      string   `json:"batch"`
	Group      string   `json:"group,omitempty"`
	SendLater  string   `json:"send_later,omitempty"` // RFC 3339 UTC; absent = now
	Priority   string   `json:"priority,omitempty"`
	Account    string   `json:"account,omitempty"`
	Recipients int      `json:"recipients,omitempty"`
	Messages   []string `json:"first_messages,omitempty"`
	// Paid is the rate-limit tokens the former took for the batch's first
	// run (ratelimit.go); 0 when no limit applies or it was not paid.
	Paid int `json:"paid,omitempty"`
}

// schedulePayload is the body of a rox:schedule task.
type schedulePayload struct {
	Group      string   `json:"group"`
	SendAt     string   `json:"send_at"`      // the group's SendLater, RFC 3339 UTC
	HandOverAt string   `json:"hand_over_at"` // SendAt - ScheduleLead
	Messages   int      `json:"messages"`
	First      []string `json:"first_messages,omitempty"`
	Account    string   `json:"account,omitempty"`
}

// attemptResult is what a rox:send task's result (asynq ResultWriter)
// holds after each attempt: the dashboard's task view shows it.
type attemptResult struct {
	At         time.Time      `json:"at"`
	Attempt    int            `json:"attempt"`
	RequestID  string         `json:"request_id,omitempty"`
	Recipients int            `json:"recipients"`
	Accepted   int            `json:"accepted"`
	Retrying   int            `json:"retrying"`
	Failed     int            `json:"failed"`
	Codes      map[string]int `json:"codes,omitempty"`
	Error      string         `json:"error,omitempty"`
	ManualRun  bool           `json:"manual_retry,omitempty"`
}

type resultKey struct{}

// noteResult fills the attempt's result (ProcessTask writes it to asynq).
func noteResult(ctx context.Context, reqID string, n int, rec store.Recorded, resp *rox.SendResponse, serr error) {
	r, _ := ctx.Value(resultKey{}).(*attemptResult)
	if r == nil {
		return
	}
	r.At = time.Now().UTC()
	r.RequestID, r.Recipients = reqID, n
	r.Accepted, r.Retrying, r.Failed = rec.Submitted, rec.Retry, rec.Failed
	if serr != nil {
		r.Error = serr.Error()
	}
	if resp != nil {
		for _, x := range resp.Messages.Results {
			if !x.Result.OK() {
				if r.Codes == nil {
					r.Codes = map[string]int{}
				}
				r.Codes[string(x.Result)]++
			}
		}
	}
}

func init() { metrics.MessagesFailed.WithLabelValues("operator") }

func markManualRun(ctx context.Context) {
	if r, _ := ctx.Value(resultKey{}).(*attemptResult); r != nil {
		r.ManualRun = true
	}
}

// writeResult stores r as t's result when the attempt reached ROX.
func (w *Worker) writeResult(t *asynq.Task, r *attemptResult) {
	rw := t.ResultWriter()
	if rw == nil || r.At.IsZero() {
		return
	}
	b, _ := json.Marshal(r)
	if _, err := rw.Write(b); err != nil {
		w.log.Debug().Err(err).Str("batch", rw.TaskID()).Msg("write task result")
	}
}

// batchPayload builds the payload of batch id.
func (w *Worker) batchPayload(id, group string, size int, first []string) payload {
	p := payload{Batch: id, Group: group, Priority: store.GroupPriority(group), Account: w.cfg.AccountID, Recipients: size, Messages: first}
	if a, ok := w.accts[store.GroupAccount(group)]; ok && a.name != DefaultAccount {
		p.Account = a.id
	}
	if sl, _, _, err := store.ParseGroup(group); err == nil && !sl.IsZero() {
		p.SendLater = sl.UTC().Format(time.RFC3339)
	}
	return p
}

// scheduleTaskID is the asynq task id of a schedule group.
func scheduleTaskID(group string) string { return store.ScheduleTaskID(group) }

// keepArchived keeps what a later run of the batch's archived task needs
// (the recipients ROX never accepted). Called just before the handler lets
// asynq archive the task.
func (w *Worker) keepArchived(ctx context.Context, bid, group string, out []store.SendOutcome, reason string) {
	ids := make([]string, 0, len(out))
	for _, o := range out {
		if o.Kind == store.OutcomeFailed {
			ids = append(ids, o.ID)
		}
	}
	if err := w.b.KeepArchived(ctx, bid, group, reason, ids, time.Now()); err != nil {
		w.log.Error().Err(err).Str("batch", bid).Msg("keep archived batch: running its task again will send nothing")
	}
}

// archivedRun handles a run of a task whose batch is gone: when the batch
// was archived (its record kept), the run is an operator's manual retry:
// the recipients ROX never accepted go back from failed to sending and the
// batch is sent as usual.
func (w *Worker) archivedRun(ctx context.Context, bid string, last bool) error {
	n, err := w.b.Revive(ctx, bid, time.Now())
	if err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	metrics.OperatorActions.WithLabelValues("run").Inc()
	markManualRun(ctx)
	w.log.Warn().Str("batch", bid).Int("messages", n).Str("action", "run").
		Msg("operator ran an archived task: its failed recipients are sent again (manual retry)")
	return w.process(ctx, bid, last)
}

// processSchedule handles a rox:schedule task: hand the group over now.
func (w *Worker) processSchedule(ctx context.Context, t *asynq.Task) error {
	w.handlers.Add(1)
	defer w.handlers.Done()
	var p schedulePayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.Group == "" {
		return fmt.Errorf("worker: bad schedule task payload: %w", asynq.SkipRetry)
	}
	id, _ := asynq.GetTaskID(ctx)
	n, err := w.b.HandOver(context.WithoutCancel(ctx), p.Group, id)
	if err != nil {
		return err
	}
	sl, _, _, _ := store.ParseGroup(p.Group)
	early := !sl.IsZero() && time.Now().Before(sl.Add(-w.cfg.Store.ScheduleLead).Add(-2*time.Second))
	if early && n > 0 {
		metrics.OperatorActions.WithLabelValues("run").Inc()
		w.log.Warn().Str("task", id).Str("group", p.Group).Int("messages", n).Str("action", "run").
			Msg("operator ran a scheduled task early: its messages are handed over now, SendLater intact")
	} else if n > 0 {
		w.log.Debug().Str("group", p.Group).Int("messages", n).Msg("schedule group handed over")
	}
	if rw := t.ResultWriter(); rw != nil {
		b, _ := json.Marshal(struct {
			At         time.Time `json:"at"`
			HandedOver int       `json:"handed_over"`
			Early      bool      `json:"early,omitempty"`
		}{time.Now().UTC(), n, early})
		_, _ = rw.Write(b)
	}
	return nil
}

// Operator applies operator actions on roxd's asynq tasks to messages. The
// worker runs one (sweeps on the reaper's tick); the dashboard runs one
// after each action made through it, so the effect shows at once.
type Operator struct {
	cfg    Config
	rdb    redis.UniversalClient
	b      *store.Batches
	insp   *asynq.Inspector
	client *asynq.Client
	log    zerolog.Logger
	mu     sync.Mutex // one Sweep at a time
	syncMu sync.Mutex // one SyncGroups at a time
	enq    func(ctx context.Context, id string) error
}

// NewOperator returns an Operator over cfg's keyspace and queue. Close it.
func NewOperator(cfg Config, rdb redis.UniversalClient, asynqOpt asynq.RedisConnOpt, log zerolog.Logger) (*Operator, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if rdb == nil || asynqOpt == nil {
		return nil, fmt.Errorf("%w: nil redis client or asynq RedisConnOpt", ErrConfig)
	}
	op := &Operator{
		cfg: cfg, rdb: rdb, b: store.NewBatches(rdb, store.NewKeys(cfg.Store.Prefix), cfg.Store.StatusTTL),
		insp: asynq.NewInspector(asynqOpt), client: asynq.NewClient(asynqOpt),
		log: log.With().Str("component", "operator").Logger(),
	}
	return op, nil
}

// Close releases the Operator's Redis connections.
func (o *Operator) Close() error {
	return errors.Join(o.insp.Close(), o.client.Close())
}

// SweepResult counts what one Sweep did.
type SweepResult struct {
	Requeued, Archived, Deleted, ArchivedDeleted int
	GroupsCancelled, GroupsFailed                int
	// Repaired counts tasks found in a state asynq never leaves
	// (taskrepair.go) and put back where asynq runs them.
	Repaired int
}

// Sweep compares roxd's batches and schedule groups with asynq's tasks and
// applies what operators did to the tasks (from the dashboard or the asynq
// CLI) to their messages:
//   - a live batch (older than olderThan) whose task is archived: its
//     unsent messages become failed, `archived by operator` (or
//     retries_exhausted when asynq archived it itself), and the batch is
//     kept so that running the task again sends them;
//   - a live batch whose task was deleted: its unsent messages become
//     failed, `deleted by operator`; it is never re-enqueued;
//   - a live batch whose task was never enqueued (a crash, a refused or
//     lost write) is enqueued; one whose task completed while it still
//     holds messages is enqueued again (its `task` mark cleared first, so
//     that a refused enqueue is never taken for an operator's delete);
//   - a live batch whose task asynq would never run again (taskrepair.go:
//     `active` outside the active list or the lease set, `retry` or
//     `scheduled` outside its set, a hash without a message) has its task
//     repaired or enqueued anew;
//   - a kept archived batch whose task was deleted is forgotten (its
//     messages stay failed with their reason);
//   - a schedule group whose task was deleted: its messages are cancelled
//     (`deleted by operator`); archived: failed (`archived by operator`).
func (o *Operator) Sweep(ctx context.Context, olderThan time.Time) SweepResult {
	o.mu.Lock()
	defer o.mu.Unlock()
	var res SweepResult
	q := o.cfg.Queue
	ids, err := o.b.Stale(ctx, olderThan, 1000)
	if err != nil {
		if ctx.Err() == nil {
			o.log.Warn().Err(err).Msg("sweep: list batches")
		}
		return res
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			return res
		}
		st, err := o.b.State(ctx, id)
		if err != nil || !st.Exists || st.Locked {
			continue
		}
		// A send task lives in the queue of its batch's priority.
		q := store.PriorityQueue(o.cfg.Queue, store.GroupPriority(st.Group))
		info, err := o.insp.GetTaskInfo(q, id)
		switch {
		case errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound):
			if !st.Enqueued {
				if err := o.enqueueBatch(ctx, id); err != nil {
					o.log.Warn().Err(err).Str("batch", id).Msg("sweep: enqueue batch without task")
				} else {
					res.Requeued++
				}
				continue
			}
			n, err := o.b.FailBatch(ctx, id, store.ReasonDeletedByOperator, false, time.Now())
			if err != nil {
				continue
			}
			res.Deleted++
			metrics.OperatorActions.WithLabelValues("delete").Inc()
			metrics.MessagesFailed.WithLabelValues("operator").Add(float64(n))
			o.log.Warn().Str("batch", id).Str("task", id).Int("failed", n).Str("action", "delete").
				Msg("operator deleted a send task: its unsent messages are failed (deleted by operator)")
		case err != nil:
			// A hash without a message makes GetTaskInfo fail.
			if o.repair(ctx, q, id, &res) {
				continue
			}
			o.log.Debug().Err(err).Str("batch", id).Msg("sweep: task info")
		case info.State == asynq.TaskStateActive || info.State == asynq.TaskStateRetry || info.State == asynq.TaskStateScheduled:
			o.repair(ctx, q, id, &res)
		case info.State == asynq.TaskStateArchived:
			reason, byOperator := store.ReasonArchivedByOperator, true
			// asynq's own archive: out of retries after a failed run. A
			// task without retries (ROXD_MAX_ATTEMPTS=1) has MaxRetry 0:
			// its failed run (LastErr) is the sign, not a retry count.
			if info.Retried >= info.MaxRetry && info.LastErr != "" {
				reason, byOperator = ReasonRetriesExhausted+": "+info.LastErr, false
			}
			n, err := o.b.FailBatch(ctx, id, reason, true, time.Now())
			if err != nil {
				continue
			}
			res.Archived++
			if byOperator {
				metrics.OperatorActions.WithLabelValues("archive").Inc()
				metrics.MessagesFailed.WithLabelValues("operator").Add(float64(n))
			} else {
				// Archived by asynq after its last attempt: counted as the
				// handler counts its own archive (handler.go).
				metrics.MessagesFailed.WithLabelValues(ReasonRetriesExhausted).Add(float64(n))
				metrics.MessagesArchived.WithLabelValues(ReasonRetriesExhausted).Add(float64(n))
			}
			o.log.Warn().Str("batch", id).Str("task", id).Int("failed", n).Str("action", "archive").Str("reason", reason).
				Msg("send task archived: its unsent messages are failed; running the task again sends them")
		case info.State == asynq.TaskStateCompleted:
			// The run ended without finishing the batch (it was locked by
			// another run, or reconciling on its last attempt): send what
			// that run left. The mark goes first: if the delete lands and
			// the enqueue is refused (OOM allows a delete), the next sweep
			// sees a batch without task and without mark, and enqueues it.
			if err := o.b.MarkUnenqueued(ctx, id); err != nil {
				continue
			}
			if err := o.insp.DeleteTask(q, id); err == nil {
				if err := o.enqueueBatch(ctx, id); err == nil {
					res.Requeued++
				} else {
					o.log.Warn().Err(err).Str("batch", id).Msg("sweep: enqueue batch again after its task completed (next sweep)")
				}
			}
		}
	}

	// Kept archived batches whose task is gone.
	arch, err := o.b.Archived(ctx, 1000)
	if err == nil {
		for _, id := range arch {
			if ctx.Err() != nil {
				return res
			}
			if o.sendTaskExists(id) {
				continue
			}
			if ok, err := o.b.DropArchived(ctx, id); err == nil && ok {
				res.ArchivedDeleted++
				metrics.OperatorActions.WithLabelValues("delete").Inc()
				o.log.Warn().Str("batch", id).Str("task", id).Str("action", "delete").
					Msg("operator deleted an archived send task: its messages stay failed with their reason")
			}
		}
	}

	// Schedule groups whose task an operator deleted or archived.
	groups, err := o.b.GroupTasks(ctx)
	if err == nil {
		for g, tid := range groups {
			if ctx.Err() != nil {
				return res
			}
			info, err := o.insp.GetTaskInfo(q, tid)
			var to store.Status
			var reason, action string
			switch {
			case errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound):
				to, reason, action = store.StatusCancelled, store.ReasonDeletedByOperator, "delete"
			case err == nil && info.State == asynq.TaskStateArchived:
				to, reason, action = store.StatusFailed, store.ReasonArchivedByOperator, "archive"
			default:
				continue
			}
			// Re-read: the task may have just run and forgotten itself.
			sg, err := o.b.ScheduleGroup(ctx, g)
			if err != nil || sg.TaskID != tid {
				continue
			}
			n, err := o.b.EndGroup(ctx, g, to, reason, time.Now())
			if err != nil {
				continue
			}
			if n == 0 {
				continue
			}
			if to == store.StatusCancelled {
				res.GroupsCancelled++
				metrics.MessagesCancelled.Add(float64(n))
			} else {
				res.GroupsFailed++
				metrics.MessagesFailed.WithLabelValues("operator").Add(float64(n))
			}
			metrics.OperatorActions.WithLabelValues(action).Inc()
			o.log.Warn().Str("task", tid).Str("group", g).Int("messages", n).Str("action", action).Str("status", string(to)).
				Msg("operator " + action + "d a scheduled task: its messages are " + string(to) + " (" + reason + ")")
		}
	}
	return res
}

// sendTaskExists reports whether a rox:send task with id is in one of the
// priority queues (or whether asking failed: then it is taken to exist).
func (o *Operator) sendTaskExists(id string) bool {
	for _, q := range store.PriorityQueues(o.cfg.Queue) {
		_, err := o.insp.GetTaskInfo(q, id)
		if !errors.Is(err, asynq.ErrTaskNotFound) && !errors.Is(err, asynq.ErrQueueNotFound) {
			return true
		}
	}
	return false
}

// repair checks the task of live batch id for a state asynq never leaves
// and repairs it (taskrepair.go); a task that was only a hash without a
// message is deleted and the batch enqueued anew. It reports whether it
// found and repaired something.
func (o *Operator) repair(ctx context.Context, q, id string, res *SweepResult) bool {
	what, err := repairTask(ctx, o.rdb, q, id, time.Now())
	if err != nil {
		o.log.Debug().Err(err).Str("batch", id).Msg("sweep: check task")
		return false
	}
	switch what {
	case taskOK, taskNone:
		return false
	case taskZombie:
		// The mark first: a delete that lands before a refused enqueue then
		// reads "never enqueued" at the next sweep, not an operator's delete.
		if err := o.b.MarkUnenqueued(ctx, id); err != nil {
			return true // nothing changed: the next sweep tries again
		}
		if err := dropZombie(ctx, o.rdb, o.cfg.Queue, id); err != nil {
			return true
		}
		if err := o.enqueueBatch(ctx, id); err != nil {
			o.log.Warn().Err(err).Str("batch", id).Msg("sweep: enqueue batch whose task was a hash without message (next sweep)")
		}
	}
	res.Repaired++
	metrics.SweepRepairs.WithLabelValues(what).Inc()
	o.log.Warn().Str("batch", id).Str("task", id).Str("found", what).
		Msg("sweep: the batch's asynq task was in a state asynq never leaves (no server would run it): repaired, the batch runs again")
	return true
}

// enqueueBatch enqueues the task of batch id from its record; a task that
// already exists counts as done.
func (o *Operator) enqueueBatch(ctx context.Context, id string) error {
	if o.enq != nil {
		return o.enq(ctx, id)
	}
	bi, err := o.b.Batch(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrNoBatch) {
			return nil
		}
		return err
	}
	first := bi.IDs[:min(len(bi.IDs), payloadFirstIDs)]
	w := &Worker{cfg: o.cfg, b: o.b, client: o.client}
	return w.enqueue(ctx, w.batchPayload(id, bi.Group, len(bi.IDs), first))
}

// SyncGroups makes asynq's scheduled tasks follow the schedule groups
// changed since the last call: a task per group (created, its payload's
// count updated), none for a group left empty (all cancelled).
func (o *Operator) SyncGroups(ctx context.Context) {
	o.syncMu.Lock()
	defer o.syncMu.Unlock()
	for ctx.Err() == nil {
		groups, err := o.b.DirtyGroups(ctx, 100)
		if err != nil || len(groups) == 0 {
			return
		}
		var again []string
		for _, g := range groups {
			if err := o.syncGroup(ctx, g); err != nil {
				again = append(again, g)
				o.log.Debug().Err(err).Str("group", g).Msg("sync schedule group task (again next tick)")
			}
		}
		if len(again) > 0 {
			_ = o.b.MarkDirty(context.WithoutCancel(ctx), again...)
			return
		}
		if len(groups) < 100 {
			return
		}
	}
}

func (o *Operator) syncGroup(ctx context.Context, g string) error {
	sg, err := o.b.ScheduleGroup(ctx, g)
	if err != nil {
		return err
	}
	q := o.cfg.Queue
	if sg.Count == 0 {
		if sg.TaskID != "" {
			if err := o.b.SetGroupTask(ctx, g, ""); err != nil {
				return err
			}
			if err := o.insp.DeleteTask(q, sg.TaskID); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
				o.log.Debug().Err(err).Str("task", sg.TaskID).Msg("delete empty schedule group task")
			}
		}
		return nil
	}
	sl, _, _, err := store.ParseGroup(g)
	if err != nil || sl.IsZero() {
		return nil // not a schedule group: nothing to show
	}
	due := sl.Add(-o.cfg.Store.ScheduleLead)
	body, _ := json.Marshal(schedulePayload{Group: g, SendAt: sl.UTC().Format(time.RFC3339),
		HandOverAt: due.UTC().Format(time.RFC3339), Messages: sg.Count, First: sg.First, Account: o.cfg.AccountID})
	if sg.TaskID != "" {
		err := o.insp.UpdateTaskPayload(q, sg.TaskID, body)
		switch {
		case err == nil, errors.Is(err, asynq.ErrTaskNotFound):
			// Not found: an operator deleted it; the sweep cancels the group.
			return nil
		}
		info, ierr := o.insp.GetTaskInfo(q, sg.TaskID)
		if ierr == nil && info.State == asynq.TaskStateArchived {
			return nil // the sweep fails the group
		}
		return err // running now, or in retry: later
	}
	id := scheduleTaskID(g)
	_, err = o.client.EnqueueContext(ctx, asynq.NewTask(TaskTypeSchedule, body), asynq.TaskID(id),
		asynq.Queue(q), asynq.ProcessAt(due), asynq.MaxRetry(o.cfg.MaxAttempts-1), asynq.Timeout(o.cfg.TaskTimeout))
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		// The group's previous task still exists (it just ran, or an
		// operator archived it): adopt it when scheduled, else try later.
		if uerr := o.insp.UpdateTaskPayload(q, id, body); uerr == nil {
			return o.b.SetGroupTask(ctx, g, id)
		}
		if info, ierr := o.insp.GetTaskInfo(q, id); ierr == nil && info.State == asynq.TaskStateArchived {
			_ = o.insp.DeleteTask(q, id)
		}
		return err
	}
	if err != nil {
		return err
	}
	return o.b.SetGroupTask(ctx, g, id)
}
