package consumer

import (
	"context"
	"testing"
	"time"

	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/internal/testutil"
)

// The entry the worker's claim writes for an expired message parses as an
// Expired event (the shape is pinned end to end, script to consumer).
func TestParseExpiredFromClaim(t *testing.T) {
	ctx := context.Background()
	rdb := testutil.Redis(t)
	st, err := store.New(rdb, store.Config{Prefix: testutil.Name("cexp")})
	if err != nil {
		t.Fatal(err)
	}
	stream := st.Keys().Base() + "receipts"
	t.Cleanup(func() {
		if keys, _ := rdb.Keys(context.Background(), st.Keys().Base()+"*").Result(); len(keys) > 0 {
			rdb.Del(context.Background(), keys...)
		}
	})
	now := time.Now()
	exp := now.Add(-time.Second).Truncate(time.Millisecond)
	if _, _, err := st.Enqueue(ctx, []store.Record{{ID: "otp-1", To: "+61412345678", Text: "code 1", Receipt: "always",
		Reply: "http", ExpiresAt: exp, Metadata: map[string]string{"user": "7"}}}); err != nil {
		t.Fatal(err)
	}
	b := st.Batches().WithExpiry(store.ExpiryParams{Stream: stream, AccountID: "CI00000001"})
	f, err := b.Form(ctx, store.FormParams{MaxBatch: 500, MaxWaiting: 10, MaxForm: 1, IDPrefix: "b"}, now)
	if err != nil || len(f) != 1 {
		t.Fatalf("form %+v %v", f, err)
	}
	if c, err := b.Claim(ctx, f[0].ID, "tok", time.Minute, now); err != nil || c.Expired != 1 {
		t.Fatalf("claim %+v %v", c, err)
	}
	xs, err := rdb.XRange(ctx, stream, "-", "+").Result()
	if err != nil || len(xs) != 1 {
		t.Fatalf("stream %v %v", xs, err)
	}
	ev := Parse(xs[0])
	if ev.Err != nil || ev.Kind != KindExpired || ev.Expired == nil || ev.Receipt != nil || ev.Reply != nil {
		t.Fatalf("event %+v", ev)
	}
	e := ev.Expired
	if e.MessageID != "otp-1" || e.EventID != "expired-otp-1" || e.AccountID != "CI00000001" || e.DestTn != "+61412345678" ||
		!e.ExpiresAt.Equal(exp) || e.Reason == "" || e.Metadata["user"] != "7" || now.Sub(e.Timestamp).Abs() > 2*time.Second {
		t.Fatalf("expired %+v", e)
	}
	if ev.Fields["status"] != "expired" || ev.Fields["status_after"] != "expired" {
		t.Fatalf("fields %v", ev.Fields)
	}
}
