package callbacks

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/internal/testutil"
	"github.com/redoxygen/roxd/rox"
)

// groupReceipt is the event a receipt callback for smsID decodes to.
func groupReceipt(t testing.TB, r *Receiver, smsID, result string) *event {
	t.Helper()
	ev, _, err := r.decode(KindReceipt, []byte(receiptBody(testAccount, smsID, result, ts1)), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// The batcher's callbacks are stored by one script call (a group commit),
// not one each, and each gets its own result: stored, duplicate (the same
// callback twice in one group is stored once), deferred.
func TestGroupCommitOneScriptCall(t *testing.T) {
	rdb := testutil.Redis(t)
	log := testutil.NewScriptLog()
	rdb.AddHook(log)
	b := setup(t, rdb, nil)
	const n = 300 // more than DefaultMaxBatch: the largest group the batchers make, and more
	var evs []*event
	for i := range n {
		b.record(t, fmt.Sprintf("m%d", i), fmt.Sprintf("sms-%d", i), "submitted", nil)
		evs = append(evs, groupReceipt(t, b.recv, fmt.Sprintf("sms-%d", i), "0000"))
	}
	evs = append(evs, groupReceipt(t, b.recv, "sms-7", "0000"))       // the same callback again
	evs = append(evs, groupReceipt(t, b.recv, "sms-unknown", "0000")) // deferred
	stop, _, err := b.recv.decode(KindReply, []byte(replyBody("ROX_API_Reply", testAccount, "sms-3", "+61407555009", "STOP", ts1)), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	evs = append(evs, stop) // a STOP: the number opted out, the entry says so
	ctx := context.Background()
	before, _ := log.Result(storeScript.Hash())
	res := b.recv.st.exec(ctx, evs)
	after, errs := log.Result(storeScript.Hash())
	if calls := after - before; calls != 1 || len(errs) > 0 {
		t.Fatalf("%d store script calls (errors %v) for %d callbacks, want 1", calls, errs, len(evs))
	}
	for i := range n {
		if res[i].err != nil || res[i].dup || res[i].deferred || res[i].id == "" || !res[i].moved {
			t.Errorf("callback %d: %+v, want stored", i, res[i])
		}
	}
	if r := res[n]; r.err != nil || !r.dup {
		t.Errorf("repeated callback: %+v, want duplicate", r)
	}
	if r := res[n+1]; r.err != nil || !r.deferred {
		t.Errorf("unknown SMSId: %+v, want deferred", r)
	}
	if r := res[n+2]; r.err != nil || r.id == "" {
		t.Errorf("STOP reply: %+v, want stored", r)
	}
	if !rdb.SIsMember(ctx, b.keys.Suppressed(), "+61407555009").Val() {
		t.Error("STOP in a group did not opt the number out")
	}
	if e := b.entries(t, b.cfg.RepliesStream); len(e) != 1 || e[0].Values["optout"] != "stop" || e[0].Values["message_id"] != "m3" {
		t.Errorf("reply entries %v", e)
	}
	if l := rdb.XLen(ctx, b.cfg.ReceiptsStream).Val(); l != n {
		t.Errorf("%d stream entries, want %d", l, n)
	}
	for i := range n {
		if st := b.status(t, fmt.Sprintf("m%d", i))["status"]; st != "delivered" {
			t.Fatalf("m%d: status %q", i, st)
		}
	}
	// Stored again (a replay of the spool, ROX posting again): duplicates.
	for i, r := range b.recv.st.exec(ctx, evs[:n]) {
		if r.err != nil || !r.dup {
			t.Fatalf("callback %d again: %+v, want duplicate", i, r)
		}
	}
}

// A group with one bad entry (its SMSId map of the wrong type) stores the
// others; the bad one gets its own error, which the spool decision reads
// as a refusal (rejected.log), as it read a single call's.
func TestGroupCommitBadEntryFailsAlone(t *testing.T) {
	b := setup(t, nil, nil)
	ctx := context.Background()
	b.record(t, "m1", "sms-1", "submitted", nil)
	b.record(t, "m3", "sms-3", "submitted", nil)
	if err := b.rdb.HSet(ctx, b.keys.SMS("sms-2"), "x", "y").Err(); err != nil {
		t.Fatal(err)
	}
	evs := []*event{groupReceipt(t, b.recv, "sms-1", "0000"), groupReceipt(t, b.recv, "sms-2", "0000"), groupReceipt(t, b.recv, "sms-3", "2015")}
	res := b.recv.st.exec(ctx, evs)
	if res[0].err != nil || res[0].id == "" || res[2].err != nil || res[2].id == "" {
		t.Fatalf("good entries: %+v, %+v", res[0], res[2])
	}
	if res[1].err == nil || !strings.Contains(res[1].err.Error(), "WRONGTYPE") {
		t.Fatalf("bad entry: %+v, want WRONGTYPE", res[1])
	}
	if r := spoolReason(res[1].err); r != SpoolRefused || transient(res[1].err) {
		t.Errorf("bad entry's error: spool reason %q, transient %v; want %q, false", r, transient(res[1].err), SpoolRefused)
	}
	if l := b.rdb.XLen(ctx, b.cfg.ReceiptsStream).Val(); l != 2 {
		t.Errorf("%d stream entries, want 2", l)
	}
	if st := b.status(t, "m3")["status"]; st != "failed" {
		t.Errorf("m3: status %q, want failed", st)
	}
	// No marker for the bad one: once its key is repaired it is stored.
	if n := b.rdb.Exists(ctx, b.keys.CallbackSeen(evs[1].EventID)).Val(); n != 0 {
		t.Error("the failed entry left a dedup marker")
	}
}

// An error one event meets inside the script reads as the same error
// reply would: the spool decision tells OOM, READONLY and a refusal apart.
func TestReplyErrorClassified(t *testing.T) {
	for msg, want := range map[string]string{
		"OOM command not allowed when used memory > 'maxmemory'.":  SpoolOOM,
		"READONLY You can't write against a read only replica.":    SpoolReadOnly,
		"WRONGTYPE Operation against a key holding the wrong kind": SpoolRefused,
		"user_script:1: attempt to index a nil value":              SpoolRefused,
	} {
		err := fmt.Errorf("callbacks: store: %w", replyError(msg))
		if got := spoolReason(err); got != want {
			t.Errorf("%q: spool reason %q, want %q", msg, got, want)
		}
	}
}

// Many concurrent callbacks over HTTP, each posted twice at once: each is
// stored once, and each answer "0000" comes after its own entry is stored
// (the record has moved when the client reads the answer).
func TestGroupCommitConcurrentCallbacks(t *testing.T) {
	rdb := testutil.Redis(t)
	log := testutil.NewScriptLog()
	rdb.AddHook(log)
	b := setup(t, rdb, func(c *Config) { c.StoreTimeout = 20 * time.Second })
	const n = 150
	for i := range n {
		b.record(t, fmt.Sprintf("m%d", i), fmt.Sprintf("sms-%d", i), "submitted", nil)
	}
	ctx := context.Background()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * n}}
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range 2 * n {
		wg.Go(func() {
			body := receiptBody(testAccount, fmt.Sprintf("sms-%d", i%n), "0000", ts1)
			resp, err := client.Post(b.url(KindReceipt), "application/json", strings.NewReader(body))
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			out, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				errs <- fmt.Errorf("callback %d: status %d: %s", i, resp.StatusCode, string(out))
				return
			}
			if a, err := rox.DecodeCallbackResponse([]byte(string(out))); err != nil || a.Result != rox.CodeOK {
				errs <- fmt.Errorf("callback %d: answer %q", i, string(out))
				return
			}
			// Answered: stored already.
			if st := rdb.HGet(ctx, b.keys.Msg(fmt.Sprintf("m%d", i%n)), "status").Val(); st != "delivered" {
				errs <- fmt.Errorf("callback %d answered 0000 with its record %q", i, st)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if l := rdb.XLen(ctx, b.cfg.ReceiptsStream).Val(); l != n {
		t.Errorf("%d stream entries, want %d (each callback once)", l, n)
	}
	seen := map[string]bool{}
	for _, m := range b.entries(t, b.cfg.ReceiptsStream) {
		id, _ := m.Values["message_id"].(string)
		if seen[id] {
			t.Errorf("message %s has two entries", id)
		}
		seen[id] = true
	}
	if d := b.recv.SpoolDepth(); d != 0 {
		t.Errorf("spool depth %d", d)
	}
	calls, serrs := log.Result(storeScript.Hash())
	if len(serrs) > 0 || calls == 0 || calls > 2*n {
		t.Errorf("store script: %d calls, errors %v", calls, serrs)
	}
	t.Logf("%d callbacks in %d store script calls", 2*n, calls)
}

// One group holding callbacks of several shards is one script call per
// shard, each stored in its own shard; on a Redis Cluster with the streams
// in other slots (the outbox path) too, each entry pushed once.
func TestGroupCommitShards(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cluster bool
	}{{"single", false}, {"cluster", true}} {
		t.Run(tc.name, func(t *testing.T) {
			var rdb redis.UniversalClient
			if tc.cluster {
				rdb = clusterClient(t)
			} else {
				rdb = testutil.Redis(t)
			}
			log := testutil.NewScriptLog()
			rdb.AddHook(log)
			b := setup(t, rdb, func(c *Config) {
				c.Shards = 3
				c.ReceiptsStream = "rox:receipts:" + testutil.Name("r")
			})
			all := b.recv.st.shards
			t.Cleanup(func() {
				for _, sk := range all {
					cleanupKeys(rdb, Config{Prefix: strings.TrimSuffix(strings.TrimPrefix(sk.keys.Base(), "{"), "}:")})
				}
			})
			ctx := context.Background()
			var evs []*event
			for i := range 12 {
				sh := i % 3
				sb := &bundle{rdb: rdb, keys: all[sh].keys}
				sb.record(t, fmt.Sprintf("m%d", i), fmt.Sprintf("sms-g%d", i), "submitted", nil)
				ev := groupReceipt(t, b.recv, fmt.Sprintf("sms-g%d", i), "0000")
				ev.Shard = sh + 1
				evs = append(evs, ev)
			}
			before, _ := log.Result(storeScript.Hash())
			res := b.recv.st.exec(ctx, evs)
			after, errs := log.Result(storeScript.Hash())
			if after-before != 3 || len(errs) > 0 {
				t.Fatalf("%d store script calls (errors %v) for 12 callbacks of 3 shards, want 3", after-before, errs)
			}
			for i, r := range res {
				if r.err != nil || r.id == "" {
					t.Errorf("callback %d: %+v", i, r)
				}
				sb := &bundle{rdb: rdb, keys: all[i%3].keys}
				if st := sb.status(t, fmt.Sprintf("m%d", i))["status"]; st != "delivered" {
					t.Errorf("m%d in shard %d: %q", i, i%3, st)
				}
				if rdb.Exists(ctx, all[i%3].keys.CallbackSeen(evs[i].EventID)).Val() != 1 {
					t.Errorf("callback %d: no dedup marker in shard %d", i, i%3)
				}
			}
			if l := rdb.XLen(ctx, b.cfg.ReceiptsStream).Val(); l != 12 {
				t.Errorf("%d stream entries, want 12", l)
			}
			for i, r := range b.recv.st.exec(ctx, evs) {
				if r.err != nil || !r.dup {
					t.Errorf("callback %d again: %+v, want duplicate", i, r)
				}
			}
		})
	}
}
