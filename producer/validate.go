package producer

import (
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/nyaruka/phonenumbers"

	"github.com/redoxygen/roxd/internal/store"
)

// FieldError is a refused message: Field is the JSON name of the offending
// field ("to", "text", "send_at", "metadata", "id", "name", "email",
// "receipt", "reply"), Code a stable machine-readable reason.
type FieldError struct {
	Field   string
	Code    string
	Message string
}

// Codes of FieldError.
const (
	CodeRequired    = "required"
	CodeInvalid     = "invalid"
	CodeTooLong     = "too_long"
	CodeTooLarge    = "too_large"
	CodeTooMany     = "too_many"
	CodeTooFarPast  = "too_far_past"
	CodeTooFarAhead = "too_far_ahead"
)

func (e *FieldError) Error() string {
	return "producer: " + e.Field + ": " + e.Message
}

func fieldErr(field, code, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Code: code, Message: fmt.Sprintf(format, args...)}
}

// validID reports whether id is 1..MaxIDLen of [A-Za-z0-9._:-].
func validID(id string) bool {
	if id == "" || len(id) > MaxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

func normalizeNumber(field, number, region string) (string, *FieldError) {
	number = strings.TrimSpace(number)
	if number == "" {
		return "", fieldErr(field, CodeRequired, "missing: a phone number is required")
	}
	if len(number) > 64 {
		return "", fieldErr(field, CodeInvalid, "not a phone number: %d bytes", len(number))
	}
	num, err := phonenumbers.Parse(number, region)
	if err != nil {
		return "", fieldErr(field, CodeInvalid, "not a phone number (%v)", err)
	}
	if !phonenumbers.IsValidNumber(num) {
		return "", fieldErr(field, CodeInvalid, "%q is not a valid phone number (default region %s)", number, region)
	}
	return phonenumbers.Format(num, phonenumbers.E164), nil
}

// prepare validates m and builds its record. On a problem res.Err is a
// *FieldError (the first one found, in the order of the JSON fields).
func (p *Producer) prepare(m *Message, now time.Time) (store.Record, Result) {
	res := Result{ID: m.ID}
	fail := func(e *FieldError) (store.Record, Result) {
		res.Err = e
		return store.Record{}, res
	}
	if m.ID != "" && !validID(m.ID) {
		return fail(fieldErr("id", CodeInvalid, "must be 1..%d characters of A-Z a-z 0-9 . _ : -", MaxIDLen))
	}
	to, ferr := normalizeNumber("to", m.To, p.cfg.DefaultRegion)
	if ferr != nil {
		return fail(ferr)
	}
	res.To = to
	if m.Text == "" {
		return fail(fieldErr("text", CodeRequired, "missing: the text is empty"))
	}
	if !utf8.ValidString(m.Text) {
		return fail(fieldErr("text", CodeInvalid, "not valid UTF-8"))
	}
	if n := utf8.RuneCountInString(m.Text); n > MaxTextLen {
		return fail(fieldErr("text", CodeTooLong, "%d characters, at most %d", n, MaxTextLen))
	}
	if n := utf8.RuneCountInString(m.Name); n > MaxTextLen || !utf8.ValidString(m.Name) {
		return fail(fieldErr("name", CodeTooLong, "%d characters or invalid UTF-8, at most %d", n, MaxTextLen))
	}
	email := m.Email
	if email != "" {
		if n := utf8.RuneCountInString(email); n > MaxTextLen {
			return fail(fieldErr("email", CodeTooLong, "%d characters, at most %d", n, MaxTextLen))
		}
		addr, err := mail.ParseAddress(email)
		if err != nil {
			return fail(fieldErr("email", CodeInvalid, "not an email address (%v)", err))
		}
		email = addr.Address // ROX DestEmail is a bare address
	}
	if !m.SendAt.IsZero() {
		switch {
		case m.SendAt.Before(now.Add(-p.cfg.MaxSchedulePast)):
			return fail(fieldErr("send_at", CodeTooFarPast, "%s is more than %s in the past",
				m.SendAt.UTC().Format(time.RFC3339), p.cfg.MaxSchedulePast))
		case m.SendAt.After(now.Add(p.cfg.MaxScheduleAhead)):
			return fail(fieldErr("send_at", CodeTooFarAhead, "%s is more than %s ahead",
				m.SendAt.UTC().Format(time.RFC3339), p.cfg.MaxScheduleAhead))
		}
	}
	receipt, reply := m.Receipt, m.Reply
	if receipt == "" {
		receipt = p.cfg.DefaultReceipt
	}
	if !receipt.Valid() {
		return fail(fieldErr("receipt", CodeInvalid, "%q: want always, on_error or never", truncate(string(receipt))))
	}
	if reply == "" {
		reply = p.cfg.DefaultReply
	}
	if !reply.Valid() {
		return fail(fieldErr("reply", CodeInvalid, "%q: want http, email, sms or both", truncate(string(reply))))
	}
	if !m.OnAmbiguous.Valid() {
		return fail(fieldErr("on_ambiguous", CodeInvalid, "%q: want resend, reconcile or fail", truncate(string(m.OnAmbiguous))))
	}
	if len(m.Metadata) > p.cfg.MaxMetadataKeys {
		return fail(fieldErr("metadata", CodeTooMany, "%d keys, at most %d", len(m.Metadata), p.cfg.MaxMetadataKeys))
	}
	size := 0
	for k, v := range m.Metadata {
		if k == "" {
			return fail(fieldErr("metadata", CodeInvalid, "empty key"))
		}
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return fail(fieldErr("metadata", CodeInvalid, "key or value is not valid UTF-8"))
		}
		size += len(k) + len(v)
	}
	if size > p.cfg.MaxMetadataBytes {
		return fail(fieldErr("metadata", CodeTooLarge, "%d bytes of keys and values, at most %d", size, p.cfg.MaxMetadataBytes))
	}
	if res.ID == "" {
		res.ID = uuid.NewString()
	}
	res.Encoding, res.Segments = Encoding(m.Text)
	rec := store.Record{
		ID: res.ID, To: to, Name: m.Name, Email: email, Text: m.Text,
		Receipt: string(receipt), Reply: string(reply), Metadata: m.Metadata, OnAmbiguous: string(m.OnAmbiguous),
	}
	if !m.SendAt.IsZero() {
		// Millisecond precision, as stored; the store treats a past SendAt
		// as now, but the hash keeps the caller's value so replays match.
		rec.SendAt = m.SendAt.Truncate(time.Millisecond)
	}
	rec.Hash = rec.ContentHash()
	return rec, res
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}
