package rox

import (
	"bytes"
	"fmt"
	"time"
)

// FieldError says which field of a ROX message is wrong and why. Field is a
// dotted path as it appears on the wire, e.g. "Messages.3.DestTn".
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return "rox: " + e.Field + ": " + e.Reason }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// FormatSendLater writes t as SendLater in the zone of tzOffset (minutes,
// sign inverted: UTC+10:00 is -600), truncated to the second.
func FormatSendLater(t time.Time, tzOffset int) string {
	return t.In(offsetZone(tzOffset)).Format(SendLaterLayout)
}

// ParseSendLater reads s (dd-Mon-yyyy HH:MM:SS) in the zone of tzOffset.
func ParseSendLater(s string, tzOffset int) (time.Time, error) {
	return time.ParseInLocation(SendLaterLayout, s, offsetZone(tzOffset))
}

// TimeZoneOffsetOf returns the ROX TimeZoneOffset of t's zone at t:
// UTC+10:00 gives -600.
func TimeZoneOffsetOf(t time.Time) int {
	_, secs := t.Zone()
	return -secs / 60
}

func offsetZone(tzOffset int) *time.Location {
	if tzOffset == 0 {
		return time.UTC
	}
	return time.FixedZone("", -tzOffset*60)
}

// FormatTimestamp writes t as ROX does: "01-Jan-2030 00:00:01 (UTC)".
func FormatTimestamp(t time.Time) string {
	return t.UTC().Format(timestampLayoutNoTZ) + timestampZoneSuffix
}

// ParseTimestamp reads a ROX timestamp such as "01-Jan-2030 00:00:01 (UTC)".
// The zone suffix is optional; the time is UTC either way.
func ParseTimestamp(s string) (time.Time, error) {
	s = string(bytes.TrimSuffix([]byte(s), []byte(timestampZoneSuffix)))
	return time.ParseInLocation(timestampLayoutNoTZ, s, time.UTC)
}
