package httpapi

import (
	"encoding/json"
	"unicode/utf8"
)

// invalidString finds the first JSON string in data (one JSON object,
// already decoded without error) that is not valid UTF-8 or holds a \u
// escape of a lone UTF-16 surrogate. encoding/json replaces both with
// U+FFFD without an error, which would change the text (and force UCS-2);
// so the raw bytes are checked here. field is the top-level key under which
// the bad string is (the key itself when it is a top-level key); bad is
// false when every string is sound.
func invalidString(data []byte) (field string, bad bool) {
	depth := 0
	keyStart, keyEnd := -1, -1 // the current top-level key's literal
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		case '"':
			end, ok := scanString(data, i+1)
			isKey := depth == 1 && nextIsColon(data, end+1)
			if isKey {
				keyStart, keyEnd = i, end+1
			}
			if !ok {
				if keyStart < 0 {
					return "", true
				}
				var k string
				_ = json.Unmarshal(data[keyStart:keyEnd], &k)
				return k, true
			}
			i = end
		}
	}
	return "", false
}

// scanString scans the body of a JSON string starting at data[i] (after
// the opening quote) and returns the index of the closing quote and
// whether the body is valid UTF-8 without lone surrogate escapes.
func scanString(data []byte, i int) (end int, ok bool) {
	ok = true
	for ; i < len(data); i++ {
		c := data[i]
		switch {
		case c == '"':
			return i, ok
		case c == '\\':
			if i+1 < len(data) && data[i+1] == 'u' {
				u, n := hex4(data, i+2)
				i += 1 + n
				switch {
				case u >= 0xDC00 && u < 0xE000:
					ok = false
				case u >= 0xD800 && u < 0xDC00:
					// Must be followed by \u and a low surrogate.
					if i+2 < len(data) && data[i+1] == '\\' && data[i+2] == 'u' {
						if lo, m := hex4(data, i+3); lo >= 0xDC00 && lo < 0xE000 {
							i += 2 + m
							continue
						}
					}
					ok = false
				}
				continue
			}
			i++ // any other escape is one byte
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size == 1 {
				ok = false
			}
			i += size - 1
		}
	}
	return len(data) - 1, ok
}

// hex4 reads the 4 hex digits at data[i:] and returns their value and how
// many bytes it read (4, or fewer on malformed input, where value is -1).
func hex4(data []byte, i int) (int, int) {
	v := 0
	for n := 0; n < 4; n++ {
		if i+n >= len(data) {
			return -1, n
		}
		c := data[i+n]
		switch {
		case '0' <= c && c <= '9':
			v = v<<4 | int(c-'0')
		case 'a' <= c && c <= 'f':
			v = v<<4 | int(c-'a'+10)
		case 'A' <= c && c <= 'F':
			v = v<<4 | int(c-'A'+10)
		default:
			return -1, n
		}
	}
	return v, 4
}

// nextIsColon reports whether the first non-space byte at or after i is ':'.
func nextIsColon(data []byte, i int) bool {
	for ; i < len(data); i++ {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			continue
		case ':':
			return true
		}
		return false
	}
	return false
}
