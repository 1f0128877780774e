package producer

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/redoxygen/roxd/rox"
)

// FuzzPrepare feeds arbitrary input to validation: it must never panic, a
// refusal must be a *FieldError naming a known field, and an accepted
// message must carry an E.164 number, a sane encoding and segment count,
// and an id.
func FuzzPrepare(f *testing.F) {
	f.Add("0412 345 678", "hello", "", "", "", int64(0))
	f.Add("+44 7911 123456", "€^{}", "id-1", "Ann", "ann@example.com", int64(3600))
	f.Add("+1 650 253 0000", "😀 привет", "a:b.c_d-e", "", "x <y@z.w>", int64(-30))
	f.Add("tel:+61-412-345-678;ext=1", strings.Repeat("a", 161), "", "", "", int64(-3600))
	f.Add("+6140000000O1", "   ", "", "", "", int64(0))
	f.Add("+1 650 253 0000 x 7", "\u200b", "", "", "", int64(20))
	p := &Producer{cfg: Config{}.WithDefaults()}
	fields := map[string]bool{"id": true, "to": true, "text": true, "name": true, "email": true,
		"send_at": true, "receipt": true, "reply": true, "metadata": true}
	now := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, to, text, id, name, email string, offset int64) {
		m := Message{ID: id, To: to, Text: text, Name: name, Email: email, Metadata: map[string]string{"k": name}}
		if offset != 0 {
			m.SendAt = now.Add(time.Duration(offset) * time.Second)
		}
		rec, res := p.prepare(&m, now)
		if res.Err != nil {
			var fe *FieldError
			if !errors.As(res.Err, &fe) || !fields[fe.Field] || fe.Code == "" {
				t.Fatalf("refusal %v is not a FieldError naming a known field", res.Err)
			}
			return
		}
		if numberSyntax(strings.TrimSpace(to)) != "" || !visible(text) {
			t.Fatalf("accepted to %q, text %q", to, text)
		}
		if !rox.IsE164(res.To) || rec.To != res.To {
			t.Fatalf("accepted %q as %q, not E.164", to, res.To)
		}
		if res.ID == "" || rec.ID != res.ID || rec.Hash == "" {
			t.Fatalf("accepted without id or hash: %+v", res)
		}
		n := utf8.RuneCountInString(text)
		if n == 0 || n > MaxTextLen || res.Segments < 1 || res.Segments > 2*n {
			t.Fatalf("text of %d characters: %d segments", n, res.Segments)
		}
		if res.Encoding != EncodingGSM7 && res.Encoding != EncodingUCS2 {
			t.Fatalf("encoding %q", res.Encoding)
		}
	})
}
