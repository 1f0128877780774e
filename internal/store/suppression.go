package store

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Suppress adds number (E.164) to the suppression list as an operator's
// decision: later sends to it end with status suppressed and never reach
// ROX, and a START from the handset does not lift it (only Unsuppress
// does). The number is also noted in {P}:suppressed:operator.
func (s *Store) Suppress(ctx context.Context, number string) error {
	// Every shard keeps the whole list (one MULTI per shard: one slot each).
	for _, k := range s.shards {
		_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.SAdd(ctx, k.Suppressed(), number)
			p.SAdd(ctx, k.SuppressedByOperator(), number)
			return nil
		})
		if err != nil {
			return fmt.Errorf("store: suppress: %w", err)
		}
	}
	return nil
}

// Unsuppress removes number from the suppression list, whoever put it there.
func (s *Store) Unsuppress(ctx context.Context, number string) error {
	for _, k := range s.shards {
		_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.SRem(ctx, k.Suppressed(), number)
			p.SRem(ctx, k.SuppressedByOperator(), number)
			return nil
		})
		if err != nil {
			return fmt.Errorf("store: unsuppress: %w", err)
		}
	}
	return nil
}

// IsSuppressed reports whether number is on the suppression list (every
// shard holds the whole list; the first shard's is read).
func (s *Store) IsSuppressed(ctx context.Context, number string) (bool, error) {
	ok, err := s.rdb.SIsMember(ctx, s.keys.Suppressed(), number).Result()
	if err != nil {
		return false, fmt.Errorf("store: is suppressed: %w", err)
	}
	return ok, nil
}

// ListSuppressed pages through the suppression list with SSCAN: start with
// cursor 0 and continue with the returned cursor until it is 0. count is a
// hint of the page size (SSCAN's COUNT; 100 when <= 0). A page may repeat a
// number seen before, or be empty while the cursor is not 0.
func (s *Store) ListSuppressed(ctx context.Context, cursor uint64, count int64) ([]string, uint64, error) {
	if count <= 0 {
		count = 100
	}
	nums, next, err := s.rdb.SScan(ctx, s.keys.Suppressed(), cursor, "", count).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("store: list suppressed: %w", err)
	}
	return nums, next, nil
}
