package httpapi

import (
	"net/http"
	"testing"
)

// TestKeysExact: encoding/json matches a name in any case ("To" fills to)
// and lets the last of two equal names win. Either would queue an SMS other
// than the caller wrote (to another number, with another text), so a name
// spelled in another case or given twice in one object is a 400 naming it,
// in a single message and in a batch, and nothing is stored.
func TestKeysExact(t *testing.T) {
	b := setup(t)
	for _, tc := range []struct{ field, body string }{
		{"To", `{"to":"0412345678","text":"hi","To":"0400000000"}`},
		{"To", `{"To":"0400000000","text":"hi"}`},
		{"TEXT", `{"to":"0412345678","TEXT":"hi"}`},
		{"Send_At", `{"to":"0412345678","text":"hi","Send_At":"2030-01-01T00:00:00Z"}`},
		{"to", `{"to":"0412345678","text":"hi","to":"0400000000"}`},
		{"text", `{"to":"0412345678","text":"hi","text":"other"}`},
		{"metadata", `{"to":"0412345678","text":"hi","metadata":{"order":"1","order":"2"}}`},
		{"metadata", `{"to":"0412345678","text":"hi","metadata":{"a":"1"},"metadata":{"b":"2"}}`},
		{"text", `{"to":"0412345678","text":"hi","t\u0065xt":"other"}`},
		{"Text", `{"to":"0412345678","T\u0065xt":"hi"}`},
		{"metadata", `{"to":"0412345678","text":"hi","metadata":{"a":"1","\u0061":"2"}}`},
	} {
		r := b.do(t, "POST", "/v1/messages", tc.body)
		if _, f := r.errField(); r.code != http.StatusBadRequest || f != tc.field {
			t.Errorf("%s: %d %s, want 400 on %s", tc.body, r.code, r.raw, tc.field)
		}
		r = b.do(t, "POST", "/v1/messages/batch", `{"messages":[`+tc.body+`]}`)
		res, _ := r.body["results"].([]any)
		if r.code != http.StatusOK || len(res) != 1 {
			t.Errorf("batch %s: %d %s", tc.body, r.code, r.raw)
			continue
		}
		e, _ := res[0].(map[string]any)["error"].(map[string]any)
		if e["field"] != tc.field {
			t.Errorf("batch %s: %s, want the message refused on %s", tc.body, r.raw, tc.field)
		}
	}
	for _, tc := range []struct{ field, body string }{
		{"Messages", `{"Messages":[{"to":"0412345678","text":"hi"}]}`},
		{"messages", `{"messages":[{"to":"0412345678","text":"hi"}],"messages":[{"to":"0400000000","text":"hi"}]}`},
	} {
		r := b.do(t, "POST", "/v1/messages/batch", tc.body)
		if _, f := r.errField(); r.code != http.StatusBadRequest || f != tc.field {
			t.Errorf("%s: %d %s, want 400 on %s", tc.body, r.code, r.raw, tc.field)
		}
	}
	if keys := b.keys(t); len(keys) != 0 {
		t.Errorf("refused bodies stored %v", keys)
	}
	// Equal names in different objects, and metadata keys differing only
	// in case, are fine.
	r := b.do(t, "POST", "/v1/messages", `{"to":"0412345678","text":"hi","metadata":{"to":"x","To":"y","text":"z"}}`)
	if r.code != http.StatusAccepted {
		t.Errorf("metadata named like fields: %d %s", r.code, r.raw)
	}
}
