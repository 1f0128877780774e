package httpapi

import (
	"net/http"
	"testing"
	"time"
)

// TestIDsAddressable: every id POST accepts can be read and cancelled at
// /v1/messages/{id}. "." and ".." were accepted (A-Z a-z 0-9 . _ : -) but
// are path segments net/http cleans away: GET answered 404 "no such
// endpoint" and DELETE a 307 redirect, so such a message could never be
// looked at or cancelled (roxd status, roxd cancel). They are refused,
// naming id, and nothing is stored.
func TestIDsAddressable(t *testing.T) {
	b := setup(t)
	for _, id := range []string{".", ".."} {
		r := b.do(t, "POST", "/v1/messages", `{"id":"`+id+`","to":"0412345678","text":"hi"}`)
		if c, f := r.errField(); r.code != http.StatusBadRequest || f != "id" || c != "invalid" {
			t.Errorf("id %q: %d %s, want 400 invalid on id", id, r.code, r.raw)
		}
	}
	if k := b.keys(t); len(k) != 0 {
		t.Errorf("refused ids stored %v", k)
	}
	for _, id := range []string{"...", ".a", "a.", "a..b", ":", "-", "_", "x:y.z", "..a"} {
		// Scheduled, so that the cancel is sure to win.
		r := b.do(t, "POST", "/v1/messages", map[string]any{"id": id, "to": "0412345678", "text": "hi",
			"send_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
		if r.code != http.StatusAccepted {
			t.Errorf("id %q: POST %d %s", id, r.code, r.raw)
			continue
		}
		if r = b.do(t, "GET", "/v1/messages/"+id, nil); r.code != http.StatusOK || r.body["id"] != id {
			t.Errorf("id %q: GET %d %s", id, r.code, r.raw)
		}
		if r = b.do(t, "DELETE", "/v1/messages/"+id, nil); r.code != http.StatusOK || r.body["status"] != "cancelled" {
			t.Errorf("id %q: DELETE %d %s", id, r.code, r.raw)
		}
	}
}
