package worker

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/internal/store"
)

// A batch's asynq task can be in a state from which asynq never runs it
// again, while Inspector.GetTaskInfo still reports a live state (or an
// error). The sweep repairs those (Operator.Sweep, docs/RELIABILITY.md
// "The stuck batch"):
//
//   - `active` in its hash but missing from the active list or the lease
//     set: no server dequeues it, and the recoverer (which reads the lease
//     set) either never sees it or answers NOT FOUND at each attempt.
//     asynq's done, markAsComplete, retry, requeue and archive scripts
//     remove the task from the active list first and answer NOT FOUND,
//     without undoing it, when its lease entry is missing. The repair puts
//     the task back in pending.
//   - `retry` or `scheduled` in its hash but not in its sorted set: the
//     forwarder never moves it. The repair adds it, due now.
//   - a hash without `msg`: asynq's ResultWriter is a plain HSET on the
//     task's hash, so a result written after the task was deleted makes a
//     hash with only `result`. GetTaskInfo fails on it and an enqueue with
//     the batch's task id answers "task ID conflict", which counts as
//     enqueued. The sweep clears the batch's `task` mark, deletes the hash
//     (dropZombie) and enqueues a new task: two steps, because roxd's keys
//     and asynq's live in different Redis Cluster slots; the mark goes
//     first so that a step refused in between never reads as an
//     operator's delete.
//
// A task in a consistent state is never touched: a task in the active list
// with a lease entry belongs to a handler run or to the recoverer (lease
// expired), whatever the hash says.
//
// The script uses asynq v0.26's key layout (asynq:{<queue>}:t:<id>,
// :pending, :active, :lease, :retry, :scheduled); TestAsynqKeyLayout pins it.

// repairTaskScript: KEYS task pending active lease retry scheduled;
// ARGV id now-unix-seconds now-unix-nanos. Returns ok, none, zombie (left
// as is), active, retry or scheduled (what was repaired).
var repairTaskScript = store.NewScript("worker.repairTask", `
if redis.call('EXISTS', KEYS[1]) == 0 then return 'none' end
if redis.call('HEXISTS', KEYS[1], 'msg') == 0 then return 'zombie' end
local id = ARGV[1]
local st = redis.call('HGET', KEYS[1], 'state')
if st == 'active' then
  if redis.call('LPOS', KEYS[3], id) and redis.call('ZSCORE', KEYS[4], id) then return 'ok' end
  redis.call('LREM', KEYS[3], 0, id)
  redis.call('ZREM', KEYS[4], id)
  redis.call('LREM', KEYS[2], 0, id)
  redis.call('RPUSH', KEYS[2], id)
  redis.call('HSET', KEYS[1], 'state', 'pending', 'pending_since', ARGV[3])
  return 'active'
elseif st == 'retry' or st == 'scheduled' then
  local z = KEYS[5]
  if st == 'scheduled' then z = KEYS[6] end
  if redis.call('ZSCORE', z, id) then return 'ok' end
  redis.call('ZADD', z, ARGV[2], id)
  return st
end
return 'ok'
`)

// Results of repairTask.
const (
	taskOK     = "ok"     // consistent (or in a state left alone)
	taskNone   = "none"   // no such task
	taskZombie = "zombie" // a hash without a message: dropZombie, enqueue anew
)

// dropZombieScript deletes a task hash that has no message. KEYS task.
// Returns 1 when it deleted it.
var dropZombieScript = store.NewScript("worker.dropZombie", `
if redis.call('EXISTS', KEYS[1]) == 1 and redis.call('HEXISTS', KEYS[1], 'msg') == 0 then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// dropZombie deletes task id's hash of queue q when it has no message.
func dropZombie(ctx context.Context, rdb redis.UniversalClient, q, id string) error {
	if err := dropZombieScript.Run(ctx, rdb, []string{"asynq:{" + q + "}:t:" + id}).Err(); err != nil {
		return fmt.Errorf("worker: drop task hash %s: %w", id, err)
	}
	return nil
}

// repairTask checks the asynq task id of queue q and repairs an orphaned
// state (see above). It returns what it found: taskOK, taskNone,
// taskZombie, or the state it repaired ("active", "retry", "scheduled").
func repairTask(ctx context.Context, rdb redis.UniversalClient, q, id string, now time.Time) (string, error) {
	p := "asynq:{" + q + "}:"
	res, err := repairTaskScript.Run(ctx, rdb,
		[]string{p + "t:" + id, p + "pending", p + "active", p + "lease", p + "retry", p + "scheduled"},
		id, now.Unix(), strconv.FormatInt(now.UnixNano(), 10)).Text()
	if err != nil {
		return "", fmt.Errorf("worker: repair task %s: %w", id, err)
	}
	return res, nil
}
