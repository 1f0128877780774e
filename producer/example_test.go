package producer_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/producer"
)

func ExampleEncoding() {
	fmt.Println(producer.Encoding("Total: 5€"))
	fmt.Println(producer.Encoding("Привет"))
	// Output:
	// GSM-7 1
	// UCS-2 1
}

// Send one message. The example runs against TEST_REDIS_URL (set by
// `make test`), under its own key prefix.
func ExampleProducer_Send() {
	opt, err := redis.ParseURL(os.Getenv("TEST_REDIS_URL"))
	if err != nil {
		opt = &redis.Options{Addr: "127.0.0.1:6379"}
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	prefix := fmt.Sprintf("example-producer-%d", time.Now().UnixNano())
	ctx := context.Background()
	keys, _ := rdb.Keys(ctx, "{"+prefix+"}:*").Result()
	if len(keys) > 0 {
		rdb.Del(ctx, keys...)
	}

	p, err := producer.New(rdb, producer.Config{DefaultRegion: "AU", Store: store.Config{Prefix: prefix}}, zerolog.Nop())
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := p.Send(ctx, producer.Message{
		ID:       "order-42-shipped",
		To:       "0412 345 678",
		Text:     "Your order 42 has shipped.",
		Metadata: map[string]string{"order": "42"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.ID, res.Status, res.To, res.Encoding, res.Segments)

	// The same ID and content again: a replay, nothing new is queued.
	res, _ = p.Send(ctx, producer.Message{ID: "order-42-shipped", To: "+61412345678",
		Text: "Your order 42 has shipped.", Metadata: map[string]string{"order": "42"}})
	fmt.Println(res.Replayed)

	_, err = p.Send(ctx, producer.Message{To: "12", Text: "hi"})
	fmt.Println(err)

	keys, _ = rdb.Keys(ctx, "{"+prefix+"}:*").Result()
	rdb.Del(ctx, keys...)
	// Output:
	// order-42-shipped queued +61412345678 GSM-7 1
	// true
	// producer: to: "12" is not a valid phone number (default region AU)
}
