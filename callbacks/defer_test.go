package callbacks

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/internal/testutil"
)

// noDefer turns deferral off: an unknown SMSId is pushed at once.
var noDefer = []time.Duration{}

// lazy formats late: testutil.Eventually's arguments are evaluated when it
// is called, this when the failure is printed.
type lazy func() string

func (l lazy) String() string { return l() }

// claim writes a message record as the worker's claim leaves it: status
// sending, no sms_id and no SMSId map yet.
func (b *bundle) claim(t testing.TB, msgID string, meta string) {
	t.Helper()
	if err := b.rdb.HSet(context.Background(), b.keys.Msg(msgID), "to", "+61407555001", "text", "hi", "meta", meta,
		"status", "sending", "t_queued", "1").Err(); err != nil {
		t.Fatal(err)
	}
}

// recordSent writes what the worker's record script writes once ROX
// answered: status submitted, sms_id, request_id and the SMSId map.
func (b *bundle) recordSent(t testing.TB, msgID, smsID string) {
	t.Helper()
	ctx := context.Background()
	if err := b.rdb.HSet(ctx, b.keys.Msg(msgID), "status", "submitted", "sms_id", smsID, "request_id", "req-1",
		"t_submitted", time.Now().UnixMilli(), "err", "").Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.rdb.Set(ctx, b.keys.SMS(smsID), msgID, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
}

func (b *bundle) deferredLen(t testing.TB) int64 {
	t.Helper()
	n, err := b.rdb.ZCard(context.Background(), deferredKey(b.keys)).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// makeDeferredDue makes every deferred callback due now, as if its window
// had passed: the test's clock for deferral windows too long to wait for.
// ZADD XX only rescores members still there, so a member a resolver has
// just claimed is never brought back.
func (b *bundle) makeDeferredDue(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	key := deferredKey(b.keys)
	members, err := b.rdb.ZRange(ctx, key, 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(members) == 0 {
		return
	}
	zs := make([]redis.Z, len(members))
	for i, m := range members {
		zs[i] = redis.Z{Score: 0, Member: m}
	}
	if err := b.rdb.ZAddArgs(ctx, key, redis.ZAddArgs{XX: true, Members: zs}).Err(); err != nil {
		t.Fatal(err)
	}
}

func (b *bundle) dump(t testing.TB, msgID string) lazy {
	return func() string {
		return fmt.Sprintf("receipts %v; replies %v; record %v; %d deferred", b.entries(t, b.cfg.ReceiptsStream),
			b.entries(t, b.cfg.RepliesStream), b.status(t, msgID), b.deferredLen(t))
	}
}

// ROX posts the receipt (and a reply) before the worker's record script
// has written the SMSId map: the entries must still carry the message id
// and metadata, and the record must end delivered.
func TestReceiptBeforeRecordScriptIsCorrelated(t *testing.T) {
	b := setup(t, nil, nil) // production delays
	b.claim(t, "mr", `{"order":"7"}`)
	b.mustOK(t, KindReceipt, receiptBody(testAccount, "sms-race", "0000", ts1))
	b.mustOK(t, KindReply, replyBody("ROX_API_Reply", testAccount, "sms-race", "+61407555001", "thanks", ts1))
	b.recordSent(t, "mr", "sms-race")

	testutil.Eventually(t, 10*time.Second, func() bool {
		r, p := b.entries(t, b.cfg.ReceiptsStream), b.entries(t, b.cfg.RepliesStream)
		return len(r) == 1 && r[0].Values["message_id"] == "mr" && len(p) == 1 && p[0].Values["message_id"] == "mr" &&
			b.status(t, "mr")["status"] == "delivered"
	}, "want one receipt and one reply entry with message_id mr and status delivered: %s", b.dump(t, "mr"))
	if v := b.entries(t, b.cfg.ReceiptsStream)[0].Values; v["metadata"] != `{"order":"7"}` || v["status"] != "delivered" {
		t.Errorf("receipt entry %v", v)
	}
	if v := b.entries(t, b.cfg.RepliesStream)[0].Values; v["metadata"] != `{"order":"7"}` || v["reply_text"] != "thanks" {
		t.Errorf("reply entry %v", v)
	}
	if rec := b.status(t, "mr"); rec["t_delivered"] == "" {
		t.Errorf("record %v: t_delivered not set", rec)
	}
	if n := b.deferredLen(t); n != 0 {
		t.Errorf("%d callbacks still deferred", n)
	}
}

// The deferral schedule: each attempt takes the next delay, the last one
// pushes.
func TestDeferScriptArgs(t *testing.T) {
	r := fuzzReceiver(t)
	delays := r.cfg.DeferDelays
	if !reflect.DeepEqual(delays, DefaultDeferDelays) {
		t.Fatalf("default delays %v", delays)
	}
	var total time.Duration
	for attempt := 0; attempt <= len(delays); attempt++ {
		ev := &event{Kind: KindReceipt, EventID: "e", SMSID: "s", Attempt: attempt}
		before := time.Now()
		_, argv := r.st.scriptArgs(ev)
		until, next := argv[7].(int64), argv[8].(int)
		if attempt == len(delays) {
			if until != 0 {
				t.Errorf("attempt %d (the last): defer until %d, want 0 (push)", attempt, until)
			}
			continue
		}
		total += delays[attempt]
		if want := before.Add(delays[attempt]).UnixMilli(); until < want || until > want+1000 || next != attempt+1 {
			t.Errorf("attempt %d: defer until %d (want ~%d), next %d", attempt, until, want, next)
		}
	}
	if total < 40*time.Second || total > 50*time.Second {
		t.Errorf("default deferral %s, want about 45s", total)
	}
}

// The member the script writes reads back to the event the receiver
// decoded (the spool's JSON plus the attempt), whatever the text holds; the
// opt-out is applied at once and left out of the member.
func TestDeferredMemberRoundTrip(t *testing.T) {
	b := setup(t, nil, func(c *Config) { c.DeferDelays = []time.Duration{time.Hour} })
	ctx := context.Background()
	body := replyBody("ROX_API_Reply", testAccount, "sms-odd", "+61407555009", "STOP", ts1)
	b.mustOK(t, KindReply, body)
	text := `quote " back \\ slash / ünï 😀 <tag> \t tab`
	body2 := replyBody("ROX_API_Reply", testAccount, "sms-odd", "+61407555009", text, ts1)
	b.mustOK(t, KindReply, body2)
	if !b.rdb.SIsMember(ctx, b.keys.Suppressed(), "+61407555009").Val() {
		t.Error("STOP from a deferred reply did not suppress the number at once")
	}
	members, err := b.rdb.ZRange(ctx, deferredKey(b.keys), 0, -1).Result()
	if err != nil || len(members) != 2 {
		t.Fatalf("deferred members %v, %v", members, err)
	}
	for _, bd := range []string{body, body2} {
		want, _, err := b.recv.decode(KindReply, []byte(bd), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		// A STOP deferred with a readable number is applied at once, and
		// its member says so.
		want.OptOutDone, want.Attempt = want.OptOut != "", 1
		found := false
		for _, m := range members {
			got, err := decodeMember(m)
			if err != nil {
				t.Fatalf("member %s: %v", m, err)
			}
			if got.EventID != want.EventID {
				continue
			}
			found = true
			want.ReceivedMS, want.member = got.ReceivedMS, m
			if !reflect.DeepEqual(got, want) {
				t.Errorf("member %s\n got %+v\nwant %+v", m, *got, *want)
			}
			if d := time.Since(time.UnixMilli(got.ReceivedMS)); d < 0 || d > time.Minute {
				t.Errorf("received_ms %d", got.ReceivedMS)
			}
		}
		if !found {
			t.Errorf("no member for event %s in %v", want.EventID, members)
		}
	}
	if n := b.rdb.XLen(ctx, b.cfg.RepliesStream).Val(); n != 0 {
		t.Errorf("%d entries while deferred", n)
	}
	if n := len(b.rdb.Keys(ctx, b.keys.CallbackSeen("*")).Val()); n != 0 {
		t.Errorf("%d dedup markers while deferred", n)
	}
}

// ROX calling twice while the first call is deferred: one entry.
func TestDuplicateWhileDeferredGivesOneEntry(t *testing.T) {
	b := setup(t, nil, func(c *Config) { c.DeferDelays = []time.Duration{300 * time.Millisecond, 300 * time.Millisecond} })
	b.claim(t, "md", "{}")
	body := receiptBody(testAccount, "sms-dup", "0000", ts1)
	b.mustOK(t, KindReceipt, body)
	b.mustOK(t, KindReceipt, body)
	// Two members, or one when both arrived in the same millisecond.
	if n := b.deferredLen(t); n < 1 || n > 2 {
		t.Errorf("%d deferred, want 1 or 2", n)
	}
	b.recordSent(t, "md", "sms-dup")
	testutil.Eventually(t, 10*time.Second, func() bool { return b.deferredLen(t) == 0 },
		"not resolved: %s", b.dump(t, "md"))
	msgs := b.entries(t, b.cfg.ReceiptsStream)
	if len(msgs) != 1 || msgs[0].Values["message_id"] != "md" {
		t.Fatalf("entries %v: want one, with message_id md", msgs)
	}
	// And once stored, a third call is a plain duplicate.
	b.mustOK(t, KindReceipt, body)
	if n := len(b.entries(t, b.cfg.ReceiptsStream)); n != 1 || b.deferredLen(t) != 0 {
		t.Errorf("%d entries, %d deferred after a late duplicate", n, b.deferredLen(t))
	}
}

// Two receivers (two processes) share Redis and resolve the same deferred
// set while extra resolvers race them: every callback ends in the stream
// exactly once, correlated when its SMSId got recorded.
//
// The deferral windows are an hour, so no callback can come due while the
// test is still posting and recording, however slow the machine; the test
// then makes time pass itself (makeDeferredDue) until every callback has
// used up its two deferrals. (With 400 ms windows, a loaded machine let
// some expire before their SMSId was recorded: 6 failures in 8 runs beside
// two CPU hogs.)
func TestTwoReceiversResolveEachOnce(t *testing.T) {
	rdb := testutil.Redis(t)
	cfg := Config{Prefix: testutil.Name("cb"), Token: testToken, AccountID: testAccount,
		ReceiptsStream: testutil.Name("receipts"), RepliesStream: testutil.Name("replies"),
		DeferDelays: []time.Duration{time.Hour, time.Hour}}
	t.Cleanup(func() { cleanupKeys(rdb, cfg.WithDefaults()) })
	cfg.SpoolDir = t.TempDir()
	a := startReceiver(t, rdb, cfg)
	cfg.SpoolDir = t.TempDir()
	b := startReceiver(t, rdb, cfg)

	const n = 300
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		x := a
		if i%2 == 1 {
			x = b
		}
		wg.Go(func() {
			code, out := x.post(t, x.url(KindReceipt), receiptBody(testAccount, fmt.Sprintf("tw-%03d", i), "0000", ts1))
			if code != http.StatusOK {
				t.Errorf("tw-%03d: %d %s", i, code, out)
			}
		})
		if i%50 == 49 {
			wg.Wait()
		}
	}
	wg.Wait()
	// Two thirds get their SMSId recorded; the rest never do.
	for i := 0; i < n; i++ {
		if i%3 != 2 {
			id := fmt.Sprintf("m%03d", i)
			a.claim(t, id, fmt.Sprintf(`{"n":"%d"}`, i))
			a.recordSent(t, id, fmt.Sprintf("tw-%03d", i))
		}
	}
	if got := a.deferredLen(t); got != n {
		t.Fatalf("%d callbacks deferred before any came due, want %d", got, n)
	}
	// Extra resolvers, racing the two receivers' own, while the test makes
	// every deferred callback due again and again (its next window of an
	// hour "passes") until each was resolved or used up its deferrals.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var rw sync.WaitGroup
	for _, x := range []*bundle{a, b, a, b} {
		rw.Go(func() {
			for a.deferredLen(t) > 0 && ctx.Err() == nil {
				if _, err := x.recv.resolveDue(ctx); err != nil && ctx.Err() == nil {
					t.Errorf("resolveDue: %v", err)
					return
				}
			}
		})
	}
	for a.deferredLen(t) > 0 && ctx.Err() == nil {
		a.makeDeferredDue(t)
		time.Sleep(20 * time.Millisecond) // pace the rewrites; the resolvers do the work
	}
	rw.Wait()
	if left := a.deferredLen(t); left != 0 {
		t.Fatalf("%d callbacks still deferred after %s", left, 60*time.Second)
	}
	seen := map[string]int{}
	for _, m := range a.entries(t, cfg.ReceiptsStream) {
		sms := m.Values["sms_id"].(string)
		seen[sms]++
		var i int
		if _, err := fmt.Sscanf(sms, "tw-%d", &i); err != nil {
			t.Fatalf("sms_id %q", sms)
		}
		want := ""
		if i%3 != 2 {
			want = fmt.Sprintf("m%03d", i)
		}
		if m.Values["message_id"] != want {
			t.Errorf("%s: message_id %q, want %q", sms, m.Values["message_id"], want)
		}
	}
	for i := 0; i < n; i++ {
		if c := seen[fmt.Sprintf("tw-%03d", i)]; c != 1 {
			t.Errorf("tw-%03d in the stream %d times, want 1", i, c)
		}
		if i%3 != 2 {
			if s := a.status(t, fmt.Sprintf("m%03d", i))["status"]; s != "delivered" {
				t.Errorf("m%03d: status %s", i, s)
			}
		}
	}
}

// A callback spooled while Redis was down, for an SMSId not recorded yet,
// defers on replay like a new one and is correlated once recorded.
func TestSpooledUnknownSMSIDDefersOnReplay(t *testing.T) {
	dir := t.TempDir()
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { dead.Close() })
	live := testutil.Redis(t)
	cfg := Config{Prefix: testutil.Name("cb"), Token: testToken, AccountID: testAccount,
		ReceiptsStream: testutil.Name("receipts"), RepliesStream: testutil.Name("replies"), SpoolDir: dir,
		StoreTimeout: 200 * time.Millisecond, DeferDelays: []time.Duration{200 * time.Millisecond, time.Second, 5 * time.Second}}
	t.Cleanup(func() { cleanupKeys(live, cfg.WithDefaults()) })

	first := startReceiver(t, dead, cfg)
	first.mustOK(t, KindReceipt, receiptBody(testAccount, "sms-sp", "2015", ts1))
	first.stop()

	second := startReceiver(t, live, cfg)
	second.claim(t, "msp", `{"k":"v"}`)
	testutil.Eventually(t, 10*time.Second, func() bool { return !second.recv.spool.isActive() }, "spool not replayed")
	if n := second.rdb.XLen(context.Background(), cfg.ReceiptsStream).Val(); n != 0 {
		t.Fatalf("%d entries: the replayed receipt was pushed before its SMSId was known", n)
	}
	second.recordSent(t, "msp", "sms-sp")
	testutil.Eventually(t, 10*time.Second, func() bool {
		m := second.entries(t, cfg.ReceiptsStream)
		return len(m) == 1 && m[0].Values["message_id"] == "msp" && second.status(t, "msp")["status"] == "failed"
	}, "replayed receipt not correlated: %s", second.dump(t, "msp"))
	if rec := second.status(t, "msp"); !strings.Contains(rec["err"], "2015") {
		t.Errorf("record %v: err does not name the result", rec)
	}
}

// A deferred callback Redis refuses for good at resolution (the stream key
// holds a string) goes to rejected.log and leaves the deferred set.
func TestDeferredPermanentErrorIsRejected(t *testing.T) {
	b := setup(t, nil, func(c *Config) { c.DeferDelays = []time.Duration{20 * time.Millisecond} })
	ctx := context.Background()
	if err := b.rdb.Set(ctx, b.cfg.ReceiptsStream, "not a stream", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	b.mustOK(t, KindReceipt, receiptBody(testAccount, "sms-wt", "0000", ts1)) // deferred
	path := filepath.Join(b.cfg.SpoolDir, rejectedName)
	testutil.Eventually(t, 10*time.Second, func() bool {
		data, _ := os.ReadFile(path)
		return strings.Contains(string(data), "sms-wt") && strings.Contains(string(data), "WRONGTYPE") && b.deferredLen(t) == 0
	}, "deferred callback not rejected")
	data, _ := os.ReadFile(path)
	var line struct {
		Event event `json:"event"`
	}
	if err := json.Unmarshal([]byte(strings.SplitN(string(data), "\n", 2)[0]), &line); err != nil || line.Event.SMSID != "sms-wt" {
		t.Errorf("rejected.log line %q: %v", data, err)
	}
}
