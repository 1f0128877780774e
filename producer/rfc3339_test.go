package producer

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestParseTimeForms: every form of RFC 3339's date-time (section 5.6):
// lower-case t and z (the example), fractional seconds of any
// length, numeric offsets including -00:00, a space for the T (section 5.6
// note), leap seconds.
func TestParseTimeForms(t *testing.T) {
	utc := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"2027-04-03t15:30:00z", utc("2027-04-03T15:30:00Z")},
		{"2027-04-03T15:30:00z", utc("2027-04-03T15:30:00Z")},
		{"2027-04-03t15:30:00Z", utc("2027-04-03T15:30:00Z")},
		{"2027-04-03 15:30:00Z", utc("2027-04-03T15:30:00Z")},
		{"2027-04-03T15:30:00.5Z", utc("2027-04-03T15:30:00.5Z")},
		{"2027-04-03T15:30:00.123456789Z", utc("2027-04-03T15:30:00.123456789Z")},
		{"2027-04-03T15:30:00.1234567891234z", utc("2027-04-03T15:30:00.123456789Z")},
		{"2027-04-03T15:30:00+10:00", utc("2027-04-03T05:30:00Z")},
		{"2027-04-03t15:30:00-05:30", utc("2027-04-03T21:00:00Z")},
		{"2027-04-03T15:30:00-00:00", utc("2027-04-03T15:30:00Z")},
		{"2027-04-03T15:30:00+23:59", utc("2027-04-02T15:31:00Z")},
		{"2027-02-28T23:59:59.999Z", utc("2027-02-28T23:59:59.999Z")},
		{"2028-02-29T00:00:00Z", utc("2028-02-29T00:00:00Z")},
		// Leap seconds: 23:59:60 UTC at the end of a month; read as the
		// next second.
		{"2016-12-31T23:59:60Z", utc("2017-01-01T00:00:00Z")},
		{"1990-12-31T15:59:60-08:00", utc("1991-01-01T00:00:00Z")},
		{"2027-06-30t23:59:60.5z", utc("2027-07-01T00:00:00.5Z")},
	} {
		got, err := ParseTime(tc.in)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "tomorrow", "2027-04-03", "15:30:00Z", "2027-04-03T15:30:00",
		"2027-04-03T15:30Z", "2027-4-03T15:30:00Z", "27-04-03T15:30:00Z", "2027-04-03T15:30:00+0100",
		"2027-04-03T15:30:00+01", "2027-04-03T15:30:00+24:00", "2027-04-03T15:30:00+01:60",
		"2027-04-03T15:30:00,5Z", "2027-04-03T15:30:00.Z", "2027-04-03T24:00:00Z", "2027-04-03T15:60:00Z",
		"2027-04-03T15:30:61Z", "2027-04-03T15:30:60Z", "2027-04-30T23:59:60+01:00", "2027-13-03T15:30:00Z",
		"2027-00-03T15:30:00Z", "2027-02-29T15:30:00Z", "2027-04-31T15:30:00Z", "2027-04-00T15:30:00Z",
		"2027-04-03X15:30:00Z", "2027-04-03T15:30:00ZZ", " 2027-04-03T15:30:00Z", "2027-04-03T15:30:00Z ",
		"2027-04-03T15:30:00 Z", "2027-04-03T15:30:00UTC", "２０２７-04-03T15:30:00Z", "2027-04-03T15:30:00\u2212" + "01:00",
		"+2027-04-03T15:30:00Z", "2027-04-03  15:30:00Z", "2027-04-03T15:30:00.５Z"} {
		if got, err := ParseTime(in); err == nil {
			t.Errorf("ParseTime(%q) = %v, want an error", in, got)
		}
	}
}

// rfc3339 is the grammar of RFC 3339 section 5.6 as a regular expression
// (ranges checked apart), the oracle of the fuzz target.
var rfc3339 = regexp.MustCompile(`^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|([+-])(\d{2}):(\d{2}))$`)

// FuzzParseTime compares ParseTime with the grammar and with Go's own
// parser on the upper-cased form: whatever matches the grammar with fields
// in range is accepted at the instant time.Parse gives, whatever does not
// is refused.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2027-04-03t15:30:00z", "2027-04-03T15:30:00.123+10:00", "2016-12-31T23:59:60Z",
		"2027-04-03 15:30:00-00:00", "2027-02-29T00:00:00Z", "2027-04-03T15:30:00+24:00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := ParseTime(in)
		m := rfc3339.FindStringSubmatch(in)
		if m == nil {
			if err == nil {
				t.Fatalf("ParseTime(%q) = %v, not RFC 3339", in, got)
			}
			return
		}
		var y, mo, d, h, mi, s, oh, om int
		fmt.Sscan(m[1], &y)
		fmt.Sscan(strings.TrimLeft(m[2], "0")+"0", &mo)
		mo /= 10
		for i, p := range []*int{&d, &h, &mi, &s, &oh, &om} {
			v := m[[]int{3, 4, 5, 6, 10, 11}[i]]
			if v != "" {
				fmt.Sscan(strings.TrimLeft(v, "0")+"0", p)
				*p /= 10
			}
		}
		daysIn := time.Date(y, time.Month(mo)+1, 0, 0, 0, 0, 0, time.UTC).Day()
		inRange := mo >= 1 && mo <= 12 && d >= 1 && d <= daysIn && h <= 23 && mi <= 59 && s <= 60 && oh <= 23 && om <= 59
		if !inRange {
			if err == nil {
				t.Fatalf("ParseTime(%q) = %v, fields out of range", in, got)
			}
			return
		}
		norm := strings.ToUpper(in[:10]) + "T" + strings.ToUpper(in[11:])
		if s == 60 {
			// A leap second: valid only as 23:59:60 UTC on a month's last day.
			if err == nil {
				u := got.UTC().Add(-time.Second)
				if u.Hour() != 23 || u.Minute() != 59 || u.Second() != 59 || u.AddDate(0, 0, 1).Day() != 1 {
					t.Fatalf("ParseTime(%q) = %v: not a leap second", in, got)
				}
			}
			return
		}
		want, perr := time.Parse(time.RFC3339Nano, norm)
		if perr != nil || err != nil || !got.Equal(want) {
			t.Fatalf("ParseTime(%q) = %v, %v; time.Parse(%q) = %v, %v", in, got, err, norm, want, perr)
		}
	})
}

// TestSendAtErrorsNameField: a refused time is a FieldError on send_at.
func TestSendAtErrorsNameField(t *testing.T) {
	_, err := ParseTime("2027-04-03T15:30:00+24:00")
	if !errors.Is(err, ErrBadTime) {
		t.Errorf("err %v, want ErrBadTime", err)
	}
}

// TestParseTimeGenerated: every combination of separator, fraction and
// offset form gives the instant Go's parser gives for the canonical form.
func TestParseTimeGenerated(t *testing.T) {
	n := 0
	for _, date := range []string{"2027-04-03", "2026-12-31", "2028-02-29", "2027-01-01"} {
		for _, clock := range []string{"00:00:00", "15:30:07", "23:59:59"} {
			for _, sep := range []string{"T", "t", " "} {
				for _, frac := range []string{"", ".1", ".05", ".123456", ".123456789", ".1234567891", ".000000000001"} {
					for _, off := range []string{"Z", "z", "+00:00", "-00:00", "+05:45", "-12:00", "+14:00", "-09:30", "+23:59"} {
						in := date + sep + clock + frac + off
						want, err := time.Parse(time.RFC3339Nano, date+"T"+clock+frac+strings.ToUpper(off))
						if err != nil {
							t.Fatal(err)
						}
						got, err := ParseTime(in)
						if err != nil || !got.Equal(want) {
							t.Errorf("ParseTime(%q) = %v, %v; want %v", in, got, err, want)
						}
						n++
					}
				}
			}
		}
	}
	if n != 4*3*3*7*9 {
		t.Fatal(n)
	}
}
