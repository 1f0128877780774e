package callbacks

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode"

	"golang.org/x/text/width"

	"github.com/redoxygen/roxd/producer"
)

// decorate writes word as people type it: random case, full-width or
// mathematical letters, invisible characters, surrounding spaces and
// punctuation, inner separators.
func decorate(rng *rand.Rand, word string) string {
	var b strings.Builder
	lead := []string{"", " ", "\t", "\u200b", "\ufeff", "\u00a0", "\u2060", "\"", "¡", "'"}
	trail := []string{"", ".", "!", "!!", "?", "。", " ", "\n", "\r\n", "\u200d", "\u200b", " 🛑", ".\ufe0f", "\"", "…", "!!!"}
	b.WriteString(lead[rng.IntN(len(lead))])
	for i, r := range word {
		switch rng.IntN(4) {
		case 0:
			r = unicode.ToLower(r)
		case 1:
			r = unicode.ToUpper(r)
		}
		s := string(r)
		switch rng.IntN(6) {
		case 0:
			s = width.Widen.String(s) // ＳＴＯＰ
		case 1:
			if r >= 'A' && r <= 'Z' {
				s = string(rune(0x1D400 + (r - 'A'))) // 𝐒 (mathematical bold)
			}
		}
		b.WriteString(s)
		if i < len(word)-1 && rng.IntN(8) == 0 {
			b.WriteString([]string{"\u200b", "\u00ad", "\u200c"}[rng.IntN(3)])
		}
	}
	b.WriteString(trail[rng.IntN(len(trail))])
	return b.String()
}

// Generated: every default keyword in hundreds of typed forms is matched;
// the same with a letter added or a word before it is not.
func TestKeywordsGenerated(t *testing.T) {
	kw := newKeywords(DefaultStopWords, DefaultStartWords, DefaultHelpWords)
	rng := rand.New(rand.NewPCG(9, 1))
	lists := map[string][]string{KeywordStop: append(DefaultStopWords, "OPT OUT", "OPT-OUT", "STOP ALL"),
		KeywordStart: DefaultStartWords, KeywordHelp: DefaultHelpWords}
	n := 0
	for want, words := range lists {
		for _, w := range words {
			for i := 0; i < 200; i++ {
				text := decorate(rng, w)
				if got := kw.classify(text); got != want {
					t.Fatalf("classify(%q) (%s) = %q, want %q", text, w, got, want)
				}
				for _, other := range []string{decorate(rng, w) + "x", "please " + decorate(rng, w), decorate(rng, w+"s"),
					"x" + decorate(rng, w)} {
					if got := kw.classify(other); got != "" {
						t.Fatalf("classify(%q) = %q, want none", other, got)
					}
				}
				n++
			}
		}
	}
	t.Logf("%d typed forms matched", n)
}

// FuzzKeyword: decorating a text never changes what it is, and a
// keyword's form is stable.
func FuzzKeyword(f *testing.F) {
	for _, s := range []string{"STOP", "Stop.", "ＳＴＯＰ", " stop\n", "opt out", "help?", "stop it", "\u200b", "İ", "ß"} {
		f.Add(s, uint64(1))
	}
	kw := newKeywords(DefaultStopWords, DefaultStartWords, DefaultHelpWords)
	f.Fuzz(func(t *testing.T, s string, seed uint64) {
		form := keywordForm(s)
		if keywordForm(form) != form {
			t.Fatalf("keywordForm not idempotent: %q -> %q -> %q", s, form, keywordForm(form))
		}
		if len(s) > maxKeywordBytes-8 {
			return
		}
		got := kw.classify(s)
		for _, d := range []string{" " + s + " ", s + ".", "\u200b" + s, "\ufeff" + s + "!", width.Widen.String(s)} {
			if g := kw.classify(d); g != got {
				t.Fatalf("classify(%q) = %q but classify(%q) = %q", s, got, d, g)
			}
		}
		_ = seed
	})
}

// Generated: a ReplyFrom in any form people and gateways write a number
// in gives the E.164 number `to` gives (the producer's normaliser).
func TestReplyFromGenerated(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 2))
	for i := 0; i < 500; i++ {
		sub := fmt.Sprintf("4%08d", rng.IntN(100_000_000)) // an AU mobile, national significant number
		want, err := producer.ParseNumber("to", "+61"+sub, "AU")
		if err != nil {
			continue
		}
		forms := []string{
			"0" + sub, "+61" + sub, "61" + sub, "0061" + sub,
			fmt.Sprintf("0%s %s %s", sub[:3], sub[3:6], sub[6:]),
			fmt.Sprintf("(0%s) %s-%s", sub[:1], sub[1:5], sub[5:]),
			fmt.Sprintf("+61 %s %s %s", sub[:3], sub[3:6], sub[6:]),
			fmt.Sprintf("+61 (0) %s %s", sub[:3], sub[3:]),
			" \t0" + sub + " ",
		}
		for _, f := range forms {
			if got := optOutNumber(f, "AU"); got != want {
				t.Fatalf("optOutNumber(%q) = %q, want %q", f, got, want)
			}
			// Same function as `to`: where `to` accepts the form, it agrees.
			if to, err := producer.ParseNumber("to", f, "AU"); err == nil && to != want {
				t.Fatalf("to %q = %q, ReplyFrom gives %q", f, to, want)
			}
		}
	}
	// Another region's deployment reads national numbers in its region.
	if got := optOutNumber("021 123 4567", "NZ"); got != "+64211234567" {
		t.Errorf("NZ national: %q", got)
	}
	for _, bad := range []string{"", "n/a", "+0400000042", "0400", "STOP"} {
		if got := optOutNumber(bad, "AU"); got != "" {
			t.Errorf("optOutNumber(%q) = %q, want none", bad, got)
		}
	}
}
