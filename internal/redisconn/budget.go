package redisconn

import "time"

// Time budgets of every Redis connection roxd opens (go-redis and asynq).
// They bound what one command can cost when Redis hangs (SIGSTOP, a
// black-holed network, unreachable Sentinels): callers add their own,
// shorter context deadlines (API calls, /readyz), which go-redis honours
// because ContextTimeoutEnabled is set.
const (
	// DialTimeout bounds one TCP (and TLS) connect, to a server or a
	// Sentinel.
	DialTimeout = 2 * time.Second
	// DialerRetries is how many times one connection is dialled before
	// the command fails.
	DialerRetries = 2
	// ReadTimeout and WriteTimeout bound one socket read or write.
	ReadTimeout  = 3 * time.Second
	WriteTimeout = 3 * time.Second
	// PoolTimeout bounds the wait for a free pooled connection.
	PoolTimeout = 4 * time.Second
	// MaxRetries is how often a failed command is retried (within the
	// caller's deadline).
	MaxRetries = 2
)
