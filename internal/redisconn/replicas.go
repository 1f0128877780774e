package redisconn

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNotReplicated means a write landed on the master but fewer replicas
// than asked acknowledged it within the wait timeout: it may be lost if the
// master fails now. The write itself happened; repeating it must be safe
// (every caller's write is idempotent: enqueue by id, callbacks by dedup
// marker, the record script by SMSId).
var ErrNotReplicated = errors.New("redis: write not acknowledged by enough replicas")

// DefaultWaitTimeout is the timeout of one WAIT when Replicas.Timeout is 0.
// Every WAIT is read within the socket read budget (ReadTimeout), with the
// writes of its pipeline: keep it well below.
const DefaultWaitTimeout = time.Second

// waitMarker is the channel of the PUBLISH that precedes every WAIT (see
// Replicas).
const waitMarker = "roxd:wait-marker"

// Replicas is the rule "a write is done once Min replicas have it"
// (ROXD_REDIS_MIN_REPLICAS): after the write, on the same connection, roxd
// sends PUBLISH to a marker channel and WAIT Min Timeout.
//
// Why the same connection: WAIT waits for the replication offset of the
// last write of its own connection. go-redis hands out pooled connections,
// so a WAIT sent on its own may run on another connection (whose last write
// is older, or none: WAIT then answers at once) or, after a Sentinel switch,
// on the new master. Both go in the write's pipeline, which go-redis sends
// on one connection.
//
// Why the PUBLISH: a write that changes nothing (an idempotent replay of a
// message already stored, a duplicate callback) is not replicated. Redis 7
// sets a connection's WAIT offset after every command, so WAIT still covers
// the earlier write the replay found; Redis 6 sets it only after a
// replicated write, so WAIT would answer from an older offset. PUBLISH is
// always sent down the replication stream, and the stream is ordered: once
// a replica has the marker it has everything the master took before it,
// whoever wrote it, on either version. (On Redis Cluster PUBLISH travels
// over the cluster bus instead; there Redis 7's rule alone covers it.)
//
// The zero value (Min 0) waits for nothing and adds no command.
type Replicas struct {
	// Min is how many replicas must acknowledge; 0 turns the rule off.
	Min int
	// Timeout bounds one WAIT (DefaultWaitTimeout when 0).
	Timeout time.Duration
}

// Enabled reports whether writes wait for replicas.
func (r Replicas) Enabled() bool { return r.Min > 0 }

func (r Replicas) timeout() time.Duration {
	if r.Timeout <= 0 {
		return DefaultWaitTimeout
	}
	return r.Timeout
}

// Queue appends the marker and the WAIT to pipe, after the writes they
// cover, and returns the WAIT's command for Check. It returns nil (and
// queues nothing) when r is not Enabled.
func (r Replicas) Queue(ctx context.Context, pipe redis.Pipeliner) *redis.Cmd {
	if !r.Enabled() {
		return nil
	}
	pipe.Publish(ctx, waitMarker, "")
	// Pipeliner does not list Wait; the command is the same.
	return pipe.Do(ctx, "wait", r.Min, r.timeout().Milliseconds())
}

// Check reads the answer of the WAIT that Queue returned: nil when enough
// replicas acknowledged (or when cmd is nil), an error wrapping
// ErrNotReplicated when too few did, or the WAIT's own error (a connection
// error, READONLY on a replica...).
func (r Replicas) Check(cmd *redis.Cmd) error {
	if cmd == nil {
		return nil
	}
	n, err := cmd.Int64()
	if err != nil {
		return fmt.Errorf("redis: WAIT: %w", err)
	}
	if int(n) < r.Min {
		return fmt.Errorf("%w: %d of %d within %s", ErrNotReplicated, n, r.Min, r.timeout())
	}
	return nil
}

// pipeliner is what RunScript needs of a client.
type pipeliner interface {
	redis.Scripter
	Pipeline() redis.Pipeliner
}

// RunScript runs s like s.Run (EVALSHA, then EVAL when the script cache is
// empty) and, when r is Enabled, waits for the replicas in the same
// pipeline. The script's own error comes back in the command; a WAIT
// short of replicas (or failing) comes back as the error, with the
// script's answer still in the command (the write happened).
//
// On a Redis Cluster the pipeline goes to the master of keys[0]'s slot, so
// that the WAIT runs on the node that took the write.
func (r Replicas) RunScript(ctx context.Context, rdb redis.UniversalClient, s *redis.Script, keys []string, args ...any) (*redis.Cmd, error) {
	if !r.Enabled() {
		return s.Run(ctx, rdb, keys, args...), nil
	}
	var c pipeliner = rdb
	if cc, ok := rdb.(*redis.ClusterClient); ok && len(keys) > 0 {
		node, err := cc.MasterForKey(ctx, keys[0])
		if err != nil {
			cmd := redis.NewCmd(ctx)
			cmd.SetErr(err)
			return cmd, nil
		}
		c = node
	}
	run := func(eval bool) (*redis.Cmd, *redis.Cmd) {
		pipe := c.Pipeline()
		var cmd *redis.Cmd
		if eval {
			cmd = s.Eval(ctx, pipe, keys, args...)
		} else {
			cmd = s.EvalSha(ctx, pipe, keys, args...)
		}
		w := r.Queue(ctx, pipe)
		_, _ = pipe.Exec(ctx) // read per command below
		return cmd, w
	}
	cmd, w := run(false)
	if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
		cmd, w = run(true)
	}
	if cmd.Err() != nil {
		return cmd, nil
	}
	return cmd, r.Check(w)
}

// Writable reports whether the server rdb talks to takes writes and has at
// least r.Min replicas connected, for /readyz: "" when it does, else the
// reason (a replica: a failover is under way or the client has not yet
// followed it; fewer replicas than ROXD_REDIS_MIN_REPLICAS: every write
// would answer ErrNotReplicated). An error means INFO did not answer. On a
// Redis Cluster it says "" (each shard has its own master).
func (r Replicas) Writable(ctx context.Context, rdb redis.UniversalClient) (string, error) {
	if _, ok := rdb.(*redis.ClusterClient); ok {
		return "", nil
	}
	info, err := rdb.Info(ctx, "replication").Result()
	var rerr redis.Error
	if errors.As(err, &rerr) {
		// The server answered but refuses INFO (ACL, renamed, an embedded
		// Redis without it): it is reachable; WAIT still enforces Min.
		return "", nil
	}
	if err != nil {
		return "", err
	}
	f := parseInfo(info)
	if role := f["role"]; role != "master" {
		if role == "slave" {
			role = "replica"
		}
		return fmt.Sprintf("redis is a %s, not a master (failover under way?)", role), nil
	}
	if r.Min > 0 {
		n := 0
		for k, v := range f {
			// slaveN:ip=...,port=...,state=online,offset=...,lag=...
			if strings.HasPrefix(k, "slave") && strings.Contains(v, "state=online") {
				n++
			}
		}
		if n < r.Min {
			return fmt.Sprintf("redis master has %d replicas online, ROXD_REDIS_MIN_REPLICAS is %d", n, r.Min), nil
		}
	}
	return "", nil
}
