package main

import "testing"

func TestDashboardLink(t *testing.T) {
	raw := []byte(`{"id":"m1","status":"failed","task":{"id":"b2611-ab/1","queue":"roxd"}}`)
	if got, want := dashboardLink("http://127.0.0.1:8080", raw), "http://127.0.0.1:8080/monitor/queues/roxd/tasks/b2611-ab%2F1"; got != want {
		t.Fatalf("link %q, want %q", got, want)
	}
	if got := dashboardLink("http://x", []byte(`{"id":"m1","status":"queued"}`)); got != "" {
		t.Fatalf("link %q for a message without a task", got)
	}
}
