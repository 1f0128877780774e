package redisconn_test

import (
	"context"
	"testing"
	"time"

	"github.com/redoxygen/roxd/internal/redisconn"
	"github.com/redoxygen/roxd/internal/testutil"
)

func TestHashTagAndCheck(t *testing.T) {
	for key, want := range map[string]string{
		"rox:receipts": "rox:receipts", "{roxd}:msg:1": "roxd", "{roxd:3}:x": "roxd:3",
		"a{}b{c}": "a{}b{c}", "{}x": "{}x", "a{b": "a{b", "x{y}z{w}": "y",
	} {
		if got := redisconn.HashTag(key); got != want {
			t.Errorf("HashTag(%q) = %q, want %q", key, got, want)
		}
	}
	for name, ok := range map[string]bool{
		"rox:receipts": true, "{roxd}:receipts": true, "rox:{r}": true,
		"{}:x": false, "a}b{c": false, "{a}{b}": false, "{a": false, "a}": false, "a b": false,
	} {
		if err := redisconn.CheckTaggedName(name); (err == nil) != ok {
			t.Errorf("CheckTaggedName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}

// Slot must agree with the cluster's own CLUSTER KEYSLOT.
func TestSlotMatchesCluster(t *testing.T) {
	c, err := redisconn.Parse(testutil.RedisClusterURL(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := c.Client()
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, k := range []string{"rox:receipts", "rox:replies", "{roxd}:msg:1", "{roxd:0}:x", "{roxd:5}:y", "a{}b", "x{y}z", "", "123456789"} {
		want, err := rdb.ClusterKeySlot(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if got := redisconn.Slot(k); int64(got) != want {
			t.Errorf("Slot(%q) = %d, CLUSTER KEYSLOT says %d", k, got, want)
		}
		if got := redisconn.Slot(redisconn.SameSlotKey(k, "dedup:1")); k != "" && redisconn.CheckTaggedName(k) == nil && int64(got) != want {
			t.Errorf("SameSlotKey(%q) in slot %d, want %d", k, got, want)
		}
	}
}
