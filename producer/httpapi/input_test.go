package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// badUTF8 are strings encoding/json would silently turn into U+FFFD: raw
// bytes that are not UTF-8 (stray continuation, truncated sequence,
// overlong form, UTF-16 surrogate encoded in UTF-8, beyond U+10FFFF) and
// escapes of lone surrogates.
var badUTF8 = []string{"\xff", "\x80", "\xc3", "\xe2\x82", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
	`\ud800`, `\udfff`, `\ud83d x`, `\ud83d\u0041`, `\ude00\ud83d`}

// TestInvalidUTF8Refused: a string that is not valid UTF-8 (or a lone
// surrogate escape) is a 400 naming its field, in a single message and in
// a batch, and queues nothing; valid escapes and a literal U+FFFD pass.
func TestInvalidUTF8Refused(t *testing.T) {
	b := setup(t)
	before := b.keys(t)
	for _, bad := range badUTF8 {
		for _, tc := range []struct{ field, body string }{
			{"text", `{"to":"0412345678","text":"hello` + bad + `"}`},
			{"text", `{"to":"0412345678","text":"` + bad + `"}`},
			{"name", `{"to":"0412345678","text":"hi","name":"Ann` + bad + `"}`},
			{"metadata", `{"to":"0412345678","text":"hi","metadata":{"k":"v` + bad + `"}}`},
			{"metadata", `{"to":"0412345678","text":"hi","metadata":{"k` + bad + `":"v"}}`},
			{"to", `{"to":"0412345678` + bad + `","text":"hi"}`},
			{"email", `{"to":"0412345678","text":"hi","email":"a` + bad + `@example.com"}`},
			{"id", `{"id":"x` + bad + `","to":"0412345678","text":"hi"}`},
		} {
			r := b.do(t, "POST", "/v1/messages", tc.body)
			if c, f := r.errField(); r.code != http.StatusBadRequest || f != tc.field || c != "invalid" {
				t.Errorf("%q: %d %s, want 400 invalid on %s", tc.body, r.code, r.raw, tc.field)
			}
			// In a batch: the one message is refused on its field, the other queued.
			r = b.do(t, "POST", "/v1/messages/batch", `{"messages":[`+tc.body+`,{"to":"0412345678","text":"ok"}]}`)
			res, _ := r.body["results"].([]any)
			if r.code != 200 || len(res) != 2 {
				t.Fatalf("batch: %d %s", r.code, r.raw)
			}
			e, _ := res[0].(map[string]any)["error"].(map[string]any)
			if e["field"] != tc.field || res[1].(map[string]any)["error"] != nil {
				t.Errorf("batch %q: %s, want the first refused on %s", tc.body, r.raw, tc.field)
			}
		}
	}
	// Only the valid second message of each batch was stored.
	msgs, _ := b.rdb.Keys(b.ctx, b.p.Store().Keys().Msg("*")).Result()
	if want := len(badUTF8) * 8; len(msgs) != want || len(before) != 0 {
		t.Errorf("%d records stored, want %d (keys before: %v)", len(msgs), want, before)
	}
	for _, good := range []string{`\ud83d\ude00`, "\xef\xbf\xbd", `\ufffd`, "😀", `\u00e9`, "é"} {
		r := b.do(t, "POST", "/v1/messages", `{"to":"0412345678","text":"ok `+good+`"}`)
		if r.code != http.StatusAccepted {
			t.Errorf("text with %q: %d %s", good, r.code, r.raw)
		}
	}
}

// FuzzInvalidString compares invalidString with an oracle: the JSON
// string literal of s is bad exactly when decoding it does not give back
// the same bytes (encoding/json replaces invalid UTF-8 and lone surrogates
// with U+FFFD).
func FuzzInvalidString(f *testing.F) {
	for _, s := range append([]string{"ok", `\n`, `\"`, `\\`, `\u00e9`, `\ud83d\ude00`}, badUTF8...) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lit := `"` + s + `"`
		var v string
		if json.Unmarshal([]byte(lit), &v) != nil {
			return // not a JSON string
		}
		field, bad := invalidString([]byte(`{"text":` + lit + `}`))
		// Oracle: re-encode the decoded value with every non-ASCII rune
		// escaped, decode the literal with escapes of surrogates checked by
		// hand, and compare.
		want := !utf8.ValidString(s) || loneSurrogate(s)
		if bad != want || (bad && field != "text") {
			t.Fatalf("%q: bad %v field %q, want %v", s, bad, field, want)
		}
	})
}

// loneSurrogate reports whether the JSON string body s has a \u escape of
// a surrogate that is not part of a high-low pair (oracle for the fuzz
// target, written apart from invalidString).
func loneSurrogate(s string) bool {
	var units []int
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			units = append(units, -1)
			continue
		}
		i++
		if s[i] != 'u' {
			units = append(units, -1)
			continue
		}
		var u int
		fmt.Sscanf(s[i+1:i+5], "%04x", &u)
		units = append(units, u)
		i += 4
	}
	for i := 0; i < len(units); i++ {
		u := units[i]
		switch {
		case u >= 0xD800 && u < 0xDC00:
			if i+1 < len(units) && units[i+1] >= 0xDC00 && units[i+1] < 0xE000 {
				i++
				continue
			}
			return true
		case u >= 0xDC00 && u < 0xE000:
			return true
		}
	}
	return false
}

// TestSendAtRFC3339Forms: the lower-case example and other RFC
// 3339 forms are accepted and stored at the right instant; non-RFC forms
// are a 400 on send_at.
func TestSendAtRFC3339Forms(t *testing.T) {
	b := setup(t)
	at := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	ist := time.FixedZone("", 5*3600+1800)
	for i, in := range []string{
		strings.ToLower(at.Format("2006-01-02T15:04:05Z")),
		at.Format("2006-01-02t15:04:05.000Z"),
		at.Format("2006-01-02 15:04:05z"),
		at.In(ist).Format("2006-01-02T15:04:05.000000Z07:00"),
		at.Format("2006-01-02T15:04:05-00:00"),
	} {
		id := fmt.Sprintf("rfc%d", i)
		r := b.do(t, "POST", "/v1/messages", map[string]any{"id": id, "to": "0412345678", "text": "x", "send_at": in})
		if r.code != http.StatusAccepted {
			t.Errorf("send_at %q: %d %s", in, r.code, r.raw)
			continue
		}
		rec, err := b.p.Get(b.ctx, id)
		if err != nil || !rec.SendAt.Equal(at) {
			t.Errorf("send_at %q stored as %v (%v), want %v", in, rec.SendAt, err, at)
		}
	}
	plain := at.Format("2006-01-02T15:04:05")
	for _, in := range []string{plain + "+24:00", plain + ",5Z", plain + "+01:60", plain, plain + "+0100", plain[:16] + "Z"} {
		r := b.do(t, "POST", "/v1/messages", map[string]any{"to": "0412345678", "text": "x", "send_at": in})
		if c, f := r.errField(); r.code != 400 || f != "send_at" || c != "invalid" {
			t.Errorf("send_at %q: %d %s, want 400 invalid on send_at", in, r.code, r.raw)
		}
	}
}
