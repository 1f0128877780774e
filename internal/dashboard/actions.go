package dashboard

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/internal/metrics"
)

// Action is one operator action made through the dashboard, as read from
// asynqmon's API path.
type Action struct {
	// User is the operator's user name.
	User string
	// Name is run, delete, archive, cancel, pause, unpause or delete_queue.
	Name string
	// Queue is the asynq queue; State the task state the UI acted from
	// (pending, scheduled, retry, archived, completed, active); TaskID the
	// task, or "" for "all" and batch actions.
	Queue, State, TaskID string
	// Status is asynqmon's HTTP answer.
	Status int
}

// parseAction reads an action from a mutating request to asynqmon's API;
// ok is false for anything else.
func parseAction(root string, r *http.Request) (Action, bool) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions {
		return Action{}, false
	}
	p, ok := strings.CutPrefix(r.URL.Path, root+"/api/queues/")
	if !ok || p == "" {
		return Action{}, false
	}
	parts := strings.Split(p, "/")
	a := Action{Queue: parts[0]}
	if q, verb, ok := strings.Cut(parts[0], ":"); ok && len(parts) == 1 {
		a.Queue = q
		switch verb {
		case "pause":
			a.Name = "pause"
		case "resume":
			a.Name = "unpause"
		default:
			return Action{}, false
		}
		return a, true
	}
	if len(parts) == 1 && r.Method == http.MethodDelete {
		a.Name = "delete_queue"
		return a, true
	}
	if len(parts) < 2 {
		return Action{}, false
	}
	coll, verb, hasVerb := strings.Cut(parts[1], ":")
	state, ok := strings.CutSuffix(coll, "_tasks")
	if !ok {
		return Action{}, false // groups/... (aggregating): not used by roxd
	}
	a.State = state
	if len(parts) == 3 {
		a.TaskID, verb, hasVerb = cut(parts[2])
	}
	switch {
	case !hasVerb && r.Method == http.MethodDelete:
		a.Name = "delete"
	case strings.HasPrefix(verb, "run") || verb == "batch_run":
		a.Name = "run"
	case strings.HasPrefix(verb, "archive") || verb == "batch_archive":
		a.Name = "archive"
	case strings.HasPrefix(verb, "delete") || verb == "batch_delete":
		a.Name = "delete"
	case strings.HasPrefix(verb, "cancel") || verb == "batch_cancel":
		a.Name = "cancel"
	default:
		return Action{}, false
	}
	return a, true
}

func cut(s string) (id, verb string, ok bool) {
	id, verb, ok = strings.Cut(s, ":")
	return id, verb, ok
}

// bufferedWriter holds asynqmon's answer until roxd applied the action.
type bufferedWriter struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedWriter) Header() http.Header         { return b.h }
func (b *bufferedWriter) Write(p []byte) (int, error) { return b.body.Write(p) }
func (b *bufferedWriter) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

// actions logs and counts every operator action made through the
// dashboard and calls after for those asynqmon carried out.
func actions(root string, next http.Handler, after func(context.Context, Action), log zerolog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := parseAction(root, r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		a.User, _ = r.Context().Value(userKey{}).(string)
		bw := &bufferedWriter{h: w.Header()}
		start := time.Now()
		next.ServeHTTP(bw, r)
		if bw.status == 0 {
			bw.status = http.StatusOK
		}
		a.Status = bw.status
		if a.Status < 400 {
			switch {
			case a.Name == "pause" || a.Name == "unpause":
				metrics.OperatorActions.WithLabelValues(a.Name).Inc()
			case a.Name == "run" && (a.State == "retry" || a.State == "pending"):
				// Runs of archived and scheduled tasks are counted where
				// roxd applies them (the handler); archive and delete by
				// the sweep that fails or cancels their messages.
				metrics.OperatorActions.WithLabelValues("run").Inc()
			}
			if after != nil {
				ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 20*time.Second)
				after(ctx, a)
				cancel()
			}
		}
		ev := log.Info()
		if a.Status >= 400 {
			ev = log.Warn()
		}
		ev.Str("user", a.User).Str("action", a.Name).Str("queue", a.Queue).Str("state", a.State).
			Str("task", a.TaskID).Int("status", a.Status).Dur("latency_ms", time.Since(start)).
			Msg("dashboard: operator action")
		w.WriteHeader(bw.status)
		_, _ = w.Write(bw.body.Bytes())
	})
}
