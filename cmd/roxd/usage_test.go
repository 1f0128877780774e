package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// A usage error that names what is wrong is printed (it exited 2 in
// silence: `roxd bench whole -n 0` said nothing); a bad flag is printed by
// the flag package (to os.Stderr), not a second time by run.
func TestUsageErrorsArePrinted(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "whole", "-n", "0"}, "-n, -bare-n"},
		{[]string{"bench", "whole", "-redis-keys", "-1"}, "-redis-keys must not be negative"},
		{[]string{"bench", "whole", "-mode", "bogus"}, `-mode "bogus"`},
		{[]string{"status"}, "want exactly one message id"},
		{[]string{"send", "--to", "+61400000000", "--text", "x", "extra"}, `unexpected argument "extra"`},
	} {
		var stderr bytes.Buffer
		if code := run(c.args, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2", c.args, code)
		}
		if !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: stderr %q lacks %q", c.args, stderr.String(), c.want)
		}
	}
	var stderr bytes.Buffer
	if code := run([]string{"bench", "whole", "-nosuchflag"}, &stderr); code != 2 {
		t.Errorf("bad flag: exit %d, want 2", code)
	}
	if strings.Contains(stderr.String(), "nosuchflag") {
		t.Errorf("bad flag printed again by run: %q", stderr.String())
	}
}

// TestTailUsageErrors: each wrong use of `roxd tail` exits 2 saying what
// is wrong, before any Redis is reached (REDIS_URL points nowhere): it
// used to print the bare usage for a missing or unknown stream, exit 1 for
// --count -1, and pass a bad --from to Redis ("ERR Invalid stream ID").
func TestTailUsageErrors(t *testing.T) {
	t.Setenv("REDIS_URL", "redis://127.0.0.1:1/0")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"tail"}, "want receipts or replies"},
		{[]string{"tail", "foo"}, `"foo": want receipts or replies`},
		{[]string{"tail", "receipts", "extra"}, `unexpected argument "extra"`},
		{[]string{"tail", "receipts", "--count", "-1"}, "--count -1"},
		{[]string{"tail", "receipts", "--from", "abc"}, `--from "abc"`},
		{[]string{"tail", "replies", "--from", "1-2-3"}, `--from "1-2-3"`},
		{[]string{"tail", "replies", "--from", ""}, `--from ""`},
		{[]string{"tail", "replies", "--from", "99999999999999999999"}, `--from "99999999999999999999"`},
	} {
		var stderr bytes.Buffer
		if code := run(c.args, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", c.args, code, stderr.String())
		}
		if !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: stderr %q lacks %q", c.args, stderr.String(), c.want)
		}
	}
	for _, from := range []string{"$", "0", "0-0", "1700000000000", "1700000000000-5"} {
		if err := checkStreamID(from); err != nil {
			t.Errorf("--from %q refused: %v", from, err)
		}
	}
}

// TestSendMetadataKeyTwice: `--metadata k=v --metadata k=w` sent k=w and
// dropped k=v without a word, as the API did with a key given twice; a key
// given twice is a usage error naming it, and nothing is sent (the API URL
// points nowhere).
func TestSendMetadataKeyTwice(t *testing.T) {
	t.Setenv("ROXD_API_URL", "http://127.0.0.1:1")
	t.Setenv("ROXD_API_TOKEN", "0123456789abcdef0123")
	var stdout, stderr bytes.Buffer
	args := []string{"--to", "+61400000000", "--text", "x", "--metadata", "order=1", "--metadata", "order=2"}
	err := runSend(context.Background(), args, &stdout, &stderr)
	if !errors.Is(err, errUsage) {
		t.Errorf("err %v, want a usage error", err)
	}
	if want := `key "order" given twice`; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q lacks %q", stderr.String(), want)
	}
}

// TestChaosZeroFlags: chaos.Config reads 0 as "the default", so
// `roxd chaos --messages 0` ran 20,000 messages and `--latency 0` a
// simulator answering in 200ms. A flag given 0 (or less) where the run
// would put its default is a usage error naming the flag; nothing starts
// (the context is cancelled beforehand, so a run would end at once with
// another error).
func TestChaosZeroFlags(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range [][]string{
		{"--messages", "0"}, {"--batch", "0"}, {"--rate", "0"}, {"--failovers", "0"},
		{"--latency", "0"}, {"--jitter", "0s"}, {"--receipt-delay", "0"}, {"--write-block", "0"},
		{"--settle", "0"}, {"--latency", "-1s"}, {"--settle", "-5m"},
	} {
		err := runChaos(ctx, c)
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), c[0]+" "+c[1]) {
			t.Errorf("chaos %v: %v, want a usage error naming %s %s", c, err, c[0], c[1])
		}
	}
}

// TestAPIURLPasswordNotShown: a password in --api / ROXD_API_URL (basic
// auth in front of the API) was printed in every error of send, status,
// cancel and suppress: "GET http://bob:<password>@host/v1/...", and a URL
// that did not parse was quoted whole. net/http itself shows it as ***; so
// does roxd now, and a URL that does not parse is not quoted.
func TestAPIURLPasswordNotShown(t *testing.T) {
	const secret = "s3cretpw"
	t.Setenv("ROXD_API_TOKEN", "0123456789abcdef0123")
	for _, u := range []string{
		"http://bob:" + secret + "@127.0.0.1:1",
		"http://bob:" + secret + "@127.0.0.1:1/%zz",
		"http://bob:s3cret " + secret + "@127.0.0.1:1",
		"ftp://bob:" + secret + "@127.0.0.1:1",
	} {
		t.Setenv("ROXD_API_URL", u)
		var stdout, stderr bytes.Buffer
		err := runStatus(context.Background(), []string{"x"}, &stdout, &stderr)
		if err == nil || strings.Contains(err.Error(), secret) || strings.Contains(stderr.String(), secret) {
			t.Errorf("%s: error %v, stderr %q: want an error without the password", u, err, stderr.String())
		}
	}
	// The dashboard link `roxd status` prints carries no credentials.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"id":"x","status":"queued","task":{"id":"t1","queue":"roxd"}}`))
	}))
	defer srv.Close()
	t.Setenv("ROXD_API_URL", strings.Replace(srv.URL, "http://", "http://bob:"+secret+"@", 1))
	var stdout, stderr bytes.Buffer
	if err := runStatus(context.Background(), []string{"x"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if want := "dashboard: " + srv.URL + "/monitor/queues/roxd/tasks/t1"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
}

// TestEmptyOrDotArguments: an id or number that is empty, blank, "." or
// ".." reached the API as a path that is no message's or number's
// (/v1/messages/, /v1/suppressions/., ...), and the operator read "no such
// endpoint (HTTP 404)" or "GET is not allowed here; use POST (HTTP 405)".
// It is a usage error (exit 2) saying what is wrong, and nothing is sent.
func TestEmptyOrDotArguments(t *testing.T) {
	srv, calls := countingServer(t)
	t.Setenv("ROXD_API_URL", srv.URL)
	t.Setenv("ROXD_API_TOKEN", "0123456789abcdef0123")
	for _, arg := range []string{"", " ", "\t", ".", ".."} {
		for _, args := range [][]string{
			{"status", arg}, {"cancel", arg},
			{"suppress", "add", arg}, {"suppress", "remove", arg}, {"suppress", "check", arg},
		} {
			what := "message id"
			if args[0] == "suppress" {
				what = "number"
			}
			var stderr bytes.Buffer
			if code := run(args, &stderr); code != 2 {
				t.Errorf("%q: exit %d, want 2 (stderr %q)", args, code, stderr.String())
			}
			if !strings.Contains(stderr.String(), what) || strings.Contains(stderr.String(), "HTTP") {
				t.Errorf("%q: stderr %q, want a usage error about the %s", args, stderr.String(), what)
			}
		}
	}
	if *calls != 0 {
		t.Errorf("%d requests reached the API", *calls)
	}
}

// TestEmptyErrorAnswer: an error answer with no body (a proxy's 502, a
// load balancer's 404) printed "roxd status:  (HTTP 502)": nothing to go
// on. The status text stands in for the missing message.
func TestEmptyErrorAnswer(t *testing.T) {
	for _, code := range []int{http.StatusBadGateway, http.StatusNotFound, http.StatusServiceUnavailable} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(code)
		}))
		t.Setenv("ROXD_API_URL", srv.URL)
		t.Setenv("ROXD_API_TOKEN", "0123456789abcdef0123")
		var stdout, stderr bytes.Buffer
		err := runStatus(context.Background(), []string{"x"}, &stdout, &stderr)
		srv.Close()
		if want := http.StatusText(code) + " (HTTP " + strconv.Itoa(code) + ")"; err == nil || err.Error() != want {
			t.Errorf("HTTP %d with no body: %v, want %q", code, err, want)
		}
	}
}

// TestAnswerPrintedOnce: the API ends its JSON with a newline (Go's
// json.Encoder), json.Indent keeps trailing white space, and one more
// newline was added: every answer of status, cancel, suppress and send
// ended in a blank line. Stdout is the indented document and one newline.
func TestAnswerPrintedOnce(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{\"id\":\"x\",\"status\":\"queued\"}\n"))
	}))
	defer srv.Close()
	t.Setenv("ROXD_API_URL", srv.URL)
	t.Setenv("ROXD_API_TOKEN", "0123456789abcdef0123")
	want := "{\n  \"id\": \"x\",\n  \"status\": \"queued\"\n}\n"
	for name, f := range map[string]func() (string, error){
		"status": func() (string, error) {
			var out, errb bytes.Buffer
			err := runStatus(context.Background(), []string{"x"}, &out, &errb)
			return out.String(), err
		},
		"cancel": func() (string, error) {
			var out, errb bytes.Buffer
			err := runCancel(context.Background(), []string{"x"}, &out, &errb)
			return out.String(), err
		},
		"suppress check": func() (string, error) {
			var out, errb bytes.Buffer
			err := runSuppress(context.Background(), []string{"check", "0400000000"}, &out, &errb)
			return out.String(), err
		},
		"send": func() (string, error) {
			var out, errb bytes.Buffer
			err := runSend(context.Background(), []string{"--to", "0400000000", "--text", "x"}, &out, &errb)
			return out.String(), err
		},
	} {
		got, err := f()
		if err != nil || got != want {
			t.Errorf("%s: %q, %v; want %q", name, got, err, want)
		}
	}
}

// TestAPIURLQueryOrFragment: a query or fragment in --api / ROXD_API_URL
// was kept in front of the API path ("http://host/?x=1/v1/messages/ID"),
// so every command asked for "/" and printed "404 page not found". It is
// refused naming the variable, as ROXD_PUBLIC_URL's are, and nothing is
// sent.
func TestAPIURLQueryOrFragment(t *testing.T) {
	srv, calls := countingServer(t)
	t.Setenv("ROXD_API_TOKEN", "0123456789abcdef0123")
	for _, u := range []string{srv.URL + "/?x=1", srv.URL + "?x=1", srv.URL + "/#top", srv.URL + "?", srv.URL + "/api?x=1"} {
		t.Setenv("ROXD_API_URL", u)
		var stdout, stderr bytes.Buffer
		err := runStatus(context.Background(), []string{"x"}, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), "ROXD_API_URL") || !strings.Contains(err.Error(), "query or fragment") {
			t.Errorf("ROXD_API_URL=%s: %v; want an error naming ROXD_API_URL", u, err)
		}
		t.Setenv("ROXD_API_URL", "")
		err = runStatus(context.Background(), []string{"x", "--api", u}, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), "--api") || !strings.Contains(err.Error(), "query or fragment") {
			t.Errorf("--api %s: %v; want an error naming --api", u, err)
		}
	}
	if *calls != 0 {
		t.Errorf("%d requests reached the server", *calls)
	}
}

// countingServer is an API that answers every request 404 and counts them
// (*calls): a usage error must send nothing.
func countingServer(t *testing.T) (*httptest.Server, *int) {
	t.Helper()
	var calls int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		w.WriteHeader(http.StatusNotFound)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}
