package rox

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// The send request and response are read token by token with jsontext, the
// syntax layer of encoding/json/v2 (github.com/go-json-experiment/json,
// the module the standard library's encoding/json/v2 comes from): one
// validating pass, no map of raw values. The readers in decode.go follow
// encoding/json's rules where they matter here: keys match field names
// exactly or else case-insensitively, the last duplicate wins, null leaves
// a field unset, integers must be integers, invalid UTF-8 in strings reads
// as U+FFFD. Trailing commas before } or ] (ROX's document carries them)
// are accepted by reading the body again with them removed
// (stripTrailingCommas) when the strict read met a syntax error.
// Differential fuzz tests (stddecode_test.go) hold the readers to
// encoding/json.

// scanOptions: duplicate names are read (the last wins, as encoding/json
// does) and invalid UTF-8 is mangled to U+FFFD instead of refused.
var scanOptions = []jsontext.Options{jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)}

// jscan reads one JSON value with a jsontext.Decoder and turns its
// syntax errors into *FieldError (byte offsets, never the text).
type jscan struct {
	dec    *jsontext.Decoder
	key    []byte // the current object name, unquoted
	syntax bool   // a syntax error was met (not a type error)
}

// pooledScan is a jscan with the buffer its decoder reads, kept in
// scanPool: a decoder and its state cost a few allocations per body
// otherwise, once per callback on the receiver's hot path.
type pooledScan struct {
	jscan
	buf bytes.Buffer
}

var scanPool = sync.Pool{New: func() any {
	p := new(pooledScan)
	p.dec = jsontext.NewDecoder(&p.buf, scanOptions...)
	return p
}}

// getScan returns a jscan reading data; give it back with putScan once
// nothing read from it is used but the strings it returned.
func getScan(data []byte) *pooledScan {
	p := scanPool.Get().(*pooledScan)
	p.buf = *bytes.NewBuffer(data)
	p.dec.Reset(&p.buf, scanOptions...)
	p.syntax = false
	return p
}

func putScan(p *pooledScan) {
	p.buf = bytes.Buffer{} // do not keep the body alive
	p.dec.Reset(&p.buf, scanOptions...)
	scanPool.Put(p)
}

// scanTolerant runs read over body; when it fails on a syntax error and
// body has trailing commas, it runs read again over body without them.
// read must start its output afresh.
func scanTolerant(body []byte, read func(s *jscan) error) error {
	p := getScan(body)
	err := read(&p.jscan)
	syntax := p.syntax
	putScan(p)
	if err != nil && syntax {
		if fixed, changed := stripTrailingCommas(body); changed {
			p := getScan(fixed)
			defer putScan(p)
			return read(&p.jscan)
		}
	}
	return err
}

// synErr turns a jsontext error into a *FieldError at path (nil stays nil).
func (s *jscan) synErr(path string, err error) error {
	if err == nil {
		return nil
	}
	s.syntax = true
	if path == "" {
		path = "body"
	}
	var se *jsontext.SyntacticError
	if errors.As(err, &se) {
		return fieldErr(path, "not valid JSON at byte %d", se.ByteOffset)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fieldErr(path, "not valid JSON: unexpected end of input")
	}
	return fieldErr(path, "not valid JSON")
}

// unquote returns the text of the raw JSON string v.
func unquote(v []byte) string {
	if body := v[1 : len(v)-1]; bytes.IndexByte(body, '\\') < 0 && utf8.Valid(body) {
		return string(body)
	}
	b, _ := jsontext.AppendUnquote(nil, v) // invalid UTF-8 comes out as U+FFFD, as encoding/json reads it
	return string(b)
}

// floatInto reads a number into dst; null leaves dst as it is.
func (s *jscan) floatInto(dst *float64, field string) error {
	switch s.dec.PeekKind() {
	case 'n':
		_, err := s.dec.ReadToken()
		return s.synErr(field, err)
	case '0':
	default:
		return s.typeErr(field, "number")
	}
	v, err := s.dec.ReadValue()
	if err != nil {
		return s.synErr(field, err)
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil {
		return fieldErr(field, "number out of range")
	}
	*dst = f
	return nil
}

// strInto reads a string into dst; null leaves dst as it is.
func (s *jscan) strInto(dst *string, field string) error {
	switch s.dec.PeekKind() {
	case 'n':
		_, err := s.dec.ReadToken()
		return s.synErr(field, err)
	case '"':
	default:
		return s.typeErr(field, "string")
	}
	v, err := s.dec.ReadValue()
	if err != nil {
		return s.synErr(field, err)
	}
	*dst = unquote(v)
	return nil
}

// codeInto reads a string into dst; null leaves dst as it is.
func (s *jscan) codeInto(dst *Code, field string) error {
	v := string(*dst)
	err := s.strInto(&v, field)
	*dst = Code(v)
	return err
}

// intInto reads an integer into dst; null leaves dst as it is. It reports
// whether a number was read.
func (s *jscan) intInto(dst *int, field string) (bool, error) {
	switch s.dec.PeekKind() {
	case 'n':
		_, err := s.dec.ReadToken()
		return false, s.synErr(field, err)
	case '0':
	default:
		return false, s.typeErr(field, "integer")
	}
	v, err := s.dec.ReadValue()
	if err != nil {
		return false, s.synErr(field, err)
	}
	if bytes.ContainsAny(v, ".eE") {
		return false, fieldErr(field, "wrong type: a number that is not an integer")
	}
	n, err := strconv.Atoi(string(v))
	if err != nil {
		return false, fieldErr(field, "integer out of range")
	}
	*dst = n
	return true, nil
}

// typeErr names the JSON type found where want was expected (a syntax
// error when there is no valid value).
func (s *jscan) typeErr(field, want string) error {
	got := ""
	switch s.dec.PeekKind() {
	case '"':
		got = "string"
	case '{':
		got = "object"
	case '[':
		got = "array"
	case 't', 'f':
		got = "bool"
	case '0':
		got = "number"
	case 'n':
		got = "null"
	default:
		_, err := s.dec.ReadValue()
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return s.synErr(field, err)
	}
	// The value must still be valid JSON: a syntax error wins over the type.
	if err := s.dec.SkipValue(); err != nil {
		return s.synErr(field, err)
	}
	return fieldErr(field, "wrong type: JSON %s where %s is expected", got, want)
}

// skipOrErr passes over one value of any type.
func (s *jscan) skipOrErr(path string) error {
	return s.synErr(path, s.dec.SkipValue())
}

// object reads an object (or null), calling fn for each name with the
// decoder positioned at the value; fn must consume the value, and key is
// valid only until fn reads. It reports whether the value was an object.
func (s *jscan) object(path string, fn func(key []byte) error) (bool, error) {
	switch s.dec.PeekKind() {
	case 'n':
		_, err := s.dec.ReadToken()
		return false, s.synErr(path, err)
	case '{':
	default:
		return false, s.typeErr(path, "object")
	}
	if _, err := s.dec.ReadToken(); err != nil {
		return true, s.synErr(path, err)
	}
	for s.dec.PeekKind() != '}' {
		name, err := s.dec.ReadValue()
		if err != nil {
			return true, s.synErr(path, err)
		}
		if body := name[1 : len(name)-1]; bytes.IndexByte(body, '\\') < 0 && utf8.Valid(body) {
			s.key = append(s.key[:0], body...)
		} else {
			s.key, _ = jsontext.AppendUnquote(s.key[:0], name)
		}
		if err := fn(s.key); err != nil {
			return true, err
		}
	}
	_, err := s.dec.ReadToken()
	return true, s.synErr(path, err)
}

// body reads the whole input as one object (fn as for object): null or
// another type is a FieldError on body, and so is anything after it.
func (s *jscan) body(fn func(key []byte) error) error {
	isObj, err := s.object("body", fn)
	if err == nil && !isObj {
		err = fieldErr("body", "not a JSON object")
	}
	if err == nil {
		err = s.end("body")
	}
	return err
}

// end checks nothing but space follows the value read.
func (s *jscan) end(path string) error {
	_, err := s.dec.ReadValue()
	switch {
	case errors.Is(err, io.EOF):
		return nil
	case err == nil:
		s.syntax = true
		return fieldErr(path, "unexpected data after the object at byte %d", s.dec.InputOffset())
	default:
		return s.synErr(path, err)
	}
}

// match says whether key names field: exactly, or else case-insensitively
// as encoding/json does (Unicode simple folding: "ſ" matches "s", so the
// lengths may differ).
func match(key []byte, field string) bool {
	return string(key) == field || strings.EqualFold(string(key), field)
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
