package callbacks

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/internal/redisconn"
)

// Reasons a callback goes to the spool (roxd_callbacks_spooled_total).
const (
	SpoolConnection = "connection" // dial refused/timed out, reset, EOF, closed client, pool exhausted
	SpoolLoading    = "loading"    // LOADING: Redis is reading its data set after a restart
	SpoolFailover   = "failover"   // MASTERDOWN, CLUSTERDOWN, TRYAGAIN, NOREPLICAS
	SpoolReadOnly   = "readonly"   // READONLY: a replica, i.e. a failover in progress
	SpoolOOM        = "oom"        // OOM: maxmemory reached under noeviction
	SpoolBusy       = "busy"       // BUSY: a script runs past lua-time-limit
	SpoolTimeout    = "timeout"    // no answer within Config.StoreTimeout
	SpoolBacklog    = "backlog"    // the spool is being replayed: keep order behind it
	SpoolStopped    = "stopped"    // the receiver is shutting down
	SpoolReplicas   = "replicas"   // stored on the master, fewer than ROXD_REDIS_MIN_REPLICAS replicas confirmed it
	SpoolRefused    = "refused"    // Redis refused a command that can never succeed
)

// spoolReason classifies a failed store. Every reason but SpoolRefused is a
// state of Redis that passes (down, restarting, failing over, full, hung):
// the callback is spooled and replayed once Redis takes writes again, and
// ROX is answered "0000" (a failed or slow answer makes ROX forward the
// receipt to email, out of the system for good).
//
// A slow Redis is not among them: the store waits for an answer up to
// Config.StoreTimeout (seconds, not milliseconds), so a Redis that is busy
// but answering slows the answer instead of diverting it; only a Redis that
// does not answer within that budget is taken for hung (SpoolTimeout).
//
// SpoolRefused covers errors that replaying cannot cure (WRONGTYPE,
// CROSSSLOT, NOPERM, a script error, an unexpected reply): such a callback
// goes straight to the spool's rejected.log (fsynced), the error is logged
// and counted, and ROX is answered "0000" - the callback is kept on disk
// for the operator rather than sent to the account's mailbox.
func spoolReason(err error) string {
	var rerr redis.Error
	switch {
	case err == nil:
		return ""
	case errors.Is(err, errStopped):
		return SpoolStopped
	case errors.Is(err, redisconn.ErrNotReplicated):
		return SpoolReplicas
	case errors.Is(err, errNoAnswer), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return SpoolTimeout
	case errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrClosed),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return SpoolConnection
	}
	var ne net.Error
	if errors.As(err, &ne) {
		if ne.Timeout() {
			return SpoolTimeout
		}
		return SpoolConnection
	}
	if !errors.As(err, &rerr) {
		// go-redis reports an unreachable Sentinel set and similar
		// connection trouble as plain errors.
		if strings.Contains(err.Error(), "sentinel") || strings.Contains(err.Error(), "connection") {
			return SpoolConnection
		}
		return SpoolRefused
	}
	switch {
	case redis.IsLoadingError(err):
		return SpoolLoading
	case redis.IsReadOnlyError(err):
		return SpoolReadOnly
	case redis.IsOOMError(err):
		return SpoolOOM
	case redis.HasErrorPrefix(err, "BUSY"):
		return SpoolBusy
	case redis.IsMasterDownError(err), redis.IsClusterDownError(err), redis.IsTryAgainError(err),
		redis.HasErrorPrefix(err, "NOREPLICAS"):
		return SpoolFailover
	case redis.HasErrorPrefix(err, "MAXCLIENTS"):
		return SpoolConnection
	}
	return SpoolRefused
}
