package rox

import (
	"net/url"
	"strconv"
	"unicode/utf8"
)

// Limits of TimeZoneOffset: UTC+14:00 is -840, UTC-12:00 is 720.
const (
	MinTimeZoneOffset = -840
	MaxTimeZoneOffset = 720
)

// IsE164 reports whether s has the shape of an E.164 number: a plus, a
// non-zero digit and 6..14 more digits (the regexp ^\+[1-9]\d{6,14}$).
// This is the provider-contract check of DestTn; whether a number is really
// dialable is the producer's job (libphonenumber).
func IsE164(s string) bool {
	if len(s) < 8 || len(s) > 16 || s[0] != '+' || s[1] < '1' || s[1] > '9' {
		return false
	}
	for i := 2; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Validate checks a send request against the document and returns the first
// problem as a *FieldError naming the wire field ("Name", "Sender.Password",
// "Messages.3.DestTn", ...). It never quotes the password.
//
// Version and Product are not checked: the document asks nothing of Product,
// and the Client sets Version itself.
func (r *SendRequest) Validate() error {
	if r == nil {
		return fieldErr("Name", "missing: no request")
	}
	if r.Name != NameRequest {
		return fieldErr("Name", "is %s, want %s", quoteShort(r.Name), NameRequest)
	}
	if r.Sender.AccountID == "" {
		return fieldErr("Sender.AccountId", "missing")
	}
	if r.Sender.Username == "" {
		return fieldErr("Sender.Username", "missing")
	}
	if r.Sender.Password == "" {
		return fieldErr("Sender.Password", "missing")
	}
	return r.Messages.Validate()
}

// Validate checks the Messages object of a send request and returns the
// first problem as a *FieldError whose Field starts with "Messages.".
//
// Rules (docs/ROX.md):
//   - 1..MaxRecipients recipients; Count, when set (a decoded request always
//     sets it), equals len(Recipients). A Count of 0 with recipients is
//     accepted because the encoder writes len(Recipients) anyway.
//   - DestTn is E.164 (see IsE164).
//   - SMSText is present unless GlobalText is; every text field (SMSText,
//     GlobalText, DestName, DestEmail) is at most MaxTextLen characters
//     (runes, not bytes).
//   - ReceiptFlag is 0, 1 or 2; ReceiptCallbackURL is an absolute http(s)
//     URL, required when ReceiptFlag > 0.
//   - ReplyType is E, S, B or H, or empty, which means E: the document gives
//     no default, but says replies go to email whenever there is no working
//     callback, so empty is read as email. The encoder omits an empty
//     ReplyType. ReplyCallbackURL is an absolute http(s) URL, required when
//     ReplyType is H.
//   - TimeZoneOffset is within MinTimeZoneOffset..MaxTimeZoneOffset.
func (m *Messages) Validate() error {
	if m == nil {
		return fieldErr("Messages", "missing")
	}
	n := len(m.Recipients)
	switch {
	case n == 0:
		return fieldErr("Messages.Count", "no recipients: at least 1 is required")
	case n > MaxRecipients:
		return fieldErr("Messages.Count", "%d recipients, at most %d allowed", n, MaxRecipients)
	case m.Count != 0 && m.Count != n:
		return fieldErr("Messages.Count", "is %d but %d recipients follow", m.Count, n)
	}
	switch m.ReceiptFlag {
	case ReceiptNever, ReceiptAlways, ReceiptOnError:
	default:
		return fieldErr("Messages.ReceiptFlag", "is %d, want 0 (no), 1 (yes) or 2 (on error)", int(m.ReceiptFlag))
	}
	if m.ReceiptCallbackURL != "" || m.ReceiptFlag != ReceiptNever {
		if err := checkCallbackURL("Messages.ReceiptCallbackURL", m.ReceiptCallbackURL); err != nil {
			return err
		}
	}
	switch m.ReplyType {
	case "", ReplyEmail, ReplySMS, ReplyBoth, ReplyHTTP:
	default:
		return fieldErr("Messages.ReplyType", "is %s, want E, S, B or H", quoteShort(string(m.ReplyType)))
	}
	if m.ReplyCallbackURL != "" || m.ReplyType == ReplyHTTP {
		if err := checkCallbackURL("Messages.ReplyCallbackURL", m.ReplyCallbackURL); err != nil {
			return err
		}
	}
	if m.TimeZoneOffset < MinTimeZoneOffset || m.TimeZoneOffset > MaxTimeZoneOffset {
		return fieldErr("Messages.TimeZoneOffset", "is %d, want %d..%d minutes (UTC+10:00 is -600)",
			m.TimeZoneOffset, MinTimeZoneOffset, MaxTimeZoneOffset)
	}
	if err := checkText("Messages.GlobalText", m.GlobalText); err != nil {
		return err
	}
	for i := range m.Recipients {
		if err := m.Recipients[i].validate(i+1, m.GlobalText != ""); err != nil {
			return err
		}
	}
	return nil
}

func (r *Recipient) validate(n int, haveGlobal bool) error {
	field := func(name string) string { return "Messages." + strconv.Itoa(n) + "." + name }
	if r.DestTn == "" {
		return fieldErr(field("DestTn"), "missing")
	}
	if !IsE164(r.DestTn) {
		return fieldErr(field("DestTn"), "%s is not an E.164 number such as +61407555001", quoteShort(r.DestTn))
	}
	if textTooLong(r.DestName) {
		return checkText(field("DestName"), r.DestName)
	}
	if textTooLong(r.DestEmail) {
		return checkText(field("DestEmail"), r.DestEmail)
	}
	if r.SMSText == "" && !haveGlobal {
		return fieldErr(field("SMSText"), "missing (and no GlobalText)")
	}
	if textTooLong(r.SMSText) {
		return checkText(field("SMSText"), r.SMSText)
	}
	return nil
}

func textTooLong(s string) bool {
	return len(s) > MaxTextLen && utf8.RuneCountInString(s) > MaxTextLen
}

func checkText(field, s string) error {
	if len(s) <= MaxTextLen { // bytes >= runes: cheap common case
		return nil
	}
	if n := utf8.RuneCountInString(s); n > MaxTextLen {
		return fieldErr(field, "%d characters, at most %d allowed", n, MaxTextLen)
	}
	return nil
}

// checkCallbackURL requires an absolute http or https URL with a host.
func checkCallbackURL(field, s string) error {
	if s == "" {
		return fieldErr(field, "missing: required by the flag that asks for callbacks")
	}
	if utf8.RuneCountInString(s) > MaxTextLen {
		return fieldErr(field, "longer than %d characters", MaxTextLen)
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The URL is not quoted: a callback URL carries a secret token.
		return fieldErr(field, "not an absolute http(s) URL with a host")
	}
	return nil
}

// quoteShort quotes s for an error message, cut to a bounded length so an
// error never carries a large piece of input.
func quoteShort(s string) string {
	const max = 64
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return strconv.Quote(s[:cut]) + "..."
	}
	return strconv.Quote(s)
}
