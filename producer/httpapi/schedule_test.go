package httpapi

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/redoxygen/roxd/internal/store"
)

// TestScheduledAnswerIsHonest: the example. A message 20 s ahead
// is within the schedule lead (1m): it is already in a ready list, so the
// answer says queued and promises no cancel. A message an hour ahead is
// scheduled and the answer (POST and GET) says until when DELETE works:
// SendAt minus the lead, the moment the scheduler hands it over.
func TestScheduledAnswerIsHonest(t *testing.T) {
	b := setup(t)
	lead := b.p.Store().Config().ScheduleLead
	now := time.Now().UTC()
	for _, tc := range []struct {
		ahead  time.Duration
		status string
	}{
		{20 * time.Second, "queued"},
		{lead - time.Second, "queued"},
		{lead + 10*time.Second, "scheduled"},
		{time.Hour, "scheduled"},
		{30 * 24 * time.Hour, "scheduled"},
	} {
		at := now.Add(tc.ahead).Truncate(time.Millisecond)
		id := fmt.Sprintf("h%d", tc.ahead/time.Second)
		r := b.do(t, "POST", "/v1/messages", map[string]any{"id": id, "to": "0412345678", "text": "x",
			"send_at": at.Format(time.RFC3339Nano)})
		for _, ans := range []resp{r, b.do(t, "GET", "/v1/messages/"+id, nil)} {
			cu, has := ans.body["cancellable_until"].(string)
			if ans.body["status"] != tc.status {
				t.Errorf("%s ahead: status %v, want %s: %s", tc.ahead, ans.body["status"], tc.status, ans.raw)
			}
			switch tc.status {
			case "queued":
				if has {
					t.Errorf("%s ahead: queued with cancellable_until %s", tc.ahead, cu)
				}
			case "scheduled":
				got, err := time.Parse(time.RFC3339Nano, cu)
				if err != nil || !got.Equal(at.Add(-lead)) {
					t.Errorf("%s ahead: cancellable_until %q, want %s", tc.ahead, cu, at.Add(-lead).Format(time.RFC3339Nano))
				}
			}
		}
	}
}

// TestCancellableUntilIsKept: whatever the scheduler does before
// cancellable_until, the DELETE still succeeds; from cancellable_until on
// the scheduler hands the message over and GET stops promising.
func TestCancellableUntilIsKept(t *testing.T) {
	b := setup(t)
	bat := store.NewBatches(b.rdb, b.p.Store().Keys(), 0)
	lead := b.p.Store().Config().ScheduleLead
	at := time.Now().Add(10 * time.Minute).UTC().Truncate(time.Millisecond)
	for i, early := range []time.Duration{time.Minute, time.Second, time.Millisecond} {
		id := fmt.Sprintf("k%d", i)
		r := b.do(t, "POST", "/v1/messages", map[string]any{"id": id, "to": "0412345678", "text": "x",
			"send_at": at.Format(time.RFC3339Nano)})
		until := untilOf(t, r)
		// The scheduler runs at until - early: it must not take the message.
		if _, moved, err := bat.MoveDue(b.ctx, until.Add(-early).Add(lead), 100); err != nil || moved != 0 {
			t.Fatalf("scheduler %s before cancellable_until moved %d (%v)", early, moved, err)
		}
		if r := b.do(t, "DELETE", "/v1/messages/"+id, nil); r.code != 200 || r.body["status"] != "cancelled" {
			t.Errorf("DELETE %s before cancellable_until: %d %s", early, r.code, r.raw)
		}
	}
	// At cancellable_until the scheduler takes it; the record reads queued,
	// with no promise.
	r := b.do(t, "POST", "/v1/messages", map[string]any{"id": "late", "to": "0412345678", "text": "x",
		"send_at": at.Format(time.RFC3339Nano)})
	until := untilOf(t, r)
	if _, moved, err := bat.MoveDue(b.ctx, until.Add(lead), 100); err != nil || moved != 1 {
		t.Fatalf("scheduler at cancellable_until moved %d (%v)", moved, err)
	}
	r = b.do(t, "GET", "/v1/messages/late", nil)
	hist, _ := r.body["history"].([]any)
	if _, has := r.body["cancellable_until"]; r.body["status"] != "queued" || has || len(hist) != 2 ||
		hist[1].(map[string]any)["status"] != "queued" {
		t.Errorf("after hand-over to the ready list: %s", r.raw)
	}
}

// TestDeleteCancelledIsIdempotent: a DELETE of a message already cancelled
// answers 200 cancelled again, changes nothing and counts once.
func TestDeleteCancelledIsIdempotent(t *testing.T) {
	b := setup(t)
	at := time.Now().Add(time.Hour).UTC()
	for _, body := range []map[string]any{
		{"id": "d1", "to": "0412345678", "text": "x", "send_at": at.Format(time.RFC3339)},
		{"id": "d2", "to": "0412345678", "text": "x"},
	} {
		id := body["id"].(string)
		b.do(t, "POST", "/v1/messages", body)
		for i := 0; i < 3; i++ {
			r := b.do(t, "DELETE", "/v1/messages/"+id, nil)
			if r.code != http.StatusOK || r.body["status"] != "cancelled" || r.body["id"] != id {
				t.Errorf("DELETE %s #%d: %d %s", id, i+1, r.code, r.raw)
			}
		}
		r := b.do(t, "GET", "/v1/messages/"+id, nil)
		if hist, _ := r.body["history"].([]any); r.body["status"] != "cancelled" || len(hist) != 2 {
			t.Errorf("GET %s: %s", id, r.raw)
		}
		if _, has := r.body["cancellable_until"]; has {
			t.Errorf("cancelled %s still says cancellable_until: %s", id, r.raw)
		}
	}
}

// untilOf reads the answer's cancellable_until.
func untilOf(t *testing.T, r resp) time.Time {
	t.Helper()
	s, _ := r.body["cancellable_until"].(string)
	until, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("no cancellable_until: %s", r.raw)
	}
	return until
}
