package testutil

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// ScriptLog is a go-redis hook (rdb.AddHook) that records, per Lua script
// SHA1, how many EVALSHA/EVAL calls of it succeeded (redis.Nil counts as
// success) and the errors of the others. NOSCRIPT is not an error of the
// script: go-redis then sends EVAL. The cluster tests use it to show that
// every script ran on a real Redis Cluster without CROSSSLOT or MOVED.
type ScriptLog struct {
	mu   sync.Mutex
	ok   map[string]int
	errs map[string][]string
}

// NewScriptLog returns an empty log.
func NewScriptLog() *ScriptLog {
	return &ScriptLog{ok: map[string]int{}, errs: map[string][]string{}}
}

// Result returns the successful runs of the script with SHA1 sha and the
// errors of the failed ones.
func (l *ScriptLog) Result(sha string) (ok int, errs []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok[sha], append([]string(nil), l.errs[sha]...)
}

// RequireRan fails t unless the script name (with SHA1 sha) ran at least
// once and never failed.
func (l *ScriptLog) RequireRan(t testing.TB, name, sha string) {
	t.Helper()
	ok, errs := l.Result(sha)
	if len(errs) > 0 {
		t.Errorf("script %s failed on the cluster: %v", name, errs)
	}
	if ok == 0 {
		t.Errorf("script %s did not run on the cluster", name)
	}
}

func (l *ScriptLog) note(cmd redis.Cmder) {
	args := cmd.Args()
	if len(args) < 2 {
		return
	}
	var sha string
	switch strings.ToLower(fmt.Sprint(args[0])) {
	case "evalsha", "evalsha_ro":
		sha = fmt.Sprint(args[1])
	case "eval", "eval_ro":
		sum := sha1.Sum([]byte(fmt.Sprint(args[1])))
		sha = hex.EncodeToString(sum[:])
	default:
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch err := cmd.Err(); {
	case err == nil || errors.Is(err, redis.Nil):
		l.ok[sha]++
	case redis.HasErrorPrefix(err, "NOSCRIPT"):
	default:
		l.errs[sha] = append(l.errs[sha], err.Error())
	}
}

// DialHook implements redis.Hook.
func (l *ScriptLog) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook implements redis.Hook.
func (l *ScriptLog) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		l.note(cmd)
		return err
	}
}

// ProcessPipelineHook implements redis.Hook.
func (l *ScriptLog) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			l.note(c)
		}
		return err
	}
}
