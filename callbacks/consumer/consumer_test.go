package consumer

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/internal/testutil"
)

func receiptFields(n string) map[string]any {
	return map[string]any{
		"event_id": "ev" + n, "kind": "receipt", "message_id": "m" + n, "sms_id": "s" + n, "request_id": "r1",
		"account_id": "CI00000001", "timestamp": "2030-01-01T00:00:01Z", "metadata": `{"order":"` + n + `"}`,
		"dest_tn": "+61407555001", "result": "0000", "result_text": "Delivered", "status": "delivered",
	}
}

func TestParse(t *testing.T) {
	ev := Parse(redis.XMessage{ID: "1-0", Values: receiptFields("7")})
	if ev.Err != nil || ev.Receipt == nil || ev.Reply != nil {
		t.Fatalf("receipt: %+v", ev)
	}
	r := ev.Receipt
	if r.EventID != "ev7" || r.MessageID != "m7" || r.SMSID != "s7" || r.Status != "delivered" || !r.Delivered() ||
		r.Metadata["order"] != "7" || !r.Timestamp.Equal(time.Date(2030, 1, 1, 0, 0, 1, 0, time.UTC)) ||
		r.DestTn != "+61407555001" || r.Result != "0000" || r.AccountID != "CI00000001" {
		t.Errorf("receipt parsed as %+v", r)
	}

	ev = ParseFields("2-0", map[string]string{
		"event_id": "e", "kind": "reply", "message_id": "", "sms_id": "s", "reply_from": "+61407555001",
		"reply_text": "STOP", "sms_text": "hi", "timestamp": "2030-01-01T00:00:01Z", "metadata": `{"a":1,"b":"x"}`,
	})
	if ev.Err != nil || ev.Reply == nil || ev.Receipt != nil {
		t.Fatalf("reply: %+v", ev)
	}
	if p := ev.Reply; p.From != "+61407555001" || p.Text != "STOP" || p.SMSText != "hi" || p.MessageID != "" ||
		p.Metadata["a"] != "1" || p.Metadata["b"] != "x" {
		t.Errorf("reply parsed as %+v", p)
	}

	cases := map[string]map[string]string{
		"unknown kind":   {"kind": "other"},
		"bad timestamp":  {"kind": "receipt", "timestamp": "yesterday"},
		"bad metadata":   {"kind": "reply", "metadata": "[1]"},
		"missing fields": {},
	}
	for name, f := range cases {
		ev := ParseFields("3-0", f)
		if ev.Err == nil {
			t.Errorf("%s: no error", name)
		}
		if ev.ID != "3-0" || ev.Fields == nil {
			t.Errorf("%s: partial event lost its id/fields: %+v", name, ev)
		}
	}
	if ev := ParseFields("4-0", map[string]string{"kind": "other"}); !errors.Is(ev.Err, ErrUnknownKind) {
		t.Errorf("unknown kind: %v", ev.Err)
	}
}

func TestConfig(t *testing.T) {
	if _, err := New(nil, Config{Stream: "s", Group: "g"}); !errors.Is(err, ErrConfig) {
		t.Errorf("nil client: %v", err)
	}
	for field, cfg := range map[string]Config{
		"Stream": {Group: "g"},
		"Group":  {Stream: "s"},
		"Count":  {Stream: "s", Group: "g", Count: -1},
	} {
		_, err := New(redis.NewClient(&redis.Options{}), cfg)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v", field, err)
		}
	}
}

type collector struct {
	mu   sync.Mutex
	seen []Event
	fail map[string]int // sms id -> failures left
}

func (c *collector) handle(_ context.Context, ev Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := ev.Fields["sms_id"]
	if c.fail[id] > 0 {
		c.fail[id]--
		return errors.New("not now")
	}
	c.seen = append(c.seen, ev)
	return nil
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

func run(t *testing.T, c *Consumer, h Handler) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, h) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestRunReadsAcksAndReclaims(t *testing.T) {
	rdb := testutil.Redis(t)
	ctx := context.Background()
	stream := testutil.Name("receipts")
	t.Cleanup(func() { rdb.Del(ctx, stream) })
	for _, n := range []string{"1", "2"} { // before the group: read with StartID 0
		rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: receiptFields(n)})
	}
	col := &collector{fail: map[string]int{"s3": 1}}
	c, err := New(rdb, Config{Stream: stream, Group: "g", Consumer: "a", StartID: "0",
		Block: 50 * time.Millisecond, MinIdle: 100 * time.Millisecond, ClaimInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	run(t, c, col.handle)
	testutil.Eventually(t, 5*time.Second, func() bool { return col.count() == 2 }, "existing entries not read")
	for _, n := range []string{"3", "4"} {
		rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: receiptFields(n)})
	}
	// s3 fails once, stays pending, and is claimed again after MinIdle.
	testutil.Eventually(t, 5*time.Second, func() bool { return col.count() == 4 }, "failed entry not reclaimed: %d", col.count())
	testutil.Eventually(t, 5*time.Second, func() bool {
		p, err := rdb.XPending(ctx, stream, "g").Result()
		return err == nil && p.Count == 0
	}, "entries left pending")
	col.mu.Lock()
	defer col.mu.Unlock()
	last := col.seen[len(col.seen)-1]
	if last.Receipt == nil || last.Receipt.SMSID != "s3" || last.Receipt.Metadata["order"] != "3" {
		t.Errorf("last handled %+v, want the reclaimed s3", last.Receipt)
	}
}

// A consumer that died holding entries: another consumer of the group
// claims them after MinIdle.
func TestDeadConsumersEntriesAreClaimed(t *testing.T) {
	rdb := testutil.Redis(t)
	ctx := context.Background()
	stream := testutil.Name("replies")
	t.Cleanup(func() { rdb.Del(ctx, stream) })
	if err := rdb.XGroupCreateMkStream(ctx, stream, "g", "$").Err(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"1", "2", "3"} {
		rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: receiptFields(n)})
	}
	// "dead" reads them and never acknowledges.
	if err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "dead", Streams: []string{stream, ">"}, Count: 10, Block: -1}).Err(); err != nil {
		t.Fatal(err)
	}
	col := &collector{}
	c, _ := New(rdb, Config{Stream: stream, Group: "g", Consumer: "alive",
		Block: 50 * time.Millisecond, MinIdle: 200 * time.Millisecond, ClaimInterval: 50 * time.Millisecond})
	run(t, c, col.handle)
	testutil.Eventually(t, 5*time.Second, func() bool { return col.count() == 3 }, "dead consumer's entries not claimed: %d", col.count())
}

// A consumer restarted under the same name first re-reads what it had been
// handed but not acknowledged.
func TestRestartRereadsOwnPending(t *testing.T) {
	rdb := testutil.Redis(t)
	ctx := context.Background()
	stream := testutil.Name("receipts")
	t.Cleanup(func() { rdb.Del(ctx, stream) })
	_ = rdb.XGroupCreateMkStream(ctx, stream, "g", "$").Err()
	rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: receiptFields("1")})
	_ = rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "me", Streams: []string{stream, ">"}, Count: 10, Block: -1}).Err()
	col := &collector{}
	c, _ := New(rdb, Config{Stream: stream, Group: "g", Consumer: "me", Block: 50 * time.Millisecond, MinIdle: time.Hour})
	run(t, c, col.handle)
	testutil.Eventually(t, 5*time.Second, func() bool { return col.count() == 1 }, "own pending entry not re-read")
}
