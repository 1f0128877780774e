package producer

import (
	"unicode/utf8"

	"github.com/rivo/uniseg"
)

// Encodings of an SMS text.
const (
	EncodingGSM7 = "GSM-7"
	EncodingUCS2 = "UCS-2"
)

// gsmBasic is the GSM 03.38 default alphabet (one septet each), without
// the escape code 0x1B.
const gsmBasic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
	"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"

// gsmExtension is the GSM 03.38 extension table: escape plus one septet.
const gsmExtension = "\f^{}\\[~]|€"

// gsmSeptets maps every GSM 03.38 character to its septets (1, or 2 for the
// extension table); gsmASCII is the same for runes below 128, as an array
// for the common case (0: not in the alphabet).
var gsmSeptets, gsmASCII = func() (map[rune]int, [utf8.RuneSelf]int8) {
	m := make(map[rune]int, 140)
	var a [utf8.RuneSelf]int8
	for _, r := range gsmBasic {
		m[r] = 1
	}
	for _, r := range gsmExtension {
		m[r] = 2
	}
	for r, n := range m {
		if r < utf8.RuneSelf {
			a[r] = int8(n)
		}
	}
	return m, a
}()

// Segment sizes: a single-part SMS holds 160 septets or 70 UTF-16 units; a
// part of a concatenated SMS loses room to its header: 153 or 67.
const (
	gsmSingle  = 160
	gsmMulti   = 153
	ucs2Single = 70
	ucs2Multi  = 67
)

// septets returns r's size in GSM-7 septets, 0 when r is not in the GSM
// 03.38 alphabet or its extension table.
func septets(r rune) int {
	if r < utf8.RuneSelf {
		return int(gsmASCII[r])
	}
	return gsmSeptets[r]
}

// ucs2Units returns r's size in UTF-16 code units (2 outside the Basic
// Multilingual Plane).
func ucs2Units(r rune) int {
	if r >= 0x10000 {
		return 2
	}
	return 1
}

// Encoding returns the encoding an SMS of text needs (EncodingGSM7 when
// every character is in the GSM 03.38 alphabet or its extension table,
// EncodingUCS2 otherwise) and its number of segments (SMS parts).
//
// Sizes: a GSM-7 character takes one septet, an extension character (€ ^ {
// } [ ] ~ | \ and form feed) two (escape + septet); a UCS-2 character takes
// one UTF-16 unit, two outside the Basic Multilingual Plane (most emoji).
// A text up to 160 septets or 70 units is one part; a longer one is cut
// into parts of at most 153 septets or 67 units, and a cut never falls
// inside a grapheme cluster (Unicode UAX #29, with github.com/rivo/uniseg):
// a flag, an emoji with a skin tone or ZWJ sequence, a letter with its
// combining accents, CR LF stay in one part, as handsets show them as one
// character. A cluster larger than a part (only possible with dozens of
// combining marks) is cut between code points, never inside a surrogate
// pair or an escape sequence. An empty text has 0 segments. text must be
// valid UTF-8 (the producer refuses anything else).
func Encoding(text string) (encoding string, segments int) {
	if text == "" {
		return EncodingGSM7, 0
	}
	// One pass for the encoding and the total size in both encodings.
	gsm, septetTotal, unitTotal := true, 0, 0
	for _, r := range text {
		if gsm {
			if n := septets(r); n > 0 {
				septetTotal += n
			} else {
				gsm = false
			}
		}
		unitTotal += ucs2Units(r)
	}
	if gsm {
		if septetTotal <= gsmSingle {
			return EncodingGSM7, 1
		}
		return EncodingGSM7, pack(text, septets, gsmMulti)
	}
	if unitTotal <= ucs2Single {
		return EncodingUCS2, 1
	}
	return EncodingUCS2, pack(text, ucs2Units, ucs2Multi)
}

// pack counts the parts of at most multi (septets or units, as size says)
// that text needs when each grapheme cluster is whole in one part; a
// cluster larger than multi is packed code point by code point.
func pack(text string, size func(rune) int, multi int) int {
	segs, fill := 1, 0
	put := func(n int) {
		if fill+n > multi {
			segs++
			fill = 0
		}
		fill += n
	}
	state := -1
	for text != "" {
		var cluster string
		if asciiBoundary(text) {
			// Fast path, same result: a one-byte cluster.
			cluster, text, state = text[:1], text[1:], -1
		} else {
			cluster, text, _, state = uniseg.StepString(text, state)
		}
		n := 0
		for _, r := range cluster {
			n += size(r)
		}
		if n <= multi {
			put(n)
			continue
		}
		for _, r := range cluster {
			put(size(r))
		}
	}
	return segs
}

// asciiBoundary reports whether text (non-empty, starting at a cluster
// boundary) starts with a one-byte grapheme cluster that can be told
// without uniseg: a control other than CR (UAX #29 GB4: always a break
// after it), a CR not followed by LF (GB3, GB4), or a printable ASCII
// character followed by ASCII or nothing (GB999: no ASCII character is
// Extend, ZWJ or SpacingMark, so GB9-GB9c cannot join it). FuzzEncoding
// checks the whole count against uniseg's cluster iterator.
func asciiBoundary(text string) bool {
	c := text[0]
	switch {
	case c >= utf8.RuneSelf:
		return false
	case c == '\r':
		return len(text) == 1 || text[1] != '\n'
	case c < 0x20 || c == 0x7f:
		return true
	}
	return len(text) == 1 || text[1] < utf8.RuneSelf
}
