package worker

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/internal/testutil"
	"github.com/redoxygen/roxd/rox"
	"github.com/redoxygen/roxd/rox/roxsim"
)

// waitFor polls cond every 20 ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// recipientsIn returns, in the order ROX received them, the texts of the
// accepted recipients, and checks that no request mixed priorities (texts
// start with their priority's name).
func recipientsIn(t *testing.T, b *bundle) []string {
	t.Helper()
	rs := b.sim.Recipients()
	byReq := map[string]string{}
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		if r.SMSID == "" {
			continue
		}
		cls, _, _ := strings.Cut(r.Text, " ")
		if prev, ok := byReq[r.RequestID]; ok && prev != cls {
			t.Fatalf("request %s mixes %s and %s messages", r.RequestID, prev, cls)
		}
		byReq[r.RequestID] = cls
		out = append(out, r.Text)
	}
	return out
}

// A high message enqueued behind a bulk backlog reaches ROX after at most
// the requests already in flight (and a few formed meanwhile), not after
// the backlog: neither the ready list nor the asynq queue holds it back.
func TestHighOvertakesBulkBacklog(t *testing.T) {
	b := setup(t, roxsim.Faults{Latency: 30 * time.Millisecond}, func(c *Config) {
		c.MaxBatch = 50
		c.SendConcurrency = 3
	})
	const nBulk = 4000 // 80 requests of 50: seconds of backlog
	b.enqueue(nBulk, "bulk", func(_ int, r *store.Record) { r.Priority = store.PriorityBulk })
	b.start()
	waitFor(t, 30*time.Second, "bulk sending to start", func() bool { return len(b.sim.Recipients()) >= 200 })
	before := len(recipientsIn(t, b))
	high := b.enqueue(1, "high", func(_ int, r *store.Record) { r.Priority = store.PriorityHigh })
	enq := time.Now()
	waitFor(t, 30*time.Second, "the high message to reach ROX", func() bool {
		return b.countStatus(high, "submitted") == 1
	})
	took := time.Since(enq)
	got := recipientsIn(t, b)
	pos := -1
	for i, txt := range got {
		if txt == "high 0" {
			pos = i
		}
	}
	// Behind the backlog (one ready list, one FIFO queue) it would be
	// recipient ~nBulk. Strict priority lets through only the requests in
	// flight when it came and the few a free handler took before its batch
	// was formed (about 6 of 50 on a quiet machine); the bound leaves room
	// for a loaded one.
	if pos < 0 || pos > before+(nBulk-before)/3 {
		t.Fatalf("high message is recipient %d of %d; %d bulk were accepted when it was enqueued (took %s): it waited behind the backlog", pos, len(got), before, took)
	}
	t.Logf("high message after %d bulk recipients (%d when enqueued), %s from enqueue", pos, before, took)
}

// Bulk is never starved: with a high backlog that keeps every strict lane
// busy, the floor lane still sends bulk batches.
func TestBulkNotStarvedByHighBacklog(t *testing.T) {
	b := setup(t, roxsim.Faults{Latency: 30 * time.Millisecond}, func(c *Config) {
		c.MaxBatch = 50
		c.SendConcurrency = 3
	})
	const nHigh = 6000
	high := b.enqueue(nHigh, "high", func(_ int, r *store.Record) { r.Priority = store.PriorityHigh })
	bulk := b.enqueue(100, "bulk", func(_ int, r *store.Record) { r.Priority = store.PriorityBulk })
	norm := b.enqueue(100, "normal", nil)
	b.start()
	waitFor(t, 60*time.Second, "the bulk and normal messages to reach ROX", func() bool {
		return b.countStatus(bulk, "submitted") == len(bulk) && b.countStatus(norm, "submitted") == len(norm)
	})
	// Starved, they would go after the last high message (n == nHigh).
	if n := b.countStatus(high, "submitted"); n > nHigh*9/10 {
		t.Fatalf("bulk and normal were sent only after %d of %d high messages: starved", n, nHigh)
	}
	t.Logf("bulk and normal all sent after %d of %d high", b.countStatus(high, "submitted"), nHigh)
	recipientsIn(t, b) // no request mixes priorities

}

// A high message is formed, enqueued, taken and claimed while the bulk
// former and every bulk handler wait at the gate (gate.go): here the test
// holds every place at it, as sixteen bulk scripts in Redis would, so with
// one former for every priority the high message would wait for them.
func TestHighFormedWhileBulkFormerBusy(t *testing.T) {
	b := setup(t, roxsim.Faults{Latency: 30 * time.Millisecond}, func(c *Config) {
		c.MaxBatch = 50
		c.SendConcurrency = 3
	})
	bulk := b.enqueue(3000, "bulk", func(_ int, r *store.Record) { r.Priority = store.PriorityBulk })
	w, _ := b.start()
	waitFor(t, 30*time.Second, "bulk sending to start", func() bool { return len(b.sim.Recipients()) >= 100 })
	for i := 0; i < cap(w.gate); i++ {
		w.gate <- struct{}{}
	}
	held := true
	release := func() {
		if held {
			held = false
			for i := 0; i < cap(w.gate); i++ {
				<-w.gate
			}
		}
	}
	defer release()
	// Requests in flight end; no bulk batch is formed, claimed or recorded
	// from here on.
	sentBulk := b.countStatus(bulk, "submitted")
	high := b.enqueue(1, "high", func(_ int, r *store.Record) { r.Priority = store.PriorityHigh })
	waitFor(t, 30*time.Second, "the high message to reach ROX while bulk waits at the gate", func() bool {
		return b.countStatus(high, "submitted") == 1
	})
	if n := b.countStatus(bulk, "submitted"); n > sentBulk {
		t.Fatalf("%d bulk messages submitted while the gate was held (%d before): the gate let them through", n, sentBulk)
	}
	release()
	waitFor(t, 60*time.Second, "the bulk backlog to drain after the gate opens", func() bool {
		return b.countStatus(bulk, "submitted") == len(bulk)
	})
	recipientsIn(t, b)
}

// gatedSender holds every request until open is closed, except that high
// requests go on once reserve of them are in flight together.
type gatedSender struct {
	next    Sender
	reserve int
	open    chan struct{}
	mu      sync.Mutex
	high    int // high requests in flight
	maxHigh int
	bulk    int // bulk requests in flight
	enough  chan struct{}
}

var _ Sender = (*gatedSender)(nil)

func (s *gatedSender) Send(ctx context.Context, m rox.Messages) (*rox.SendResponse, error) {
	txt := m.GlobalText
	if txt == "" && len(m.Recipients) > 0 {
		txt = m.Recipients[0].SMSText
	}
	high := strings.HasPrefix(txt, "high")
	s.mu.Lock()
	if high {
		s.high++
		s.maxHigh = max(s.maxHigh, s.high)
		if s.high == s.reserve {
			close(s.enough)
		}
	} else {
		s.bulk++
	}
	s.mu.Unlock()
	wait := s.open
	if high {
		wait = s.enough
	}
	select {
	case <-wait:
	case <-ctx.Done():
	}
	s.mu.Lock()
	if high {
		s.high--
	} else {
		s.bulk--
	}
	s.mu.Unlock()
	return s.next.Send(ctx, m)
}

func (s *gatedSender) counts() (high, maxHigh, bulk int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.high, s.maxHigh, s.bulk
}

// While every handler holds a bulk request (ROX slow to answer), HighReserve
// high requests are in flight together: high messages offered faster than
// one ROX answer time never queue behind each other on one reserve handler.
func TestHighReserveCarriesSeveralRequests(t *testing.T) {
	const reserve = 3
	b := setup(t, roxsim.Faults{}, func(c *Config) {
		c.MaxBatch = 10
		c.SendConcurrency = 2
		c.HighReserve = reserve
	})
	s := &gatedSender{next: b.client, reserve: reserve, open: make(chan struct{}), enough: make(chan struct{})}
	var once sync.Once
	openAll := func() { once.Do(func() { close(s.open) }) }
	defer openAll()
	w, err := New(b.cfg, b.rdb, b.aopt, s, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { openAll(); cancel(); <-done }()
	bulk := b.enqueue(200, "bulk", func(_ int, r *store.Record) { r.Priority = store.PriorityBulk })
	// The strict handlers (2) and the floor lane's (1) hold bulk requests.
	waitFor(t, 30*time.Second, "every handler to hold a bulk request", func() bool {
		_, _, nb := s.counts()
		return nb == 3
	})
	// One high message at a time, each in its own batch once the one
	// before is in flight.
	var high []string
	for i := 0; i < reserve; i++ {
		high = append(high, b.enqueue(1, fmt.Sprintf("high%d", i), func(_ int, r *store.Record) { r.Priority = store.PriorityHigh })...)
		waitFor(t, 30*time.Second, fmt.Sprintf("high request %d of %d in flight beside the bulk ones", i+1, reserve), func() bool {
			_, mh, _ := s.counts()
			return mh >= i+1
		})
	}
	waitFor(t, 30*time.Second, "the high messages to be submitted while bulk still waits", func() bool {
		return b.countStatus(high, "submitted") == reserve
	})
	if n := b.countStatus(bulk, "submitted"); n != 0 {
		t.Fatalf("%d bulk messages submitted before the sender let bulk through", n)
	}
	openAll()
	waitFor(t, 60*time.Second, "the bulk messages to be submitted", func() bool {
		return b.countStatus(bulk, "submitted") == len(bulk)
	})
}

// After an auth pause the probe that tests the credentials is one of the
// high former's when only high messages wait (the other former has nothing
// to probe with): they go out once the credentials work again, and the two
// formers together never probe in a hot loop.
func TestAuthPauseRecoversWithOnlyHighMessages(t *testing.T) {
	b := setup(t, roxsim.Faults{AuthFail: true}, nil)
	b.start()
	ids := b.enqueue(30, "high", func(_ int, r *store.Record) { r.Priority = store.PriorityHigh })
	testutil.Eventually(t, 5*time.Second, func() bool {
		return b.rdb.Exists(b.ctx, b.st.Keys().AuthPause()).Val() == 1
	}, "auth pause set")
	time.Sleep(time.Second) // observing the absence of traffic needs real time
	if st := b.sim.Stats(); st.Requests > 6 {
		t.Fatalf("%d requests within ~1s of auth failures: hot loop", st.Requests)
	}
	if err := b.sim.SetFaults(roxsim.Faults{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return b.countStatus(ids, "submitted") == len(ids) }, "all submitted after recovery")
	b.checkExactlyOnce("high", len(ids))
}

// The reserve lane (ROXD_HIGH_RESERVE handlers polling every millisecond)
// runs only while high tasks are enqueued: normal traffic keeps the hot
// lanes up but not it, a high message starts it, and it stops HotLinger
// after the last high one (its poll is ~1,000 scripts a second).
func TestReserveLaneOnlyWhileHighFlows(t *testing.T) {
	b := setup(t, roxsim.Faults{}, func(c *Config) {
		c.HighReserve = 5
		c.HotLinger = 2 * time.Second
	})
	insp := asynq.NewInspector(b.aopt)
	defer insp.Close()
	highQ := store.PriorityQueue(b.cfg.Queue, store.PriorityHigh)
	reserveUp := func() bool {
		servers, err := insp.Servers()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range servers {
			if len(s.Queues) == 1 && s.Queues[highQ] > 0 && s.Concurrency == 5 {
				return true
			}
		}
		return false
	}
	hotUp := func() bool {
		servers, err := insp.Servers()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, s := range servers {
			if _, ok := s.Queues[b.cfg.Queue]; ok {
				n++
			}
		}
		return n > 1 // the base lane and at least one hot one
	}
	_, stop := b.start()
	defer stop()

	// Normal messages, one every 200 ms for 3 s: the hot lanes run, the
	// reserve lane never does.
	var norm []string
	for i := 0; i < 15; i++ {
		norm = append(norm, b.enqueue(1, fmt.Sprintf("n%d", i), nil)...)
		time.Sleep(200 * time.Millisecond)
		if reserveUp() {
			t.Fatalf("the reserve lane runs after %d normal messages and no high one", i+1)
		}
	}
	if !hotUp() {
		t.Fatal("the hot lanes are not running while normal messages flow")
	}
	waitFor(t, 30*time.Second, "the normal messages to be submitted", func() bool {
		return b.countStatus(norm, "submitted") == len(norm)
	})
	high := b.enqueue(1, "h", func(_ int, r *store.Record) { r.Priority = store.PriorityHigh })
	waitFor(t, 30*time.Second, "the high message to be submitted", func() bool {
		return b.countStatus(high, "submitted") == 1
	})
	waitFor(t, 30*time.Second, "the reserve lane to run after a high message", reserveUp)
	waitFor(t, 60*time.Second, "the reserve lane to stop HotLinger after the last high message", func() bool { return !reserveUp() })
}
