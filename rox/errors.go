package rox

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"time"
)

// ErrorKind classifies a failed Send.
type ErrorKind int

const (
	// KindTransport: the request did not complete (connection refused or
	// reset, TLS, DNS, the caller's context cancelled). Retryable.
	KindTransport ErrorKind = iota + 1
	// KindTimeout: the request or the caller's deadline ran out. Retryable,
	// but ambiguous: ROX may have accepted the request.
	KindTimeout
	// KindHTTP: ROX answered with a non-2xx status. StatusCode says which;
	// 429 and 5xx are retryable, other 4xx are not.
	KindHTTP
	// KindAuth: top-level Result 2001..2010. Not retryable: the
	// credentials must change.
	KindAuth
	// KindRejected: top-level Result 2011..2100 or any other code but 0000.
	// Sending errors are retryable unless configured permanent; unknown
	// codes are not.
	KindRejected
	// KindDecode: a 2xx answer whose body could not be read as a
	// ROX_API_Response, or whose results do not match the recipients sent.
	// Not retryable: ROX may have accepted the request.
	KindDecode
	// KindInvalid: the request failed Validate and was not sent.
	KindInvalid
)

func (k ErrorKind) String() string {
	switch k {
	case KindTransport:
		return "transport"
	case KindTimeout:
		return "timeout"
	case KindHTTP:
		return "http"
	case KindAuth:
		return "auth"
	case KindRejected:
		return "rejected"
	case KindDecode:
		return "decode"
	case KindInvalid:
		return "invalid"
	default:
		return "kind(" + strconv.Itoa(int(k)) + ")"
	}
}

// Error is every error Client.Send returns. Its message never contains a
// request body or the password.
type Error struct {
	Kind ErrorKind
	// StatusCode is the HTTP status, when ROX answered.
	StatusCode int
	// Code and Text are the top-level Result and ResultText (KindAuth,
	// KindRejected).
	Code Code
	Text string
	// RetryAfter is the server's Retry-After on 429/503, 0 when absent.
	RetryAfter time.Duration
	// Err is the underlying error, if any (transport error, *FieldError,
	// context error).
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("rox: send: ")
	b.WriteString(e.Kind.String())
	if e.StatusCode != 0 {
		b.WriteString(": HTTP ")
		b.WriteString(strconv.Itoa(e.StatusCode))
	}
	if e.Code != "" {
		b.WriteString(": result ")
		b.WriteString(string(e.Code))
	}
	if e.Text != "" {
		b.WriteString(": ")
		b.WriteString(e.Text)
	}
	if e.RetryAfter > 0 {
		b.WriteString(" (retry after ")
		b.WriteString(e.RetryAfter.String())
		b.WriteString(")")
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Policy decides which failures are worth retrying. The document does not
// say which sending errors (2011..2100) are transient, so all are retried
// except the codes configured permanent. The zero Policy has no permanent
// codes.
type Policy struct {
	permanent map[Code]struct{}
}

// NewPolicy returns a Policy treating the given sending-error codes as
// permanent.
func NewPolicy(permanent []Code) Policy {
	p := Policy{permanent: make(map[Code]struct{}, len(permanent))}
	for _, c := range permanent {
		p.permanent[c] = struct{}{}
	}
	return p
}

// Permanent reports whether c was configured permanent.
func (p Policy) Permanent(c Code) bool {
	_, ok := p.permanent[c]
	return ok
}

// RetryableCode says whether a per-recipient result is worth retrying:
// sending errors (2011..2100) unless configured permanent. Success,
// authentication and unknown codes are not.
func (p Policy) RetryableCode(c Code) bool {
	return c.Class() == ClassSending && !p.Permanent(c)
}

// Retryable says whether a failed Send is worth retrying: transport errors,
// timeouts, HTTP 429 and 5xx, and top-level sending errors unless permanent.
// Authentication errors, invalid requests, other HTTP 4xx, unknown result
// codes and unreadable 2xx bodies (ambiguous: ROX may have accepted the
// request) are not. An error that is not an *Error is retryable when it is a
// network error or a context deadline; nil is not retryable.
func (p Policy) Retryable(err error) bool {
	if err == nil {
		return false
	}
	var e *Error
	if !errors.As(err, &e) {
		var ne net.Error
		return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne)
	}
	switch e.Kind {
	case KindTransport, KindTimeout:
		return true
	case KindHTTP:
		return e.StatusCode == 429 || (e.StatusCode >= 500 && e.StatusCode <= 599)
	case KindRejected:
		return p.RetryableCode(e.Code)
	default:
		return false
	}
}

// IsAuth reports whether err is a ROX authentication error (top-level Result
// 2001..2010).
func IsAuth(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == KindAuth
}

// KindOf returns the kind of err when it is (or wraps) an *Error, else 0.
func KindOf(err error) ErrorKind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

// RetryAfterOf returns the server's Retry-After carried by err, if any.
func RetryAfterOf(err error) (time.Duration, bool) {
	var e *Error
	if errors.As(err, &e) && e.RetryAfter > 0 {
		return e.RetryAfter, true
	}
	return 0, false
}
