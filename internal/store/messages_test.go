package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/internal/testutil"
)

type msgBundle struct {
	ctx context.Context
	rdb *redis.Client
	s   *Store
	now time.Time
}

func setupMsg(t *testing.T) *msgBundle {
	t.Helper()
	return setupMsgWith(t, testutil.Redis(t))
}

func setupMsgWith(t *testing.T, rdb *redis.Client) *msgBundle {
	t.Helper()
	s, err := New(rdb, Config{Prefix: testutil.Name("store")})
	if err != nil {
		t.Fatal(err)
	}
	b := &msgBundle{ctx: context.Background(), rdb: rdb, s: s, now: time.Now().Truncate(time.Millisecond)}
	s.now = func() time.Time { return b.now }
	t.Cleanup(func() {
		keys, _ := rdb.Keys(context.Background(), s.keys.Base()+"*").Result()
		if len(keys) > 0 {
			rdb.Del(context.Background(), keys...)
		}
	})
	return b
}

func rec(id, to string) Record {
	return Record{ID: id, To: to, Text: "hello " + id, Receipt: "always", Reply: "http",
		Metadata: map[string]string{"k": "v"}}
}

func (b *msgBundle) enqueue1(t *testing.T, r Record) (EnqueueOutcome, Status) {
	t.Helper()
	o, st, err := b.s.Enqueue(b.ctx, []Record{r})
	if err != nil {
		t.Fatalf("enqueue %s: %v", r.ID, err)
	}
	return o[0], st[0]
}

func (b *msgBundle) list(t *testing.T, group string) []string {
	t.Helper()
	v, err := b.rdb.LRange(b.ctx, b.s.keys.Ready(group), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Prefix: "a{b"}, "Prefix"},
		{Config{StatusTTL: time.Millisecond}, "StatusTTL"},
		{Config{ScheduleLead: -time.Second}, "ScheduleLead"},
	} {
		err := tc.cfg.WithDefaults().Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want one naming %s", tc.cfg, err, tc.want)
		}
	}
	c := Config{}.WithDefaults()
	if c.Prefix != DefaultPrefix || c.StatusTTL != DefaultStatusTTL || c.ScheduleLead != DefaultScheduleLead {
		t.Errorf("defaults: %+v", c)
	}
	if _, err := New(nil, Config{}); err == nil {
		t.Error("New(nil) gave no error")
	}
}

func TestGroup(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	for _, tc := range []struct {
		sendAt time.Time
		want   string
	}{
		{time.Time{}, "now|always|http"},
		{now, "now|always|http"},
		{now.Add(-time.Hour), "now|always|http"},
		{now.Add(10 * time.Second), "1700000010|always|http"},
		{now.Add(10*time.Second + time.Millisecond), "1700000011|always|http"}, // rounded up: never early
		{now.Add(time.Hour), "1700003600|always|http"},
	} {
		if got := Group(tc.sendAt, time.Minute, now, "always", "http"); got != tc.want {
			t.Errorf("Group(%v) = %q, want %q", tc.sendAt, got, tc.want)
		}
	}
	sl, rc, rp, err := ParseGroup("1700000010|on_error|sms")
	if err != nil || !sl.Equal(time.Unix(1700000010, 0)) || rc != "on_error" || rp != "sms" {
		t.Errorf("ParseGroup = %v %q %q %v", sl, rc, rp, err)
	}
	if sl, _, _, err := ParseGroup("now|always|http"); err != nil || !sl.IsZero() {
		t.Errorf("ParseGroup(now) = %v %v", sl, err)
	}
	for _, bad := range []string{"", "now|x", "abc|always|http"} {
		if _, _, _, err := ParseGroup(bad); err == nil {
			t.Errorf("ParseGroup(%q) gave no error", bad)
		}
	}
}

func TestEnqueueNow(t *testing.T) {
	b := setupMsg(t)
	r := rec("m1", "+61412345678")
	r.Name, r.Email = "Ann", "ann@example.com"
	o, st := b.enqueue1(t, r)
	if o != Created || st != StatusQueued {
		t.Fatalf("outcome %v %s, want created queued", o, st)
	}
	if got := b.list(t, "now|always|http"); len(got) != 1 || got[0] != "m1" {
		t.Errorf("ready list %v", got)
	}
	if ok, _ := b.rdb.SIsMember(b.ctx, b.s.keys.Groups(), "now|always|http").Result(); !ok {
		t.Error("group not in groups set")
	}
	// No TTL while it can be sent (ttl_test.go).
	if ttl, _ := b.rdb.Do(b.ctx, "PTTL", b.s.keys.Msg("m1")).Int64(); ttl != -1 {
		t.Errorf("PTTL %d, want -1 (no TTL)", ttl)
	}
	got, err := b.s.Get(b.ctx, "m1")
	if err != nil {
		t.Fatal(err)
	}
	if got.To != r.To || got.Text != r.Text || got.Name != "Ann" || got.Email != "ann@example.com" ||
		got.Receipt != "always" || got.Reply != "http" || got.Metadata["k"] != "v" || got.Group != "now|always|http" ||
		got.Status != StatusQueued || !got.SendAt.IsZero() || got.Hash != r.ContentHash() || got.Attempts != 0 {
		t.Errorf("record %+v", got)
	}
	if len(got.History) != 1 || got.History[0].Status != StatusQueued || !got.History[0].At.Equal(b.now) {
		t.Errorf("history %+v, want queued at %v", got.History, b.now)
	}
	// A SendAt in the past is "now" too.
	r2 := rec("m2", "+61412345678")
	r2.SendAt = b.now.Add(-time.Second)
	if o, st := b.enqueue1(t, r2); o != Created || st != StatusQueued {
		t.Fatalf("past SendAt: %v %s", o, st)
	}
	if got := b.list(t, "now|always|http"); len(got) != 2 || got[1] != "m2" {
		t.Errorf("ready list %v", got)
	}
}

func TestEnqueueWithinLead(t *testing.T) {
	b := setupMsg(t)
	r := rec("m1", "+61412345678")
	r.SendAt = b.now.Add(30 * time.Second) // lead is 1m
	o, st := b.enqueue1(t, r)
	// Queued, not scheduled: it is in a ready list, the worker may take it.
	if o != Created || st != StatusQueued {
		t.Fatalf("outcome %v %s, want created queued", o, st)
	}
	g := Group(r.SendAt, time.Minute, b.now, "always", "http")
	if got := b.list(t, g); len(got) != 1 || got[0] != "m1" {
		t.Errorf("ready list of %s: %v", g, got)
	}
	if n, _ := b.rdb.ZCard(b.ctx, b.s.keys.Scheduled()).Result(); n != 0 {
		t.Errorf("scheduled zset has %d, want 0", n)
	}
	got, _ := b.s.Get(b.ctx, "m1")
	if got.Group != g || !got.SendAt.Equal(r.SendAt) {
		t.Errorf("record group %q send_at %v", got.Group, got.SendAt)
	}
}

func TestEnqueueScheduled(t *testing.T) {
	b := setupMsg(t)
	r := rec("m1", "+61412345678")
	r.SendAt = b.now.Add(30 * 24 * time.Hour)
	o, st := b.enqueue1(t, r)
	if o != Created || st != StatusScheduled {
		t.Fatalf("outcome %v %s, want created scheduled", o, st)
	}
	score, err := b.rdb.ZScore(b.ctx, b.s.keys.Scheduled(), "m1").Result()
	if err != nil || int64(score) != r.SendAt.UnixMilli() {
		t.Errorf("scheduled score %v %v, want %d", score, err, r.SendAt.UnixMilli())
	}
	if n, _ := b.rdb.SCard(b.ctx, b.s.keys.Groups()).Result(); n != 0 {
		t.Errorf("groups set has %d, want 0: a scheduled message is in no ready list yet", n)
	}
	// No TTL while it waits, however far its SendAt (ttl_test.go).
	if ttl, _ := b.rdb.Do(b.ctx, "PTTL", b.s.keys.Msg("m1")).Int64(); ttl != -1 {
		t.Errorf("PTTL %d, want -1 (no TTL)", ttl)
	}
}

func TestEnqueueSuppressed(t *testing.T) {
	b := setupMsg(t)
	if err := b.s.Suppress(b.ctx, "+61400000001"); err != nil {
		t.Fatal(err)
	}
	o, st := b.enqueue1(t, rec("m1", "+61400000001"))
	if o != Suppressed || st != StatusSuppressed {
		t.Fatalf("outcome %v %s, want suppressed", o, st)
	}
	if got := b.list(t, "now|always|http"); len(got) != 0 {
		t.Errorf("ready list %v, want empty", got)
	}
	// A scheduled one is not scheduled either.
	r := rec("m2", "+61400000001")
	r.SendAt = b.now.Add(time.Hour)
	if o, _ := b.enqueue1(t, r); o != Suppressed {
		t.Fatalf("scheduled: outcome %v", o)
	}
	if n, _ := b.rdb.ZCard(b.ctx, b.s.keys.Scheduled()).Result(); n != 0 {
		t.Errorf("scheduled zset has %d", n)
	}
	got, err := b.s.Get(b.ctx, "m1")
	if err != nil || got.Status != StatusSuppressed {
		t.Fatalf("get: %+v %v", got, err)
	}
}

func TestEnqueueReplayAndConflict(t *testing.T) {
	b := setupMsg(t)
	r := rec("m1", "+61412345678")
	b.enqueue1(t, r)
	// Replay, even after the status moved on: the existing status, nothing queued.
	if ok, _, err := b.s.Transition(b.ctx, "m1", StatusSending, nil); err != nil || !ok {
		t.Fatal(ok, err)
	}
	o, st := b.enqueue1(t, r)
	if o != Existing || st != StatusSending {
		t.Errorf("replay: %v %s, want existing sending", o, st)
	}
	if got := b.list(t, "now|always|http"); len(got) != 1 {
		t.Errorf("ready list %v, want one entry", got)
	}
	// Every content field makes a conflict.
	for name, mut := range map[string]func(*Record){
		"to":       func(r *Record) { r.To = "+61412345679" },
		"text":     func(r *Record) { r.Text += "!" },
		"name":     func(r *Record) { r.Name = "x" },
		"email":    func(r *Record) { r.Email = "x@y.z" },
		"send_at":  func(r *Record) { r.SendAt = b.now.Add(time.Hour) },
		"receipt":  func(r *Record) { r.Receipt = "never" },
		"reply":    func(r *Record) { r.Reply = "sms" },
		"metadata": func(r *Record) { r.Metadata = map[string]string{"k": "w"} },
		"meta key": func(r *Record) { r.Metadata = map[string]string{"k": "v", "j": ""} },
	} {
		c := rec("m1", "+61412345678")
		mut(&c)
		if o, st := b.enqueue1(t, c); o != Conflict || st != StatusSending {
			t.Errorf("%s changed: %v %s, want conflict sending", name, o, st)
		}
	}
	got, _ := b.s.Get(b.ctx, "m1")
	if got.Text != r.Text {
		t.Errorf("conflict overwrote the record: %+v", got)
	}
	if n, _ := b.rdb.ZCard(b.ctx, b.s.keys.Scheduled()).Result(); n != 0 {
		t.Errorf("a conflict scheduled something: %d", n)
	}
}

func TestEnqueueMixedPipeline(t *testing.T) {
	b := setupMsg(t)
	if err := b.s.Suppress(b.ctx, "+61400000009"); err != nil {
		t.Fatal(err)
	}
	b.enqueue1(t, rec("dup", "+61412345678"))
	later := rec("later", "+61412345678")
	later.SendAt = b.now.Add(time.Hour)
	conflict := rec("dup", "+61412345678")
	conflict.Text = "other"
	recs := []Record{rec("a", "+61412345678"), rec("dup", "+61412345678"), conflict, later, rec("s", "+61400000009")}
	o, st, err := b.s.Enqueue(b.ctx, recs)
	if err != nil {
		t.Fatal(err)
	}
	wantO := []EnqueueOutcome{Created, Existing, Conflict, Created, Suppressed}
	wantS := []Status{StatusQueued, StatusQueued, StatusQueued, StatusScheduled, StatusSuppressed}
	for i := range recs {
		if o[i] != wantO[i] || st[i] != wantS[i] {
			t.Errorf("%d: %v %s, want %v %s", i, o[i], st[i], wantO[i], wantS[i])
		}
	}
	if _, _, err := b.s.Enqueue(b.ctx, []Record{{To: "+1"}}); err == nil {
		t.Error("a record without id gave no error")
	}
}

func TestGetNotFound(t *testing.T) {
	b := setupMsg(t)
	if _, err := b.s.Get(b.ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("err %v, want ErrNotFound", err)
	}
}

func TestCancel(t *testing.T) {
	b := setupMsg(t)
	// From queued and from scheduled: cancelled, out of the scheduled zset.
	b.enqueue1(t, rec("q", "+61412345678"))
	s := rec("s", "+61412345678")
	s.SendAt = b.now.Add(time.Hour)
	b.enqueue1(t, s)
	for _, id := range []string{"q", "s"} {
		st, err := b.s.Cancel(b.ctx, id)
		if err != nil || st != StatusCancelled {
			t.Errorf("cancel %s: %s %v", id, st, err)
		}
		got, _ := b.s.Get(b.ctx, id)
		if got.Status != StatusCancelled || got.History[len(got.History)-1].Status != StatusCancelled {
			t.Errorf("%s after cancel: %+v", id, got)
		}
	}
	if n, _ := b.rdb.ZCard(b.ctx, b.s.keys.Scheduled()).Result(); n != 0 {
		t.Errorf("scheduled zset has %d after cancel", n)
	}
	// From every later status: ErrNotCancellable with the current status.
	for _, to := range []Status{StatusSending, StatusSubmitted, StatusDelivered, StatusFailed, StatusSuppressed, StatusCancelled} {
		id := "x-" + string(to)
		b.enqueue1(t, rec(id, "+61412345678"))
		if ok, _, err := b.s.Transition(b.ctx, id, to, nil); err != nil || !ok {
			t.Fatalf("transition to %s: %v %v", to, ok, err)
		}
		st, err := b.s.Cancel(b.ctx, id)
		if to == StatusCancelled {
			if !errors.Is(err, ErrNotCancellable) || st != StatusCancelled {
				t.Errorf("second cancel: %s %v", st, err)
			}
			continue
		}
		if !errors.Is(err, ErrNotCancellable) || st != to {
			t.Errorf("cancel from %s: %s %v, want ErrNotCancellable and %s", to, st, err, to)
		}
	}
	if _, err := b.s.Cancel(b.ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("cancel unknown: %v", err)
	}
}

func TestTransitionForwardOnly(t *testing.T) {
	all := []Status{StatusQueued, StatusScheduled, StatusSending, StatusSubmitted, StatusDelivered, StatusFailed, StatusCancelled, StatusSuppressed, StatusExpired}
	b := setupMsg(t)
	n := 0
	for _, from := range all {
		for _, to := range all {
			n++
			id := fmt.Sprintf("t%d", n)
			r := rec(id, "+61412345678")
			if from == StatusScheduled {
				r.SendAt = b.now.Add(time.Hour)
			}
			b.enqueue1(t, r)
			if from != StatusQueued && from != StatusScheduled {
				// Reach from by a legal path.
				path := map[Status][]Status{
					StatusSending:    {StatusSending},
					StatusSubmitted:  {StatusSending, StatusSubmitted},
					StatusDelivered:  {StatusSending, StatusSubmitted, StatusDelivered},
					StatusFailed:     {StatusSending, StatusFailed},
					StatusCancelled:  {StatusCancelled},
					StatusSuppressed: {StatusSuppressed},
					StatusExpired:    {StatusSending, StatusExpired},
				}[from]
				for _, p := range path {
					if ok, _, err := b.s.Transition(b.ctx, id, p, nil); !ok || err != nil {
						t.Fatalf("path to %s: %s failed: %v", from, p, err)
					}
				}
			}
			ok, st, err := b.s.Transition(b.ctx, id, to, map[string]string{FieldErr: "e-" + string(to)})
			if err != nil {
				t.Fatal(err)
			}
			want := CanTransition(from, to)
			if ok != want {
				t.Errorf("%s -> %s: moved %v, want %v", from, to, ok, want)
			}
			got, _ := b.s.Get(b.ctx, id)
			if want {
				if st != to || got.Status != to || got.Err != "e-"+string(to) {
					t.Errorf("%s -> %s: status %s/%s err %q", from, to, st, got.Status, got.Err)
				}
				if got.History[len(got.History)-1].Status != to {
					t.Errorf("%s -> %s: history %+v", from, to, got.History)
				}
			} else if st != from || got.Status != from || got.Err != "" {
				t.Errorf("%s -> %s refused but status %s/%s err %q", from, to, st, got.Status, got.Err)
			}
		}
	}
	// The rule itself, spelled out for a few cases.
	for _, tc := range []struct {
		from, to Status
		want     bool
	}{
		{StatusQueued, StatusSending, true}, {StatusScheduled, StatusCancelled, true},
		{StatusQueued, StatusFailed, true}, {StatusSending, StatusCancelled, false},
		{StatusSubmitted, StatusSuppressed, false}, {StatusSubmitted, StatusDelivered, true},
		{StatusDelivered, StatusFailed, false}, {StatusSubmitted, StatusSending, false},
		{StatusFailed, StatusDelivered, true}, {StatusFailed, StatusCancelled, false},
		{StatusQueued, StatusScheduled, false}, {StatusQueued, "bogus", false},
		{StatusQueued, StatusExpired, true}, {StatusSending, StatusExpired, true},
		{StatusReconciling, StatusExpired, true}, {StatusSubmitted, StatusExpired, false},
		{StatusExpired, StatusDelivered, false}, {StatusFailed, StatusExpired, false},
	} {
		if got := CanTransition(tc.from, tc.to); got != tc.want {
			t.Errorf("CanTransition(%s, %s) = %v", tc.from, tc.to, got)
		}
	}
	if _, _, err := b.s.Transition(b.ctx, "nope", StatusSending, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown id: %v", err)
	}
	if _, _, err := b.s.Transition(b.ctx, "t1", "bogus", nil); err == nil {
		t.Error("unknown status gave no error")
	}
	if _, _, err := b.s.Transition(b.ctx, "t1", StatusSending, map[string]string{"status": "x"}); err == nil {
		t.Error("field status gave no error")
	}
}

// A transition to an end state renews the TTL (StatusTTL from now); one
// to a status that can still be sent removes it (a record enqueued by an
// older roxd carries one).
func TestTransitionRenewsTTL(t *testing.T) {
	b := setupMsg(t)
	b.enqueue1(t, rec("m", "+61412345678"))
	if err := b.rdb.PExpire(b.ctx, b.s.keys.Msg("m"), time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := b.s.Transition(b.ctx, "m", StatusSending, nil); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if ttl, _ := b.rdb.Do(b.ctx, "PTTL", b.s.keys.Msg("m")).Int64(); ttl != -1 {
		t.Errorf("PTTL %d after the transition to sending, want -1 (no TTL)", ttl)
	}
	if ok, _, err := b.s.Transition(b.ctx, "m", StatusSubmitted, nil); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if ttl, _ := b.rdb.PTTL(b.ctx, b.s.keys.Msg("m")).Result(); ttl < DefaultStatusTTL-time.Minute {
		t.Errorf("TTL %s after the transition to submitted, want about %s", ttl, DefaultStatusTTL)
	}
}

func TestEnqueueTenThousandOnePipeline(t *testing.T) {
	// 10,000 scripts in one round trip can take longer than go-redis's
	// 3 s read timeout on a loaded machine; the client would then send the
	// pipeline again and find every record "existing". The time it takes
	// is logged, not asserted: give the round trip a minute.
	opt := testutil.RedisOpt(t)
	opt.ReadTimeout, opt.WriteTimeout = time.Minute, time.Minute
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	b := setupMsgWith(t, rdb)
	recs := make([]Record, 10_000)
	for i := range recs {
		recs[i] = rec(fmt.Sprintf("bulk-%05d", i), fmt.Sprintf("+614%08d", i))
	}
	start := time.Now()
	o, _, err := b.s.Enqueue(b.ctx, recs)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	for i := range o {
		if o[i] != Created {
			t.Fatalf("%d: %v", i, o[i])
		}
	}
	if n, _ := b.rdb.LLen(b.ctx, b.s.keys.Ready("now|always|http")).Result(); n != 10_000 {
		t.Errorf("ready list has %d, want 10000", n)
	}
	t.Logf("Enqueue of 10,000 records in one pipeline: %s (%.0f/s)", took, 10_000/took.Seconds())
}

// A fresh redis-server has no script loaded: the pipelined EVALSHA meets
// NOSCRIPT, and Enqueue must load the script and finish. (Not SCRIPT FLUSH on
// the shared test Redis: that would disturb other packages' tests.)
func TestEnqueueNoScript(t *testing.T) {
	srv := testutil.NewServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	s, err := New(rdb, Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if ok, _ := enqueueScript.Exists(ctx, rdb).Result(); len(ok) != 1 || ok[0] {
		t.Fatalf("script already loaded on a fresh server: %v", ok)
	}
	o, st, err := s.Enqueue(ctx, []Record{rec("a", "+61412345678"), rec("b", "+61412345678")})
	if err != nil || o[0] != Created || o[1] != Created || st[0] != StatusQueued {
		t.Fatalf("enqueue: %v %v %v", o, st, err)
	}
	if n, _ := rdb.LLen(ctx, s.keys.Ready("now|always|http")).Result(); n != 2 {
		t.Errorf("ready list has %d, want 2", n)
	}
	// Redis down: an error, not a panic or a silent success.
	srv.Stop()
	if _, _, err := s.Enqueue(ctx, []Record{rec("c", "+61412345678")}); err == nil {
		t.Error("enqueue with Redis down gave no error")
	}
}

// A batch is stored by one script call per chunk of enqueueChunk records,
// and leaves Redis exactly as the same records enqueued one at a time:
// the same records (every field), ready lists (in order), groups,
// scheduled sets; the same outcomes, a record given twice in one batch
// included (created once, then existing or a conflict).
func TestEnqueueChunksMatchOneByOne(t *testing.T) {
	rdb := testutil.Redis(t)
	log := testutil.NewScriptLog()
	rdb.AddHook(log)
	chunked, single := setupMsgWith(t, rdb), setupMsgWith(t, rdb)
	single.now = chunked.now
	var recs []Record
	for i := range 300 {
		r := rec(fmt.Sprintf("m%03d", i), fmt.Sprintf("+614123%05d", i))
		switch i % 7 {
		case 1:
			r.Priority = PriorityHigh
		case 2:
			r.SendAt = chunked.now.Add(time.Hour) // scheduled
		case 3:
			r.SendAt = chunked.now.Add(time.Second) // within the lead: its SendLater group
		case 4:
			r.OnAmbiguous = "resend"
			r.ExpiresAt = chunked.now.Add(2 * time.Hour)
		case 5:
			r.To = "+61400000009" // suppressed
		}
		recs = append(recs, r)
	}
	again := recs[10]
	conflict := recs[10]
	conflict.Text = "other"
	recs = append(recs, again, conflict)
	for _, b := range []*msgBundle{chunked, single} {
		if err := b.s.Suppress(b.ctx, "+61400000009"); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := log.Result(enqueueScript.Hash())
	o, st, err := chunked.s.Enqueue(chunked.ctx, recs)
	if err != nil {
		t.Fatal(err)
	}
	after, errs := log.Result(enqueueScript.Hash())
	if want := (len(recs) + enqueueChunk - 1) / enqueueChunk; after-before != want || len(errs) > 0 {
		t.Fatalf("%d enqueue script calls (errors %v) for %d records, want %d", after-before, errs, len(recs), want)
	}
	for i, r := range recs {
		o1, st1, err := single.s.Enqueue(single.ctx, []Record{r})
		if err != nil {
			t.Fatal(err)
		}
		if o[i] != o1[0] || st[i] != st1[0] {
			t.Errorf("record %d (%s): chunked %v %s, one by one %v %s", i, r.ID, o[i], st[i], o1[0], st1[0])
		}
	}
	if o[len(recs)-2] != Existing || o[len(recs)-1] != Conflict || st[len(recs)-1] != StatusQueued {
		t.Errorf("repeated record: %v %v (%s)", o[len(recs)-2], o[len(recs)-1], st[len(recs)-1])
	}
	dump := func(b *msgBundle) map[string]string {
		out := map[string]string{}
		keys, err := rdb.Keys(b.ctx, b.s.keys.Base()+"*").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			name := strings.TrimPrefix(k, b.s.keys.Base())
			var v any
			switch rdb.Type(b.ctx, k).Val() {
			case "hash":
				v = rdb.HGetAll(b.ctx, k).Val()
			case "list":
				v = rdb.LRange(b.ctx, k, 0, -1).Val()
			case "set":
				m := rdb.SMembers(b.ctx, k).Val()
				slices.Sort(m)
				v = m
			case "zset":
				v = rdb.ZRangeWithScores(b.ctx, k, 0, -1).Val()
			default:
				v = rdb.Type(b.ctx, k).Val()
			}
			ttl := rdb.PTTL(b.ctx, k).Val() > 0
			out[name] = fmt.Sprintf("%v ttl=%v", v, ttl)
		}
		return out
	}
	a, b := dump(chunked), dump(single)
	if len(a) != len(b) || len(a) < 300 {
		t.Errorf("%d keys chunked, %d one by one", len(a), len(b))
	}
	for k, v := range b {
		if a[k] != v {
			t.Errorf("%s: chunked %s\none by one %s", k, a[k], v)
		}
	}
}

// A record's fields, exactly: with every optional field at its zero value
// (the script's one HSET with its arguments in place) and with each
// optional field set alone (its table of fields): a field dropped, or
// written at its zero value, fails here.
func TestEnqueueRecordFields(t *testing.T) {
	b := setupMsg(t)
	ms := func(d time.Duration) string { return strconv.FormatInt(b.now.Add(d).UnixMilli(), 10) }
	cases := []struct {
		name  string
		mod   func(*Record)
		extra map[string]string
	}{
		{"plain", func(*Record) {}, nil},
		{"name", func(r *Record) { r.Name = "Ann" }, map[string]string{FieldName: "Ann"}},
		{"email", func(r *Record) { r.Email = "ann@example.com" }, map[string]string{FieldEmail: "ann@example.com"}},
		{"send_at", func(r *Record) { r.SendAt = b.now.Add(time.Hour) }, map[string]string{FieldSendAt: ms(time.Hour)}},
		{"meta", func(r *Record) { r.Metadata = map[string]string{"k": "v"} }, map[string]string{FieldMeta: `{"k":"v"}`}},
		{"on_ambiguous", func(r *Record) { r.OnAmbiguous = AmbiguousFail }, map[string]string{"on_ambiguous": AmbiguousFail}},
		{"priority", func(r *Record) { r.Priority = PriorityHigh }, map[string]string{FieldPriority: PriorityHigh}},
		{"expires_at", func(r *Record) { r.ExpiresAt = b.now.Add(2 * time.Hour) }, map[string]string{FieldExpiresAt: ms(2 * time.Hour)}},
	}
	for i, c := range cases {
		r := Record{ID: "f-" + c.name, To: fmt.Sprintf("+6141234%04d", i), Text: "hi " + c.name, Receipt: "always", Reply: "http"}
		c.mod(&r)
		if o, _ := b.enqueue1(t, r); o != Created {
			t.Fatalf("%s: outcome %v", c.name, o)
		}
		got := b.rdb.HGetAll(b.ctx, b.s.keys.Msg(r.ID)).Val()
		status := string(StatusQueued)
		if c.name == "send_at" {
			status = string(StatusScheduled)
		}
		want := map[string]string{FieldTo: r.To, FieldText: r.Text, FieldReceipt: "always", FieldReply: "http",
			FieldHash: r.ContentHash(), FieldGroup: got[FieldGroup], FieldStatus: status,
			FieldTimePrefix + status: strconv.FormatInt(b.now.UnixMilli(), 10)}
		maps.Copy(want, c.extra)
		if got[FieldGroup] == "" || !maps.Equal(got, want) {
			t.Errorf("%s: record %v, want %v", c.name, got, want)
		}
	}
}
