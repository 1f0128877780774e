package producer

import "unicode/utf16"

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

var gsmSeptets = func() map[rune]int {
	m := make(map[rune]int, 140)
	for _, r := range gsmBasic {
		m[r] = 1
	}
	for _, r := range gsmExtension {
		m[r] = 2
	}
	return m
}()

// Segment sizes: a single-part SMS holds 160 septets or 70 UTF-16 units; a
// part of a concatenated SMS loses room to its header: 153 or 67.
const (
	gsmSingle  = 160
	gsmMulti   = 153
	ucs2Single = 70
	ucs2Multi  = 67
)

// Encoding returns the encoding an SMS of text needs (EncodingGSM7 when
// every character is in the GSM 03.38 alphabet or its extension table,
// EncodingUCS2 otherwise) and its number of segments. Extension characters
// (€ ^ { } [ ] ~ | \ and form feed) take two septets; characters outside
// the Basic Multilingual Plane (most emoji) take two UTF-16 units. A
// two-septet character or a surrogate pair is never split across segments.
// An empty text has 0 segments.
func Encoding(text string) (encoding string, segments int) {
	if text == "" {
		return EncodingGSM7, 0
	}
	units := make([]int, 0, len(text))
	gsm := true
	for _, r := range text {
		n, ok := gsmSeptets[r]
		if !ok {
			gsm = false
			break
		}
		units = append(units, n)
	}
	if gsm {
		return EncodingGSM7, pack(units, gsmSingle, gsmMulti)
	}
	units = units[:0]
	for _, r := range text {
		units = append(units, utf16.RuneLen(r))
	}
	return EncodingUCS2, pack(units, ucs2Single, ucs2Multi)
}

// pack counts segments for characters of the given sizes: one segment when
// the total fits single, otherwise parts of at most multi, each character
// whole in one part.
func pack(units []int, single, multi int) int {
	total := 0
	for _, u := range units {
		total += u
	}
	if total <= single {
		return 1
	}
	segs, fill := 1, 0
	for _, u := range units {
		if fill+u > multi {
			segs++
			fill = 0
		}
		fill += u
	}
	return segs
}
