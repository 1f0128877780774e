package rox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"
)

func TestCodeClass(t *testing.T) {
	tests := []struct {
		code Code
		want Class
	}{
		{"0000", ClassSuccess},
		{"2000", ClassUnknown},
		{"2001", ClassAuth},
		{"2010", ClassAuth},
		{"2011", ClassSending},
		{"2050", ClassSending},
		{"2100", ClassSending},
		{"2101", ClassUnknown},
		{"1000", ClassUnknown},
		{"", ClassUnknown},
		{"0", ClassUnknown},
		{"+201", ClassUnknown},
		{"20110", ClassUnknown},
		{"abcd", ClassUnknown},
	}
	for _, tt := range tests {
		if got := tt.code.Class(); got != tt.want {
			t.Errorf("Code(%q).Class() = %v, want %v", tt.code, got, tt.want)
		}
	}
	if !CodeOK.OK() || Code("2011").OK() {
		t.Error("OK() wrong")
	}
}

func TestRetryableCode(t *testing.T) {
	p := NewPolicy([]Code{"2015", "2099"})
	tests := []struct {
		code Code
		want bool
	}{
		{"0000", false}, // success: nothing to retry
		{"2001", false}, // auth
		{"2010", false},
		{"2011", true}, // sending
		{"2100", true},
		{"2015", false}, // configured permanent
		{"2099", false},
		{"9999", false}, // unknown
		{"", false},
	}
	for _, tt := range tests {
		if got := p.RetryableCode(tt.code); got != tt.want {
			t.Errorf("RetryableCode(%q) = %v, want %v", tt.code, got, tt.want)
		}
	}
	var zero Policy
	if !zero.RetryableCode("2015") {
		t.Error("zero Policy should retry every sending error")
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestRetryable(t *testing.T) {
	p := NewPolicy([]Code{"2015"})
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"transport", &Error{Kind: KindTransport, Err: errors.New("connection refused")}, true},
		{"timeout", &Error{Kind: KindTimeout, Err: context.DeadlineExceeded}, true},
		{"http 429", &Error{Kind: KindHTTP, StatusCode: 429}, true},
		{"http 500", &Error{Kind: KindHTTP, StatusCode: 500}, true},
		{"http 503", &Error{Kind: KindHTTP, StatusCode: 503}, true},
		{"http 599", &Error{Kind: KindHTTP, StatusCode: 599}, true},
		{"http 400", &Error{Kind: KindHTTP, StatusCode: 400}, false},
		{"http 401", &Error{Kind: KindHTTP, StatusCode: 401}, false},
		{"http 404", &Error{Kind: KindHTTP, StatusCode: 404}, false},
		{"auth", &Error{Kind: KindAuth, Code: "2001"}, false},
		{"sending", &Error{Kind: KindRejected, Code: "2011"}, true},
		{"sending permanent", &Error{Kind: KindRejected, Code: "2015"}, false},
		{"rejected unknown code", &Error{Kind: KindRejected, Code: "9999"}, false},
		{"decode", &Error{Kind: KindDecode, StatusCode: 200}, false},
		{"invalid", &Error{Kind: KindInvalid, Err: fieldErr("Messages.1.DestTn", "bad")}, false},
		{"wrapped transport", fmt.Errorf("worker: %w", &Error{Kind: KindTransport}), true},
		{"bare deadline", context.DeadlineExceeded, true},
		{"bare net error", &net.OpError{Op: "dial", Err: timeoutErr{}}, true},
		{"bare other", errors.New("boom"), false},
	}
	for _, tt := range tests {
		if got := p.Retryable(tt.err); got != tt.want {
			t.Errorf("%s: Retryable(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

func TestIsAuthKindOfRetryAfter(t *testing.T) {
	auth := fmt.Errorf("x: %w", &Error{Kind: KindAuth, Code: "2003"})
	if !IsAuth(auth) || IsAuth(&Error{Kind: KindRejected, Code: "2011"}) || IsAuth(nil) {
		t.Error("IsAuth wrong")
	}
	if KindOf(auth) != KindAuth || KindOf(errors.New("x")) != 0 {
		t.Error("KindOf wrong")
	}
	d, ok := RetryAfterOf(&Error{Kind: KindHTTP, StatusCode: 429, RetryAfter: 3 * time.Second})
	if !ok || d != 3*time.Second {
		t.Errorf("RetryAfterOf = %v %v", d, ok)
	}
	if _, ok := RetryAfterOf(errors.New("x")); ok {
		t.Error("RetryAfterOf on plain error")
	}
}

func TestErrorUnwrapAndString(t *testing.T) {
	inner := context.Canceled
	e := &Error{Kind: KindTransport, Err: inner}
	if !errors.Is(e, context.Canceled) {
		t.Error("Unwrap lost context.Canceled")
	}
	e2 := &Error{Kind: KindHTTP, StatusCode: 503, RetryAfter: 2 * time.Second, Text: "busy"}
	if got, want := e2.Error(), "rox: send: http: HTTP 503: busy (retry after 2s)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	e3 := &Error{Kind: KindAuth, StatusCode: 200, Code: "2001", Text: "Invalid login"}
	if got, want := e3.Error(), "rox: send: auth: HTTP 200: result 2001: Invalid login"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	for k := KindTransport; k <= KindInvalid; k++ {
		if s := k.String(); s == "" || s[0] == 'k' {
			t.Errorf("kind %d has no name: %q", k, s)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"5", 5 * time.Second},
		{" 7 ", 7 * time.Second},
		{"0", 0},
		{"-3", 0},
		{"abc", 0},
		{"999999999", 24 * time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
