package rox

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Client defaults.
const (
	DefaultProduct = "roxd"
	DefaultTimeout = 30 * time.Second
	// MaxResponseBytes bounds how much of a response body Send reads. A
	// 500-recipient response is about 100 KB.
	MaxResponseBytes = 4 << 20
	// maxErrorBodyBytes bounds the piece of a non-2xx body kept in Error.Text.
	maxErrorBodyBytes = 256
	// MaxIdleConnsPerHost is the keep-alive pool per host of the default
	// transport: above the worker's default send concurrency (16).
	MaxIdleConnsPerHost = 64
)

// ClientConfig configures a Client. Zero fields take the defaults above
// (URL DefaultEndpoint, Product DefaultProduct, Timeout DefaultTimeout, a
// keep-alive transport of our own). Password is a secret: String and
// GoString redact it.
type ClientConfig struct {
	URL       string
	AccountID string
	Username  string
	Password  string
	Product   string
	// Timeout bounds one Send, from dialing to the last byte of the answer.
	Timeout time.Duration
	// Transport, if set, replaces the default keep-alive transport (tests,
	// proxies).
	Transport http.RoundTripper
}

// WithDefaults returns c with zero fields set to their defaults (the
// Transport stays nil: NewClient builds one).
func (c ClientConfig) WithDefaults() ClientConfig {
	if c.URL == "" {
		c.URL = DefaultEndpoint
	}
	if c.Product == "" {
		c.Product = DefaultProduct
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	return c
}

// Validate checks c (after defaults) and names the field at fault. It never
// quotes the password.
func (c ClientConfig) Validate() error {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fieldErr("ClientConfig.URL", "not an absolute http(s) URL")
	}
	if u.User != nil {
		return fieldErr("ClientConfig.URL", "must not carry credentials")
	}
	if c.AccountID == "" {
		return fieldErr("ClientConfig.AccountID", "missing")
	}
	if c.Username == "" {
		return fieldErr("ClientConfig.Username", "missing")
	}
	if c.Password == "" {
		return fieldErr("ClientConfig.Password", "missing")
	}
	if c.Product == "" {
		return fieldErr("ClientConfig.Product", "missing")
	}
	if c.Timeout <= 0 {
		return fieldErr("ClientConfig.Timeout", "must be > 0, is %s", c.Timeout)
	}
	return nil
}

// String keeps the password out of %v and %+v.
func (c ClientConfig) String() string {
	return "{URL:" + c.URL + " AccountID:" + c.AccountID + " Username:" + c.Username +
		" Password:[REDACTED] Product:" + c.Product + " Timeout:" + c.Timeout.String() + "}"
}

// GoString keeps the password out of %#v.
func (c ClientConfig) GoString() string { return "rox.ClientConfig" + c.String() }

// NewTransport returns the keep-alive transport a Client uses by default.
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          2 * MaxIdleConnsPerHost,
		MaxIdleConnsPerHost:   MaxIdleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// Client sends requests to ROX. It is safe for concurrent use.
type Client struct {
	url     string
	product string
	sender  Sender
	timeout time.Duration
	hc      *http.Client
}

// String keeps the password out of %v and %+v of a Client.
func (c *Client) String() string {
	return "rox.Client{URL:" + c.url + " AccountID:" + c.sender.AccountID + " Username:" + c.sender.Username + " Password:[REDACTED]}"
}

// GoString keeps the password out of %#v of a Client.
func (c *Client) GoString() string { return c.String() }

// NewClient validates cfg (with defaults) and returns a Client.
func NewClient(cfg ClientConfig) (*Client, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tr := cfg.Transport
	if tr == nil {
		tr = NewTransport()
	}
	return &Client{
		url:     cfg.URL,
		product: cfg.Product,
		sender:  Sender{AccountID: cfg.AccountID, Username: cfg.Username, Password: cfg.Password},
		timeout: cfg.Timeout,
		hc: &http.Client{
			Transport: tr,
			// ROX does not redirect; following one would resend the
			// password to wherever it points.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// Send posts one ROX_API_Request carrying m (Name, Version, Product and
// Sender are filled in; Count is len(m.Recipients)) and returns the decoded
// response.
//
// Every failure is an *Error (see ErrorKind). When ROX answers with a
// top-level Result other than "0000", Send returns the decoded response AND
// an *Error of kind KindAuth or KindRejected. A successful response carries
// exactly one result per recipient sent, Results[i] answering
// m.Recipients[i]; per-recipient failures are not an error of Send: read
// Results[i].Result.
func (c *Client) Send(ctx context.Context, m Messages) (*SendResponse, error) {
	// Secrets that must not leave in an error: the password, and the
	// callback URLs (they carry the callback token).
	secrets := []string{c.sender.Password, m.ReceiptCallbackURL, m.ReplyCallbackURL}
	fail := func(e *Error) *Error { return scrub(e, secrets) }
	m.Count = len(m.Recipients)
	req := SendRequest{Name: NameRequest, Version: Version, Product: c.product, Sender: c.sender, Messages: m}
	if err := req.Validate(); err != nil {
		return nil, fail(&Error{Kind: KindInvalid, Err: err})
	}
	body, err := EncodeSendRequest(&req)
	if err != nil {
		return nil, fail(&Error{Kind: KindInvalid, Err: err})
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, fail(&Error{Kind: KindTransport, Err: err})
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(hreq)
	if err != nil {
		return nil, fail(transportError(ctx, err))
	}
	defer resp.Body.Close()

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := &Error{Kind: KindHTTP, StatusCode: resp.StatusCode}
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
			e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		}
		// Read (and so drain, for keep-alive) up to 64 KiB, scrub the
		// password from all of it, and only then cut it short: a cut
		// first could keep half a password.
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if bytes.Contains(body, []byte(NameRequest)) {
			e.Text = "[the body echoes the request: not shown]"
		} else {
			e.Text = truncate(printable([]byte(redactAll(string(body), secrets))), maxErrorBodyBytes)
		}
		return nil, fail(e)
	}

	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		if e := transportError(ctx, err); e.Kind == KindTimeout || ctx.Err() != nil {
			return nil, fail(e)
		}
		return nil, fail(&Error{Kind: KindDecode, StatusCode: resp.StatusCode, Err: err})
	}
	if len(raw) > MaxResponseBytes {
		return nil, fail(&Error{Kind: KindDecode, StatusCode: resp.StatusCode,
			Err: errors.New("response body larger than " + strconv.Itoa(MaxResponseBytes) + " bytes")})
	}
	out, err := DecodeSendResponse(raw)
	if err != nil {
		return nil, fail(&Error{Kind: KindDecode, StatusCode: resp.StatusCode, Err: err})
	}
	if out.Result == "" {
		return nil, fail(&Error{Kind: KindDecode, StatusCode: resp.StatusCode, Err: fieldErr("Result", "missing")})
	}
	out.ResultText = redactAll(out.ResultText, secrets)
	if !out.Result.OK() {
		kind := KindRejected
		if out.Result.Class() == ClassAuth {
			kind = KindAuth
		}
		return out, fail(&Error{Kind: kind, StatusCode: resp.StatusCode, Code: out.Result, Text: out.ResultText})
	}
	if n := len(out.Messages.Results); n != len(m.Recipients) {
		return nil, fail(&Error{Kind: KindDecode, StatusCode: resp.StatusCode,
			Err: fieldErr("Messages.Count", "%d results for %d recipients sent", n, len(m.Recipients))})
	}
	return out, nil
}

// transportError classifies an error of http.Client.Do or of reading the
// body: a deadline (ours or the caller's) or a network timeout is
// KindTimeout, anything else KindTransport.
func transportError(ctx context.Context, err error) *Error {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout()) {
		return &Error{Kind: KindTimeout, Err: err}
	}
	return &Error{Kind: KindTransport, Err: err}
}

// scrub removes every secret from e's text and wrapped error before e
// leaves the package: a misbehaving server might echo the request back.
func scrub(e *Error, secrets []string) *Error {
	e.Text = redactAll(e.Text, secrets)
	if e.Err != nil {
		msg := e.Err.Error()
		if clean := redactAll(msg, secrets); clean != msg {
			e.Err = &redactedError{msg: clean, err: e.Err}
		}
	}
	return e
}

// redactAll replaces each non-empty secret in s, raw or JSON-escaped.
func redactAll(s string, secrets []string) string {
	for _, secret := range secrets {
		if secret == "" {
			continue
		}
		s = strings.ReplaceAll(s, secret, "[REDACTED]")
		if esc := jsonEscaped(secret); esc != secret {
			s = strings.ReplaceAll(s, esc, "[REDACTED]")
		}
	}
	return s
}

func jsonEscaped(s string) string {
	b := appendString(nil, s)
	return string(b[1 : len(b)-1])
}

// redactedError carries a scrubbed message. It answers errors.Is for the
// original chain (context.Canceled, ...) but does not unwrap to it, so the
// original message cannot be printed through it.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string        { return e.msg }
func (e *redactedError) Is(target error) bool { return errors.Is(e.err, target) }

// printable keeps a short, single-line, valid UTF-8 piece of a body.
func printable(b []byte) string {
	s := strings.ToValidUTF8(string(b), "?")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// parseRetryAfter reads Retry-After as seconds or an HTTP date; 0 when
// absent, unreadable or in the past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(24*time.Hour/time.Second) {
			secs = int64(24 * time.Hour / time.Second)
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			// Never shorter than asked: round up to the second.
			return (d + time.Second - 1).Truncate(time.Second)
		}
	}
	return 0
}
