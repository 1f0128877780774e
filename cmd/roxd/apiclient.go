package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Environment and defaults of the API client commands (send, status,
// cancel, suppress).
const (
	envAPIURL       = "ROXD_API_URL"
	envAPIToken     = "ROXD_API_TOKEN"
	defaultAPIURL   = "http://127.0.0.1:8080"
	apiCallTimeout  = 30 * time.Second
	apiMaxReplySize = 64 << 20
)

// apiClient is the small HTTP client of the CLI commands that talk to the
// API of `roxd serve` (producer/httpapi).
type apiClient struct {
	base string
	// shown is base with a password in it redacted, for errors; public is
	// base without user name and password, for links printed to people.
	shown, public string
	token         string
	hc            *http.Client
}

// apiFlags registers --api and --token on fs; the returned function builds
// the client once fs is parsed.
func apiFlags(fs *flag.FlagSet) func() (*apiClient, error) {
	base := envString(fs, "api", envAPIURL, defaultAPIURL, "base URL of the roxd API", false)
	token := envString(fs, "token", envAPIToken, "", "API bearer token", true)
	return func() (*apiClient, error) {
		t, err := token()
		if err != nil {
			return nil, err
		}
		if t == "" {
			return nil, errors.New("no API token: set --token or " + envAPIToken)
		}
		b, err := base()
		if err != nil {
			return nil, err
		}
		u := strings.TrimRight(b, "/")
		// A password in the URL (basic auth in front of the API) never
		// appears in an error: the URL is shown redacted, or not at all
		// when it does not parse (url.Parse's error would quote it).
		pu, err := url.Parse(u)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return nil, fmt.Errorf("--api / %s: not a URL: %v", envAPIURL, err)
		}
		if pu.Scheme != "http" && pu.Scheme != "https" || pu.Host == "" {
			return nil, fmt.Errorf("--api / %s %q: want an http(s) URL", envAPIURL, pu.Redacted())
		}
		// The API paths are appended to the URL: a query or fragment
		// would stand in front of them ("http://host/?x=1/v1/messages/ID").
		// Neither is shown: a query may hold a credential.
		if pu.RawQuery != "" || pu.ForceQuery || pu.Fragment != "" || strings.Contains(u, "#") {
			bare := *pu
			bare.RawQuery, bare.ForceQuery, bare.Fragment, bare.RawFragment = "", false, "", ""
			return nil, fmt.Errorf("--api / %s %q: want an http(s) URL without query or fragment", envAPIURL, bare.Redacted())
		}
		c := &apiClient{base: u, shown: pu.Redacted(), token: t, hc: &http.Client{Timeout: apiCallTimeout}}
		pu.User = nil
		c.public = pu.String()
		return c, nil
	}
}

// apiCallError is an error answer of the API.
type apiCallError struct {
	Status  int
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field"`
}

func (e *apiCallError) Error() string {
	s := e.Message
	if e.Field != "" {
		s = e.Field + ": " + s
	}
	if e.Code != "" {
		s += " (" + e.Code + ", HTTP " + fmt.Sprint(e.Status) + ")"
	} else {
		s += " (HTTP " + fmt.Sprint(e.Status) + ")"
	}
	return s
}

// call sends body (JSON-encoded when not nil) and returns the answer's
// body; an answer other than 2xx becomes an *apiCallError carrying the API's
// message. The token never appears in an error.
func (c *apiClient) call(ctx context.Context, method, path string, body any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which may hold a password
		}
		return nil, fmt.Errorf("%s %s: %w", method, c.shown+path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, c.shown+path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, apiMaxReplySize))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", method, c.shown+path, err)
	}
	if res.StatusCode/100 != 2 {
		var eb struct {
			Error apiCallError `json:"error"`
		}
		if json.Unmarshal(raw, &eb) != nil || eb.Error.Message == "" {
			msg := strings.TrimSpace(string(raw))
			if len(msg) > 200 {
				msg = msg[:200] + "..."
			}
			if msg == "" { // a proxy's bare 502, say
				msg = http.StatusText(res.StatusCode)
			}
			eb.Error.Message = msg
		}
		eb.Error.Status = res.StatusCode
		return raw, &eb.Error
	}
	return raw, nil
}

// apiPrintJSON writes raw JSON indented and ended by one newline, or as
// is when it is not JSON.
func apiPrintJSON(w io.Writer, raw []byte) error {
	var buf bytes.Buffer
	// json.Indent keeps trailing white space: the API's answer ends in a
	// newline already.
	if err := json.Indent(&buf, bytes.TrimRight(raw, " \t\r\n"), "", "  "); err != nil {
		_, err = w.Write(raw)
		return err
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// apiParseArgs parses flags that may come before or after positional
// arguments, and returns the positional ones.
func apiParseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// apiFlagSet returns a flag set that reports errors (not exits) and
// prints its usage to stderr.
func apiFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: roxd %s\n\nflags:\n", usage)
		fs.PrintDefaults()
	}
	return fs
}
