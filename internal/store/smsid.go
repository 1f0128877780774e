package store

import (
	"strings"

	"github.com/google/uuid"
)

// CanonicalSMSID is the form in which SMSIds are compared: ROX's SMSIds are
// UUIDs, which RFC 9562 makes case-insensitive on input, and a callback may
// carry one in another spelling than the send's answer did (upper case,
// braces, a urn:uuid: prefix, no hyphens, surrounding spaces). An id that
// parses as a UUID becomes its lower-case, hyphenated form
// (123e4567-e89b-12d3-a456-426614174000); any other id is trimmed and
// lower-cased. Keys.SMS applies it, so that the worker's record of
// {P}:sms:<smsid> and the callbacks' lookup always agree; the raw id is
// kept wherever it is shown (the record's sms_id, the stream's sms_id).
func CanonicalSMSID(id string) string {
	id = strings.TrimSpace(id)
	if u, err := uuid.Parse(id); err == nil {
		return u.String()
	}
	return strings.ToLower(id)
}
