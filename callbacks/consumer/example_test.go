package consumer_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/callbacks/consumer"
)

// exampleRedis is the test Redis (TEST_REDIS_URL) when set, else an
// in-process miniredis, so that the example always runs.
func exampleRedis() (*redis.Client, func()) {
	if u := os.Getenv("TEST_REDIS_URL"); u != "" {
		if opt, err := redis.ParseURL(u); err == nil {
			c := redis.NewClient(opt)
			return c, func() { c.Close() }
		}
	}
	m, err := miniredis.Run()
	if err != nil {
		panic(err) // example plumbing only
	}
	c := redis.NewClient(&redis.Options{Addr: m.Addr()})
	return c, func() { c.Close(); m.Close() }
}

// A billing service reads delivery receipts through its own consumer group.
func Example() {
	rdb, done := exampleRedis()
	defer done()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	stream := "example:receipts:" + hex.EncodeToString(b) // usually "rox:receipts"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	defer rdb.Del(context.Background(), stream)

	// What roxd's receiver writes when ROX reports a delivery.
	rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: map[string]any{
		"event_id": "5d41402abc4b2a76b9719d911017c592", "kind": "receipt", "message_id": "m-42",
		"sms_id": "123e4567-e89b-12d3-a456-426614174001", "request_id": "123e4567-e89b-12d3-a456-426614174000",
		"account_id": "CI00000001", "timestamp": "2030-01-01T00:00:01Z", "dest_tn": "+61407555001",
		"result": "0000", "result_text": "Delivered", "status": "delivered", "metadata": `{"order":"1001"}`,
	}})

	c, err := consumer.New(rdb, consumer.Config{
		Stream: stream, Group: "billing", Consumer: "billing-1",
		StartID: "0", Block: 100 * time.Millisecond,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	err = c.Run(ctx, func(ctx context.Context, ev consumer.Event) error {
		if r := ev.Receipt; r != nil {
			fmt.Printf("message %s to %s: %s at %s (order %s)\n",
				r.MessageID, r.DestTn, r.Status, r.Timestamp.Format(time.RFC3339), r.Metadata["order"])
			cancel() // one is enough for the example
		}
		return nil // acknowledged
	})
	fmt.Println("run:", err)
	// Output:
	// message m-42 to +61407555001: delivered at 2030-01-01T00:00:01Z (order 1001)
	// run: <nil>
}
