package app

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/internal/testutil"
)

// TestDevRedisKeysExpire: miniredis never lets a TTL run out on its own
// (its clock moves only when told to), so in `roxd dev` every key roxd
// gives a lifetime lived for ever: after one HTTP 429 from the simulator
// the account's pause ({P}:ratepause:default) never ended and no SMS was
// sent again. roxd dev moves the embedded Redis's clock with the wall
// clock: a key set with a TTL is gone once it ran out, and an SMS queued
// during a 429 is delivered once the simulator stops throttling.
func TestDevRedisKeysExpire(t *testing.T) {
	info := startDev(t, map[string]string{})
	opt, err := redis.ParseURL(info.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	if err := rdb.Set(ctx, "ttl-probe", "1", 200*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() bool {
		n, err := rdb.Exists(ctx, "ttl-probe").Result()
		return err == nil && n == 0
	}, "a key set with a 200ms TTL still exists")

	f := info.Sim.Faults()
	f.Throttle = 1
	if err := info.Sim.SetFaults(f); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, info.APIURL,
		strings.NewReader(`{"id":"after-429","to":"`+DevExampleNumber+`","text":"after a 429"}`))
	req.Header.Set("Authorization", "Bearer "+info.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST: %d", resp.StatusCode)
	}
	testutil.Eventually(t, 20*time.Second, func() bool { return info.Sim.Stats().Throttled > 0 },
		"the simulator never throttled")
	f.Throttle = 0
	if err := info.Sim.SetFaults(f); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, func() bool {
		var st struct{ Status string }
		getJSON(t, info.APIURL+"/after-429", info.Token, &st)
		return st.Status == "delivered"
	}, "the message queued during a 429 was never delivered")
}
