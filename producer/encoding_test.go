package producer

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/rivo/uniseg"
)

// segmentVector is one entry of testdata/segments-vectors.json: a text and
// the encoding and segment count a public segment calculator's own test
// file (source: repository, path, commit, test name) expects for it.
type segmentVector struct {
	ID     int `json:"id"`
	Source struct {
		Repo   string `json:"repo"`
		Path   string `json:"path"`
		Commit string `json:"commit"`
		Test   string `json:"test"`
	} `json:"source"`
	Text     string `json:"text"`
	Expected struct {
		Encoding string `json:"encoding"`
		Segments int    `json:"segments"`
	} `json:"expected"`
}

// TestSegmentVectors keeps Encoding in agreement with the 58 vectors taken
// from public segment calculators (Twilio's message-segment-calculator,
// split-sms, Firefox OS's SMS segment tests, sms-counter-php).
func TestSegmentVectors(t *testing.T) {
	raw, err := os.ReadFile("testdata/segments-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Count   int             `json:"count"`
		Vectors []segmentVector `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Vectors) != 58 || doc.Count != 58 {
		t.Fatalf("%d vectors (count %d), want 58", len(doc.Vectors), doc.Count)
	}
	for _, v := range doc.Vectors {
		if v.Source.Repo == "" || v.Source.Test == "" {
			t.Errorf("vector %d has no source", v.ID)
		}
		enc, segs := Encoding(v.Text)
		if enc != v.Expected.Encoding || segs != v.Expected.Segments {
			t.Errorf("vector %d (%s: %s): %s %d, want %s %d", v.ID, v.Source.Repo, v.Source.Test,
				enc, segs, v.Expected.Encoding, v.Expected.Segments)
		}
	}
}

// TestSegmentsKeepGraphemes: a grapheme cluster (flag, emoji with skin tone
// or ZWJ sequence, letter with combining accents, CR LF) is never split
// across two parts. Each case puts one cluster across the boundary of the
// first part; the want values are counted by hand (and agree with Twilio's
// segment calculator for the example).
func TestSegmentsKeepGraphemes(t *testing.T) {
	a := strings.Repeat
	for _, tc := range []struct {
		name, text string
		enc        string
		segs       int
	}{
		// The example: 65 + 4 units do not fit 67; the flag starts part 2.
		{"flag across 67", a("a", 65) + "🇮🇹" + a("b", 64), EncodingUCS2, 3},
		{"flag ends part", a("a", 63) + "🇮🇹" + a("b", 67), EncodingUCS2, 2},
		{"skin tone across 67", a("a", 64) + "👋🏽" + a("b", 64), EncodingUCS2, 3},
		{"zwj family across 67", a("a", 60) + "👨‍👩‍👧" + a("b", 62), EncodingUCS2, 3},
		{"combining across 67", a("é", 66) + "e\u0301\u0301" + a("b", 65), EncodingUCS2, 3},
		{"keycap across 67", a("a", 65) + "1\ufe0f\u20e3" + a("b", 65), EncodingUCS2, 3},
		{"hangul jamo across 67", a("a", 66) + "\u1100\u1161\u11a8" + a("b", 65), EncodingUCS2, 3},
		{"crlf across 153", a("a", 152) + "\r\n" + a("b", 152), EncodingGSM7, 3},
		{"crlf inside 153", a("a", 151) + "\r\n" + a("b", 153), EncodingGSM7, 2},
		{"lfcr may split", a("a", 152) + "\n\r" + a("b", 152), EncodingGSM7, 2},
		// A cluster longer than a part cannot be kept whole: it is split
		// between code points (surrogate pairs still whole).
		{"zalgo longer than a part", "e" + a("\u0301", 140), EncodingUCS2, 3},
	} {
		enc, segs := Encoding(tc.text)
		if enc != tc.enc || segs != tc.segs {
			t.Errorf("%s: %s %d, want %s %d", tc.name, enc, segs, tc.enc, tc.segs)
		}
	}
}

// naiveSegments is an independent count for the fuzz target: it splits the
// text into grapheme clusters with uniseg's Graphemes iterator, sizes each
// cluster by its own code, and fills parts greedily.
func naiveSegments(text string) (string, int) {
	gsm := true
	for _, r := range text {
		if gsmSeptets[r] == 0 {
			gsm = false
		}
	}
	single, multi := ucs2Single, ucs2Multi
	size := func(r rune) int { return len(utf16.Encode([]rune{r})) }
	if gsm {
		single, multi = gsmSingle, gsmMulti
		size = func(r rune) int { return gsmSeptets[r] }
	}
	var clusters [][]int
	total := 0
	g := uniseg.NewGraphemes(text)
	for g.Next() {
		var c []int
		for _, r := range g.Runes() {
			c = append(c, size(r))
			total += size(r)
		}
		clusters = append(clusters, c)
	}
	enc := EncodingUCS2
	if gsm {
		enc = EncodingGSM7
	}
	if total == 0 {
		return enc, 0
	}
	if total <= single {
		return enc, 1
	}
	segs, fill := 1, 0
	put := func(n int) {
		if fill+n > multi {
			segs++
			fill = 0
		}
		fill += n
	}
	for _, c := range clusters {
		n := 0
		for _, u := range c {
			n += u
		}
		if n <= multi {
			put(n)
			continue
		}
		for _, u := range c {
			put(u)
		}
	}
	return enc, segs
}

// FuzzEncoding compares Encoding with naiveSegments on any valid text,
// seeded with texts that put clusters across part boundaries.
func FuzzEncoding(f *testing.F) {
	for _, s := range []string{"hello", strings.Repeat("a", 65) + "🇮🇹" + strings.Repeat("b", 64),
		strings.Repeat("€", 81), strings.Repeat("a", 152) + "\r\n" + strings.Repeat("b", 152),
		strings.Repeat("👩🏽‍💻", 30), "e" + strings.Repeat("\u0301", 200), strings.Repeat("ç", 71)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if !utf8.ValidString(text) {
			return
		}
		enc, segs := Encoding(text)
		wantEnc, wantSegs := naiveSegments(text)
		if enc != wantEnc || segs != wantSegs {
			t.Fatalf("Encoding(%q) = %s %d, want %s %d", text, enc, segs, wantEnc, wantSegs)
		}
	})
}
