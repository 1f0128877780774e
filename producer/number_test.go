package producer

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"

	"github.com/redoxygen/roxd/rox"
)

// numberBases are valid numbers in a bare form and their E.164 (default
// region AU).
var numberBases = []struct{ in, want string }{
	{"0412345678", "+61412345678"},
	{"+61412345678", "+61412345678"},
	{"0298765432", "+61298765432"},
	{"+447911123456", "+447911123456"},
	{"+16502530000", "+16502530000"},
	{"+61400000001", "+61400000001"},
}

// TestNumberRefusesLettersExtensionsJunk: the example and every
// other decoration libphonenumber would read past (keypad letters, vanity
// numbers, extensions, trailing junk, URIs) is a FieldError on the field.
func TestNumberRefusesLettersExtensionsJunk(t *testing.T) {
	p := &Producer{cfg: Config{}.WithDefaults()}
	refused := []string{
		"+6140000000O1", // letter O for zero
		"+6140000000o1",
		"+61400000001O",
		"0412 345 67B",
		"1-800-FLOWERS",
		"+1 650 253 0000 ext. 5",
		"+1 650 253 0000;ext=5",
		"+1 650 253 0000 x 7",
		"+1 650 253 0000x7",
		"+1 650 253 0000 #5",
		"+1 650 253 0000,5",
		"tel:+61412345678",
		"+61412345678 (mobile)",
		"+61412345678!",
		"+61412345678/9",
		"+61412345678*",
		"+61 412 345 678 ;",
		"++61412345678",
		"61+412345678",
		"(+61) 412 345 678",
		"+61 (412 345 678",
		"+61 412) 345 678",
		"+61 ((412)) 345 678",
		"０４１２３４５６７８", // full-width digits
		"٠٤١٢٣٤٥٦٧٨", // Arabic-Indic digits
		"+61\u00a0412\u00a0345\u00a0678",
		"+61\t412345678",
		"+61412345678\x00",
		"+61 412 345 678\xff",
		"+61–412–345–678", // en dash
		"-",
		"()",
		"+",
	}
	for _, in := range refused {
		_, err := p.NormalizeNumber("to", in)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "to" || fe.Code != CodeInvalid {
			t.Errorf("NormalizeNumber(%q): %v, want a FieldError invalid on to", in, err)
		}
	}
}

// numberDecorate writes a bare number with the allowed decorations.
var numberDecorate = []func(string) string{
	func(s string) string { return s },
	func(s string) string { return " " + s + " " },
	func(s string) string { return "\t" + s + "\n" },
	func(s string) string { return spaced(s, " ") },
	func(s string) string { return spaced(s, "-") },
	func(s string) string { return spaced(s, ".") },
	func(s string) string { return spaced(s, " - ") },
	func(s string) string { // area code in parentheses: "(04) 1234 5678", "+61 (4) ..."
		i := 2
		if strings.HasPrefix(s, "+") {
			i = 4
		}
		return s[:i-1] + " (" + s[i-1:i+1] + ") " + s[i+1:]
	},
}

// spaced puts sep after every third digit.
func spaced(s, sep string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 1 && i%3 == 0 {
			b.WriteString(sep)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// numberJunk are the kinds of thing that must not pass: each is put at the
// end, at the start and in the middle of every decorated base.
var numberJunk = []string{"O", "o", "l", "I", "a", "Z", "ext. 5", ";ext=5", " x 7", "x", "#", "*",
	",", ";", "/", "+", "'", "\"", "_", "~", "é", "٣", "５", "\u00a0", "\u200b", "\u2013", "\u2212",
	"\x00", "\x7f", "\xff", "(", ")", "<", ">", "[1]", "!", "?", "&", "=", "@"}

// TestNumberDecorationsGenerated: every base with every allowed decoration
// normalises to its E.164; every decorated base with any junk inserted
// anywhere is refused.
func TestNumberDecorationsGenerated(t *testing.T) {
	p := &Producer{cfg: Config{}.WithDefaults()}
	for _, b := range numberBases {
		for _, dec := range numberDecorate {
			in := dec(b.in)
			got, err := p.NormalizeNumber("to", in)
			if err != nil || got != b.want {
				t.Errorf("NormalizeNumber(%q) = %q, %v; want %q", in, got, err, b.want)
				continue
			}
			for _, j := range numberJunk {
				mid := len(in) / 2
				for _, bad := range []string{in + j, j + in, in[:mid] + j + in[mid:]} {
					if j == "+" && bad == j+in && !strings.HasPrefix(strings.TrimSpace(in), "+") {
						continue // a leading + on a national number is a valid number or not; not junk
					}
					if j == "\u00a0" && (bad == in+j || bad == j+in) {
						continue // surrounding white space is trimmed
					}
					if j == "(" || j == ")" {
						if strings.Count(bad, "(") == strings.Count(bad, ")") {
							continue
						}
					}
					if got, err := p.NormalizeNumber("to", bad); err == nil {
						t.Errorf("NormalizeNumber(%q) = %q, want a refusal", bad, got)
					}
				}
			}
		}
	}
}

// FuzzNumber: whatever is accepted is made only of the allowed
// decorations (digits 0-9, a leading +, spaces, - . and balanced
// parentheses, surrounding white space), at most 64 bytes, and
// normalises to E.164.
func FuzzNumber(f *testing.F) {
	for _, s := range []string{"0412 345 678", "+6140000000O1", "+1 650 253 0000 ext. 5", "(02) 9876-5432",
		"1-800-FLOWERS", "+61 (0) 412 345 678", "tel:+61412345678;ext=1"} {
		f.Add(s)
	}
	p := &Producer{cfg: Config{}.WithDefaults()}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := p.NormalizeNumber("to", in)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != "to" {
				t.Fatalf("%q: %v is not a FieldError on to", in, err)
			}
			return
		}
		s := strings.TrimSpace(in)
		if len(s) > MaxNumberBytes || !utf8.ValidString(in) {
			t.Fatalf("accepted %q (%d bytes)", in, len(s))
		}
		depth := 0
		for i, r := range s {
			switch {
			case r >= '0' && r <= '9', r == ' ', r == '-', r == '.':
			case r == '+' && i == 0:
			case r == '(' && depth == 0:
				depth++
			case r == ')' && depth == 1:
				depth--
			default:
				t.Fatalf("accepted %q with %q at %d", in, r, i)
			}
		}
		if depth != 0 || !strings.HasPrefix(got, "+") {
			t.Fatalf("accepted %q as %q", in, got)
		}
	})
}

// TestNumberROXTakes: every number the producer accepts is one ROX's
// request takes (rox.IsE164); "+989601" (Iran, a valid voicemail number for
// libphonenumber) was accepted and queued, and then made the worker refuse
// the whole ROX request it was in: every message batched with it ended
// failed "invalid". Checked over libphonenumber's example numbers of every
// region and type.
func TestNumberROXTakes(t *testing.T) {
	_, err := ParseNumber("to", "+989601", "AU")
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "to" || fe.Code != CodeInvalid {
		t.Errorf(`"+989601": %v, want a FieldError invalid on to (ROX's request refuses it)`, err)
	}
	n := 0
	for region := range phonenumbers.GetSupportedRegions() {
		for typ := phonenumbers.FIXED_LINE; typ <= phonenumbers.VOICEMAIL; typ++ {
			num := phonenumbers.GetExampleNumberForType(region, typ)
			if num == nil {
				continue
			}
			got, err := ParseNumber("to", phonenumbers.Format(num, phonenumbers.E164), "AU")
			if err != nil {
				continue
			}
			n++
			if !rox.IsE164(got) {
				t.Errorf("%s type %d: %s accepted, but ROX's request refuses it", region, typ, got)
			}
		}
	}
	if n < 1000 {
		t.Errorf("only %d example numbers accepted", n)
	}
}
