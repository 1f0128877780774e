package callbacks

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redoxygen/roxd/internal/testutil"
)

func TestReceiptBecomesEntryWithMessageIDAndMetadata(t *testing.T) {
	b := setup(t, nil, nil)
	b.record(t, "m1", "sms-1", "submitted", map[string]string{"order": "42", "tenant": "acme"})

	b.mustOK(t, KindReceipt, receiptBody(testAccount, "sms-1", "0000", ts1))

	msgs := b.entries(t, b.cfg.ReceiptsStream)
	if len(msgs) != 1 {
		t.Fatalf("%d entries, want 1", len(msgs))
	}
	got := msgs[0].Values
	want := map[string]string{
		"kind": "receipt", "message_id": "m1", "sms_id": "sms-1", "request_id": "req-1",
		"account_id": testAccount, "timestamp": "2030-01-01T00:00:01Z", "metadata": `{"order":"42","tenant":"acme"}`,
		"dest_tn": "+61407555001", "result": "0000", "result_text": "Delivered", "status": "delivered",
		"status_after": "delivered",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("field %s = %q, want %q", k, got[k], v)
		}
	}
	if id, _ := got["event_id"].(string); len(id) != 32 {
		t.Errorf("event_id %q: want 32 hex characters", id)
	}
	if n := len(got); n != len(want)+1 {
		t.Errorf("%d fields, want %d: %v", n, len(want)+1, got)
	}
	rec := b.status(t, "m1")
	if rec["status"] != "delivered" || rec["t_delivered"] == "" {
		t.Errorf("record after receipt: %v", rec)
	}
	if l := b.rdb.XLen(context.Background(), b.cfg.RepliesStream).Val(); l != 0 {
		t.Errorf("replies stream has %d entries", l)
	}
}

func TestReplyBecomesEntry(t *testing.T) {
	b := setup(t, nil, nil)
	b.record(t, "m2", "sms-2", "delivered", map[string]string{"k": "v"})

	// The document's example name, with its trailing commas.
	b.mustOK(t, KindReply, replyBody("ROX_API_Reply_Response", testAccount, "sms-2", "+61407555001", "Thanks No Problem", ts1))
	// The prose name.
	b.mustOK(t, KindReply, replyBody("ROX_API_Reply", testAccount, "sms-2", "+61407555001", "second", ts1))

	msgs := b.entries(t, b.cfg.RepliesStream)
	if len(msgs) != 2 {
		t.Fatalf("%d entries, want 2", len(msgs))
	}
	v := msgs[0].Values
	for k, want := range map[string]string{
		"kind": "reply", "message_id": "m2", "sms_id": "sms-2", "metadata": `{"k":"v"}`,
		"reply_from": "+61407555001", "reply_text": "Thanks No Problem",
		"sms_text": "Where the last SMS you sent was: ...", "timestamp": "2030-01-01T00:00:01Z",
	} {
		if v[k] != want {
			t.Errorf("field %s = %q, want %q", k, v[k], want)
		}
	}
	if msgs[1].Values["reply_text"] != "second" {
		t.Errorf("second entry %v", msgs[1].Values)
	}
	if rec := b.status(t, "m2"); rec["status"] != "delivered" {
		t.Errorf("a reply changed the status: %v", rec)
	}
}

func TestDuplicatesGiveOneEntry(t *testing.T) {
	b := setup(t, nil, nil)
	b.record(t, "m3", "sms-3", "submitted", nil)
	for i := 0; i < 3; i++ {
		b.mustOK(t, KindReceipt, receiptBody(testAccount, "sms-3", "0000", ts1))
		b.mustOK(t, KindReply, replyBody("ROX_API_Reply", testAccount, "sms-3", "+61407555001", "ok", ts1))
	}
	if n := len(b.entries(t, b.cfg.ReceiptsStream)); n != 1 {
		t.Errorf("%d receipt entries, want 1", n)
	}
	if n := len(b.entries(t, b.cfg.RepliesStream)); n != 1 {
		t.Errorf("%d reply entries, want 1", n)
	}
	// A different timestamp is the same receipt re-posted (issue 9); a
	// different result is another receipt.
	b.mustOK(t, KindReceipt, receiptBody(testAccount, "sms-3", "0000", "01-Jan-2030 00:00:02 (UTC)"))
	if n := len(b.entries(t, b.cfg.ReceiptsStream)); n != 1 {
		t.Errorf("%d receipt entries, want 1", n)
	}
	b.mustOK(t, KindReceipt, receiptBody(testAccount, "sms-3", "2015", "01-Jan-2030 00:00:02 (UTC)"))
	if n := len(b.entries(t, b.cfg.ReceiptsStream)); n != 2 {
		t.Errorf("%d receipt entries, want 2", n)
	}
}

func TestBadRequestsStoreNothing(t *testing.T) {
	b := setup(t, nil, nil)
	b.record(t, "m4", "sms-4", "submitted", nil)
	good := receiptBody(testAccount, "sms-4", "0000", ts1)
	big := strings.Replace(good, `"Delivered"`, `"`+strings.Repeat("x", DefaultMaxBody)+`"`, 1)
	cases := []struct {
		name, method, path, body string
		want                     int
	}{
		{"wrong token", "POST", "/rox/nope/receipt", good, 404},
		{"token prefix", "POST", "/rox/" + testToken[:5] + "/receipt", good, 404},
		{"missing token", "POST", "/rox//receipt", good, 404},
		{"no token segment", "POST", "/rox/receipt", good, 404},
		{"unknown kind", "POST", "/rox/" + testToken + "/other", good, 404},
		{"too large", "POST", "/rox/" + testToken + "/receipt", big, 413},
		{"malformed json", "POST", "/rox/" + testToken + "/receipt", `{"Name": "ROX_API_Receipt",`, 400},
		{"not an object", "POST", "/rox/" + testToken + "/receipt", `[1,2]`, 400},
		{"wrong name", "POST", "/rox/" + testToken + "/receipt", strings.Replace(good, "ROX_API_Receipt", "ROX_API_Request", 1), 400},
		{"reply body on receipt url", "POST", "/rox/" + testToken + "/receipt", replyBody("ROX_API_Reply", testAccount, "sms-4", "+614", "x", ts1), 400},
		{"receipt body on reply url", "POST", "/rox/" + testToken + "/reply", good, 400},
		{"no SMSId", "POST", "/rox/" + testToken + "/receipt", receiptBody(testAccount, "", "0000", ts1), 400},
		{"wrong account", "POST", "/rox/" + testToken + "/receipt", receiptBody("CI99999999", "sms-4", "0000", ts1), 403},
		{"wrong account reply", "POST", "/rox/" + testToken + "/reply", replyBody("ROX_API_Reply", "CI99999999", "sms-4", "+61407555001", "hello", ts1), 403},
		{"GET", "GET", "/rox/" + testToken + "/receipt", "", 405},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, b.srv.URL+c.path, strings.NewReader(c.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Errorf("status %d, want %d", resp.StatusCode, c.want)
			}
		})
	}
	ctx := context.Background()
	for _, s := range []string{b.cfg.ReceiptsStream, b.cfg.RepliesStream} {
		if n := b.rdb.XLen(ctx, s).Val(); n != 0 {
			t.Errorf("stream %s has %d entries after bad requests", s, n)
		}
	}
	if keys := b.rdb.Keys(ctx, b.keys.CallbackSeen("*")).Val(); len(keys) != 0 {
		t.Errorf("dedup markers written: %v", keys)
	}
	if n := b.rdb.SCard(ctx, b.keys.Suppressed()).Val(); n != 0 {
		t.Errorf("suppression set has %d members", n)
	}
	if rec := b.status(t, "m4"); rec["status"] != "submitted" {
		t.Errorf("record changed: %v", rec)
	}
	if files, _ := b.recv.spool.files(""); len(files) != 0 {
		t.Errorf("spool files written: %v", files)
	}
	// And the good one still goes through.
	b.mustOK(t, KindReceipt, good)
	if n := b.rdb.XLen(ctx, b.cfg.ReceiptsStream).Val(); n != 1 {
		t.Errorf("%d entries after the good receipt, want 1", n)
	}
}

func TestAnyAccountWhenUnset(t *testing.T) {
	b := setup(t, nil, func(c *Config) { c.AccountID = "" })
	b.record(t, "mx", "sms-x", "submitted", nil)
	b.mustOK(t, KindReceipt, receiptBody("CI12345678", "sms-x", "0000", ts1))
	if n := len(b.entries(t, b.cfg.ReceiptsStream)); n != 1 {
		t.Errorf("%d entries, want 1", n)
	}
}

// An SMSId that never becomes known is pushed with an empty message_id
// once its deferral attempts are used up.
func TestUnknownSMSIDIsStillPushed(t *testing.T) {
	b := setup(t, nil, func(c *Config) { c.DeferDelays = []time.Duration{10 * time.Millisecond, 30 * time.Millisecond} })
	ctx := context.Background()
	b.mustOK(t, KindReceipt, receiptBody(testAccount, "never-seen", "2015", ts1))
	b.mustOK(t, KindReply, replyBody("ROX_API_Reply", testAccount, "never-seen", "+61407555001", "who is this", ts1))
	testutil.Eventually(t, 10*time.Second, func() bool {
		return b.rdb.XLen(ctx, b.cfg.ReceiptsStream).Val() == 1 && b.rdb.XLen(ctx, b.cfg.RepliesStream).Val() == 1 &&
			b.rdb.Exists(ctx, deferredKey(b.keys)).Val() == 0
	}, "unknown SMSId not pushed after its attempts")
	for _, s := range []string{b.cfg.ReceiptsStream, b.cfg.RepliesStream} {
		msgs := b.entries(t, s)
		if len(msgs) != 1 {
			t.Fatalf("stream %s: %d entries, want 1", s, len(msgs))
		}
		v := msgs[0].Values
		if v["message_id"] != "" || v["sms_id"] != "never-seen" || v["metadata"] != "{}" {
			t.Errorf("entry %v: want empty message_id, sms_id never-seen, metadata {}", v)
		}
	}
	if v := b.entries(t, b.cfg.ReceiptsStream)[0].Values; v["status"] != "failed" || v["result"] != "2015" {
		t.Errorf("failed receipt entry %v", v)
	}
	if n := b.rdb.Exists(ctx, b.keys.Msg("")).Val(); n != 0 {
		t.Error("a record was created for an unknown SMSId")
	}
}

func TestReceiptNeverMovesStatusBackwards(t *testing.T) {
	b := setup(t, nil, nil)
	cases := []struct {
		from, result, want string
	}{
		{"submitted", "0000", "delivered"},
		{"submitted", "2015", "failed"},
		{"sending", "0000", "delivered"}, // the receipt raced the record script
		{"queued", "2015", "failed"},
		{"delivered", "2015", "delivered"},
		{"failed", "0000", "delivered"}, // a delivery receipt is proof (docs/ARCHITECTURE.md)
		{"failed", "2015", "failed"},
		{"cancelled", "0000", "cancelled"},
		{"suppressed", "0000", "suppressed"},
	}
	for i, c := range cases {
		id, sms := "mb"+string(rune('a'+i)), "smsb"+string(rune('a'+i))
		b.record(t, id, sms, c.from, nil)
		b.mustOK(t, KindReceipt, receiptBody(testAccount, sms, c.result, ts1))
		rec := b.status(t, id)
		if rec["status"] != c.want {
			t.Errorf("%s + receipt %s: status %s, want %s", c.from, c.result, rec["status"], c.want)
		}
		if c.want != c.from && rec["t_"+c.want] == "" {
			t.Errorf("%s → %s: t_%s not set", c.from, c.want, c.want)
		}
		if c.want == "failed" && c.from != "failed" && !strings.Contains(rec["err"], "2015") {
			t.Errorf("failed receipt: err %q does not name the result", rec["err"])
		}
	}
	if n := len(b.entries(t, b.cfg.ReceiptsStream)); n != len(cases) {
		t.Errorf("%d entries, want %d (every receipt is pushed)", n, len(cases))
	}
	// delivered, then a later failed receipt: stays delivered.
	b.record(t, "mz", "smsz", "submitted", nil)
	b.mustOK(t, KindReceipt, receiptBody(testAccount, "smsz", "0000", ts1))
	b.mustOK(t, KindReceipt, receiptBody(testAccount, "smsz", "2015", "01-Jan-2030 00:00:09 (UTC)"))
	if s := b.status(t, "mz")["status"]; s != "delivered" {
		t.Errorf("delivered then failed receipt: %s", s)
	}
}

func TestStopAndStartChangeSuppression(t *testing.T) {
	b := setup(t, nil, nil)
	ctx := context.Background()
	b.record(t, "m5", "sms-5", "delivered", nil)
	member := func(n string) bool { return b.rdb.SIsMember(ctx, b.keys.Suppressed(), n).Val() }

	b.mustOK(t, KindReply, replyBody("ROX_API_Reply", testAccount, "sms-5", "+61407555001", "  stop \n", ts1))
	if !member("+61407555001") {
		t.Fatal("STOP did not suppress the number")
	}
	b.mustOK(t, KindReply, replyBody("ROX_API_Reply", testAccount, "sms-5", "+61407555001", "Unstop", "01-Jan-2030 00:00:02 (UTC)"))
	if member("+61407555001") {
		t.Fatal("UNSTOP did not lift the suppression")
	}
	b.mustOK(t, KindReply, replyBody("ROX_API_Reply", testAccount, "sms-5", "61407555002", "QUIT", ts1))
	if !member("+61407555002") {
		t.Fatal("QUIT from bare digits did not suppress +61407555002")
	}
	b.mustOK(t, KindReply, replyBody("ROX_API_Reply", testAccount, "sms-5", "+61407555003", "please stop texting me", ts1))
	if member("+61407555003") {
		t.Fatal("a sentence containing stop suppressed the number")
	}
	b.mustOK(t, KindReply, replyBody("ROX_API_Reply", testAccount, "sms-5", "+61407555002", "start", "01-Jan-2030 00:00:03 (UTC)"))
	if member("+61407555002") {
		t.Fatal("START did not lift the suppression")
	}
	if n := len(b.entries(t, b.cfg.RepliesStream)); n != 5 {
		t.Errorf("%d reply entries, want 5: opt-out replies are still pushed", n)
	}
}

func TestOptOutWords(t *testing.T) {
	kw := newKeywords(DefaultStopWords, DefaultStartWords, DefaultHelpWords)
	for text, want := range map[string]string{
		"STOP": "stop", "stopall": "stop", " Unsubscribe ": "stop", "cancel": "stop", "End": "stop", "quit\n": "stop",
		"START": "start", "unstop": "start", "stop it": "", "": "", "STOPP": "", "restart": "",
		"yes": "start", "Subscribe!": "start", "help": "help", "INFO": "help",
	} {
		if got := kw.classify(text); got != want {
			t.Errorf("classify(%q) = %q, want %q", text, got, want)
		}
	}
	for in, want := range map[string]string{
		"+61407555001": "+61407555001", "61407555001": "+61407555001", "+61 407 555 001": "+61407555001",
		"0061407555001": "+61407555001", "0407555001": "+61407555001", "": "", "n/a": "", "+0407555001": "",
	} {
		if got := optOutNumber(in, "AU"); got != want {
			t.Errorf("optOutNumber(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	cases := map[string]func(*Config){
		"Token":         func(c *Config) { c.Token = "" },
		"Token ":        func(c *Config) { c.Token = "a/b" },
		"RepliesStream": func(c *Config) { c.RepliesStream = c.ReceiptsStream },
		"MaxBody":       func(c *Config) { c.MaxBody = 10 },
		"Pipelines":     func(c *Config) { c.Pipelines = -1 },
		"StartWords":    func(c *Config) { c.StartWords = []string{"stop"} },
		"DeferDelays":   func(c *Config) { c.DeferDelays = []time.Duration{time.Second, 0} },
		"DeferDelays ":  func(c *Config) { c.DeferDelays = make([]time.Duration, 21) },
	}
	for field, mod := range cases {
		c := Config{Token: "secret-token"}.WithDefaults()
		mod(&c)
		err := c.Validate()
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), strings.TrimSpace(field)) {
			t.Errorf("%s: err %v", field, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret-token") {
			t.Errorf("%s: error leaks the token: %v", field, err)
		}
	}
	if err := (Config{Token: "x"}).WithDefaults().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	if err := (Config{Token: "x", DeferDelays: noDefer}).WithDefaults().Validate(); err != nil {
		t.Errorf("no deferral: %v", err)
	}
	if _, err := New(Config{Token: "x"}, nil, testLogger(t)); !errors.Is(err, ErrConfig) {
		t.Errorf("New without redis: %v", err)
	}
}

func TestRunTwice(t *testing.T) {
	b := setup(t, nil, nil)
	testutil.Eventually(t, 5*time.Second, b.recv.running.Load, "Run did not start")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := b.recv.Run(ctx); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run: %v", err)
	}
}

// StreamMaxLen bounds both streams (XADD MAXLEN ~: Redis trims whole nodes
// of 100 entries, so a stream stays within MaxLen + 100): 250 receipts and
// 250 replies against a MaxLen of 10 leave at most 110 of each, every
// callback answered.
func TestStreamsAreTrimmedToMaxLen(t *testing.T) {
	b := setup(t, nil, func(c *Config) { c.StreamMaxLen = 10 })
	checkTrimmed(t, b)
}

// checkTrimmed posts 250 receipts and 250 replies to b (StreamMaxLen 10)
// and checks that each stream holds between 10 and 110 entries.
func checkTrimmed(t *testing.T, b *bundle) {
	t.Helper()
	const n = 250
	for i := range n {
		sms := fmt.Sprintf("sms-trim-%d", i)
		b.record(t, fmt.Sprintf("m-trim-%d", i), sms, "submitted", nil)
		b.mustOK(t, KindReceipt, receiptBody(testAccount, sms, "0000", ts1))
		b.mustOK(t, KindReply, replyBody("ROX_API_Reply", testAccount, sms, "+61407555001", fmt.Sprintf("reply %d", i), ts1))
	}
	ctx := context.Background()
	for _, s := range []string{b.cfg.ReceiptsStream, b.cfg.RepliesStream} {
		var l int64
		// the outbox path appends after the answer: wait for the last entry
		deadline := time.Now().Add(30 * time.Second)
		for {
			last, err := b.rdb.XRevRangeN(ctx, s, "+", "-", 1).Result()
			if err != nil {
				t.Fatal(err)
			}
			if len(last) == 1 && (last[0].Values["sms_id"] == fmt.Sprintf("sms-trim-%d", n-1)) || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		l = b.rdb.XLen(ctx, s).Val()
		if l < 10 || l > 110 {
			t.Errorf("%s holds %d entries after %d, want 10..110 (MAXLEN ~ 10)", s, l, n)
		}
	}
}

// TestStreamEntriesCarryEveryField reads back a receipt's and a reply's
// stream entries, field by field and in order, with trimming on (the
// default MAXLEN) and off (StreamMaxLen < 0: no MAXLEN argument at all, so
// that no entry is ever trimmed). The store script writes a full event's
// entry from one table constructor per kind: a field it forgot or misnamed
// fails here.
func TestStreamEntriesCarryEveryField(t *testing.T) {
	for _, maxLen := range []int64{0, -1} {
		t.Run(fmt.Sprintf("StreamMaxLen=%d", maxLen), func(t *testing.T) {
			b := setup(t, nil, func(c *Config) { c.StreamMaxLen = maxLen })
			b.record(t, "m-fields", "sms-fields", "submitted", map[string]string{"order": "o-1"})
			b.mustOK(t, KindReceipt, receiptBody(testAccount, "sms-fields", "0000", ts1))
			b.mustOK(t, KindReply, replyBody("ROX_API_Reply", testAccount, "sms-fields", "+61407555001", "STOP", ts1))
			want := map[string][]string{
				b.cfg.ReceiptsStream: {"event_id", "*", "kind", "receipt", "message_id", "m-fields",
					"sms_id", "sms-fields", "request_id", "req-1", "account_id", testAccount, "timestamp", "*",
					"dest_tn", "+61407555001", "result", "0000", "result_text", "Delivered", "status", "delivered",
					"status_after", "delivered", "metadata", `{"order":"o-1"}`},
				b.cfg.RepliesStream: {"event_id", "*", "kind", "reply", "message_id", "m-fields",
					"sms_id", "sms-fields", "request_id", "req-1", "account_id", testAccount, "timestamp", "*",
					"reply_from", "+61407555001", "reply_text", "STOP", "sms_text", "Where the last SMS you sent was: ...",
					"keyword", "stop", "optout", "stop", "optout_number", "+61407555001", "metadata", `{"order":"o-1"}`},
			}
			for stream, w := range want {
				// XRANGE's raw reply keeps the fields' order
				raw, err := b.rdb.Do(context.Background(), "XRANGE", stream, "-", "+").Slice()
				if err != nil {
					t.Fatal(err)
				}
				if len(raw) != 1 {
					t.Fatalf("%s holds %d entries, want 1", stream, len(raw))
				}
				fv, _ := raw[0].([]any)[1].([]any)
				got := make([]string, len(fv))
				for i, v := range fv {
					got[i], _ = v.(string)
				}
				if len(got) != len(w) {
					t.Fatalf("%s entry %q, want %q", stream, got, w)
				}
				for i := range w {
					if w[i] != "*" && got[i] != w[i] {
						t.Fatalf("%s entry %q, want %q (at %d)", stream, got, w, i)
					}
				}
				// the script's names are the Go lists' (appendStreamFields)
				names := receiptFields
				if stream == b.cfg.RepliesStream {
					names = replyFields
				}
				for j, name := range names {
					if got[6+2*j] != name {
						t.Fatalf("%s entry %q: field %d is %q, want %q (receiptFields/replyFields)", stream, got, 3+j, got[6+2*j], name)
					}
				}
			}
			if maxLen < 0 {
				// no MAXLEN: more entries than a trimmed stream could keep
				const n = 150
				for i := range n {
					sms := fmt.Sprintf("sms-keep-%d", i)
					b.record(t, fmt.Sprintf("m-keep-%d", i), sms, "submitted", nil)
					b.mustOK(t, KindReceipt, receiptBody(testAccount, sms, "0000", ts1))
				}
				if l := b.rdb.XLen(context.Background(), b.cfg.ReceiptsStream).Val(); l != n+1 {
					t.Fatalf("%s holds %d entries after %d receipts with StreamMaxLen < 0, want all", b.cfg.ReceiptsStream, l, n+1)
				}
			}
		})
	}
}

// TestStoreScriptFewerValues calls the store script as a caller that sends
// fewer than the 8 stream values of an event (no receiver does): the
// entry carries the values given and the event's fixed fields, and the
// next event's arguments are not read as its own.
func TestStoreScriptFewerValues(t *testing.T) {
	b := setup(t, nil, nil)
	ctx := context.Background()
	st := b.recv.st
	b.record(t, "m-few", "sms-few", "submitted", nil)
	b.record(t, "m-full", "sms-full", "submitted", nil)
	now := time.Now()
	var evs []*event
	for _, sms := range []string{"sms-few", "sms-full"} {
		ev, _, err := b.recv.decode(KindReceipt, []byte(receiptBody(testAccount, sms, "0000", ts1)), now)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	if err := st.locate(ctx, evs); err != nil {
		t.Fatal(err)
	}
	keys, argv := st.groupArgs(0, evs)
	// the first event without its last 3 values (result, result_text, status)
	first := 7
	n := argv[6].(int)
	argv = append(argv[:first+n-3], argv[first+n:]...)
	argv[6] = n - 3
	res, err := storeScript.Run(ctx, b.rdb, keys, argv...).Slice()
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 6 || res[0] != int64(1) || res[3] != int64(1) {
		t.Fatalf("script answered %v, want both stored", res)
	}
	es := b.entries(t, b.cfg.ReceiptsStream)
	if len(es) != 2 {
		t.Fatalf("%d entries, want 2", len(es))
	}
	few, full := es[0].Values, es[1].Values
	if few["sms_id"] != "sms-few" || few["dest_tn"] != "+61407555001" || few["message_id"] != "m-few" {
		t.Fatalf("short event's entry %v", few)
	}
	for _, f := range []string{"result", "result_text", "status"} {
		if _, ok := few[f]; ok {
			t.Fatalf("short event's entry has %s (not sent): %v", f, few)
		}
	}
	if full["sms_id"] != "sms-full" || full["status"] != "delivered" || full["result"] != "0000" {
		t.Fatalf("full event's entry %v", full)
	}
}
