package producer

import (
	"errors"
	"fmt"
	"time"
)

// ErrBadTime: a time that is not an RFC 3339 date-time.
var ErrBadTime = errors.New("producer: not an RFC 3339 date-time")

// ParseTime reads an RFC 3339 date-time (section 5.6), every form of its
// grammar: "2006-01-02T15:04:05Z" with
//   - "T" and "Z" in either case ("2027-04-03t15:30:00z"), or a space for
//     the T (the section 5.6 note),
//   - optional fractional seconds of any length (".5", ".123456789";
//     digits past nanoseconds are truncated),
//   - "Z" or a numeric offset "+hh:mm" / "-hh:mm" (hh 00-23, mm 00-59;
//     "-00:00" is UTC),
//   - a leap second, 23:59:60 UTC on the last day of a month (in any
//     offset), read as the next second (Go's time has no leap seconds).
//
// Anything else is refused with an error wrapping ErrBadTime: other ISO
// 8601 forms (no seconds, no offset, "+0100", a comma before the
// fraction), out-of-range fields (2027-02-29, 24:00:00, +24:00), white
// space around it. time.Parse(time.RFC3339, ...) is not used: it refuses
// lower-case t and z and leap seconds, and accepts +24:00, +01:60 and
// ",5", none of which is RFC 3339.
func ParseTime(s string) (time.Time, error) {
	bad := func(why string) (time.Time, error) {
		return time.Time{}, fmt.Errorf("%w: %s", ErrBadTime, why)
	}
	// full-date "T" partial-time: 19 bytes at least, then fraction, offset.
	if len(s) < len("2006-01-02T15:04:05Z") {
		return bad("too short for 2006-01-02T15:04:05Z")
	}
	num := func(i, n int) int { // n ASCII digits at s[i:], -1 if not
		v := 0
		for j := i; j < i+n; j++ {
			c := s[j]
			if c < '0' || c > '9' {
				return -1
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	year, month, day := num(0, 4), num(5, 2), num(8, 2)
	hour, minute, sec := num(11, 2), num(14, 2), num(17, 2)
	if year < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || sec < 0 ||
		s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':' {
		return bad("want the form 2006-01-02T15:04:05Z")
	}
	switch s[10] {
	case 'T', 't', ' ':
	default:
		return bad("want T between the date and the time")
	}
	if month < 1 || month > 12 {
		return bad("month out of range")
	}
	if day < 1 || day > time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day() {
		return bad("day out of range")
	}
	if hour > 23 || minute > 59 || sec > 60 {
		return bad("time of day out of range")
	}
	rest := s[19:]
	nanos := 0
	if rest != "" && rest[0] == '.' {
		i := 1
		for ; i < len(rest) && rest[i] >= '0' && rest[i] <= '9'; i++ {
			if i <= 9 {
				nanos = nanos*10 + int(rest[i]-'0')
			}
		}
		if i == 1 {
			return bad("no digits after the decimal point")
		}
		for d := i - 1; d < 9; d++ {
			nanos *= 10
		}
		rest = rest[i:]
	}
	var offset int // seconds east of UTC
	switch {
	case rest == "Z" || rest == "z":
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, om := digits2(rest[1:3]), digits2(rest[4:6])
		if oh < 0 || om < 0 || oh > 23 || om > 59 {
			return bad("offset out of range: want +hh:mm with hh 00-23, mm 00-59")
		}
		offset = oh*3600 + om*60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return bad("want Z or an offset +hh:mm after the time")
	}
	zone := time.UTC
	if offset != 0 {
		zone = time.FixedZone("", offset)
	}
	if sec < 60 {
		return time.Date(year, time.Month(month), day, hour, minute, sec, nanos, zone), nil
	}
	// A leap second is 23:59:60 UTC, at the end of a month.
	t59 := time.Date(year, time.Month(month), day, hour, minute, 59, 0, zone).UTC()
	if t59.Hour() != 23 || t59.Minute() != 59 || t59.AddDate(0, 0, 1).Day() != 1 {
		return bad("second 60 is a leap second, only at 23:59:60 UTC on the last day of a month")
	}
	return t59.Add(time.Second + time.Duration(nanos)).In(zone), nil
}

// digits2 reads two ASCII digits, -1 if they are not.
func digits2(s string) int {
	if s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9' {
		return -1
	}
	return int(s[0]-'0')*10 + int(s[1]-'0')
}
