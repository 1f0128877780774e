package store

import (
	"testing"
	"time"
)

// The claim is the last moment before a ROX request: a message whose
// expires_at has passed is set expired there, announced on the receipts
// stream and never handed out; one still valid is sent.
func TestClaimExpiresAtTheLastMoment(t *testing.T) {
	bb := setupBatch(t)
	stream := bb.s.keys.Base() + "receipts"
	bb.b = bb.b.WithExpiry(ExpiryParams{Stream: stream, MaxLen: 1000, AccountID: "CI1"})
	now := time.Now()
	ids := bb.add(t, 3, "x", func(i int, r *Record) {
		r.Metadata = map[string]string{"order": "42"}
		switch i {
		case 0:
			r.ExpiresAt = now.Add(time.Second) // expired when claimed at now+2s
		case 1:
			r.ExpiresAt = now.Add(time.Hour)
		}
	})
	f := bb.form(t, FormParams{MaxBatch: 500, Linger: 0, MaxWaiting: 10}, now.Add(time.Second))
	if len(f) != 1 {
		t.Fatalf("formed %+v", f)
	}
	// Forming does not expire (it may happen long before the request):
	// the claim does, at its own now.
	c, err := bb.b.Claim(bb.ctx, f[0].ID, "tok", time.Minute, now.Add(2*time.Second))
	if err != nil || c.State != ClaimOK {
		t.Fatalf("claim %+v %v", c, err)
	}
	if c.Expired != 1 || len(c.Items) != 2 || c.Items[0].ID != ids[1] || c.Items[1].ID != ids[2] {
		t.Fatalf("claim expired %d, items %+v; want 1 expired and the other two sent", c.Expired, c.Items)
	}
	r, err := bb.s.Get(bb.ctx, ids[0])
	if err != nil || r.Status != StatusExpired || r.Err != ReasonExpired || !r.ExpiresAt.Equal(now.Add(time.Second).Truncate(time.Millisecond)) {
		t.Fatalf("record %+v %v", r, err)
	}
	if h := r.History; len(h) != 2 || h[0].Status != StatusQueued || h[1].Status != StatusExpired {
		t.Fatalf("history %+v, want queued then expired", h)
	}
	if !r.Status.Final() {
		t.Fatal("expired is not final")
	}
	entries, err := bb.rdb.XRange(bb.ctx, stream, "-", "+").Result()
	if err != nil || len(entries) != 1 {
		t.Fatalf("stream %v %v, want one entry", entries, err)
	}
	v := entries[0].Values
	for k, want := range map[string]string{"kind": "expired", "status": "expired", "status_after": "expired",
		"message_id": ids[0], "event_id": "expired-" + ids[0], "account_id": "CI1", "dest_tn": r.To,
		"metadata": `{"order":"42"}`, "sms_id": "", "result_text": ReasonExpired} {
		if v[k] != want {
			t.Errorf("stream field %s = %v, want %q", k, v[k], want)
		}
	}
	if ts, err := time.Parse(time.RFC3339, v["timestamp"].(string)); err != nil || ts.Unix() != now.Add(2*time.Second).Unix() {
		t.Errorf("timestamp %v %v", v["timestamp"], err)
	}
	// A later claim of the batch (a retry) changes nothing for it.
	if _, err := bb.b.Record(bb.ctx, f[0].ID, "tok", "req", []SendOutcome{
		{ID: ids[1], Kind: OutcomeRetry, Value: "2050 busy"}, {ID: ids[2], Kind: OutcomeSubmitted, Value: "sms-2"}}, now); err != nil {
		t.Fatal(err)
	}
	// ids[1] expires during its retries: the next claim (past its expiry)
	// ends it, and nothing is handed out.
	c, err = bb.b.Claim(bb.ctx, f[0].ID, "tok2", time.Minute, now.Add(2*time.Hour))
	if err != nil || c.State != ClaimOK || c.Expired != 1 || len(c.Items) != 0 {
		t.Fatalf("retry claim %+v %v, want 1 expired and nothing to send", c, err)
	}
	if r, _ := bb.s.Get(bb.ctx, ids[1]); r.Status != StatusExpired {
		t.Fatalf("status %s after expiry during retries", r.Status)
	}
	if n := bb.rdb.XLen(bb.ctx, stream).Val(); n != 2 {
		t.Fatalf("stream holds %d entries, want 2", n)
	}
}
