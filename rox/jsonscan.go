package rox

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// A small, allocation-lean, validating JSON reader for the send request and
// response. encoding/json through a map[string]json.RawMessage costs several
// milliseconds and thousands of allocations for 500 recipients; this reads
// them in one pass. It accepts exactly what encoding/json accepts, plus
// trailing commas before } or ] (as stripTrailingCommas would remove them),
// and follows encoding/json's rules where they matter here: keys match field
// names exactly or else case-insensitively, the last duplicate wins, null
// leaves a field unset, integers must be integers, strings with escapes or
// invalid UTF-8 are unquoted the same way. It never panics on malformed
// input and returns *FieldError. Differential fuzz tests (stddecode_test.go)
// hold it to encoding/json.

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

type jscan struct {
	data []byte
	pos  int
}

func (s *jscan) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (s *jscan) peek() byte {
	s.ws()
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

// rawString scans a string token at pos and returns its body (without
// quotes) and whether it needs unquote (escapes, or non-ASCII that is not
// valid UTF-8). It checks escapes and rejects control characters.
func (s *jscan) rawString() (body []byte, slow bool, ok bool) {
	if s.peek() != '"' {
		return nil, false, false
	}
	start := s.pos + 1
	nonASCII := false
	for i := start; i < len(s.data); i++ {
		c := s.data[i]
		switch {
		case c == '"':
			s.pos = i + 1
			body = s.data[start:i]
			return body, slow || (nonASCII && !utf8.Valid(body)), true
		case c == '\\':
			slow = true
			i++
			if i >= len(s.data) {
				return nil, false, false
			}
			switch s.data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(s.data) {
					return nil, false, false
				}
				for _, h := range s.data[i+1 : i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return nil, false, false
					}
				}
				i += 4
			default:
				return nil, false, false
			}
		case c < 0x20:
			return nil, false, false
		case c >= utf8.RuneSelf:
			nonASCII = true
		}
	}
	return nil, false, false
}

// number scans a JSON number at pos and reports its end and whether it is
// written as an integer (no fraction, no exponent).
func (s *jscan) number() (end int, isInt, ok bool) {
	d, i := s.data, s.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		return 0, false, false
	}
	isInt = true
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return 0, false, false
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		isInt = false
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return 0, false, false
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		isInt = false
	}
	return i, isInt, true
}

// str reads a string value; null gives ("", false, nil).
func (s *jscan) str(field string) (string, bool, error) {
	if s.isNull() {
		return "", false, nil
	}
	start := s.pos
	body, slow, ok := s.rawString()
	if !ok {
		if s.peek() == '"' {
			return "", false, fieldErr(field, "malformed string at byte %d", start)
		}
		return "", false, s.typeErr(field, "string")
	}
	if !slow {
		return string(body), true, nil
	}
	v, ok := unquote(body)
	if !ok {
		return "", false, fieldErr(field, "bad string escape at byte %d", start)
	}
	return v, true, nil
}

// unquote decodes the body of a JSON string with escapes or invalid UTF-8
// exactly as encoding/json does (invalid surrogates and bytes become
// U+FFFD).
func unquote(s []byte) (string, bool) {
	var sb strings.Builder
	sb.Grow(len(s) + utf8.UTFMax)
	for r := 0; r < len(s); {
		switch c := s[r]; {
		case c == '\\':
			r++
			if r >= len(s) {
				return "", false
			}
			switch s[r] {
			case '"', '\\', '/', '\'':
				sb.WriteByte(s[r])
				r++
			case 'b':
				sb.WriteByte('\b')
				r++
			case 'f':
				sb.WriteByte('\f')
				r++
			case 'n':
				sb.WriteByte('\n')
				r++
			case 'r':
				sb.WriteByte('\r')
				r++
			case 't':
				sb.WriteByte('\t')
				r++
			case 'u':
				r--
				rr := getu4(s[r:])
				if rr < 0 {
					return "", false
				}
				r += 6
				if utf16.IsSurrogate(rr) {
					rr1 := getu4(s[r:])
					if dec := utf16.DecodeRune(rr, rr1); dec != unicode.ReplacementChar {
						r += 6
						sb.WriteRune(dec)
						break
					}
					rr = unicode.ReplacementChar
				}
				sb.WriteRune(rr)
			default:
				return "", false
			}
		case c == '"', c < ' ':
			return "", false
		case c < utf8.RuneSelf:
			sb.WriteByte(c)
			r++
		default:
			rr, size := utf8.DecodeRune(s[r:])
			r += size
			sb.WriteRune(rr)
		}
	}
	return sb.String(), true
}

// getu4 decodes \uXXXX at the start of s, or returns -1.
func getu4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c = c - '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// floatInto reads a number into dst; null leaves dst as it is.
func (s *jscan) floatInto(dst *float64, field string) error {
	if s.isNull() {
		return nil
	}
	end, _, ok := s.number()
	if !ok {
		return s.typeErr(field, "number")
	}
	f, err := strconv.ParseFloat(string(s.data[s.pos:end]), 64)
	if err != nil {
		return fieldErr(field, "number out of range")
	}
	s.pos = end
	*dst = f
	return nil
}

// strInto reads a string into dst; null leaves dst as it is.
func (s *jscan) strInto(dst *string, field string) error {
	v, ok, err := s.str(field)
	if ok {
		*dst = v
	}
	return err
}

// intInto reads an integer into dst; null leaves dst as it is. It reports
// whether a number was read.
func (s *jscan) intInto(dst *int, field string) (bool, error) {
	v, ok, err := s.integer(field)
	if ok {
		*dst = v
	}
	return ok, err
}

// integer reads an integer value; null gives (0, false, nil).
func (s *jscan) integer(field string) (int, bool, error) {
	if s.isNull() {
		return 0, false, nil
	}
	end, isInt, ok := s.number()
	if !ok {
		return 0, false, s.typeErr(field, "integer")
	}
	if !isInt {
		return 0, false, fieldErr(field, "wrong type: a number that is not an integer")
	}
	n, err := strconv.Atoi(string(s.data[s.pos:end]))
	if err != nil {
		return 0, false, fieldErr(field, "integer out of range")
	}
	s.pos = end
	return n, true, nil
}
func (s *jscan) isNull() bool {
	if s.peek() == 'n' && len(s.data)-s.pos >= 4 && string(s.data[s.pos:s.pos+4]) == "null" {
		s.pos += 4
		return true
	}
	return false
}

// typeErr names the JSON type found where want was expected.
func (s *jscan) typeErr(field, want string) error {
	got := "value"
	switch s.peek() {
	case '"':
		got = "string"
	case '{':
		got = "object"
	case '[':
		got = "array"
	case 't', 'f':
		got = "bool"
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		got = "number"
	case 0:
		got = "end of input"
	}
	return fieldErr(field, "wrong type: JSON %s where %s is expected", got, want)
}

// skip passes over one value of any type.
func (s *jscan) skip() bool { return s.skipValue(4) }

// skipValue validates and passes over one value of any type, tolerating
// trailing commas like object does.
func (s *jscan) skipValue(depth int) bool {
	if depth > maxDepth {
		return false
	}
	switch s.peek() {
	case '"':
		_, _, ok := s.rawString()
		return ok
	case '{':
		ok, err := s.object("", func([]byte) error {
			if !s.skipValue(depth + 1) {
				return errBadValue
			}
			return nil
		})
		return ok && err == nil
	case '[':
		s.pos++
		if s.closes(']') {
			return true
		}
		for {
			if !s.skipValue(depth + 1) {
				return false
			}
			switch s.peek() {
			case ',':
				s.pos++
				if s.peek() == ']' {
					s.pos++
					return true
				}
			case ']':
				s.pos++
				return true
			default:
				return false
			}
		}
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		end, _, ok := s.number()
		if ok {
			s.pos = end
		}
		return ok
	}
}

var errBadValue = fieldErr("", "bad value")

// closes consumes an empty container's end: c, or a lone trailing comma
// and c (as stripTrailingCommas would leave it).
func (s *jscan) closes(c byte) bool {
	if s.peek() == c {
		s.pos++
		return true
	}
	if s.peek() == ',' {
		save := s.pos
		s.pos++
		if s.peek() == c {
			s.pos++
			return true
		}
		s.pos = save
	}
	return false
}

func (s *jscan) literal(lit string) bool {
	if len(s.data)-s.pos >= len(lit) && string(s.data[s.pos:s.pos+len(lit)]) == lit {
		s.pos += len(lit)
		return true
	}
	return false
}

// object reads an object (or null), calling fn for each key with the
// scanner positioned at the value; fn must consume the value. It reports
// whether the value was an object.
func (s *jscan) object(path string, fn func(key []byte) error) (bool, error) {
	if s.isNull() {
		return false, nil
	}
	if s.peek() != '{' {
		return false, s.typeErr(path, "object")
	}
	s.pos++
	if s.closes('}') {
		return true, nil
	}
	for {
		key, slow, ok := s.rawString()
		if !ok {
			return true, fieldErr(path, "not a JSON object: bad key at byte %d", s.pos)
		}
		if slow {
			k, ok := unquote(key)
			if !ok {
				return true, fieldErr(path, "not a JSON object: bad key at byte %d", s.pos)
			}
			key = []byte(k)
		}
		if s.peek() != ':' {
			return true, fieldErr(path, "not a JSON object: missing ':' at byte %d", s.pos)
		}
		s.pos++
		s.ws()
		if err := fn(key); err != nil {
			return true, err
		}
		switch s.peek() {
		case ',':
			s.pos++
			if s.peek() == '}' { // trailing comma
				s.pos++
				return true, nil
			}
		case '}':
			s.pos++
			return true, nil
		default:
			return true, fieldErr(path, "not a JSON object: unexpected byte at %d", s.pos)
		}
	}
}

// end checks nothing but space follows.
func (s *jscan) end(path string) error {
	s.ws()
	if s.pos < len(s.data) {
		return fieldErr(path, "unexpected data after the object at byte %d", s.pos)
	}
	return nil
}

// match says whether key names field: exactly, or else case-insensitively
// as encoding/json does.
func match(key []byte, field string) bool {
	return string(key) == field || (len(key) == len(field) && strings.EqualFold(string(key), field))
}

// recipientKey reads a numbered key: ok false when the key is not numeric
// at all (a control field), an error when it is numeric but not a key
// "1".."500" without leading zeros.
func recipientKey(key []byte, path string) (int, bool, error) {
	if len(key) == 0 || key[0] < '0' || key[0] > '9' {
		return 0, false, nil
	}
	for _, c := range key {
		if c < '0' || c > '9' {
			return 0, true, fieldErr(path+"."+truncate(string(key), 32), "not a recipient key: keys run \"1\"..\"N\"")
		}
	}
	if key[0] == '0' {
		return 0, true, fieldErr(path+"."+truncate(string(key), 32), "not a recipient key: keys run \"1\"..\"N\"")
	}
	n := 0
	if len(key) <= 3 {
		n, _ = strconv.Atoi(string(key))
	}
	if n < 1 || n > MaxRecipients {
		return 0, true, fieldErr(path+".Count", "recipient key %s beyond the maximum of %d", quoteShort(string(key)), MaxRecipients)
	}
	return n, true, nil
}

// numbered tracks which keys "1".."N" were seen.
type numbered struct {
	seen [MaxRecipients + 1]bool
	max  int
}

func (n *numbered) add(i int) {
	n.seen[i] = true
	if i > n.max {
		n.max = i
	}
}

// check returns the count, or names the first missing key.
func (n *numbered) check(path string) (int, error) {
	for i := 1; i <= n.max; i++ {
		if !n.seen[i] {
			return 0, fieldErr(path+"."+strconv.Itoa(i), "missing: recipient keys must run \"1\"..\"%d\" without gaps", n.max)
		}
	}
	return n.max, nil
}

// grow makes s long enough to hold index i-1.
func grow[T any](s []T, i int) []T {
	if i <= len(s) {
		return s
	}
	if i <= cap(s) {
		return s[:i]
	}
	c := 2 * cap(s)
	if c < 8 {
		c = 8
	}
	for c < i {
		c *= 2
	}
	if c > MaxRecipients {
		c = MaxRecipients
	}
	ns := make([]T, i, c)
	copy(ns, s)
	return ns
}
