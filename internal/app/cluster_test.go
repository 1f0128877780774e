package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/internal/redisconn"
	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/internal/testutil"
)

// notInClusterFlow lists every script: "" for those TestClusterEndToEnd
// must run on the cluster, else why the flow does not reach it (each is a
// script of one job over one shard's keys, built by the same key builders)
// and which test runs it directly on the cluster instead, with a non-zero
// shard's real keys.
// The test fails when a script is not listed (a new script needs a cluster
// test), when a "" one did not run, and when a listed one ran.
var notInClusterFlow = map[string]string{
	"worker.throttle":    "ROX answering HTTP 429 (one key: the account's pause); run directly by TestClusterScriptsWorker (worker)",
	"store.requeue":      "auth failure pause (ROX refusing our credentials); run directly by TestClusterScriptsStore (internal/store)",
	"store.unknown":      "ROX timeout mid-request; run directly by TestClusterScriptsStore (internal/store)",
	"store.keepArchived": "operator archives a task (dashboard); run directly by TestClusterScriptsStore (internal/store)",
	"store.operatorFail": "operator deletes or archives a task; run directly by TestClusterScriptsStore (internal/store)",
	"store.revive":       "operator runs an archived task; run directly by TestClusterScriptsStore (internal/store)",
	"worker.keepLock":    "journal holding an answer Redis refused; run directly by TestClusterScriptsWorker (worker)",
	"worker.repairTask":  "sweep of a batch older than ReapAge (1m) whose task is still active or retrying; run directly by TestClusterScriptsWorker (worker)",
	"worker.dropZombie":  "sweep finding a task hash without its message; run directly by TestClusterScriptsWorker (worker)",
	"store.transition":   "Store.Transition, used by tests and tools; run directly by TestClusterScriptsStore (internal/store)",
	"store.expireDue":    "a batch waiting for its account (429 pause, rate limit) while a message of it expires; run directly by TestClusterScriptsStore (internal/store)",
	"store.endGroup":     "last message of a schedule group cancelled (the test cancels one of two); run directly by TestClusterScriptsStore (internal/store)",
	"callbacks.push":     "", // filled below: EVALSHA is how push runs; it must run
	"store.markEnqueued": "",
	"store.handOver":     "",
	"store.schedule":     "",
	"store.finish":       "a batch whose messages were all cancelled or suppressed between forming and claiming; run directly by TestClusterScriptsStore (internal/store)",
	"store.unlock":       "a reconciling batch waiting for its window; run directly by TestClusterScriptsStore (internal/store)",
	"store.cancel":       "",
	"callbacks.store":    "",
	"store.enqueue":      "",
	"store.form":         "",
	"store.claim":        "",
	"store.record":       "",
}

// TestClusterEndToEnd runs the whole product (roxd dev with the simulator)
// on the 3-master test cluster with ROXD_SHARDS=6 and stream names in other
// slots: send, idempotent replay and conflict, schedule, cancel,
// suppression, receipts and replies on the streams once each with their
// message ids, a STOP reply suppressing the number in every shard; the keys
// spread over all three masters; every script the flow reaches ran there
// without error.
func TestClusterEndToEnd(t *testing.T) {
	clusterURL := testutil.RedisClusterURL(t)
	conn, err := redisconn.Parse(clusterURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := conn.Client()
	defer rdb.Close()
	ctx := context.Background()
	prefix := testutil.Name("cl")
	receipts, replies := "rox:receipts:"+prefix, "rox:replies:"+prefix
	const shards = 6
	log := testutil.NewScriptLog()
	info := startDevHook(t, map[string]string{
		"REDIS_URL": clusterURL, "ROXD_SHARDS": fmt.Sprint(shards), "ROXD_KEY_PREFIX": prefix, "ROXD_QUEUE": prefix,
		"ROXD_RECEIPTS_STREAM": receipts, "ROXD_REPLIES_STREAM": replies, "ROXD_SCHEDULE_LEAD": "1s",
		"ROXD_JOURNAL_DIR": t.TempDir(), "ROXD_SPOOL_DIR": t.TempDir(),
	}, log)

	send := func(body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, info.APIURL, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+info.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var out map[string]any
		_ = json.Unmarshal(b, &out)
		return resp.StatusCode, out
	}
	do := func(method, url string) int {
		t.Helper()
		req, _ := http.NewRequest(method, url, nil)
		req.Header.Set("Authorization", "Bearer "+info.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	// 60 messages over every shard, each with its own number.
	const n = 60
	ids := make([]string, n)
	seen := map[int]bool{}
	for i := range n {
		ids[i] = fmt.Sprintf("%s-m%d", prefix, i)
		seen[store.ShardOf(ids[i], shards)] = true
		body := fmt.Sprintf(`{"id":%q,"to":"+614070%05d","text":"hello %d","metadata":{"i":"%d"}}`, ids[i], i, i, i)
		if code, out := send(body); code != http.StatusAccepted || out["status"] != "queued" {
			t.Fatalf("POST %s: %d %v", ids[i], code, out)
		}
		if i == 0 {
			// Idempotent replay and conflict, by the same id.
			if code, _ := send(body); code != http.StatusOK {
				t.Fatalf("replay: %d, want 200", code)
			}
			if code, _ := send(strings.Replace(body, "hello", "other", 1)); code != http.StatusConflict {
				t.Fatalf("same id, other content: %d, want 409", code)
			}
		}
	}
	if len(seen) != shards {
		t.Fatalf("60 ids over %d shards only", len(seen))
	}
	// Scheduled: one sent soon (handed over after 1 s), one far ahead
	// that is cancelled, plus a second far one in the same group that is
	// not (so its group's task is updated, not removed).
	at := time.Now().Add(4 * time.Second).UTC().Format(time.RFC3339)
	far := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	schedID, cancelID, keepID := prefix+"-sched", prefix+"-cancel", prefix+"-keep"
	if code, out := send(fmt.Sprintf(`{"id":%q,"to":"+61407100001","text":"later","send_at":%q}`, schedID, at)); code != http.StatusAccepted || out["status"] != "scheduled" {
		t.Fatalf("scheduled: %d %v", code, out)
	}
	for _, id := range []string{cancelID, keepID} {
		if code, out := send(fmt.Sprintf(`{"id":%q,"to":"+61407100002","text":"much later","send_at":%q}`, id, far)); code != http.StatusAccepted || out["status"] != "scheduled" {
			t.Fatalf("scheduled far: %d %v", code, out)
		}
	}
	if code := do(http.MethodDelete, info.APIURL+"/"+cancelID); code != http.StatusOK {
		t.Fatalf("DELETE %s: %d", cancelID, code)
	}
	// An operator suppression reaches every shard: a send to the number,
	// whatever its shard, ends suppressed.
	base := strings.TrimSuffix(info.APIURL, "/messages")
	if code := do(http.MethodPut, base+"/suppressions/+61407199999"); code/100 != 2 {
		t.Fatalf("PUT suppression: %d", code)
	}
	for i := range 6 {
		if code, out := send(fmt.Sprintf(`{"id":"%s-sup%d","to":"+61407199999","text":"x"}`, prefix, i)); code != http.StatusAccepted || out["status"] != "suppressed" {
			t.Fatalf("send to a suppressed number: %d %v", code, out)
		}
	}

	status := func(id string) string {
		var st struct{ Status string }
		getJSON(t, info.APIURL+"/"+id, info.Token, &st)
		return st.Status
	}
	testutil.Eventually(t, 90*time.Second, func() bool {
		for _, id := range append([]string{schedID}, ids...) {
			if status(id) != "delivered" {
				return false
			}
		}
		return true
	}, "not every message delivered")
	if s := status(cancelID); s != "cancelled" {
		t.Fatalf("%s: %s, want cancelled", cancelID, s)
	}
	if s := status(keepID); s != "scheduled" {
		t.Fatalf("%s: %s, want scheduled", keepID, s)
	}

	// Every receipt once on the stream, with its message id.
	testutil.Eventually(t, 30*time.Second, func() bool { return rdb.XLen(ctx, receipts).Val() >= n+1 }, "receipts missing")
	entries, err := rdb.XRange(ctx, receipts, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]int{}
	for _, e := range entries {
		byID[fmt.Sprint(e.Values["message_id"])]++
	}
	for _, id := range append([]string{schedID}, ids...) {
		if byID[id] != 1 {
			t.Errorf("%s: %d receipt entries, want 1", id, byID[id])
		}
	}

	// A STOP reply to message 7: on the replies stream with its id, and
	// the number suppressed in every shard.
	var smsID string
	for _, r := range info.Sim.Recipients() {
		if r.DestTn == "+61407000007" {
			smsID = r.SMSID
		}
	}
	if _, err := info.Sim.Reply(ctx, smsID, "", "STOP"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, func() bool { return rdb.XLen(ctx, replies).Val() >= 1 }, "reply missing")
	rep, _ := rdb.XRange(ctx, replies, "-", "+").Result()
	if len(rep) != 1 || rep[0].Values["message_id"] != ids[7] || rep[0].Values["optout"] != "stop" {
		t.Fatalf("reply entries %v", rep)
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		for _, k := range store.ShardKeys(prefix, shards) {
			if !rdb.SIsMember(ctx, k.Suppressed(), "+61407000007").Val() {
				return false
			}
		}
		return true
	}, "STOP: the number is not suppressed in every shard")

	// The keys spread over all three masters.
	// Two shards each: the shard tags sit in equal slices of the slot
	// space, and redis-cli --cluster create gives each master a third.
	var mu sync.Mutex
	perMaster := map[string]int{}
	tags := map[string]map[string]bool{}
	err = rdb.(*redis.ClusterClient).ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		keys, err := c.Keys(ctx, "{"+prefix+":*").Result()
		mu.Lock()
		defer mu.Unlock()
		perMaster[c.Options().Addr] = len(keys)
		tags[c.Options().Addr] = map[string]bool{}
		for _, k := range keys {
			tags[c.Options().Addr][redisconn.HashTag(k)] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(perMaster) != 3 {
		t.Fatalf("masters %v", perMaster)
	}
	for addr, k := range perMaster {
		if k == 0 {
			t.Errorf("master %s holds none of the deployment's keys: %v", addr, perMaster)
		}
	}
	for addr, tg := range tags {
		if len(tg) != 2 {
			t.Errorf("master %s holds the keys of %d shards, want 2: %v", addr, len(tg), tg)
		}
	}
	t.Logf("keys per master: %v", perMaster)

	// Every script: ran on the cluster without error, or listed (with the
	// reason) among those this flow does not reach.
	for name, s := range store.Scripts() {
		ran, errs := log.Result(s.Hash())
		if len(errs) > 0 {
			t.Errorf("script %s failed on the cluster: %v", name, errs[:min(3, len(errs))])
		}
		why, listed := notInClusterFlow[name]
		switch {
		case !listed:
			t.Errorf("script %s has no cluster test: reach it in TestClusterEndToEnd or list it in notInClusterFlow with the reason", name)
		case why == "" && ran == 0:
			t.Errorf("script %s never ran on the cluster", name)
		case why != "" && ran > 0:
			t.Errorf("script %s ran on the cluster: remove it from notInClusterFlow", name)
		}
	}
	for name := range notInClusterFlow {
		if _, ok := store.Scripts()[name]; !ok {
			t.Errorf("notInClusterFlow names %s, which is no script", name)
		}
	}
}
