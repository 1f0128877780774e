package callbacks

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/internal/testutil"
)

// Callbacks as evidence for recipients whose ROX outcome is unknown
// (internal/store/reconcile.go). The worker's side is tested in
// worker/reconcile_test.go with the simulator; these pin the store
// script's unknown-SMSId branch.

// inFlight writes a message the way the claim leaves it: status, flight
// stamp, and its entry in the number's in-flight index.
func (b *bundle) inFlight(t *testing.T, msgID, to, text, status string, left time.Time) {
	t.Helper()
	ctx := context.Background()
	ms := strconv.FormatInt(left.UnixMilli(), 10)
	if err := b.rdb.HSet(ctx, b.keys.Msg(msgID), "to", to, "text", text, "meta", `{"k":"`+msgID+`"}`,
		"status", status, "flight", ms, "t_sending", ms).Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.rdb.HSet(ctx, b.keys.Flight(store.FlightNumber(to)), msgID, ms).Err(); err != nil {
		t.Fatal(err)
	}
}

// receiptTo is a receipt for smsID to destTn (as ROX formats it).
func receiptTo(smsID, destTn, result string) string {
	return fmt.Sprintf(`{"Name":"ROX_API_Receipt","Version":1.1,"Sender":{"AccountId":%q},
"Messages":{"RequestId":"req-9","Receipt":{"SMSId":%q,"DestTn":%q,"Result":%q,"ResultText":"x","Timestamp":%q}}}`,
		testAccount, smsID, destTn, result, ts1)
}

func TestUnknownSMSIdReceiptMatchesReconcilingRecipient(t *testing.T) {
	b := setup(t, nil, nil)
	b.inFlight(t, "m1", "+61407555001", "hi", "reconciling", time.Now().Add(-3*time.Second))
	// ROX gives the number back without the plus: still the same number.
	b.mustOK(t, KindReceipt, receiptTo("sx-1", "61407555001", "0000"))
	e := b.entries(t, b.cfg.ReceiptsStream)
	if len(e) != 1 || e[0].Values["message_id"] != "m1" || e[0].Values["metadata"] != `{"k":"m1"}` {
		t.Fatalf("entries %v, want one for m1 with its metadata", e)
	}
	m := b.status(t, "m1")
	if m["status"] != "delivered" || m["sms_id"] != "sx-1" || m["request_id"] != "req-9" || m["flight"] != "" || m["rc"] != "matched" {
		t.Fatalf("record %v", m)
	}
	if got := b.rdb.Get(context.Background(), b.keys.SMS("sx-1")).Val(); got != "m1" {
		t.Fatalf("sms map → %q", got)
	}
	if n := b.rdb.Exists(context.Background(), b.keys.Flight("61407555001")).Val(); n != 0 {
		t.Fatal("in-flight index left after the match")
	}
	if b.deferredLen(t) != 0 {
		t.Fatal("matched receipt left deferred")
	}
}

// A receipt that came before the request went out is not its evidence.
func TestReceiptOlderThanRequestIsNoEvidence(t *testing.T) {
	b := setup(t, nil, func(c *Config) { c.DeferDelays = []time.Duration{} })
	b.inFlight(t, "m0", "+61407555001", "hi", "reconciling", time.Now().Add(time.Minute))
	b.mustOK(t, KindReceipt, receiptTo("sx-0", "+61407555001", "0000"))
	if e := b.entries(t, b.cfg.ReceiptsStream); len(e) != 1 || e[0].Values["message_id"] != "" {
		t.Fatalf("entries %v, want one uncorrelated", e)
	}
	if s := b.status(t, "m0")["sms_id"]; s != "" {
		t.Fatalf("m0 got sms_id %s", s)
	}
}

// While a run that may still answer has the number in flight (status
// sending), an unknown-SMSId receipt is kept as evidence and stays
// deferred past its last delay instead of being pushed uncorrelated; once
// the recipient is recorded it is correlated.
func TestUnknownSMSIdWhileInFlightStaysDeferred(t *testing.T) {
	b := setup(t, nil, func(c *Config) { c.DeferDelays = []time.Duration{20 * time.Millisecond} })
	b.inFlight(t, "m2", "+61407555002", "hi", "sending", time.Now().Add(-time.Second))
	b.mustOK(t, KindReceipt, receiptTo("sy-1", "+61407555002", "0000"))
	ctx := context.Background()
	testutil.Eventually(t, 10*time.Second, func() bool {
		return b.rdb.HLen(ctx, b.keys.Evidence("61407555002")).Val() == 1
	}, "evidence kept")
	// Past the last delay: re-deferred, not pushed.
	testutil.Eventually(t, 10*time.Second, func() bool {
		ms, _ := b.rdb.ZRangeWithScores(ctx, deferredKey(b.keys), 0, -1).Result()
		return len(ms) == 1 && ms[0].Score > float64(time.Now().Add(10*time.Second).UnixMilli())
	}, "re-deferred while in flight")
	if n := len(b.entries(t, b.cfg.ReceiptsStream)); n != 0 {
		t.Fatalf("%d entries while the recipient is in flight, want 0", n)
	}
	// The worker records the answer (as the record script does) ...
	b.record(t, "m2", "sy-1", "submitted", map[string]string{"k": "m2"})
	b.rdb.HDel(ctx, b.keys.Msg("m2"), "flight")
	b.rdb.HDel(ctx, b.keys.Flight("61407555002"), "m2")
	// ... and the deferred receipt, when next due, is correlated.
	ms, _ := b.rdb.ZRange(ctx, deferredKey(b.keys), 0, -1).Result()
	b.rdb.ZAdd(ctx, deferredKey(b.keys), redis.Z{Score: 0, Member: ms[0]})
	testutil.Eventually(t, 10*time.Second, func() bool { return len(b.entries(t, b.cfg.ReceiptsStream)) == 1 }, "pushed")
	if e := b.entries(t, b.cfg.ReceiptsStream); e[0].Values["message_id"] != "m2" {
		t.Fatalf("entry %v, want message_id m2", e[0].Values)
	}
	if s := b.status(t, "m2")["status"]; s != "delivered" {
		t.Fatalf("status %s", s)
	}
}

// Two recipients in flight to one number: a receipt fits both and is
// attributed to neither; a reply's SMSText tells them apart.
func TestReceiptFittingTwoRecipientsIsNotAttributed(t *testing.T) {
	b := setup(t, nil, nil)
	left := time.Now().Add(-2 * time.Second)
	b.inFlight(t, "ma", "+61407555003", "first text", "reconciling", left)
	b.inFlight(t, "mb", "+61407555003", "second text", "reconciling", left)
	b.mustOK(t, KindReceipt, receiptTo("sz-1", "+61407555003", "0000"))
	for _, id := range []string{"ma", "mb"} {
		if m := b.status(t, id); m["sms_id"] != "" || m["status"] != "reconciling" {
			t.Fatalf("%s: %v after a receipt that fits two", id, m)
		}
	}
	if n := b.rdb.HLen(context.Background(), b.keys.Evidence("61407555003")).Val(); n != 1 {
		t.Fatalf("%d evidence entries, want 1 kept for the claim", n)
	}
	reply := fmt.Sprintf(`{"Name":"ROX_API_Reply","Version":1.1,"Sender":{"AccountId":%q},
"Messages":{"RequestId":"req-9","Reply":{"SMSId":"sz-2","ReplyFrom":"+61407555003","ReplyText":"ok","SMSText":"second text","Timestamp":%q}}}`,
		testAccount, ts1)
	b.mustOK(t, KindReply, reply)
	if m := b.status(t, "mb"); m["sms_id"] != "sz-2" || m["status"] != "submitted" {
		t.Fatalf("mb after a reply naming its text: %v", m)
	}
	if m := b.status(t, "ma"); m["sms_id"] != "" {
		t.Fatalf("ma got %s from mb's reply", m["sms_id"])
	}
	if e := b.entries(t, b.cfg.RepliesStream); len(e) != 1 || e[0].Values["message_id"] != "mb" {
		t.Fatalf("reply entries %v", e)
	}
}

// A reconciling record has no TTL (it can still be sent); the callback
// that records it ends it: it lives the store's StatusTTL from then (not
// the 7 days once taken when the record had no TTL to copy).
func TestMatchedReconcilingRecordGetsStatusTTL(t *testing.T) {
	b := setup(t, nil, func(c *Config) { c.StatusTTL = time.Hour })
	b.inFlight(t, "m1", "+61407555001", "hi", "reconciling", time.Now().Add(-3*time.Second))
	b.mustOK(t, KindReceipt, receiptTo("sx-1", "61407555001", "0000"))
	ctx := context.Background()
	if m := b.status(t, "m1"); m["status"] != "delivered" {
		t.Fatalf("record %v", m)
	}
	for _, k := range []string{b.keys.Msg("m1"), b.keys.SMS("sx-1")} {
		if ttl := b.rdb.PTTL(ctx, k).Val(); ttl <= 59*time.Minute || ttl > time.Hour {
			t.Fatalf("%s: TTL %s, want about the StatusTTL 1h", k, ttl)
		}
	}
}

// A receipt that ends a record which had not ended (no TTL) gives it the
// StatusTTL.
func TestReceiptEndingUnendedRecordSetsStatusTTL(t *testing.T) {
	b := setup(t, nil, func(c *Config) { c.StatusTTL = time.Hour })
	ctx := context.Background()
	if err := b.rdb.HSet(ctx, b.keys.Msg("m2"), "to", "+61407555002", "text", "hi", "status", "sending").Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.rdb.Set(ctx, b.keys.SMS("sx-2"), "m2", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	b.mustOK(t, KindReceipt, receiptTo("sx-2", "61407555002", "0000"))
	if m := b.status(t, "m2"); m["status"] != "delivered" {
		t.Fatalf("record %v", m)
	}
	if ttl := b.rdb.PTTL(ctx, b.keys.Msg("m2")).Val(); ttl <= 59*time.Minute || ttl > time.Hour {
		t.Fatalf("TTL %s, want about the StatusTTL 1h", ttl)
	}
}
