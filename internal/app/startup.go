package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/config"
	"github.com/redoxygen/roxd/internal/logging"
	"github.com/redoxygen/roxd/internal/metrics"
	"github.com/redoxygen/roxd/internal/redisconn"
)

// Time budgets of the Redis checks.
const (
	redisPingTimeout   = 2 * time.Second
	redisRetryInitial  = 250 * time.Millisecond
	redisRetryMax      = 10 * time.Second
	redisWatchInterval = 2 * time.Second
)

// redisBackoff is the retry schedule while Redis is unreachable: 250ms
// doubling to 10s, jittered, for ever.
func redisBackoff() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = redisRetryInitial
	b.MaxInterval = redisRetryMax
	b.MaxElapsedTime = 0
	b.Reset()
	return b
}

// permanentRedisError is the start-up error of a Redis answer no retry can
// change: it names REDIS_URL and the redacted address, never the password.
func permanentRedisError(conn redisconn.Conn, err error) error {
	return &config.Error{Var: "REDIS_URL", Reason: fmt.Sprintf("%s refused roxd: %v (check the user, password and database number)", conn.String(), err)}
}

func pingRedis(ctx context.Context, rdb redis.UniversalClient) error {
	pctx, cancel := context.WithTimeout(ctx, redisPingTimeout)
	defer cancel()
	return rdb.Ping(pctx).Err()
}

// waitForRedis is the start-up connection check. It pings Redis: an answer
// that no retry can change (wrong password or user, missing password, no
// such database) is returned as a *config.Error naming REDIS_URL; an
// unreachable Redis is logged once, at error level, with its address
// (password redacted), then retried with backoff without further lines
// until it answers, which is logged at info level. It returns ctx's error
// when ctx ends first.
func waitForRedis(ctx context.Context, conn redisconn.Conn, rdb redis.UniversalClient, log zerolog.Logger) error {
	err := pingRedis(ctx, rdb)
	if err == nil {
		metrics.RedisUp.Set(1)
		return nil
	}
	if redisconn.IsPermanent(err) {
		return permanentRedisError(conn, err)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	metrics.RedisUp.Set(0)
	metrics.RedisUnreachable.Inc()
	logging.SetDegraded(true)
	log.Error().Str("redis", conn.String()).Str("error", err.Error()).
		Msg("redis unreachable at start: retrying with backoff; roxd starts when it answers")
	start, attempts := time.Now(), 1
	b := redisBackoff()
	for {
		t := time.NewTimer(b.NextBackOff())
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		attempts++
		err = pingRedis(ctx, rdb)
		switch {
		case err == nil:
			metrics.RedisUp.Set(1)
			logging.SetDegraded(false)
			log.Info().Str("redis", conn.String()).Str("unreachable_for", time.Since(start).Round(time.Millisecond).String()).
				Int("attempts", attempts).Msg("redis reachable again")
			return nil
		case redisconn.IsPermanent(err):
			logging.SetDegraded(false)
			return permanentRedisError(conn, err)
		case ctx.Err() != nil:
			logging.SetDegraded(false)
			return ctx.Err()
		}
	}
}

// watchRedis runs until ctx ends and logs each change of Redis
// reachability once: "redis unreachable" (error, with the address and the
// error) when pings start failing, "redis reachable again" (info) when one
// succeeds. While Redis is down it pings with backoff. Each change also
// resets the repeat filter of internal/logging, so that the libraries'
// conditions are logged once per change.
func watchRedis(ctx context.Context, conn redisconn.Conn, rdb redis.UniversalClient, log zerolog.Logger) {
	up, since := true, time.Now()
	b := redisBackoff()
	defer func() {
		if !up {
			logging.SetDegraded(false)
		}
	}()
	for {
		wait := redisWatchInterval
		if !up {
			wait = b.NextBackOff()
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		err := pingRedis(ctx, rdb)
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil && up:
			up, since = false, time.Now()
			b.Reset()
			metrics.RedisUp.Set(0)
			metrics.RedisUnreachable.Inc()
			logging.SetDegraded(true)
			ev := log.Error().Str("redis", conn.String()).Str("error", err.Error())
			if redisconn.IsPermanent(err) {
				ev = ev.Bool("permanent", true)
			}
			ev.Msg("redis unreachable: retrying with backoff")
		case err == nil && !up:
			up = true
			metrics.RedisUp.Set(1)
			logging.SetDegraded(false)
			log.Info().Str("redis", conn.String()).Str("unreachable_for", time.Since(since).Round(time.Millisecond).String()).Msg("redis reachable again")
		}
	}
}

// isCanceled reports a shutdown requested while waiting.
func isCanceled(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// startupChecks runs before anything starts: the directories the roles
// write to (config.CheckDirs), then the Redis connection (waitForRedis).
// It returns a *config.Error naming the variable at fault, or ctx's error.
func startupChecks(ctx context.Context, cfg config.Config, conn redisconn.Conn, rdb redis.UniversalClient, log zerolog.Logger) error {
	if err := cfg.CheckDirs(); err != nil {
		return err
	}
	return waitForRedis(ctx, conn, rdb, log)
}
