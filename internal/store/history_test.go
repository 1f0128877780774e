package store

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// The history is in the order of the state machine whatever the times
// written in the t_<status> fields: every permutation of the times of a
// path gives the path.
func TestHistoryFollowsStateMachine(t *testing.T) {
	paths := [][]Status{
		{StatusQueued, StatusSubmitted, StatusDelivered},
		{StatusQueued, StatusSubmitted, StatusFailed},
		{StatusQueued, StatusSubmitted, StatusFailed, StatusDelivered},
		{StatusScheduled, StatusQueued, StatusSubmitted, StatusDelivered},
		{StatusQueued, StatusFailed, StatusDelivered},
		{StatusScheduled, StatusCancelled},
		{StatusQueued, StatusSuppressed},
	}
	rng := rand.New(rand.NewPCG(9, 9))
	for _, path := range paths {
		for k := 0; k < 50; k++ {
			m := map[string]string{FieldStatus: string(path[len(path)-1])}
			times := make([]int64, len(path))
			for i := range times {
				times[i] = 1_700_000_000_000 + rng.Int64N(5)
			}
			// Within step 0, scheduled is before queued in time (the only
			// order they are reached in), so that the tie-break by time holds.
			if path[0] == StatusScheduled && path[1] == StatusQueued && times[1] < times[0] {
				times[0], times[1] = times[1], times[0]
			}
			for i, s := range path {
				m[FieldTimePrefix+string(s)] = strconv.FormatInt(times[i], 10)
			}
			r, err := RecordFromHash("x", m)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]Status, len(r.History))
			for i, e := range r.History {
				got[i] = e.Status
			}
			if !slices.Equal(got, path) {
				t.Fatalf("times %v for %v: history %v", times, path, got)
			}
		}
	}
}

func TestCanonicalSMSID(t *testing.T) {
	const c = "123e4567-e89b-12d3-a456-426614174000"
	for in, want := range map[string]string{
		c: c, strings.ToUpper(c): c, "{" + c + "}": c, "urn:uuid:" + c: c, " " + c + "\n": c,
		strings.ReplaceAll(c, "-", ""): c, strings.ToUpper(strings.ReplaceAll(c, "-", "")): c,
		"Sms-Opaque-1": "sms-opaque-1", " ABC ": "abc", "": "",
	} {
		if got := CanonicalSMSID(in); got != want {
			t.Errorf("CanonicalSMSID(%q) = %q, want %q", in, got, want)
		}
	}
	// Generated: any UUID in any of its spellings has one canonical form.
	for i := 0; i < 200; i++ {
		u := uuid.New()
		forms := []string{u.String(), strings.ToUpper(u.String()), "{" + u.String() + "}",
			"urn:uuid:" + u.String(), strings.ReplaceAll(u.String(), "-", ""), fmt.Sprintf("  %s\t", strings.ToUpper(u.String()))}
		for _, f := range forms {
			if got := CanonicalSMSID(f); got != u.String() {
				t.Fatalf("CanonicalSMSID(%q) = %q, want %q", f, got, u.String())
			}
		}
	}
}

func FuzzCanonicalSMSID(f *testing.F) {
	for _, s := range []string{"123e4567-e89b-12d3-a456-426614174000", "ABC", "{x}", " ", "İ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c := CanonicalSMSID(s)
		if CanonicalSMSID(c) != c {
			t.Errorf("not idempotent: %q -> %q -> %q", s, c, CanonicalSMSID(c))
		}
		if CanonicalSMSID(strings.ToUpper(s)) != CanonicalSMSID(strings.ToLower(s)) && isASCII(s) {
			t.Errorf("case matters for %q", s)
		}
		if NewKeys("p").SMS(s) != NewKeys("p").SMS(c) {
			t.Errorf("Keys.SMS differs for %q and its canonical form", s)
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// The record script writes the send's answer without moving a delivered
// message back to submitted (a delivery known before the answer was
// recorded); the history reads queued, submitted, delivered and the SMSId
// map is keyed by the canonical SMSId.
func TestRecordKeepsDeliveredAndCanonicalKey(t *testing.T) {
	bb := setupBatch(t)
	ids := bb.add(t, 2, "r", nil)
	for _, id := range ids {
		bb.rdb.HSet(bb.ctx, bb.s.keys.Msg(id), "status", "sending")
	}
	bb.rdb.HSet(bb.ctx, bb.s.keys.Msg(ids[0]), "status", "delivered", "t_delivered", time.Now().Add(-time.Second).UnixMilli())
	out := []SendOutcome{{ID: ids[0], Kind: OutcomeSubmitted, Value: "ABCDEF01-E89B-12D3-A456-426614174002"},
		{ID: ids[1], Kind: OutcomeSubmitted, Value: "Opaque-ID"}}
	if _, err := bb.b.Record(bb.ctx, "bid", "tok", "req", out, time.Now()); err != nil {
		t.Fatal(err)
	}
	r0, err := bb.s.Get(bb.ctx, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	var h []Status
	for _, e := range r0.History {
		h = append(h, e.Status)
	}
	if r0.Status != StatusDelivered || r0.SMSID != out[0].Value || !slices.Equal(h, []Status{StatusQueued, StatusSubmitted, StatusDelivered}) {
		t.Errorf("record %+v history %v; want delivered, raw sms_id, queued submitted delivered", r0, h)
	}
	for i, o := range out {
		if got := bb.rdb.Get(bb.ctx, bb.s.keys.Base()+"sms:"+CanonicalSMSID(o.Value)).Val(); got != ids[i] {
			t.Errorf("sms key of %q -> %q, want %s", o.Value, got, ids[i])
		}
		if got := bb.rdb.Get(bb.ctx, bb.s.keys.SMS(strings.ToUpper(o.Value))).Val(); got != ids[i] {
			t.Errorf("lookup in upper case of %q -> %q", o.Value, got)
		}
	}
	if st := bb.rdb.HGet(bb.ctx, bb.s.keys.Msg(ids[1]), "status").Val(); st != "submitted" {
		t.Errorf("status %s, want submitted", st)
	}
}
