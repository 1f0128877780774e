package app

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/config"
	"github.com/redoxygen/roxd/internal/testutil"
	"github.com/redoxygen/roxd/rox/roxsim"
)

// TestTwoWorkersRefuseOneJournalDir: a second worker process given the
// journal directory of a running one refuses to start, naming
// ROXD_JOURNAL_DIR; the first keeps running.
func TestTwoWorkersRefuseOneJournalDir(t *testing.T) {
	url := testutil.RedisURL(t)
	dir := t.TempDir()
	env := map[string]string{
		"REDIS_URL": url, "ROXD_ROLES": "worker", "ROXD_HTTP_ADDR": "127.0.0.1:0",
		"ROX_API_URL": "http://127.0.0.1:9/smsapi/send", "ROX_ACCOUNT_ID": roxsim.DefaultAccountID,
		"ROX_USERNAME": roxsim.DefaultUsername, "ROX_PASSWORD": roxsim.DefaultPassword,
		"ROXD_CALLBACK_TOKEN": "callback-token-0123456789", "ROXD_KEY_PREFIX": testutil.Name("app"),
		"ROXD_QUEUE": testutil.Name("q"), "ROXD_SPOOL_DIR": t.TempDir(), "ROXD_JOURNAL_DIR": dir,
	}
	cfg, err := config.Load(mapLookup(env))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan Addrs, 1)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, zerolog.Nop(), Options{Ready: func(a Addrs) { ready <- a }}) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("first worker: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("first worker not ready")
	}

	err = Run(context.Background(), cfg, zerolog.Nop(), Options{})
	if err == nil || !strings.Contains(err.Error(), "ROXD_JOURNAL_DIR") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second worker on %s: %v; want a refusal naming ROXD_JOURNAL_DIR and the directory", dir, err)
	}
	t.Logf("refusal: %v", err)
	select {
	case err := <-done:
		t.Fatalf("the first worker stopped: %v", err)
	default:
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("first worker after cancel: %v", err)
	}
}
