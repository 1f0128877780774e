package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// This file holds what operator actions on asynq tasks (dashboard, asynq
// CLI) do to messages, and the schedule groups behind roxd's scheduled
// tasks. The keys (docs/ARCHITECTURE.md):
//
//	{P}:abatch:<bid>   hash  group ids(JSON) archived reason: a batch whose
//	                         task is archived, kept so a run can send again
//	{P}:archived       zset  bid -> archived ms
//	{P}:sched:<group>  zset  message id -> SendAt ms, per schedule group
//	{P}:sdirty         set   schedule groups whose task must be synced
//	{P}:stasks         hash  schedule group -> its asynq task id
//
// Batch records get a `task` field once their asynq task was enqueued, and
// message records a `batch` field naming the batch (task id) carrying them.

// Reasons stored in err by operator actions.
const (
	ReasonArchivedByOperator = "archived by operator"
	ReasonDeletedByOperator  = "deleted by operator"
)

// FieldBatch is the message field naming the batch (= asynq task id) that
// carries the message; FieldManualRetry is the unix ms of the last manual
// retry (an archived task run again), shown in the history.
const (
	FieldBatch       = "batch"
	FieldManualRetry = "t_manual_retry"
)

// EventManualRetry is the history entry of a manual retry (not a status: a
// message is never in it).
const EventManualRetry Status = "manual_retry"

var markEnqueuedScript = NewScript("store.markEnqueued", `
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'task', '1') return 1 end
return 0
`)

// MarkEnqueued records on each batch that its asynq task was enqueued, so
// a later missing task means an operator deleted it (not a crash before the
// enqueue). A finished batch is left alone. One round trip for all ids.
func (b *Batches) MarkEnqueued(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	if err := markEnqueuedScript.Load(ctx, b.rdb).Err(); err != nil {
		return fmt.Errorf("store: mark batches enqueued: %w", err)
	}
	_, err := b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			markEnqueuedScript.EvalSha(ctx, p, []string{b.k.Batch(id)})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: mark batches enqueued: %w", err)
	}
	return nil
}

// MarkUnenqueued clears the `task` mark of each batch: the sweep then takes
// a missing task for one never enqueued (it enqueues it) rather than for
// an operator's delete. The sweep calls it before it deletes a completed
// task to enqueue a new one, so that a refused enqueue (OOM, READONLY, a
// restart) can never be taken for an operator's delete. HDEL is allowed
// under OOM.
func (b *Batches) MarkUnenqueued(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			p.HDel(ctx, b.k.Batch(id), "task")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: mark batches unenqueued: %w", err)
	}
	return nil
}

// BatchState is what the operator sweep needs to know of a live batch.
type BatchState struct {
	Exists   bool
	Enqueued bool // its task was enqueued at least once
	Locked   bool // a handler run holds it
	Group    string
	Size     int
}

// State reads the state of batch id in one round trip.
func (b *Batches) State(ctx context.Context, id string) (BatchState, error) {
	var h *redis.SliceCmd
	var l *redis.IntCmd
	_, err := b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		h = p.HMGet(ctx, b.k.Batch(id), "group", "task", "ids")
		l = p.Exists(ctx, b.k.Lock(id))
		return nil
	})
	if err != nil {
		return BatchState{}, fmt.Errorf("store: batch %s state: %w", id, err)
	}
	v := h.Val()
	g, _ := v[0].(string)
	t, _ := v[1].(string)
	st := BatchState{Exists: g != "", Enqueued: t == "1", Locked: l.Val() > 0, Group: g}
	if s, _ := v[2].(string); s != "" && s != "{}" {
		var ids []string
		_ = json.Unmarshal([]byte(s), &ids)
		st.Size = len(ids)
	}
	return st, nil
}

// keepArchivedScript: KEYS abatch, archived; ARGV bid group reason now ttl ids...
var keepArchivedScript = NewScript("store.keepArchived", `
local ids = {}
for i = 6, #ARGV do ids[#ids + 1] = ARGV[i] end
if #ids == 0 then return 0 end
redis.call('HSET', KEYS[1], 'group', ARGV[2], 'ids', cjson.encode(ids), 'archived', ARGV[4], 'reason', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
return #ids
`)

// KeepArchived keeps what a run of batch id's archived task needs: its
// group and the ids of the messages ROX never accepted (ids). The handler
// calls it when it lets asynq archive the task.
func (b *Batches) KeepArchived(ctx context.Context, id, group, reason string, ids []string, now time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	args := make([]any, 0, 5+len(ids))
	args = append(args, id, group, reason, now.UnixMilli(), b.ttl.Milliseconds())
	for _, m := range ids {
		args = append(args, m)
	}
	if err := keepArchivedScript.Run(ctx, b.rdb, []string{b.k.ArchivedBatch(id), b.k.ArchivedBatches()}, args...).Err(); err != nil {
		return fmt.Errorf("store: keep archived batch %s: %w", id, err)
	}
	return nil
}

// operatorFailScript ends a live batch whose task an operator archived or
// deleted: its unsent messages become failed with the reason (and get
// their TTL); a reconciling one keeps its status and gets its TTL.
// KEYS batch lock batches waiting abatch archived; ARGV bid reason now ttl keep(0|1)
// Returns {-1} when locked, {0} when gone, else {1, failed}.
var operatorFailScript = NewScript("store.operatorFail", `
if redis.call('EXISTS', KEYS[2]) == 1 then return {-1, 0} end
local b = redis.call('HMGET', KEYS[1], 'group', 'ids')
if not b[1] then return {0, 0} end
local base = string.sub(KEYS[3], 1, #KEYS[3] - 7)
local ids = {}
if b[2] and b[2] ~= '{}' and b[2] ~= '[]' then ids = cjson.decode(b[2]) end
local keep = {}
local n = 0
for _, id in ipairs(ids) do
  local k = base .. 'msg:' .. id
  local f = redis.call('HMGET', k, 'status', 'sms_id')
  if f[1] and not (f[2] and f[2] ~= '') then
    if f[1] == 'sending' or f[1] == 'queued' or f[1] == 'scheduled' then
      redis.call('HSET', k, 'status', 'failed', 'err', ARGV[2], 't_failed', ARGV[3])
      redis.call('PEXPIRE', k, ARGV[4])
      n = n + 1
    elseif f[1] == 'reconciling' then
      -- its outcome is unknown and no batch will look at it again: it
      -- keeps its status (a callback may still record it) and, sendable
      -- by nothing now, lives StatusTTL like an ended record
      redis.call('PEXPIRE', k, ARGV[4])
    end
    if redis.call('HGET', k, 'status') == 'failed' then keep[#keep + 1] = id end
  end
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
`+unwaitLua("KEYS[4]", "ARGV[1]")+`if ARGV[5] == '1' and #keep > 0 then
  redis.call('HSET', KEYS[5], 'group', b[1], 'ids', cjson.encode(keep), 'archived', ARGV[3], 'reason', ARGV[2])
  redis.call('PEXPIRE', KEYS[5], ARGV[4])
  redis.call('ZADD', KEYS[6], ARGV[3], ARGV[1])
end
return {1, n}
`)

// ErrBatchLocked means a handler run holds the batch: the operator effect
// waits for the next sweep.
var ErrBatchLocked = errors.New("store: batch is locked by a handler run")

// FailBatch applies an operator's archive (keep true: the batch is kept
// as archived so a run can send it again) or delete (keep false) of batch
// id's task: every message of the batch not yet accepted by ROX and still
// queued/sending becomes failed with reason. It returns how many changed
// (0 also when the batch is gone), or ErrBatchLocked.
func (b *Batches) FailBatch(ctx context.Context, id, reason string, keep bool, now time.Time) (int, error) {
	k := "0"
	if keep {
		k = "1"
	}
	res, err := operatorFailScript.Run(ctx, b.rdb,
		[]string{b.k.Batch(id), b.k.Lock(id), b.k.Batches(), b.k.Waiting(), b.k.ArchivedBatch(id), b.k.ArchivedBatches()},
		id, reason, now.UnixMilli(), b.ttl.Milliseconds(), k).Int64Slice()
	if err != nil {
		return 0, fmt.Errorf("store: fail batch %s: %w", id, err)
	}
	if len(res) != 2 {
		return 0, fmt.Errorf("store: fail batch %s: %w", id, ErrBatchReply)
	}
	if res[0] == -1 {
		return 0, ErrBatchLocked
	}
	return int(res[1]), nil
}

// reviveScript: KEYS abatch archived batch batches; ARGV bid now
// Returns the number of messages put back to sending.
var reviveScript = NewScript("store.revive", `
local a = redis.call('HMGET', KEYS[1], 'group', 'ids')
if not a[1] then return 0 end
local base = string.sub(KEYS[4], 1, #KEYS[4] - 7)
local ids = cjson.decode(a[2])
local keep = {}
for _, id in ipairs(ids) do
  local k = base .. 'msg:' .. id
  local f = redis.call('HMGET', k, 'status', 'sms_id')
  if f[1] == 'failed' and not (f[2] and f[2] ~= '') then
    redis.call('HSET', k, 'status', 'sending', 't_manual_retry', ARGV[2], 'batch', ARGV[1])
    -- sendable again: no TTL until its next end state (docs/LIFECYCLE.md)
    redis.call('PERSIST', k)
    keep[#keep + 1] = id
  end
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if #keep == 0 then return 0 end
redis.call('HSET', KEYS[3], 'group', a[1], 'ids', cjson.encode(keep), 'created', ARGV[2], 'attempt', 0, 'task', '1')
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
return #keep
`)

// Revive turns the kept record of archived batch id back into a live batch
// when its task is run again: each of its messages still failed and never
// accepted by ROX (no sms_id) goes back to sending (the one backward step,
// t_manual_retry set; its record loses the TTL its failure gave it), and
// the batch is claimable as usual. It returns how
// many messages were revived (0 when nothing was kept).
func (b *Batches) Revive(ctx context.Context, id string, now time.Time) (int, error) {
	n, err := reviveScript.Run(ctx, b.rdb,
		[]string{b.k.ArchivedBatch(id), b.k.ArchivedBatches(), b.k.Batch(id), b.k.Batches()},
		id, now.UnixMilli()).Int()
	if err != nil {
		return 0, fmt.Errorf("store: revive batch %s: %w", id, err)
	}
	return n, nil
}

// DropArchived forgets the kept record of archived batch id (its task was
// deleted): its messages stay failed with their reason. It reports whether
// there was one.
func (b *Batches) DropArchived(ctx context.Context, id string) (bool, error) {
	var n *redis.IntCmd
	_, err := b.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		n = p.Del(ctx, b.k.ArchivedBatch(id))
		p.ZRem(ctx, b.k.ArchivedBatches(), id)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("store: drop archived batch %s: %w", id, err)
	}
	return n.Val() > 0, nil
}

// Archived returns up to limit ids of kept archived batches, oldest first.
func (b *Batches) Archived(ctx context.Context, limit int) ([]string, error) {
	ids, err := b.rdb.ZRange(ctx, b.k.ArchivedBatches(), 0, int64(limit)-1).Result()
	if err != nil {
		return nil, fmt.Errorf("store: archived batches: %w", err)
	}
	return ids, nil
}

// ArchivedInfo reads a kept archived batch: its group and message ids.
func (b *Batches) ArchivedInfo(ctx context.Context, id string) (BatchInfo, error) {
	m, err := b.rdb.HGetAll(ctx, b.k.ArchivedBatch(id)).Result()
	if err != nil {
		return BatchInfo{}, fmt.Errorf("store: archived batch %s: %w", id, err)
	}
	if len(m) == 0 {
		return BatchInfo{}, ErrNoBatch
	}
	bi := BatchInfo{ID: id, Group: m["group"]}
	_ = json.Unmarshal([]byte(m["ids"]), &bi.IDs)
	if ms, err := strconv.ParseInt(m["archived"], 10, 64); err == nil {
		bi.Created = time.UnixMilli(ms)
	}
	return bi, nil
}

// ---- schedule groups ----

// ScheduleTaskID is the asynq task id of schedule group group.
func ScheduleTaskID(group string) string { return "sched-" + strings.ReplaceAll(group, "|", "-") }

// TaskOf returns the asynq task id that carries (or last carried) r: its
// batch, or for a message still waiting in the scheduled state its schedule
// group's task; "" when none (not yet in a batch).
func TaskOf(r *Record) string {
	if r.Batch != "" {
		return r.Batch
	}
	if r.Status == StatusScheduled && r.Group != "" && !strings.HasPrefix(r.Group, GroupNow+"|") {
		return ScheduleTaskID(r.Group)
	}
	return ""
}

// SchedGroup is one schedule group as its asynq task shows it.
type SchedGroup struct {
	Group string
	// Count is the number of messages waiting in the group.
	Count int
	// First holds up to 5 of its message ids, earliest SendAt first.
	First []string
	// TaskID is the group's asynq task recorded in {P}:stasks ("" if none).
	TaskID string
}

// DirtyGroups pops up to n schedule groups whose task must be synced.
func (b *Batches) DirtyGroups(ctx context.Context, n int) ([]string, error) {
	g, err := b.rdb.SPopN(ctx, b.k.SchedDirty(), int64(n)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("store: dirty schedule groups: %w", err)
	}
	return g, nil
}

// MarkDirty marks schedule groups for another sync.
func (b *Batches) MarkDirty(ctx context.Context, groups ...string) error {
	if len(groups) == 0 {
		return nil
	}
	args := make([]any, len(groups))
	for i, g := range groups {
		args[i] = g
	}
	if err := b.rdb.SAdd(ctx, b.k.SchedDirty(), args...).Err(); err != nil {
		return fmt.Errorf("store: mark schedule groups dirty: %w", err)
	}
	return nil
}

// ScheduleGroup reads one schedule group.
func (b *Batches) ScheduleGroup(ctx context.Context, group string) (SchedGroup, error) {
	var c *redis.IntCmd
	var f *redis.StringSliceCmd
	var t *redis.StringCmd
	_, err := b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		c = p.ZCard(ctx, b.k.SchedGroup(group))
		f = p.ZRange(ctx, b.k.SchedGroup(group), 0, 4)
		t = p.HGet(ctx, b.k.SchedTasks(), group)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return SchedGroup{}, fmt.Errorf("store: schedule group %s: %w", group, err)
	}
	return SchedGroup{Group: group, Count: int(c.Val()), First: f.Val(), TaskID: t.Val()}, nil
}

// SetGroupTask records (taskID != "") or forgets the asynq task of group.
func (b *Batches) SetGroupTask(ctx context.Context, group, taskID string) error {
	var err error
	if taskID == "" {
		err = b.rdb.HDel(ctx, b.k.SchedTasks(), group).Err()
	} else {
		err = b.rdb.HSet(ctx, b.k.SchedTasks(), group, taskID).Err()
	}
	if err != nil {
		return fmt.Errorf("store: schedule group %s task: %w", group, err)
	}
	return nil
}

// GroupTasks returns every schedule group with a recorded task: group ->
// task id.
func (b *Batches) GroupTasks(ctx context.Context) (map[string]string, error) {
	m, err := b.rdb.HGetAll(ctx, b.k.SchedTasks()).Result()
	if err != nil {
		return nil, fmt.Errorf("store: schedule group tasks: %w", err)
	}
	return m, nil
}

// handOverScript: KEYS sched:<g> scheduled groups stasks; ARGV base group taskid
var handOverScript = NewScript("store.handOver", `
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
local moved = 0
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[2], id)
  local f = redis.call('HMGET', ARGV[1] .. 'msg:' .. id, 'status', 'group')
  if f[1] == 'scheduled' and f[2] == ARGV[2] then
    redis.call('RPUSH', ARGV[1] .. 'ready:' .. ARGV[2], id)
    moved = moved + 1
  end
end
redis.call('DEL', KEYS[1])
if moved > 0 then redis.call('SADD', KEYS[3], ARGV[2]) end
if ARGV[3] == '' or redis.call('HGET', KEYS[4], ARGV[2]) == ARGV[3] then redis.call('HDEL', KEYS[4], ARGV[2]) end
return moved
`)

// HandOver moves every scheduled message of schedule group into the
// group's ready list now (the request still carries the group's
// SendLater), and forgets the group's task when it is taskID (any when "").
// It returns how many messages moved.
func (b *Batches) HandOver(ctx context.Context, group, taskID string) (int, error) {
	n, err := handOverScript.Run(ctx, b.rdb,
		[]string{b.k.SchedGroup(group), b.k.Scheduled(), b.k.Groups(), b.k.SchedTasks()},
		b.k.Base(), group, taskID).Int()
	if err != nil {
		return 0, fmt.Errorf("store: hand over schedule group %s: %w", group, err)
	}
	return n, nil
}

// endGroupScript: KEYS sched:<g> scheduled stasks; ARGV base group status reason now ttl
var endGroupScript = NewScript("store.endGroup", `
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
local n = 0
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[2], id)
  local k = ARGV[1] .. 'msg:' .. id
  if redis.call('HGET', k, 'status') == 'scheduled' then
    redis.call('HSET', k, 'status', ARGV[3], 'err', ARGV[4], 't_' .. ARGV[3], ARGV[5])
    redis.call('PEXPIRE', k, ARGV[6])
    n = n + 1
  end
end
redis.call('DEL', KEYS[1])
redis.call('HDEL', KEYS[3], ARGV[2])
return n
`)

// EndGroup ends every still-scheduled message of schedule group with
// status to (StatusCancelled when its task was deleted, StatusFailed when
// it was archived) and reason, and forgets the group's task. It returns
// how many messages changed.
func (b *Batches) EndGroup(ctx context.Context, group string, to Status, reason string, now time.Time) (int, error) {
	if to != StatusCancelled && to != StatusFailed {
		return 0, fmt.Errorf("store: end schedule group %s: status %q, want cancelled or failed", group, to)
	}
	n, err := endGroupScript.Run(ctx, b.rdb,
		[]string{b.k.SchedGroup(group), b.k.Scheduled(), b.k.SchedTasks()},
		b.k.Base(), group, string(to), reason, now.UnixMilli(), b.ttl.Milliseconds()).Int()
	if err != nil {
		return 0, fmt.Errorf("store: end schedule group %s: %w", group, err)
	}
	return n, nil
}
