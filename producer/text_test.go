package producer

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// blankTables are the classes of characters that show nothing on their
// own; a text made only of them is refused.
var blankTables = []*unicode.RangeTable{unicode.White_Space, unicode.Cc, unicode.Cf,
	unicode.Zs, unicode.Zl, unicode.Zp, unicode.Other_Default_Ignorable_Code_Point,
	unicode.Variation_Selector, unicode.Mn, unicode.Me}

// runesOf lists every rune of t.
func runesOf(t *unicode.RangeTable) []rune {
	var out []rune
	for _, r := range t.R16 {
		for c := rune(r.Lo); c <= rune(r.Hi); c += rune(r.Stride) {
			out = append(out, c)
		}
	}
	for _, r := range t.R32 {
		for c := rune(r.Lo); c <= rune(r.Hi); c += rune(r.Stride) {
			out = append(out, c)
		}
	}
	return out
}

func textErr(p *Producer, text string) *FieldError {
	_, res := p.prepare(&Message{To: "0412345678", Text: text}, time.Now())
	var fe *FieldError
	if errors.As(res.Err, &fe) {
		return fe
	}
	return nil
}

// TestTextBlankRefused: the example (only spaces) and every text of
// only white space or invisible characters (controls, format characters
// such as zero-width space and joiners, byte order mark, variation
// selectors, Hangul fillers, Braille blank, lone combining marks) is a
// FieldError on text; one visible character among them is accepted.
func TestTextBlankRefused(t *testing.T) {
	p := &Producer{cfg: Config{}.WithDefaults()}
	blank := []string{"   ", " ", "\t\n\r ", "\u00a0\u2003\u3000", "\u200b", "\u200b\u200c\u200d\u2060",
		"\ufeff", "\u2028\u2029", "\u3164", "\u115f\u1160", "\uffa0", "\u2800\u2800", "\ufe0f", "\U000e0041",
		"\u0301\u0301", "\u034f", "\u180e", "\u00ad", "\x00", "\x1b"}
	// Generated: each invisible rune alone, and runs of several mixed.
	var all []rune
	for _, tab := range blankTables {
		all = append(all, runesOf(tab)...)
	}
	for i, r := range all {
		blank = append(blank, string(r), string([]rune{r, all[(i*7919)%len(all)], ' ', all[(i*104729)%len(all)]}))
	}
	for i, text := range blank {
		if i >= 20 && i%16 != 0 && !visible(text) {
			continue // the full validation for every 16th generated text (time under -race)
		}
		if fe := textErr(p, text); fe == nil || fe.Field != "text" || fe.Code != CodeRequired {
			t.Errorf("text %q: %v, want a FieldError required on text", text, fe)
		}
		for _, vis := range []string{"a", "1", "😀", "я", ".", "你"} {
			if i >= 20 && i%16 != 0 && visible(text+vis+text) {
				continue
			}
			if fe := textErr(p, text+vis+text); fe != nil {
				t.Errorf("text %q: %v, want it accepted", text+vis+text, fe)
			}
		}
	}
}

// FuzzTextVisible: an accepted text is valid UTF-8 and has a visible
// character; a refused one is a FieldError on a known field.
func FuzzTextVisible(f *testing.F) {
	for _, s := range []string{"   ", "\u200b", "a", "\xff", " \u0301", "\u2800x"} {
		f.Add(s)
	}
	p := &Producer{cfg: Config{}.WithDefaults()}
	f.Fuzz(func(t *testing.T, text string) {
		fe := textErr(p, text)
		if fe != nil {
			if fe.Field != "text" {
				t.Fatalf("%q: refused on %s", text, fe.Field)
			}
			return
		}
		if !utf8.ValidString(text) || strings.TrimFunc(text, func(r rune) bool {
			for _, tab := range blankTables {
				if unicode.Is(tab, r) {
					return true
				}
			}
			return r == '\u2800'
		}) == "" {
			t.Fatalf("accepted %q", text)
		}
	})
}
