package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/redoxygen/roxd/producer"
)

// fieldNames numbers the JSON names of struct type t, spelled as they
// must be.
func fieldNames(t reflect.Type) map[string]int {
	out := map[string]int{}
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out[name] = len(out)
		}
	}
	return out
}

var (
	messageNames = fieldNames(reflect.TypeFor[messageIn]())
	batchNames   = map[string]int{"messages": 0}
)

// keyScanner is a reusable jsontext reader of one body.
type keyScanner struct {
	r   bytes.Reader
	dec *jsontext.Decoder
}

var keyScanners = sync.Pool{New: func() any {
	s := &keyScanner{}
	s.dec = jsontext.NewDecoder(&s.r)
	return s
}}

// exactKeys refuses what encoding/json lets through quietly in a body it
// decoded: a top-level name in another case than its field's ("To" fills
// to, "TEXT" text) and a name given twice in one object (the last wins).
// Either would queue another SMS than the one written (another number,
// another text, other metadata). The error names the top-level field.
// With nested false, only the top-level object is checked (a batch: each
// message is checked on its own, so that its error is its own).
func exactKeys(data []byte, names map[string]int, nested bool) *apiError {
	s := keyScanners.Get().(*keyScanner)
	defer keyScanners.Put(s)
	s.r.Reset(data)
	defer s.r.Reset(nil)
	// jsontext refuses a name given twice below the top level (unless
	// !nested); the top level is checked here, to name the field.
	s.dec.Reset(&s.r, jsontext.AllowDuplicateNames(!nested), jsontext.AllowInvalidUTF8(true))
	dec := s.dec
	if dec.PeekKind() != '{' {
		return nil // not an object: decodeStrict has answered
	}
	if _, err := dec.ReadToken(); err != nil {
		return nil
	}
	var seen uint64 // bit i: the name numbered i was given
	for dec.PeekKind() == '"' {
		raw, err := dec.ReadValue()
		if err != nil {
			return duplicateError(err)
		}
		var i int
		var known bool
		if len(raw) >= 2 && bytes.IndexByte(raw, '\\') < 0 {
			i, known = names[string(raw[1:len(raw)-1])] // no allocation
		}
		if !known {
			u, err := jsontext.AppendUnquote(nil, raw)
			if err != nil {
				return nil
			}
			name := string(u)
			if i, known = names[name]; !known {
				return unknownName(name, names)
			}
		}
		if seen&(1<<i) != 0 {
			name, _ := jsontext.AppendUnquote(nil, raw)
			return &apiError{Code: producer.CodeInvalid, Field: string(name),
				Message: fmt.Sprintf("%q is given twice", truncateStr(string(name)))}
		}
		seen |= 1 << i
		if err := dec.SkipValue(); err != nil {
			return duplicateError(err)
		}
	}
	return nil
}

// unknownName refuses name, which is none of names (maybe one of them in
// another case).
func unknownName(name string, names map[string]int) *apiError {
	msg := fmt.Sprintf("unknown field %q", truncateStr(name))
	for want := range names {
		if strings.EqualFold(name, want) {
			msg += fmt.Sprintf(": names are case-sensitive, write %q", want)
		}
	}
	return &apiError{Code: "unknown_field", Field: name, Message: msg}
}

// duplicateError names the top-level field of a name jsontext found given
// twice; nil for any other error (decodeStrict has seen the syntax).
func duplicateError(err error) *apiError {
	var se *jsontext.SyntacticError
	if !errors.As(err, &se) || !errors.Is(err, jsontext.ErrDuplicateName) {
		return nil
	}
	tokens := se.JSONPointer.Tokens()
	var top, last string
	for tok := range tokens {
		if top == "" {
			top = tok
		}
		last = tok
	}
	if top == last {
		return &apiError{Code: producer.CodeInvalid, Field: top,
			Message: fmt.Sprintf("%q is given twice", truncateStr(top))}
	}
	return &apiError{Code: producer.CodeInvalid, Field: top,
		Message: fmt.Sprintf("key %q is given twice in %s", truncateStr(last), top)}
}
