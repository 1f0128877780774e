package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/internal/testutil"
	"github.com/redoxygen/roxd/producer"
	"github.com/redoxygen/roxd/producer/httpapi"
)

const cliTestToken = "cli-test-token"

type cliBundle struct {
	ctx context.Context
	p   *producer.Producer
	url string
}

func setupCLI(t *testing.T) *cliBundle {
	t.Helper()
	rdb := testutil.Redis(t)
	p, err := producer.New(rdb, producer.Config{Store: store.Config{Prefix: testutil.Name("cli")}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	h, err := httpapi.New(p, httpapi.Config{Token: cliTestToken}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		keys, _ := rdb.Keys(context.Background(), p.Store().Keys().Base()+"*").Result()
		if len(keys) > 0 {
			rdb.Del(context.Background(), keys...)
		}
	})
	t.Setenv(envAPIToken, "")
	t.Setenv(envAPIURL, "")
	return &cliBundle{ctx: context.Background(), p: p, url: srv.URL}
}

// run runs a command with --api and --token of the test server appended and
// decodes its JSON output.
func (b *cliBundle) run(t *testing.T, f func(context.Context, []string, io.Writer, io.Writer) error, args ...string) (map[string]any, error) {
	t.Helper()
	var out, errb bytes.Buffer
	args = append(args, "--api", b.url, "--token", cliTestToken)
	err := f(b.ctx, args, &out, &errb)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if jerr := json.Unmarshal(out.Bytes(), &m); jerr != nil {
		t.Fatalf("output is not JSON: %v\n%s", jerr, out.String())
	}
	return m, nil
}

func TestCLISendStatusCancel(t *testing.T) {
	b := setupCLI(t)
	at := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	out, err := b.run(t, runSend, "--to", "0412 345 678", "--text", "hi there", "--id", "c1",
		"--at", at, "--metadata", "order=42", "--metadata", "k=v=w")
	if err != nil {
		t.Fatal(err)
	}
	if out["id"] != "c1" || out["status"] != "scheduled" || out["to"] != "+61412345678" || out["segments"] != 1.0 {
		t.Errorf("send: %v", out)
	}
	rec, err := b.p.Get(b.ctx, "c1")
	if err != nil || rec.Metadata["order"] != "42" || rec.Metadata["k"] != "v=w" || rec.SendAt.IsZero() {
		t.Errorf("record %+v %v", rec, err)
	}
	// The id may come before the flags or after them.
	out, err = b.run(t, runStatus, "c1")
	if err != nil || out["status"] != "scheduled" || out["id"] != "c1" {
		t.Errorf("status: %v %v", out, err)
	}
	out, err = b.run(t, runCancel, "c1")
	if err != nil || out["status"] != "cancelled" {
		t.Errorf("cancel: %v %v", out, err)
	}
	if _, has := out["cancellable_until"]; has {
		t.Errorf("cancelled message still promises a cancel: %v", out)
	}
	// Cancel again: idempotent, cancelled again.
	out, err = b.run(t, runCancel, "c1")
	if err != nil || out["status"] != "cancelled" {
		t.Errorf("second cancel: %v %v", out, err)
	}
	// Cancel after hand-over: the API's 409 becomes the error.
	if _, err := b.run(t, runSend, "--to", "0412345678", "--text", "x", "--id", "c2"); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := b.p.Store().Transition(b.ctx, "c2", store.StatusSending, nil); !ok || err != nil {
		t.Fatal(ok, err)
	}
	_, err = b.run(t, runCancel, "c2")
	var ae *apiCallError
	if !errors.As(err, &ae) || ae.Status != 409 || !strings.Contains(err.Error(), "can no longer be cancelled") {
		t.Errorf("cancel after hand-over: %v", err)
	}
	// Numbers are bare, in send and in suppress: letters and extensions are
	// the API's 400 on the field.
	for _, to := range []string{"+6140000000O1", "0412 345 678 ext. 5", "0412345678;ext=5"} {
		_, err = b.run(t, runSend, "--to", to, "--text", "x")
		if !errors.As(err, &ae) || ae.Status != 400 || ae.Field != "to" {
			t.Errorf("send --to %q: %v", to, err)
		}
		_, err = b.run(t, runSuppress, "add", to)
		if !errors.As(err, &ae) || ae.Status != 400 || ae.Field != "number" {
			t.Errorf("suppress add %q: %v", to, err)
		}
	}
	// A bad number: the API's message, naming the field.
	_, err = b.run(t, runSend, "--to", "nope", "--text", "x")
	if !errors.As(err, &ae) || ae.Status != 400 || ae.Field != "to" || !strings.HasPrefix(err.Error(), "to: ") {
		t.Errorf("bad number: %v", err)
	}
	if _, err = b.run(t, runStatus, "missing"); !errors.As(err, &ae) || ae.Status != 404 {
		t.Errorf("unknown id: %v", err)
	}
	if _, err := b.run(t, runSend, "--to", "0412345678", "--text", "x", "--metadata", "novalue"); err == nil {
		t.Error("--metadata without = accepted")
	}
	if _, err := b.run(t, runStatus); !errors.Is(err, errUsage) {
		t.Errorf("status without id: %v", err)
	}
	if _, err := b.run(t, runSend, "extra"); !errors.Is(err, errUsage) {
		t.Errorf("send with an argument: %v", err)
	}
}

func TestCLIAuth(t *testing.T) {
	b := setupCLI(t)
	var out, errb bytes.Buffer
	// No token at all.
	err := runStatus(b.ctx, []string{"x", "--api", b.url}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), envAPIToken) {
		t.Errorf("no token: %v", err)
	}
	// A wrong one: 401, and the token is not echoed.
	err = runStatus(b.ctx, []string{"x", "--api", b.url, "--token", "wrong-secret"}, &out, &errb)
	var ae *apiCallError
	if !errors.As(err, &ae) || ae.Status != 401 || strings.Contains(err.Error(), "wrong-secret") {
		t.Errorf("wrong token: %v", err)
	}
	// From the environment.
	t.Setenv(envAPIToken, cliTestToken)
	t.Setenv(envAPIURL, b.url)
	err = runSend(b.ctx, []string{"--to", "+61412345678", "--text", "env"}, &out, &errb)
	if err != nil || !strings.Contains(out.String(), `"status": "queued"`) {
		t.Errorf("env token: %v %s", err, out.String())
	}
	// Nothing listening.
	err = runStatus(b.ctx, []string{"x", "--api", "http://127.0.0.1:1"}, &out, &errb)
	if err == nil {
		t.Error("no server: no error")
	}
}

func TestCLISuppress(t *testing.T) {
	b := setupCLI(t)
	out, err := b.run(t, runSuppress, "add", "0412 345 678")
	if err != nil || out["number"] != "+61412345678" || out["suppressed"] != true {
		t.Fatalf("add: %v %v", out, err)
	}
	for _, n := range []string{"+61400000001", "+61400000002", "+447911123456"} {
		if _, err := b.run(t, runSuppress, "add", n); err != nil {
			t.Fatal(err)
		}
	}
	out, err = b.run(t, runSuppress, "check", "+61412345678")
	if err != nil || out["suppressed"] != true {
		t.Errorf("check: %v %v", out, err)
	}
	out, err = b.run(t, runSuppress, "list", "--count", "1")
	if err != nil || out["count"] != 4.0 {
		t.Errorf("list: %v %v", out, err)
	}
	if nums, _ := out["numbers"].([]any); len(nums) != 4 || nums[0] != "+447911123456" {
		t.Errorf("list numbers: %v", out["numbers"])
	}
	out, err = b.run(t, runSuppress, "list", "--cursor", "0", "--count", "1000")
	if nums, _ := out["numbers"].([]any); err != nil || len(nums) != 4 || out["next_cursor"] != 0.0 {
		t.Errorf("list page: %v %v", out, err)
	}
	out, err = b.run(t, runSuppress, "remove", "+61412345678")
	if err != nil || out["suppressed"] != false {
		t.Errorf("remove: %v %v", out, err)
	}
	out, _ = b.run(t, runSuppress, "check", "0412345678")
	if out["suppressed"] != false {
		t.Errorf("check after remove: %v", out)
	}
	var ae *apiCallError
	if _, err := b.run(t, runSuppress, "add", "12"); !errors.As(err, &ae) || ae.Field != "number" {
		t.Errorf("add 12: %v", err)
	}
	for _, args := range [][]string{{}, {"add"}, {"list", "x"}, {"frobnicate", "1"}} {
		if _, err := b.run(t, runSuppress, args...); !errors.Is(err, errUsage) {
			t.Errorf("suppress %v: %v", args, err)
		}
	}
}

func TestCommandsRegistered(t *testing.T) {
	for _, n := range []string{"send", "status", "cancel", "suppress"} {
		if _, ok := commands[n]; !ok {
			t.Errorf("command %s not registered", n)
		}
	}
}

func TestCLISendPriorityAndValidity(t *testing.T) {
	b := setupCLI(t)
	out, err := b.run(t, runSend, "--to", "0412345678", "--text", "code 1", "--id", "p1", "--priority", "high", "--valid-for", "90")
	if err != nil {
		t.Fatal(err)
	}
	exp, perr := time.Parse(time.RFC3339Nano, fmt.Sprint(out["expires_at"]))
	if perr != nil || time.Until(exp) < 80*time.Second || time.Until(exp) > 95*time.Second {
		t.Errorf("--valid-for 90 (seconds): expires_at %v", out["expires_at"])
	}
	rec, err := b.p.Get(b.ctx, "p1")
	if err != nil || rec.Priority != store.PriorityHigh {
		t.Errorf("record %+v %v", rec, err)
	}
	if _, err := b.run(t, runSend, "--to", "0412345678", "--text", "x", "--valid-for", "10m", "--priority", "bulk"); err != nil {
		t.Errorf("--valid-for 10m: %v", err)
	}
	var ae *apiCallError
	for _, tc := range []struct{ flag, val, field string }{
		{"--priority", "urgent", "priority"}, {"--valid-for", "-5", "valid_for"}, {"--valid-for", "soon", "valid_for"},
		{"--expires-at", "2001-01-01T00:00:00Z", "expires_at"},
		{"--expires-at", "tomorrow", "expires_at"}, {"--valid-for", "0", "valid_for"},
		{"--valid-for", "100000h", "valid_for"}, {"--account", "nope", "account"}, {"--account", "A|B", "account"},
	} {
		_, err := b.run(t, runSend, "--to", "0412345678", "--text", "x", tc.flag, tc.val)
		if !errors.As(err, &ae) || ae.Status != 400 || ae.Field != tc.field {
			t.Errorf("send %s %s: %v, want a 400 naming %s", tc.flag, tc.val, err, tc.field)
		}
	}
}

// TestSuppressListFlagsOnlyWithList: --count and --cursor are flags of
// `suppress list` (page size, one page). `suppress add --count 5 NUMBER`
// was accepted and the flag ignored (the number added once, as without
// it); add, remove and check now refuse both with a usage error naming the
// flag, before any request. `list --count` outside the API's 1..1000 is a
// usage error too, not a request the API refuses.
func TestSuppressListFlagsOnlyWithList(t *testing.T) {
	b := setupCLI(t)
	for _, verb := range []string{"add", "remove", "check"} {
		for _, flag := range [][]string{{"--count", "5"}, {"--cursor", "0"}, {"--count=500"}} {
			args := append([]string{verb, "+61400000009"}, flag...)
			_, err := b.run(t, runSuppress, args...)
			name := strings.SplitN(strings.TrimPrefix(flag[0], "--"), "=", 2)[0]
			if !errors.Is(err, errUsage) || !strings.Contains(usageReason(err), "--"+name) {
				t.Errorf("suppress %v: %v, want a usage error naming --%s", args, err, name)
			}
		}
	}
	if _, ok, err := b.p.IsSuppressed(b.ctx, "+61400000009"); err != nil || ok {
		t.Errorf("a refused add changed the list: suppressed=%v %v", ok, err)
	}
	for _, n := range []string{"0", "-1", "1001"} {
		_, err := b.run(t, runSuppress, "list", "--count", n)
		if !errors.Is(err, errUsage) || !strings.Contains(usageReason(err), "--count") {
			t.Errorf("suppress list --count %s: %v, want a usage error naming --count", n, err)
		}
	}
	for _, n := range []string{"1", "1000"} {
		if _, err := b.run(t, runSuppress, "list", "--count", n); err != nil {
			t.Errorf("suppress list --count %s: %v", n, err)
		}
	}
}
