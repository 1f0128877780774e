package producer

import (
	"fmt"
	"net/mail"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/nyaruka/phonenumbers"

	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/rox"
)

// FieldError is a refused message: Field is the JSON name of the offending
// field ("to", "text", "send_at", "metadata", "id", "name", "email",
// "receipt", "reply", "priority", ...), Code a stable machine-readable reason.
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

// validID reports whether id is 1..MaxIDLen of [A-Za-z0-9._:-], and not
// "." or "..": those are URL path segments HTTP cleans away, so
// /v1/messages/{id} could never reach such a message (GET, DELETE, roxd
// status and cancel).
func validID(id string) bool {
	if id == "" || len(id) > MaxIDLen || id == "." || id == ".." {
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

// MaxNumberBytes is the longest phone number accepted (field "to", the
// suppression list's numbers), in bytes after surrounding white space is
// removed. It is roxd's own bound, not ROX's (ROX documents no length for
// DestTn): an E.164 number has at most 15 digits plus "+", and 64 leaves
// room for an international prefix and the allowed separators.
const MaxNumberBytes = 64

// numberSyntax checks that s (white space around it already removed) is a
// bare phone number as roxd accepts it from users: ASCII digits 0-9, one
// "+" as the first character, and the separators space, "-", "." and
// parentheses (balanced, not nested). Anything else is refused rather than
// read past as libphonenumber would: letters (it maps them to keypad
// digits, so "+6140000000O1" would become +61400000001), extensions
// ("ext. 5", ";ext=5", " x 7"), other punctuation and trailing junk,
// "tel:" URIs, non-ASCII digits and non-ASCII spaces or dashes. It returns
// "" when s is acceptable, otherwise the reason.
func numberSyntax(s string) string {
	digits, open := 0, false
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == ' ' || r == '-' || r == '.':
		case r == '+':
			if i != 0 {
				return "a + is allowed only as the first character"
			}
		case r == '(':
			if open {
				return "parentheses must not be nested"
			}
			open = true
		case r == ')':
			if !open {
				return "unbalanced parentheses"
			}
			open = false
		case r == utf8.RuneError:
			return "not valid UTF-8"
		case unicode.IsLetter(r):
			return fmt.Sprintf("letters are not allowed (%q at byte %d): a number is digits only, without an extension", r, i)
		default:
			return fmt.Sprintf("%q (at byte %d) is not allowed: use digits 0-9, a leading +, spaces, - . and ( )", r, i)
		}
	}
	switch {
	case open:
		return "unbalanced parentheses"
	case digits == 0:
		return "no digits"
	}
	return ""
}

func normalizeNumber(field, number, region string) (string, *FieldError) {
	number = strings.TrimSpace(number)
	if number == "" {
		return "", fieldErr(field, CodeRequired, "missing: a phone number is required")
	}
	if len(number) > MaxNumberBytes {
		return "", fieldErr(field, CodeInvalid, "not a phone number: %d bytes, at most %d", len(number), MaxNumberBytes)
	}
	if why := numberSyntax(number); why != "" {
		return "", fieldErr(field, CodeInvalid, "not a bare phone number: %s", why)
	}
	a := numbers.get(number, region)
	if a.msg != "" {
		return "", fieldErr(field, CodeInvalid, "%s", a.msg)
	}
	return a.e164, nil
}

// libNumber is libphonenumber's answer for a number that passed the
// syntax checks: its E.164 form, or why it is refused.
func libNumber(number, region string) numAnswer {
	num, err := phonenumbers.Parse(number, region)
	if err != nil {
		return numAnswer{msg: fmt.Sprintf("not a phone number (%v)", err)}
	}
	if !phonenumbers.IsValidNumber(num) {
		return numAnswer{msg: fmt.Sprintf("%q is not a valid phone number (default region %s)", number, region)}
	}
	e164 := phonenumbers.Format(num, phonenumbers.E164)
	if !rox.IsE164(e164) {
		// libphonenumber knows a few numbers shorter than ROX's request
		// takes (an Iranian voicemail number, +989601): queued, such a
		// number would make the worker refuse its whole ROX request.
		return numAnswer{msg: fmt.Sprintf("%s is not a number ROX sends to (E.164 with 7 to 15 digits)", e164)}
	}
	return numAnswer{e164: e164}
}

// invisibleTables are the characters that show nothing on their own:
// white space, controls, format characters (zero-width space and joiners,
// byte order mark, bidi marks, soft hyphen, tags), default-ignorable code
// points (Hangul fillers, combining grapheme joiner), variation selectors,
// and non-spacing and enclosing marks (nothing to show without a base
// character).
var invisibleTables = []*unicode.RangeTable{unicode.White_Space, unicode.Cc, unicode.Cf,
	unicode.Zs, unicode.Zl, unicode.Zp, unicode.Other_Default_Ignorable_Code_Point,
	unicode.Variation_Selector, unicode.Mn, unicode.Me}

// visible reports whether text has a character that shows: one outside
// invisibleTables and not U+2800 BRAILLE PATTERN BLANK (a blank that is
// none of those classes).
func visible(text string) bool {
	for _, r := range text {
		if r > ' ' && r < 0x7f { // printable ASCII: the common case
			return true
		}
		if r != '\u2800' && !unicode.IsOneOf(invisibleTables, r) {
			return true
		}
	}
	return false
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
		return fail(fieldErr("id", CodeInvalid, "must be 1..%d characters of A-Z a-z 0-9 . _ : -, and not . or ..", MaxIDLen))
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
	if !visible(m.Text) {
		return fail(fieldErr("text", CodeRequired, "missing: the text has no visible character (only white space or invisible characters)"))
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
	if !m.Priority.Valid() {
		return fail(fieldErr("priority", CodeInvalid, "%q: want high, normal or bulk", truncate(string(m.Priority))))
	}
	expires, validity, ferr := p.validity(m, now)
	if ferr != nil {
		return fail(ferr)
	}
	account := m.Account
	if account != "" && account != DefaultAccount && !p.knownAccount(account) {
		return fail(fieldErr("account", CodeInvalid, "%q is not a configured ROX account (want %s)", truncate(account), strings.Join(p.accountNames(), ", ")))
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
		Priority: string(m.Priority), Account: account,
	}
	if rec.Priority == string(PriorityNormal) {
		rec.Priority = "" // one spelling: the same message hashes the same
	}
	if !m.SendAt.IsZero() {
		// Millisecond precision, as stored; the store treats a past SendAt
		// as now, but the hash keeps the caller's value so replays match.
		rec.SendAt = m.SendAt.Truncate(time.Millisecond)
	}
	rec.ExpiresAt, rec.Validity = expires, validity
	rec.Hash = rec.ContentHash()
	return rec, res
}

// validity works out when m expires (zero: never) and the validity it gave
// (for the content hash; "" for none), or the *FieldError naming the field:
// a ValidFor that is not positive, under 1ms or longer than MaxScheduleAhead, both
// fields given, or an expiry not after the send time (SendAt, or now) or
// more than MaxScheduleAhead after it.
// ValidFor counts from SendAt when it is ahead, else from now.
func (p *Producer) validity(m *Message, now time.Time) (time.Time, string, *FieldError) {
	start := now
	if m.SendAt.After(now) {
		start = m.SendAt
	}
	switch {
	case m.ValidFor != 0 && !m.ExpiresAt.IsZero():
		return time.Time{}, "", fieldErr("expires_at", CodeInvalid, "give valid_for or expires_at, not both")
	case m.ValidFor < 0:
		return time.Time{}, "", fieldErr("valid_for", CodeInvalid, "%s is negative", m.ValidFor)
	case m.ValidFor > p.cfg.MaxScheduleAhead:
		return time.Time{}, "", fieldErr("valid_for", CodeTooFarAhead, "%s is longer than %s", m.ValidFor, p.cfg.MaxScheduleAhead)
	case m.ValidFor > 0 && m.ValidFor < time.Millisecond:
		// an expiry is kept in unix milliseconds: a shorter validity would
		// end where it starts, expiring the message before it may be sent
		return time.Time{}, "", fieldErr("valid_for", CodeInvalid,
			"%s is shorter than 1ms (an expiry is kept in milliseconds): the message would expire before it may be sent", m.ValidFor)
	case m.ValidFor > 0:
		return start.Add(m.ValidFor).Truncate(time.Millisecond), "valid_for=" + m.ValidFor.String(), nil
	case !m.ExpiresAt.IsZero():
		at := m.ExpiresAt.Truncate(time.Millisecond)
		if !at.After(start) {
			what := "now"
			if start.Equal(m.SendAt) {
				what = "send_at " + m.SendAt.UTC().Format(time.RFC3339Nano)
			}
			return time.Time{}, "", fieldErr("expires_at", CodeInvalid, "%s is not after %s: the message would expire before it may be sent",
				at.UTC().Format(time.RFC3339Nano), what)
		}
		// valid_for as an instant: the same longest validity, counted
		// from the same start.
		if at.Sub(start) > p.cfg.MaxScheduleAhead {
			what := "now"
			if start.Equal(m.SendAt) {
				what = "send_at"
			}
			return time.Time{}, "", fieldErr("expires_at", CodeTooFarAhead, "%s is more than %s after %s (the longest validity)",
				at.UTC().Format(time.RFC3339), p.cfg.MaxScheduleAhead, what)
		}
		return at, "expires_at=" + strconv.FormatInt(at.UnixMilli(), 10), nil
	case p.cfg.DefaultValidity > 0:
		return start.Add(p.cfg.DefaultValidity).Truncate(time.Millisecond), "", nil
	}
	return time.Time{}, "", nil
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

func (p *Producer) knownAccount(name string) bool {
	for _, a := range p.cfg.Accounts {
		if a == name {
			return true
		}
	}
	return false
}

func (p *Producer) accountNames() []string {
	return append([]string{DefaultAccount}, p.cfg.Accounts...)
}
