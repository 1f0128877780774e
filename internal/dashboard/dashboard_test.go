package dashboard_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hibiken/asynq"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/crypto/bcrypt"

	"github.com/redoxygen/roxd/internal/dashboard"
	"github.com/redoxygen/roxd/internal/metrics"
	"github.com/redoxygen/roxd/internal/testutil"
)

const (
	token       = "dash-test-token-0123456789"
	opUser      = "alice"
	opPassword  = "alice-operator-pw-42"
	opShared    = "shared-operator-password-77"
	wrongPasswd = "alice-operator-pw-43"
)

// opHash is alice's bcrypt hash (cost 4 keeps the tests quick).
var opHash = func() []byte {
	h, err := bcrypt.GenerateFromPassword([]byte(opPassword), 4)
	if err != nil {
		panic(err)
	}
	return h
}()

type bundle struct {
	srv   *httptest.Server
	queue string
	insp  *asynq.Inspector
}

// setup serves the dashboard against the test Redis, with one pending task
// in a queue of the test's own.
func setup(t *testing.T, readOnly bool) bundle {
	t.Helper()
	return setupWith(t, dashboard.Config{ReadOnly: readOnly, Operators: map[string][]byte{opUser: opHash}})
}

func setupWith(t *testing.T, cfg dashboard.Config) bundle {
	t.Helper()
	opt := testutil.AsynqOpt(t)
	queue := testutil.Name("dash")

	client := asynq.NewClient(opt)
	t.Cleanup(func() { _ = client.Close() })
	insp := asynq.NewInspector(opt)
	t.Cleanup(func() { _ = insp.Close() })
	t.Cleanup(func() { _ = insp.DeleteQueue(queue, true) })
	if _, err := client.Enqueue(asynq.NewTask("rox:send", []byte(`{"batch":"b1"}`)), asynq.Queue(queue)); err != nil {
		t.Fatalf("enqueue: %v", err)
	}

	cfg.RedisConnOpt, cfg.Token = opt, token
	h, err := dashboard.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = h.Close() })
	mux := http.NewServeMux()
	mux.Handle(dashboard.DefaultRootPath+"/", h)
	mux.Handle(dashboard.DefaultRootPath, h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return bundle{srv: srv, queue: queue, insp: insp}
}

func (b bundle) do(t *testing.T, method, path, pass string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, b.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if pass != "" {
		user := "anyone"
		if u, p, ok := strings.Cut(pass, "\x00"); ok {
			user, pass = u, p
		}
		req.SetBasicAuth(user, pass)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestAuth(t *testing.T) {
	b := setup(t, false)
	for _, tc := range []struct {
		name, path, pass string
		want             int
	}{
		{"no credentials", "/monitor/", "", http.StatusUnauthorized},
		{"wrong password", "/monitor/", "wrong", http.StatusUnauthorized},
		{"token prefix", "/monitor/", token[:len(token)-1], http.StatusUnauthorized},
		{"api without credentials", "/monitor/api/queues", "", http.StatusUnauthorized},
		{"static asset without credentials", "/monitor/favicon.ico", "", http.StatusUnauthorized},
		{"right password", "/monitor/", token, http.StatusOK},
		{"root without slash", "/monitor", token, http.StatusOK},
		{"deep UI route", "/monitor/queues/" + b.queue, token, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := b.do(t, http.MethodGet, tc.path, tc.pass, nil)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want, body)
			}
			if tc.want == http.StatusUnauthorized {
				if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, `Basic realm="roxd dashboard"`) {
					t.Errorf("WWW-Authenticate = %q", got)
				}
				if strings.Contains(body, token) {
					t.Errorf("401 body leaks the token")
				}
				return
			}
			if !strings.Contains(body, "<title>Asynq - Monitoring</title>") || !strings.Contains(body, "/monitor/static/") {
				t.Errorf("not the dashboard UI: %.300s", body)
			}
			if resp.Header.Get("X-Frame-Options") != "DENY" {
				t.Errorf("X-Frame-Options = %q", resp.Header.Get("X-Frame-Options"))
			}
		})
	}
}

type queueSnapshot struct {
	Queue   string `json:"queue"`
	Size    int    `json:"size"`
	Pending int    `json:"pending"`
	Paused  bool   `json:"paused"`
}

func (b bundle) queues(t *testing.T) map[string]queueSnapshot {
	t.Helper()
	resp, body := b.do(t, http.MethodGet, "/monitor/api/queues", token, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /monitor/api/queues: %d %s", resp.StatusCode, body)
	}
	var out struct {
		Queues []queueSnapshot `json:"queues"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	m := map[string]queueSnapshot{}
	for _, q := range out.Queues {
		m[q.Queue] = q
	}
	return m
}

func TestAPIListsQueue(t *testing.T) {
	b := setup(t, false)
	q, ok := b.queues(t)[b.queue]
	if !ok {
		t.Fatalf("queue %s not listed", b.queue)
	}
	if q.Size != 1 || q.Pending != 1 {
		t.Fatalf("queue %+v, want size 1, pending 1", q)
	}

	// The pending task's payload is shown through our formatter.
	resp, body := b.do(t, http.MethodGet, "/monitor/api/queues/"+b.queue+"/pending_tasks", token, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("pending tasks: %d %s", resp.StatusCode, body)
	}
	if !strings.Contains(body, `"payload":"{\n  \"batch\": \"b1\"\n}"`) {
		t.Errorf("payload not indented JSON: %s", body)
	}
}

func TestMutatingCalls(t *testing.T) {
	t.Run("operator pauses", func(t *testing.T) {
		b := setup(t, false)
		resp, body := b.do(t, http.MethodPost, "/monitor/api/queues/"+b.queue+":pause", opUser+"\x00"+opPassword, nil)
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
			t.Fatalf("pause: %d %s", resp.StatusCode, body)
		}
		if !b.queues(t)[b.queue].Paused {
			t.Fatalf("queue not paused")
		}
	})
	t.Run("read-only refuses", func(t *testing.T) {
		b := setup(t, true)
		resp, body := b.do(t, http.MethodPost, "/monitor/api/queues/"+b.queue+":pause", token, nil)
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("pause in read-only mode: %d %s", resp.StatusCode, body)
		}
		resp, body = b.do(t, http.MethodDelete, "/monitor/api/queues/"+b.queue+"/pending_tasks:delete_all", token, nil)
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("delete in read-only mode: %d %s", resp.StatusCode, body)
		}
		q := b.queues(t)[b.queue]
		if q.Paused || q.Pending != 1 {
			t.Fatalf("read-only mode changed the queue: %+v", q)
		}
		// The UI is told too.
		_, page := b.do(t, http.MethodGet, "/monitor/", token, nil)
		if !strings.Contains(page, `window.FLAG_READ_ONLY="true"`) {
			t.Errorf("UI not told about read-only mode")
		}
	})
	t.Run("cross-site refused", func(t *testing.T) {
		b := setup(t, false)
		resp, body := b.do(t, http.MethodPost, "/monitor/api/queues/"+b.queue+":pause", opUser+"\x00"+opPassword,
			map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"})
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("cross-site pause: %d %s", resp.StatusCode, body)
		}
		if b.queues(t)[b.queue].Paused {
			t.Fatalf("cross-site request paused the queue")
		}
	})
}

func TestConfigValidate(t *testing.T) {
	opt := asynq.RedisClientOpt{Addr: "127.0.0.1:1"}
	for _, tc := range []struct {
		name  string
		cfg   dashboard.Config
		field string
	}{
		{"no token", dashboard.Config{RedisConnOpt: opt}, "Token"},
		{"no redis", dashboard.Config{Token: "x"}, "RedisConnOpt"},
		{"relative root", dashboard.Config{RedisConnOpt: opt, Token: "x", RootPath: "monitor"}, "RootPath"},
		{"foreign conn opt", dashboard.Config{RedisConnOpt: fakeOpt{}, Token: "x"}, "RedisConnOpt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := dashboard.New(tc.cfg)
			if err == nil {
				_ = h.Close()
				t.Fatal("New accepted a bad config")
			}
			if !errors.Is(err, dashboard.ErrConfig) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("error %q: want ErrConfig naming %s", err, tc.field)
			}
		})
	}
	h, err := dashboard.New(dashboard.Config{RedisConnOpt: opt, Token: "x", RootPath: "/ops/queues/"})
	if err != nil {
		t.Fatalf("New with a custom root: %v", err)
	}
	_ = h.Close()
}

type fakeOpt struct{}

func (fakeOpt) MakeRedisClient() any { return struct{}{} }

func TestPayloadFormatter(t *testing.T) {
	long := strings.Repeat("é", dashboard.MaxPayloadShown)
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", "(empty)"},
		{"json object", `{"batch":"b1","ids":[1,2]}`, "{\n  \"batch\": \"b1\",\n  \"ids\": [\n    1,\n    2\n  ]\n}"},
		{"json string", `"b1"`, `"b1"`},
		{"plain id", "01HZX5", "01HZX5"},
		{"binary", "\x00\x01\xff", "(3 bytes, not printable)"},
		{"control char", "a\x07b", "(3 bytes, not printable)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := dashboard.PayloadFormatter.FormatPayload("rox:send", []byte(tc.in)); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	got := dashboard.PayloadFormatter.FormatPayload("rox:send", []byte(long))
	if len(got) > dashboard.MaxPayloadShown+64 || !strings.Contains(got, "more bytes)") || !strings.HasPrefix(got, "é") {
		t.Fatalf("long payload not cut: %d bytes, tail %q", len(got), got[len(got)-40:])
	}
	if head := strings.SplitN(got, "\n", 2)[0]; !utf8.ValidString(head) || len(head) != dashboard.MaxPayloadShown {
		t.Fatalf("cut inside a rune or at the wrong place: %d bytes", len(head))
	}
}

// TestCredentialsMatrix: the API token only looks; an operator acts; a
// wrong password is 401; without operators nobody acts.
func TestCredentialsMatrix(t *testing.T) {
	pause := func(b bundle, cred string) int {
		resp, _ := b.do(t, http.MethodPost, "/monitor/api/queues/"+b.queue+":pause", cred, nil)
		return resp.StatusCode
	}
	del := func(b bundle, cred string) int {
		resp, _ := b.do(t, http.MethodDelete, "/monitor/api/queues/"+b.queue+"/pending_tasks:delete_all", cred, nil)
		return resp.StatusCode
	}
	list := func(b bundle, cred string) int {
		resp, _ := b.do(t, http.MethodGet, "/monitor/api/queues", cred, nil)
		return resp.StatusCode
	}
	page := func(b bundle, cred string) string {
		_, body := b.do(t, http.MethodGet, "/monitor/", cred, nil)
		return body
	}
	for _, tc := range []struct {
		name       string
		cfg        dashboard.Config
		cred       string
		list, act  int
		readOnlyUI bool
	}{
		{"token, with operators", dashboard.Config{Operators: map[string][]byte{opUser: opHash}}, token, 200, 405, true},
		{"token as alice's password", dashboard.Config{Operators: map[string][]byte{opUser: opHash}}, opUser + "\x00" + token, 200, 405, true},
		{"operator user", dashboard.Config{Operators: map[string][]byte{opUser: opHash}}, opUser + "\x00" + opPassword, 200, 200, false},
		{"operator, wrong password", dashboard.Config{Operators: map[string][]byte{opUser: opHash}}, opUser + "\x00" + wrongPasswd, 401, 401, false},
		{"alice's password, other user", dashboard.Config{Operators: map[string][]byte{opUser: opHash}}, "bob\x00" + opPassword, 401, 401, false},
		{"shared operator password", dashboard.Config{OperatorPassword: opShared}, "anyone\x00" + opShared, 200, 200, false},
		{"token, shared password set", dashboard.Config{OperatorPassword: opShared}, token, 200, 405, true},
		{"token, no operators", dashboard.Config{}, token, 200, 405, true},
		{"operator but ROXD_DASHBOARD_READONLY", dashboard.Config{ReadOnly: true, Operators: map[string][]byte{opUser: opHash}}, opUser + "\x00" + opPassword, 200, 405, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := setupWith(t, tc.cfg)
			if got := list(b, tc.cred); got != tc.list {
				t.Fatalf("list: %d, want %d", got, tc.list)
			}
			if got := pause(b, tc.cred); got != tc.act && !(tc.act == 200 && got == 204) {
				t.Fatalf("pause: %d, want %d", got, tc.act)
			}
			if got := del(b, tc.cred); got != tc.act && !(tc.act == 200 && got == 204) {
				t.Fatalf("delete: %d, want %d", got, tc.act)
			}
			info, err := b.insp.GetQueueInfo(b.queue)
			acted := err == nil && info.Paused && info.Pending == 0
			if acted != (tc.act == 200) {
				t.Fatalf("queue after the calls: %+v %v (acted %v, want %v)", info, err, acted, tc.act == 200)
			}
			if tc.list == 200 {
				if ro := strings.Contains(page(b, tc.cred), `window.FLAG_READ_ONLY="true"`); ro != tc.readOnlyUI {
					t.Fatalf("UI read-only %v, want %v", ro, tc.readOnlyUI)
				}
			}
		})
	}
}

func TestActionsAreAppliedAndCounted(t *testing.T) {
	var got []dashboard.Action
	b := setupWith(t, dashboard.Config{Operators: map[string][]byte{opUser: opHash},
		AfterAction: func(_ context.Context, a dashboard.Action) { got = append(got, a) }})
	cred := opUser + "\x00" + opPassword
	before := promtest.ToFloat64(metrics.OperatorActions.WithLabelValues("pause"))
	b.do(t, http.MethodPost, "/monitor/api/queues/"+b.queue+":pause", cred, nil)
	b.do(t, http.MethodPost, "/monitor/api/queues/"+b.queue+":resume", cred, nil)
	tasks, _ := b.insp.ListPendingTasks(b.queue)
	b.do(t, http.MethodPost, "/monitor/api/queues/"+b.queue+"/pending_tasks/"+tasks[0].ID+":archive", cred, nil)
	b.do(t, http.MethodDelete, "/monitor/api/queues/"+b.queue+"/archived_tasks/"+tasks[0].ID, cred, nil)
	b.do(t, http.MethodPost, "/monitor/api/queues/"+b.queue+"/retry_tasks:archive_all", cred, nil)
	want := []string{"pause", "unpause", "archive archived " + tasks[0].ID, "delete archived " + tasks[0].ID, "archive retry "}
	if len(got) != len(want) {
		t.Fatalf("actions %+v", got)
	}
	for i, a := range got {
		s := a.Name
		if a.State != "" {
			s += " " + a.State + " " + a.TaskID
		}
		if i == 2 {
			s = a.Name + " archived " + a.TaskID // archived from pending
			if a.State != "pending" {
				t.Fatalf("state %q", a.State)
			}
		}
		if s != want[i] || a.User != opUser || a.Queue != b.queue || a.Status >= 400 {
			t.Fatalf("action %d: %+v, want %q", i, a, want[i])
		}
	}
	if d := promtest.ToFloat64(metrics.OperatorActions.WithLabelValues("pause")) - before; d != 1 {
		t.Fatalf("pause counted %v times", d)
	}
}
