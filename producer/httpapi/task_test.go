package httpapi

import (
	"strconv"
	"testing"
	"time"

	"github.com/redoxygen/roxd/internal/store"
)

// TestGetNamesTheTask: a message's status names the asynq task that carries
// it (its batch, or its schedule group's task while scheduled), so an
// operator can go from a message to the dashboard.
func TestGetNamesTheTask(t *testing.T) {
	b := setup(t)
	at := time.Now().Add(time.Hour).Truncate(time.Second).UTC()
	b.do(t, "POST", "/v1/messages", map[string]any{"id": "t1", "to": "0412345678", "text": "x", "send_at": at.Format(time.RFC3339)})
	r := b.do(t, "GET", "/v1/messages/t1", nil)
	task, _ := r.body["task"].(map[string]any)
	wantSched := "sched-" + formatUnix(at) + "-always-http"
	if task == nil || task["id"] != wantSched || task["queue"] != DefaultQueue {
		t.Fatalf("scheduled message: %s (want task %s)", r.raw, wantSched)
	}
	b.do(t, "POST", "/v1/messages", map[string]any{"id": "t2", "to": "0412345678", "text": "x"})
	if r := b.do(t, "GET", "/v1/messages/t2", nil); r.body["task"] != nil {
		t.Fatalf("queued message not yet in a batch names a task: %s", r.raw)
	}
	// The former writes the batch into each message it takes.
	formed, err := b.p.Store().Batches().Form(b.ctx, store.FormParams{MaxBatch: 500, MaxWaiting: 10, MaxForm: 4, IDPrefix: "bt-"}, time.Now().Add(time.Second))
	if err != nil || len(formed) != 1 || len(formed[0].First) != 1 || formed[0].First[0] != "t2" {
		t.Fatalf("form: %+v %v", formed, err)
	}
	r = b.do(t, "GET", "/v1/messages/t2", nil)
	if task, _ := r.body["task"].(map[string]any); task == nil || task["id"] != formed[0].ID {
		t.Fatalf("batched message: %s, want task %s", r.raw, formed[0].ID)
	}
}

func formatUnix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }
