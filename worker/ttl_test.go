package worker

import (
	"strings"
	"testing"
	"time"

	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/internal/testutil"
	"github.com/redoxygen/roxd/rox/roxsim"
)

// A record has no TTL while its message can still be sent: a backlog that
// waits longer than ROXD_STATUS_TTL (no worker running, an account paused
// on auth errors) is sent, every message once, when sending resumes.
// Before, each record carried StatusTTL from its enqueue and vanished from
// the backlog; the claim skipped it and the message was lost silently.

const backlogTTL = time.Second

// acceptedWith counts the texts starting with prefix that the simulator
// accepted (at least once).
func (b *bundle) acceptedWith(prefix string) int {
	n := 0
	for txt := range b.accepted() {
		if strings.HasPrefix(txt, prefix+" ") {
			n++
		}
	}
	return n
}

// outlive waits until every record enqueued by since would have expired
// under the old rule (StatusTTL plus the delay of a scheduled one, with a
// generous margin): expiry is by Redis's clock, so this needs real time.
func outlive(since time.Time, longest time.Duration) {
	time.Sleep(time.Until(since.Add(longest + 2*time.Second)))
}

func TestBacklogOlderThanStatusTTLIsSentWithoutWorker(t *testing.T) {
	const n = 120
	b := setup(t, roxsim.Faults{}, func(c *Config) {
		c.Store.StatusTTL = backlogTTL
		c.Store.ScheduleLead = 100 * time.Millisecond
	})
	t0 := time.Now()
	delay := 1500 * time.Millisecond
	ids := b.enqueue(n, "backlog", func(i int, r *store.Record) {
		switch i % 3 {
		case 1:
			r.SendAt = t0.Add(delay) // scheduled: waits in the scheduled zset
		case 2:
			r.Priority = store.PriorityBulk
		}
	})
	outlive(t0, backlogTTL+delay)
	if n := b.rdb.Exists(b.ctx, msgKeys(b, ids)...).Val(); n != int64(len(ids)) {
		t.Fatalf("%d of %d records left after StatusTTL with nothing sending them, want all", n, len(ids))
	}
	b.start()
	testutil.Eventually(t, 30*time.Second, func() bool { return b.acceptedWith("backlog") == n },
		"every message of the backlog accepted by ROX (have %d of %d)", b.acceptedWith("backlog"), n)
	b.checkExactlyOnce("backlog", n)
}

func TestBacklogOlderThanStatusTTLIsSentAfterAuthPause(t *testing.T) {
	const n = 120
	b := setup(t, roxsim.Faults{AuthFail: true}, func(c *Config) { c.Store.StatusTTL = backlogTTL })
	b.start()
	t0 := time.Now()
	ids := b.enqueue(n, "paused", nil)
	testutil.Eventually(t, 10*time.Second, func() bool {
		return b.rdb.Exists(b.ctx, b.st.Keys().AuthPause()).Val() == 1
	}, "auth pause set")
	outlive(t0, backlogTTL)
	if n := b.rdb.Exists(b.ctx, msgKeys(b, ids)...).Val(); n != int64(len(ids)) {
		t.Fatalf("%d of %d records left after StatusTTL of an auth pause, want all", n, len(ids))
	}
	if err := b.sim.SetFaults(roxsim.Faults{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, func() bool { return b.acceptedWith("paused") == n },
		"every message of the paused backlog accepted by ROX (have %d of %d)", b.acceptedWith("paused"), n)
	b.checkExactlyOnce("paused", n)
}

func msgKeys(b *bundle, ids []string) []string {
	ks := make([]string, len(ids))
	for i, id := range ids {
		ks[i] = b.st.Keys().Msg(id)
	}
	return ks
}
