package producer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/internal/metrics"
	"github.com/redoxygen/roxd/internal/store"
	tu "github.com/redoxygen/roxd/internal/testutil"
)

type bundle struct {
	ctx context.Context
	rdb *redis.Client
	p   *Producer
	now time.Time
}

func setup(t testing.TB) *bundle {
	t.Helper()
	rdb := tu.Redis(t)
	prefix := tu.Name("producer")
	p, err := New(rdb, Config{Store: store.Config{Prefix: prefix}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	b := &bundle{ctx: context.Background(), rdb: rdb, p: p, now: time.Now()}
	p.now = func() time.Time { return b.now }
	t.Cleanup(func() {
		keys, _ := rdb.Keys(context.Background(), p.store.Keys().Base()+"*").Result()
		if len(keys) > 0 {
			rdb.Del(context.Background(), keys...)
		}
	})
	return b
}

// keys lists every key of the producer's prefix.
func (b *bundle) keys(t testing.TB) []string {
	t.Helper()
	k, err := b.rdb.Keys(b.ctx, b.p.store.Keys().Base()+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{DefaultRegion: "XX"}, "DefaultRegion"},
		{Config{DefaultReceipt: "sometimes"}, "DefaultReceipt"},
		{Config{DefaultReply: "pigeon"}, "DefaultReply"},
		{Config{MaxMetadataBytes: -1}, "MaxMetadataBytes"},
		{Config{MaxMetadataKeys: -1}, "MaxMetadataKeys"},
		{Config{MaxScheduleAhead: -1}, "MaxScheduleAhead"},
		{Config{MaxSchedulePast: -1}, "MaxSchedulePast"},
		{Config{Store: store.Config{Prefix: "{x}"}}, "Prefix"},
	} {
		_, err := New(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), tc.cfg, zerolog.Nop())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want one naming %s", tc.cfg, err, tc.want)
		}
	}
}

func TestNormalizeNumber(t *testing.T) {
	b := &Producer{cfg: Config{}.WithDefaults()}
	for _, tc := range []struct{ in, want string }{
		{"0412 345 678", "+61412345678"},
		{"0412345678", "+61412345678"},
		{"+61 412 345 678", "+61412345678"},
		{"(02) 9876 5432", "+61298765432"},
		{"+44 7911 123456", "+447911123456"},
		{"+1 650-253-0000", "+16502530000"},
		{" +64 21 123 4567 ", "+64211234567"},
	} {
		got, err := b.NormalizeNumber("to", tc.in)
		if err != nil || got != tc.want {
			t.Errorf("NormalizeNumber(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "abc", "12345", "+61 4123", "0412 345 67", "+999 1234567", strings.Repeat("1", 80)} {
		_, err := b.NormalizeNumber("to", in)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "to" {
			t.Errorf("NormalizeNumber(%q): err %v, want a FieldError on to", in, err)
		}
	}
	// Another default region.
	uk := &Producer{cfg: Config{DefaultRegion: "GB"}.WithDefaults()}
	if got, err := uk.NormalizeNumber("to", "07911 123456"); err != nil || got != "+447911123456" {
		t.Errorf("GB local: %q %v", got, err)
	}
}

func TestEncoding(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		enc        string
		segs       int
	}{
		{"empty", "", EncodingGSM7, 0},
		{"hello", "hello", EncodingGSM7, 1},
		{"160 gsm", strings.Repeat("a", 160), EncodingGSM7, 1},
		{"161 gsm", strings.Repeat("a", 161), EncodingGSM7, 2},
		{"306 gsm", strings.Repeat("a", 306), EncodingGSM7, 2},
		{"307 gsm", strings.Repeat("a", 307), EncodingGSM7, 3},
		{"basic accents", "àÄÖÑÜ§¿äöñüèéùìòÇØøÅåÆæßÉΔΦΓΛΩΠΨΣΘΞ£¥¤@", EncodingGSM7, 1},
		{"euro counts 2", strings.Repeat("€", 80), EncodingGSM7, 1},                    // 160 septets
		{"euro 81", strings.Repeat("€", 81), EncodingGSM7, 2},                          // 162 septets
		{"caret and friends", strings.Repeat("^", 76) + "{}[]~|\\\f", EncodingGSM7, 2}, // 152+16 = 168 septets
		{"ext fits single", strings.Repeat("a", 152) + "€" + "a", EncodingGSM7, 1},     // 155 septets
		{"ext split pushes", strings.Repeat("a", 152) + "€" + strings.Repeat("a", 152), EncodingGSM7, 3},
		{"ucs2 70", strings.Repeat("я", 70), EncodingUCS2, 1},
		{"ucs2 71", strings.Repeat("я", 71), EncodingUCS2, 2},
		{"ucs2 134", strings.Repeat("я", 134), EncodingUCS2, 2},
		{"ucs2 135", strings.Repeat("я", 135), EncodingUCS2, 3},
		{"emoji", "hi 😀", EncodingUCS2, 1},
		{"35 emoji", strings.Repeat("😀", 35), EncodingUCS2, 1}, // 70 units
		{"36 emoji", strings.Repeat("😀", 36), EncodingUCS2, 2}, // 72 units: 33 + 3
		{"emoji fits single", strings.Repeat("a", 66) + "😀" + "a", EncodingUCS2, 1},
		{"emoji not split", strings.Repeat("a", 66) + "😀" + strings.Repeat("a", 66), EncodingUCS2, 3}, // 134 units
		{"backquote is not gsm", "`", EncodingUCS2, 1},
	} {
		enc, segs := Encoding(tc.text)
		if enc != tc.enc || segs != tc.segs {
			t.Errorf("%s: Encoding = %s %d, want %s %d", tc.name, enc, segs, tc.enc, tc.segs)
		}
	}
}

func TestValidationErrors(t *testing.T) {
	b := setup(t)
	ok := Message{To: "0412 345 678", Text: "hi"}
	meta := func(n, size int) map[string]string {
		m := map[string]string{}
		for i := 0; i < n; i++ {
			m[fmt.Sprintf("k%03d", i)] = strings.Repeat("v", size)
		}
		return m
	}
	for _, tc := range []struct {
		name  string
		mut   func(*Message)
		field string
		code  string
	}{
		{"bad id chars", func(m *Message) { m.ID = "a b" }, "id", CodeInvalid},
		{"id slash", func(m *Message) { m.ID = "a/b" }, "id", CodeInvalid},
		{"id dot", func(m *Message) { m.ID = "." }, "id", CodeInvalid},
		{"id dot dot", func(m *Message) { m.ID = ".." }, "id", CodeInvalid},
		{"id too long", func(m *Message) { m.ID = strings.Repeat("a", 129) }, "id", CodeInvalid},
		{"no to", func(m *Message) { m.To = "" }, "to", CodeRequired},
		{"bad to", func(m *Message) { m.To = "hello" }, "to", CodeInvalid},
		{"invalid number", func(m *Message) { m.To = "+61 4123" }, "to", CodeInvalid},
		{"empty text", func(m *Message) { m.Text = "" }, "text", CodeRequired},
		{"long text", func(m *Message) { m.Text = strings.Repeat("a", 4001) }, "text", CodeTooLong},
		{"long ucs2 text", func(m *Message) { m.Text = strings.Repeat("я", 4001) }, "text", CodeTooLong},
		{"bad utf8", func(m *Message) { m.Text = "a\xffb" }, "text", CodeInvalid},
		{"long name", func(m *Message) { m.Name = strings.Repeat("n", 4001) }, "name", CodeTooLong},
		{"bad email", func(m *Message) { m.Email = "not an email" }, "email", CodeInvalid},
		{"long email", func(m *Message) { m.Email = strings.Repeat("e", 4000) + "@x.y" }, "email", CodeTooLong},
		{"past", func(m *Message) { m.SendAt = b.now.Add(-2 * time.Minute) }, "send_at", CodeTooFarPast},
		{"ahead", func(m *Message) { m.SendAt = b.now.Add(8761 * time.Hour) }, "send_at", CodeTooFarAhead},
		{"receipt", func(m *Message) { m.Receipt = "sometimes" }, "receipt", CodeInvalid},
		{"reply", func(m *Message) { m.Reply = "pigeon" }, "reply", CodeInvalid},
		{"meta keys", func(m *Message) { m.Metadata = meta(33, 1) }, "metadata", CodeTooMany},
		{"meta bytes", func(m *Message) { m.Metadata = meta(2, 1100) }, "metadata", CodeTooLarge},
		{"meta empty key", func(m *Message) { m.Metadata = map[string]string{"": "x"} }, "metadata", CodeInvalid},
	} {
		m := ok
		tc.mut(&m)
		res, err := b.p.Send(b.ctx, m)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || fe.Code != tc.code {
			t.Errorf("%s: err %v, want FieldError %s/%s", tc.name, err, tc.field, tc.code)
			continue
		}
		if res.Err != err || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: res.Err %v, err %v", tc.name, res.Err, err)
		}
	}
	if k := b.keys(t); len(k) != 0 {
		t.Errorf("invalid messages wrote keys: %v", k)
	}
	// The limits themselves are accepted.
	m := ok
	m.Text = strings.Repeat("я", 4000)
	m.Name = strings.Repeat("n", 4000)
	m.Metadata = meta(32, 60)
	m.SendAt = b.now.Add(8759 * time.Hour)
	if _, err := b.p.Send(b.ctx, m); err != nil {
		t.Errorf("message at the limits: %v", err)
	}
}

func TestSendStatuses(t *testing.T) {
	b := setup(t)
	before := testutil.ToFloat64(metrics.MessagesAccepted.WithLabelValues("queued"))
	res, err := b.p.Send(b.ctx, Message{ID: "a1", To: "0412 345 678", Text: "Price: 5€", Name: "Ann",
		Email: "Ann <ann@example.com>", Metadata: map[string]string{"order": "42"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.ID != "a1" || res.Status != store.StatusQueued || res.Replayed || res.To != "+61412345678" ||
		res.Encoding != EncodingGSM7 || res.Segments != 1 {
		t.Errorf("result %+v", res)
	}
	if got := testutil.ToFloat64(metrics.MessagesAccepted.WithLabelValues("queued")); got != before+1 {
		t.Errorf("messages_accepted_total{queued} %v, want %v", got, before+1)
	}
	rec, err := b.p.Get(b.ctx, "a1")
	if err != nil {
		t.Fatal(err)
	}
	if rec.To != "+61412345678" || rec.Email != "ann@example.com" || rec.Receipt != "always" || rec.Reply != "http" ||
		rec.Metadata["order"] != "42" {
		t.Errorf("record %+v", rec)
	}
	// Generated id; a SendAt in the recent past means now.
	res, err = b.p.Send(b.ctx, Message{To: "+61412345678", Text: "hi", SendAt: b.now.Add(-30 * time.Second)})
	if err != nil || len(res.ID) != 36 || res.Status != store.StatusQueued {
		t.Errorf("generated id: %+v %v", res, err)
	}
	// Scheduled.
	res, err = b.p.Send(b.ctx, Message{ID: "s1", To: "+61412345678", Text: "later", SendAt: b.now.Add(time.Hour),
		Receipt: ReceiptNever, Reply: ReplySMS})
	if err != nil || res.Status != store.StatusScheduled || !res.CancellableUntil.Equal(b.now.Add(time.Hour-time.Minute).Truncate(time.Millisecond)) {
		t.Errorf("scheduled: %+v %v", res, err)
	}
	// A promise whose time has passed (a late scheduler) is no promise.
	if got := b.p.CancellableUntil(store.StatusScheduled, b.now.Add(30*time.Second)); !got.IsZero() {
		t.Errorf("CancellableUntil of a scheduled message within the lead: %v, want none", got)
	}
	if got := b.p.CancellableUntil(store.StatusQueued, b.now.Add(time.Hour)); !got.IsZero() {
		t.Errorf("CancellableUntil of a queued message: %v, want none", got)
	}
	// Within the lead (1m): queued in its SendLater group, no promise.
	res, err = b.p.Send(b.ctx, Message{ID: "s2", To: "+61412345678", Text: "soon", SendAt: b.now.Add(20 * time.Second)})
	if err != nil || res.Status != store.StatusQueued || !res.CancellableUntil.IsZero() {
		t.Errorf("within the lead: %+v %v", res, err)
	}
	// Suppressed.
	if _, err := b.p.Suppress(b.ctx, "0400 000 001"); err != nil {
		t.Fatal(err)
	}
	res, err = b.p.Send(b.ctx, Message{ID: "x1", To: "+61400000001", Text: "no"})
	if err != nil || res.Status != store.StatusSuppressed {
		t.Errorf("suppressed: %+v %v", res, err)
	}
	if n, ok, err := b.p.IsSuppressed(b.ctx, "+61 400 000 001"); err != nil || !ok || n != "+61400000001" {
		t.Errorf("IsSuppressed: %q %v %v", n, ok, err)
	}
	if _, err := b.p.Unsuppress(b.ctx, "0400000001"); err != nil {
		t.Fatal(err)
	}
	if nums, _, err := b.p.ListSuppressed(b.ctx, 0, 10); err != nil || len(nums) != 0 {
		t.Errorf("list after unsuppress: %v %v", nums, err)
	}
	if _, err := b.p.Suppress(b.ctx, "nope"); err == nil {
		t.Error("Suppress(nope) gave no error")
	}
}

func TestIdempotency(t *testing.T) {
	b := setup(t)
	at := b.now.Add(time.Hour)
	m := Message{ID: "k1", To: "0412 345 678", Text: "hi", SendAt: at, Metadata: map[string]string{"a": "1", "b": "2"}}
	first, err := b.p.Send(b.ctx, m)
	if err != nil || first.Replayed {
		t.Fatal(first, err)
	}
	// Same content, other spelling of the number, metadata in another order
	// and defaults written out: a replay.
	again := Message{ID: "k1", To: "+61412345678", Text: "hi", SendAt: at, Receipt: ReceiptAlways, Reply: ReplyHTTP,
		Metadata: map[string]string{"b": "2", "a": "1"}}
	res, err := b.p.Send(b.ctx, again)
	if err != nil || !res.Replayed || res.Status != store.StatusScheduled || res.ID != "k1" {
		t.Errorf("replay: %+v %v", res, err)
	}
	if n, _ := b.rdb.ZCard(b.ctx, b.p.store.Keys().Scheduled()).Result(); n != 1 {
		t.Errorf("scheduled zset has %d after replay, want 1", n)
	}
	// Different content: conflict.
	for name, mut := range map[string]func(*Message){
		"text": func(m *Message) { m.Text = "ho" },
		"to":   func(m *Message) { m.To = "0412 345 679" },
		"at":   func(m *Message) { m.SendAt = at.Add(time.Second) },
		"meta": func(m *Message) { m.Metadata = nil },
		"mode": func(m *Message) { m.Reply = ReplyBoth },
	} {
		c := m
		mut(&c)
		_, err := b.p.Send(b.ctx, c)
		if !errors.Is(err, ErrConflict) {
			t.Errorf("%s changed: err %v, want ErrConflict", name, err)
		}
	}
}

func TestSendMany(t *testing.T) {
	b := setup(t)
	if _, err := b.p.Send(b.ctx, Message{ID: "old", To: "+61412345678", Text: "x"}); err != nil {
		t.Fatal(err)
	}
	msgs := []Message{
		{ID: "m1", To: "0412 345 678", Text: "one"},
		{ID: "m2", To: "bad", Text: "two"},
		{ID: "old", To: "+61412345678", Text: "x"},
		{ID: "old", To: "+61412345678", Text: "y"},
		{ID: "m1", To: "0412 345 678", Text: "one"}, // same id twice in one call: replay
		{ID: "m3", To: "+447911123456", Text: "😀"},
	}
	res, err := b.p.SendMany(b.ctx, msgs)
	if err != nil {
		t.Fatal(err)
	}
	var fe *FieldError
	switch {
	case res[0].Err != nil || res[0].Status != store.StatusQueued || res[0].Replayed:
		t.Errorf("0: %+v", res[0])
	case !errors.As(res[1].Err, &fe) || fe.Field != "to":
		t.Errorf("1: %+v", res[1])
	case res[2].Err != nil || !res[2].Replayed:
		t.Errorf("2: %+v", res[2])
	case !errors.Is(res[3].Err, ErrConflict):
		t.Errorf("3: %+v", res[3])
	case res[4].Err != nil || !res[4].Replayed:
		t.Errorf("4: %+v", res[4])
	case res[5].Err != nil || res[5].Encoding != EncodingUCS2 || res[5].To != "+447911123456":
		t.Errorf("5: %+v", res[5])
	}
	if n, _ := b.rdb.LLen(b.ctx, b.p.store.Keys().Ready("now|always|http")).Result(); n != 3 {
		t.Errorf("ready list has %d, want 3 (old, m1, m3)", n)
	}
	// Redis down: an error for the call.
	srv := tu.NewServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	p, err := New(rdb, Config{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if _, err := p.SendMany(b.ctx, msgs[:1]); err == nil {
		t.Error("SendMany with Redis down gave no error")
	}
	if _, err := p.Send(b.ctx, msgs[0]); err == nil || errors.As(err, &fe) {
		t.Errorf("Send with Redis down: %v", err)
	}
}

func TestGetCancel(t *testing.T) {
	b := setup(t)
	if _, err := b.p.Get(b.ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("get unknown: %v", err)
	}
	if _, err := b.p.Send(b.ctx, Message{ID: "c1", To: "+61412345678", Text: "x"}); err != nil {
		t.Fatal(err)
	}
	before := testutil.ToFloat64(metrics.MessagesCancelled)
	if st, err := b.p.Cancel(b.ctx, "c1"); err != nil || st != store.StatusCancelled {
		t.Errorf("cancel: %s %v", st, err)
	}
	if got := testutil.ToFloat64(metrics.MessagesCancelled); got != before+1 {
		t.Errorf("messages_cancelled_total %v, want %v", got, before+1)
	}
	// Idempotent: cancelled again, counted once.
	if st, err := b.p.Cancel(b.ctx, "c1"); err != nil || st != store.StatusCancelled {
		t.Errorf("cancel twice: %s %v", st, err)
	}
	if got := testutil.ToFloat64(metrics.MessagesCancelled); got != before+1 {
		t.Errorf("messages_cancelled_total %v after a repeat, want %v", got, before+1)
	}
	if _, err := b.p.Cancel(b.ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("cancel unknown: %v", err)
	}
}

func TestDefaultValidityAndPriority(t *testing.T) {
	b := setup(t)
	b.p.cfg.DefaultValidity = 10 * time.Minute
	sendAt := b.now.Add(time.Hour)
	res, err := b.p.SendMany(b.ctx, []Message{
		{ID: "d-now", To: "0412345678", Text: "x"},
		{ID: "d-sched", To: "0412345678", Text: "x", SendAt: sendAt},
		{ID: "d-own", To: "0412345678", Text: "x", ValidFor: time.Minute, Priority: PriorityHigh},
		{ID: "d-bad", To: "0412345678", Text: "x", Priority: "urgent"},
		{ID: "d-neg", To: "0412345678", Text: "x", ValidFor: -time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []time.Time{b.now.Add(10 * time.Minute), sendAt.Add(10 * time.Minute), b.now.Add(time.Minute)} {
		if res[i].Err != nil || !res[i].ExpiresAt.Equal(want.Truncate(time.Millisecond)) {
			t.Errorf("%s: expires %s err %v, want %s", res[i].ID, res[i].ExpiresAt, res[i].Err, want)
		}
		r, err := b.p.Get(b.ctx, res[i].ID)
		if err != nil || !r.ExpiresAt.Equal(res[i].ExpiresAt) {
			t.Errorf("%s: stored %+v %v", res[i].ID, r, err)
		}
	}
	if r, _ := b.p.Get(b.ctx, "d-own"); r.Priority != store.PriorityHigh || store.GroupPriority(r.Group) != store.PriorityHigh {
		t.Errorf("priority %q group %q", r.Priority, r.Group)
	}
	var fe *FieldError
	if !errors.As(res[3].Err, &fe) || fe.Field != "priority" {
		t.Errorf("priority urgent: %v", res[3].Err)
	}
	if !errors.As(res[4].Err, &fe) || fe.Field != "valid_for" {
		t.Errorf("valid_for negative: %v", res[4].Err)
	}
	// A deployment default is not content: a replay an hour later (another
	// default expiry) is the same message.
	b.now = b.now.Add(time.Hour)
	if r, err := b.p.Send(b.ctx, Message{ID: "d-now", To: "0412345678", Text: "x"}); err != nil || !r.Replayed {
		t.Errorf("replay: %+v %v", r, err)
	}
}

// Bad values of the traffic-class fields (issue 12) and their Config: a
// FieldError (or config error) naming the field, and no key written.
func TestTrafficClassBadValuesNamed(t *testing.T) {
	b := setup(t)
	ok := Message{To: "0412 345 678", Text: "hi"}
	for _, tc := range []struct {
		name  string
		mut   func(*Message)
		field string
	}{
		{"priority", func(m *Message) { m.Priority = "urgent" }, "priority"},
		{"priority case", func(m *Message) { m.Priority = "HIGH" }, "priority"},
		{"valid_for negative", func(m *Message) { m.ValidFor = -time.Second }, "valid_for"},
		{"valid_for too long", func(m *Message) { m.ValidFor = 100000 * time.Hour }, "valid_for"},
		// expiry is kept in milliseconds: shorter would expire at once
		{"valid_for a nanosecond", func(m *Message) { m.ValidFor = time.Nanosecond }, "valid_for"},
		{"valid_for under a millisecond", func(m *Message) { m.ValidFor = time.Millisecond - time.Microsecond }, "valid_for"},
		{"valid_for and expires_at", func(m *Message) { m.ValidFor = time.Minute; m.ExpiresAt = b.now.Add(time.Hour) }, "expires_at"},
		{"expires_at past", func(m *Message) { m.ExpiresAt = b.now.Add(-time.Hour) }, "expires_at"},
		{"expires_at before send_at", func(m *Message) { m.SendAt = b.now.Add(time.Hour); m.ExpiresAt = b.now.Add(30 * time.Minute) }, "expires_at"},
		// expires_at is valid_for as an instant: the same longest validity
		// (MaxScheduleAhead after the send time), not twice it.
		{"expires_at further than valid_for may reach", func(m *Message) { m.ExpiresAt = b.now.Add(8761 * time.Hour) }, "expires_at"},
		{"expires_at further than valid_for may reach after send_at", func(m *Message) {
			m.SendAt = b.now.Add(time.Hour)
			m.ExpiresAt = m.SendAt.Add(8761 * time.Hour)
		}, "expires_at"},
		{"account unknown", func(m *Message) { m.Account = "nope" }, "account"},
		{"account malformed", func(m *Message) { m.Account = "a|b" }, "account"},
	} {
		m := ok
		tc.mut(&m)
		_, err := b.p.Send(b.ctx, m)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: err %v, want a FieldError naming %s", tc.name, err, tc.field)
		}
		res, err := b.p.SendMany(b.ctx, []Message{m})
		if err != nil || len(res) != 1 || !errors.As(res[0].Err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: SendMany %+v %v, want the item's FieldError naming %s", tc.name, res, err, tc.field)
		}
	}
	if k := b.keys(t); len(k) != 0 {
		t.Errorf("invalid messages wrote keys: %v", k)
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{DefaultValidity: -time.Second}, "DefaultValidity"},
		{Config{Accounts: []string{"mkt", "mkt"}}, "Accounts"},
		{Config{Accounts: []string{DefaultAccount}}, "Accounts"},
		{Config{Accounts: []string{"Bad Name"}}, "Accounts"},
	} {
		_, err := New(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), tc.cfg, zerolog.Nop())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want one naming %s", tc.cfg, err, tc.want)
		}
	}
}
