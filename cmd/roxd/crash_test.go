package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/internal/testutil"
	"github.com/redoxygen/roxd/producer"
	"github.com/redoxygen/roxd/rox/roxsim"
)

// TestWorkerKilledMidRequestSendsNothingTwice is issue 8 fault 3 on the
// real binary: a worker process (`roxd serve --roles worker`) is killed
// with SIGKILL while ROX requests are in flight; ROX (the simulator, 250 ms
// per request) accepted them and posts their receipts to a separate
// callbacks process, which keeps running. A second worker picks the
// batches up when asynq redelivers them (60-120 s later) and must not send
// them again: the receipts that arrived meanwhile are the evidence. Every
// message reaches the simulator exactly once and ends delivered with ROX's
// SMSId.
func TestWorkerKilledMidRequestSendsNothingTwice(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and waits for asynq's crash recovery (~2 min)")
	}
	rdb := testutil.Redis(t)
	redisURL := testutil.RedisURL(t)
	bin := roxdBinary(t)
	// ROX takes each request at once and answers a second later: a worker
	// killed meanwhile never learns the SMSIds of what ROX accepted.
	sim, simSrv := startSim(t, roxsim.Faults{
		LateAnswer: 1, LateAnswerDelay: time.Second, ReceiptDelay: 300 * time.Millisecond,
	})

	// The callbacks process's address, chosen now so the workers can hand
	// it to ROX.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cbAddr := ln.Addr().String()
	ln.Close()

	prefix, queue := testutil.Name("crash"), testutil.Name("q")
	env := append(os.Environ(),
		"REDIS_URL="+redisURL, "ROX_API_URL="+simSrv.URL+"/smsapi/send",
		"ROX_ACCOUNT_ID="+roxsim.DefaultAccountID, "ROX_USERNAME="+roxsim.DefaultUsername,
		"ROX_PASSWORD="+roxsim.DefaultPassword,
		"ROXD_CALLBACK_TOKEN=callback-token-0123456789", "ROXD_HTTP_ADDR=127.0.0.1:0",
		"ROXD_CALLBACK_ADDR="+cbAddr, "ROXD_PUBLIC_URL=http://"+cbAddr,
		"ROXD_KEY_PREFIX="+prefix, "ROXD_QUEUE="+queue, "ROXD_SHUTDOWN_TIMEOUT=10s",
		"ROXD_RECEIPTS_STREAM="+prefix+":receipts", "ROXD_REPLIES_STREAM="+prefix+":replies",
		"ROXD_SEND_CONCURRENCY=4", "ROXD_SPOOL_DIR="+t.TempDir(), "LOG_LEVEL=error")
	start := func(roles string) *exec.Cmd {
		cmd := exec.Command(bin, "serve", "--roles", roles)
		cmd.Env = env
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		})
		return cmd
	}
	start("callbacks")

	const n = 4000 // 8 batches, 4 in flight at once
	prod, err := producer.New(rdb, producer.Config{Store: store.Config{Prefix: prefix}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	msgs := make([]producer.Message, n)
	ids := make([]string, n)
	for i := range msgs {
		ids[i] = fmt.Sprintf("kill-%d", i)
		msgs[i] = producer.Message{ID: ids[i], To: fmt.Sprintf("+614%08d", 10000+i), Text: fmt.Sprintf("kill %d", i)}
	}
	for lo := 0; lo < n; lo += 500 {
		if _, err := prod.SendMany(context.Background(), msgs[lo:lo+500]); err != nil {
			t.Fatal(err)
		}
	}
	keys := store.NewKeys(prefix)
	count := func(status string) int {
		cmds := make([]*redis.StringCmd, n)
		_, _ = rdb.Pipelined(context.Background(), func(p redis.Pipeliner) error {
			for i, id := range ids {
				cmds[i] = p.HGet(context.Background(), keys.Msg(id), "status")
			}
			return nil
		})
		c := 0
		for _, cmd := range cmds {
			if cmd.Val() == status {
				c++
			}
		}
		return c
	}

	first := start("worker")
	// Kill it once ROX has taken requests it has not answered yet.
	testutil.Eventually(t, 60*time.Second, func() bool { return sim.Stats().Queued >= 1000 },
		"the first worker sent nothing")
	if err := first.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	orphans := count("sending")
	t.Logf("killed with %d recipients in flight, %d accepted by the simulator", orphans, sim.Stats().Queued)
	if orphans == 0 || count("submitted")+count("delivered") > 0 {
		t.Fatal("nothing in flight at the kill, or some answer recorded: the test proves nothing")
	}

	start("worker")
	testutil.Eventually(t, 240*time.Second, func() bool { return count("delivered") == n },
		"%d of %d delivered after the restart", count("delivered"), n)
	t.Logf("all %d delivered %s after the kill", n, time.Since(killedAt).Round(time.Second))

	seen := map[string]int{}
	smsOf := map[string]string{}
	for _, r := range sim.Recipients() {
		if r.SMSID != "" {
			seen[r.Text]++
			smsOf[r.Text] = r.SMSID
		}
	}
	dups := 0
	for i := 0; i < n; i++ {
		txt := fmt.Sprintf("kill %d", i)
		if seen[txt] != 1 {
			dups++
			if dups < 5 {
				t.Errorf("%q accepted %d times, want exactly once", txt, seen[txt])
			}
		}
		if got := rdb.HGet(context.Background(), keys.Msg(ids[i]), "sms_id").Val(); seen[txt] == 1 && got != smsOf[txt] {
			t.Errorf("%s: sms_id %q, want ROX's %q", ids[i], got, smsOf[txt])
		}
	}
	if dups > 0 {
		t.Fatalf("%d messages not accepted exactly once", dups)
	}
	if st := sim.Stats(); st.ForwardedToEmail != 0 {
		t.Errorf("%d callbacks forwarded to email", st.ForwardedToEmail)
	}
	// Every receipt reached the stream once, with its message id, also
	// those that waited (deferred) for the dead run's recipients.
	stream := prefix + ":receipts"
	testutil.Eventually(t, 120*time.Second, func() bool { return rdb.XLen(context.Background(), stream).Val() >= n },
		"%d receipt entries for %d messages", rdb.XLen(context.Background(), stream).Val(), n)
	perMsg := map[string]int{}
	for _, e := range rdb.XRange(context.Background(), stream, "-", "+").Val() {
		perMsg[fmt.Sprint(e.Values["message_id"])]++
	}
	for _, id := range ids {
		if perMsg[id] != 1 {
			t.Fatalf("%s has %d receipt entries, want 1 (uncorrelated: %d)", id, perMsg[id], perMsg[""])
		}
	}
}
