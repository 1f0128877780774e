package logging

import (
	"bytes"
	"encoding/json"
	"io"
)

// UniqueKeys wraps w so that every JSON log line written through it has
// unique keys: when a key repeats (a logger derived with With() from one
// that already had the key), the last value wins and stands at the place of
// the first. zerolog writes one event per Write; a Write that is not one
// JSON object is passed on unchanged. Lines without repeated keys are passed
// on as they are, without copying.
func UniqueKeys(w io.Writer) io.Writer { return uniqueKeys{w} }

type uniqueKeys struct{ w io.Writer }

func (u uniqueKeys) Write(p []byte) (int, error) {
	out, changed := dedupKeys(p)
	if !changed {
		return u.w.Write(p)
	}
	if _, err := u.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

type member struct {
	key string
	val json.RawMessage
}

// dedupKeys returns line with repeated top-level keys folded, and whether
// it changed anything.
func dedupKeys(line []byte) ([]byte, bool) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return line, false
	}
	var members []member
	index := map[string]int{}
	dup := false
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return line, false
		}
		key, ok := t.(string)
		if !ok {
			return line, false
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return line, false
		}
		if i, seen := index[key]; seen {
			members[i].val = raw
			dup = true
			continue
		}
		index[key] = len(members)
		members = append(members, member{key, raw})
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return line, false
	}
	if !dup {
		return line, false
	}
	var b bytes.Buffer
	b.Grow(len(line))
	b.WriteByte('{')
	for i, m := range members {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(m.key)
		b.Write(k)
		b.WriteByte(':')
		b.Write(m.val)
	}
	b.WriteByte('}')
	// Keep what followed the object (zerolog's newline).
	rest := line[dec.InputOffset():]
	b.Write(rest)
	return b.Bytes(), true
}
