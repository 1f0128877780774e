package consumer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of Config.
const (
	DefaultBlock         = time.Second
	DefaultCount         = 100
	DefaultMinIdle       = time.Minute
	DefaultClaimInterval = 30 * time.Second
	// DefaultStartID makes a new group start with entries added from now on.
	DefaultStartID = "$"
)

// Config configures a Consumer.
type Config struct {
	// Stream to read, e.g. "rox:receipts". Required.
	Stream string
	// Group is the consumer group. Required.
	Group string
	// Consumer names this reader within the group (default host-pid). Keep
	// it stable across restarts to re-read what it had not acknowledged.
	Consumer string
	// Block is how long one XREADGROUP waits for new entries.
	Block time.Duration
	// Count is the most entries read at once.
	Count int64
	// MinIdle is how long an entry stays pending before another try claims it.
	MinIdle time.Duration
	// ClaimInterval is how often stale pending entries are looked for.
	ClaimInterval time.Duration
	// StartID is where a group created by this consumer starts: "$" (new
	// entries only) or "0" (the whole stream).
	StartID string
}

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("consumer: invalid config")

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Consumer == "" {
		host, _ := os.Hostname()
		c.Consumer = host + "-" + strconv.Itoa(os.Getpid())
	}
	if c.Block == 0 {
		c.Block = DefaultBlock
	}
	if c.Count == 0 {
		c.Count = DefaultCount
	}
	if c.MinIdle == 0 {
		c.MinIdle = DefaultMinIdle
	}
	if c.ClaimInterval == 0 {
		c.ClaimInterval = DefaultClaimInterval
	}
	if c.StartID == "" {
		c.StartID = DefaultStartID
	}
	return c
}

// Validate names the first bad field.
func (c Config) Validate() error {
	bad := func(field, why string) error { return fmt.Errorf("%w: %s: %s", ErrConfig, field, why) }
	switch {
	case strings.TrimSpace(c.Stream) == "":
		return bad("Stream", "required")
	case strings.TrimSpace(c.Group) == "":
		return bad("Group", "required")
	case strings.TrimSpace(c.Consumer) == "":
		return bad("Consumer", "required")
	case c.Block < time.Millisecond:
		return bad("Block", "below 1ms")
	case c.Count < 1:
		return bad("Count", "below 1")
	case c.MinIdle < time.Millisecond:
		return bad("MinIdle", "below 1ms")
	case c.ClaimInterval < time.Millisecond:
		return bad("ClaimInterval", "below 1ms")
	}
	return nil
}

// Handler handles one event. A nil error acknowledges the entry; an error
// leaves it pending, to be claimed again after Config.MinIdle.
type Handler func(ctx context.Context, ev Event) error

// Consumer reads one stream through a consumer group.
type Consumer struct {
	rdb redis.UniversalClient
	cfg Config
}

// New checks cfg and returns a Consumer. It does no I/O: Run creates the
// group.
func New(rdb redis.UniversalClient, cfg Config) (*Consumer, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if rdb == nil {
		return nil, fmt.Errorf("%w: redis client: required", ErrConfig)
	}
	return &Consumer{rdb: rdb, cfg: cfg}, nil
}

// Config returns the configuration in effect (defaults applied).
func (c *Consumer) Config() Config { return c.cfg }

// EnsureGroup creates the group (and the stream) when missing.
func (c *Consumer) EnsureGroup(ctx context.Context) error {
	err := c.rdb.XGroupCreateMkStream(ctx, c.cfg.Stream, c.cfg.Group, c.cfg.StartID).Err()
	if err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") {
		return fmt.Errorf("consumer: create group %s on %s: %w", c.cfg.Group, c.cfg.Stream, err)
	}
	return nil
}

// Run reads and handles entries until ctx is done, then returns nil. Redis
// errors are retried with backoff; Run returns early only on a
// configuration problem it cannot get past.
func (c *Consumer) Run(ctx context.Context, handle Handler) error {
	if handle == nil {
		return fmt.Errorf("%w: handler: required", ErrConfig)
	}
	backoff := newBackoff()
	for {
		if err := c.EnsureGroup(ctx); err == nil {
			break
		} else if ctx.Err() != nil {
			return nil
		} else if redis.HasErrorPrefix(err, "WRONGTYPE") {
			return err // the key is not a stream: waiting will not help
		}
		if !backoff.wait(ctx) {
			return nil
		}
	}
	// What this consumer was handed before and never acknowledged.
	// On error they stay pending and the claim pass takes them later.
	_ = c.drainOwn(ctx, handle)
	nextClaim := time.Now()
	for ctx.Err() == nil {
		if !time.Now().Before(nextClaim) {
			if err := c.Claim(ctx, handle); err != nil && ctx.Err() == nil {
				if !backoff.wait(ctx) {
					return nil
				}
				continue
			}
			nextClaim = time.Now().Add(c.cfg.ClaimInterval)
		}
		block := min(c.cfg.Block, max(time.Until(nextClaim), time.Millisecond))
		streams, err := c.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: c.cfg.Group, Consumer: c.cfg.Consumer, Streams: []string{c.cfg.Stream, ">"},
			Count: c.cfg.Count, Block: block,
		}).Result()
		if errors.Is(err, redis.Nil) {
			backoff.reset()
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if redis.HasErrorPrefix(err, "NOGROUP") {
				_ = c.EnsureGroup(ctx)
			}
			if !backoff.wait(ctx) {
				return nil
			}
			continue
		}
		backoff.reset()
		for _, s := range streams {
			c.handleAll(ctx, s.Messages, handle)
		}
	}
	return nil
}

// drainOwn handles the entries pending for this consumer name.
func (c *Consumer) drainOwn(ctx context.Context, handle Handler) error {
	start := "0"
	for ctx.Err() == nil {
		streams, err := c.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: c.cfg.Group, Consumer: c.cfg.Consumer, Streams: []string{c.cfg.Stream, start},
			Count: c.cfg.Count, Block: -1,
		}).Result()
		if errors.Is(err, redis.Nil) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("consumer: read pending: %w", err)
		}
		if len(streams) == 0 || len(streams[0].Messages) == 0 {
			return nil
		}
		msgs := streams[0].Messages
		c.handleAll(ctx, msgs, handle)
		start = msgs[len(msgs)-1].ID
	}
	return nil
}

// Claim takes over entries of the group idle for at least MinIdle
// (XAUTOCLAIM) and handles them. Run calls it every ClaimInterval.
func (c *Consumer) Claim(ctx context.Context, handle Handler) error {
	start := "0-0"
	for ctx.Err() == nil {
		msgs, next, err := c.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: c.cfg.Stream, Group: c.cfg.Group, Consumer: c.cfg.Consumer,
			MinIdle: c.cfg.MinIdle, Start: start, Count: c.cfg.Count,
		}).Result()
		if err != nil {
			return fmt.Errorf("consumer: claim: %w", err)
		}
		c.handleAll(ctx, msgs, handle)
		if next == "0-0" || next == "" {
			return nil
		}
		start = next
	}
	return nil
}

func (c *Consumer) handleAll(ctx context.Context, msgs []redis.XMessage, handle Handler) {
	var ack []string
	for _, m := range msgs {
		if m.Values == nil {
			// Trimmed away while pending: nothing to handle, acknowledge it.
			ack = append(ack, m.ID)
			continue
		}
		if handle(ctx, Parse(m)) == nil {
			ack = append(ack, m.ID)
		}
	}
	if len(ack) > 0 {
		// A failed XACK leaves the entries pending: they are handled again
		// after MinIdle, which at-least-once delivery allows.
		_ = c.rdb.XAck(context.WithoutCancel(ctx), c.cfg.Stream, c.cfg.Group, ack...).Err()
	}
}

type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{d: 50 * time.Millisecond} }

func (b *backoff) reset() { b.d = 50 * time.Millisecond }

// wait sleeps for the current delay (doubling it, up to 5s); false when
// ctx ended first.
func (b *backoff) wait(ctx context.Context) bool {
	t := time.NewTimer(b.d)
	defer t.Stop()
	b.d = min(2*b.d, 5*time.Second)
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
