package callbacks

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"

	"github.com/redoxygen/roxd/producer"
)

// Keywords of a reply (the stream's "keyword" field).
const (
	KeywordStop  = "stop"  // opt out: the number goes on the suppression list
	KeywordStart = "start" // opt back in: a keyword opt-out is lifted
	KeywordHelp  = "help"  // asks for help: nothing changes, the consumer answers
)

// maxKeywordBytes bounds the reply text looked at for a keyword: a longer
// text is a sentence, not a keyword.
const maxKeywordBytes = 256

// keywords is the configured keyword lists, each word in matching form.
type keywords map[string]string // matching form → KeywordStop|Start|Help

func newKeywords(stop, start, help []string) keywords {
	k := keywords{}
	for _, l := range []struct {
		words []string
		kind  string
	}{{help, KeywordHelp}, {start, KeywordStart}, {stop, KeywordStop}} {
		for _, w := range l.words {
			if m := keywordForm(w); m != "" {
				k[m] = l.kind
			}
		}
	}
	return k
}

// classify returns the keyword text is (KeywordStop, KeywordStart,
// KeywordHelp) or "".
func (k keywords) classify(text string) string {
	if len(text) > maxKeywordBytes {
		return ""
	}
	return k[keywordForm(text)]
}

var folder = cases.Fold()

// keywordForm is text as keywords are compared: Unicode compatibility
// normalisation (NFKC: full-width ＳＴＯＰ, mathematical 𝐒𝐓𝐎𝐏 and the
// ideographic full stop become STOP and "."), invisible characters removed
// (zero-width space and joiners, BOM, soft hyphen, every format character,
// variation selectors, controls), punctuation and symbols trimmed from both
// ends ("Stop.", "¡STOP!", "STOP 🛑"), case folded, and the separators
// inside removed (spaces, hyphens, dots: "opt out", "Opt-Out", "stop all").
// Letters and digits inside are kept as they are, so "please stop" and
// "stopp" are not STOP.
func keywordForm(text string) string {
	if !utf8.ValidString(text) {
		text = strings.ToValidUTF8(text, "")
	}
	text = norm.NFKC.String(text)
	var b strings.Builder
	b.Grow(len(text))
	for _, r := range text {
		if invisible(r) {
			continue
		}
		b.WriteRune(r)
	}
	t := strings.TrimFunc(b.String(), func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsPunct(r) || unicode.IsSymbol(r)
	})
	t = folder.String(t)
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) || unicode.IsPunct(r) {
			return -1
		}
		return r
	}, t)
}

// invisible reports whether r is shown as nothing: format characters (Cf:
// zero-width space U+200B, joiners, BOM U+FEFF, soft hyphen, bidi marks),
// controls other than whitespace, and variation selectors.
func invisible(r rune) bool {
	return unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Variation_Selector, r) ||
		(unicode.IsControl(r) && !unicode.IsSpace(r))
}

// optOutNumber is the E.164 number a reply's ReplyFrom stands for,
// normalised exactly as a message's `to` (producer.ParseNumber, default
// region region), or "" when it is no phone number. ROX documents
// ReplyFrom as fully internationally qualified but does not always send a
// "+": when the text does not parse as written (bare international digits
// of another country, an "00" international prefix), it is parsed once more
// as international digits.
func optOutNumber(from, region string) string {
	if n, err := producer.ParseNumber("ReplyFrom", from, region); err == nil {
		return n
	}
	digits := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		switch r {
		case ' ', '-', '.', '(', ')', '\t', '/':
			return -1
		}
		return 'x'
	}, strings.TrimSpace(from))
	digits = strings.TrimPrefix(digits, "00")
	if digits == "" || strings.ContainsRune(digits, 'x') {
		return ""
	}
	if n, err := producer.ParseNumber("ReplyFrom", "+"+digits, region); err == nil {
		return n
	}
	return ""
}
