package store

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestGroupPriority(t *testing.T) {
	for _, tc := range []struct{ p, group, want string }{
		{"", "now|always|http", PriorityNormal},
		{PriorityNormal, "now|always|http", PriorityNormal},
		{PriorityHigh, "now|always|http|p=high", PriorityHigh},
		{PriorityBulk, "now|always|http|p=bulk", PriorityBulk},
	} {
		g := WithPriority("now|always|http", tc.p)
		if g != tc.group || GroupPriority(g) != tc.want {
			t.Errorf("WithPriority(%q) = %q (priority %q), want %q (%q)", tc.p, g, GroupPriority(g), tc.group, tc.want)
		}
		if _, rc, rp, err := ParseGroup(g); err != nil || rc != "always" || rp != "http" {
			t.Errorf("ParseGroup(%q) = %q %q %v", g, rc, rp, err)
		}
	}
	if _, _, _, err := ParseGroup("now|always|http|junk"); err == nil {
		t.Error("ParseGroup accepted an untagged fourth component")
	}
	if q := PriorityQueues("roxd"); strings.Join(q, ",") != "roxd-high,roxd,roxd-bulk" {
		t.Errorf("PriorityQueues = %v", q)
	}
}

func TestEnqueuePriorityOwnReadyListAndHash(t *testing.T) {
	bb := setupBatch(t)
	bb.add(t, 3, "p", func(i int, r *Record) { r.Priority = Priorities[i] })
	for i, p := range Priorities {
		g := WithPriority("now|always|http", p)
		ids := bb.rdb.LRange(bb.ctx, bb.s.keys.Ready(g), 0, -1).Val()
		if len(ids) != 1 || ids[0] != fmt.Sprintf("p-%d", i) {
			t.Errorf("ready list of %q = %v", g, ids)
		}
		r, err := bb.s.Get(bb.ctx, fmt.Sprintf("p-%d", i))
		if err != nil || r.Priority != p || r.Group != g {
			t.Errorf("record %+v %v, want priority %s group %s", r, err, p, g)
		}
	}
	// The priority is content: the same id with another priority conflicts,
	// while normal spelt out or left empty is the same message.
	a := Record{ID: "x", To: "+61412345678", Text: "t", Receipt: "always", Reply: "http"}
	b := a
	b.Priority = PriorityNormal
	c := a
	c.Priority = PriorityHigh
	if a.ContentHash() != b.ContentHash() || a.ContentHash() == c.ContentHash() {
		t.Error("content hash: normal must equal empty, high must differ")
	}
	if _, _, err := bb.s.Enqueue(bb.ctx, []Record{{ID: "y", To: "+61412345678", Text: "t", Priority: "urgent"}}); err == nil {
		t.Error("Enqueue accepted priority urgent")
	}
}

// A high message behind a bulk backlog and waiting bulk batches is formed
// first, at once, in its own batch; the bulk backlog stays in its ready
// list beyond MaxWaitingBulk waiting batches.
func TestFormHighFirstUnderBulkBacklog(t *testing.T) {
	bb := setupBatch(t)
	bulk := bb.add(t, 5000, "bulk", func(_ int, r *Record) { r.Priority = PriorityBulk })
	norm := bb.add(t, 1200, "norm", nil)
	now := time.Now().Add(time.Second)
	p := FormParams{MaxBatch: 500, Linger: time.Millisecond, MaxWaiting: 2, MaxWaitingBulk: 3}
	// First pass: normal's two full batches (and its partial: 2 waiting is
	// not below MaxWaiting, so no), bulk's three.
	f := bb.form(t, p, now)
	var nb, nn int
	for _, x := range f {
		switch GroupPriority(x.Group) {
		case PriorityBulk:
			nb++
		case PriorityNormal:
			nn++
		}
		if x.Size != 500 {
			t.Errorf("batch %+v: want full", x)
		}
	}
	if nb != 3 || nn != 2 {
		t.Fatalf("formed %d bulk and %d normal batches, want 3 and 2: %+v", nb, nn, f)
	}
	if n := bb.rdb.LLen(bb.ctx, bb.s.keys.Ready(WithPriority("now|always|http", PriorityBulk))).Val(); n != 3500 {
		t.Fatalf("bulk ready list holds %d, want 3500 (the backlog stays there)", n)
	}
	// Now a high message: three bulk and two normal batches wait, yet its
	// partial batch forms at once, and first.
	high := bb.add(t, 1, "high", func(_ int, r *Record) { r.Priority = PriorityHigh })
	f = bb.form(t, p, now.Add(time.Second))
	if len(f) == 0 || f[0].Group != "now|always|http|p=high" || f[0].Size != 1 || f[0].First[0] != high[0] {
		t.Fatalf("formed %+v, want the high message's batch first", f)
	}
	for _, x := range f[1:] {
		if GroupPriority(x.Group) == PriorityBulk {
			t.Errorf("formed bulk batch %+v while 3 bulk batches wait", x)
		}
	}
	// No batch mixes priorities.
	prio := map[string]string{}
	for _, id := range append(append(bulk, norm...), high...) {
		prio[id] = bb.rdb.HGet(bb.ctx, bb.s.keys.Msg(id), "group").Val()
	}
	ids := bb.rdb.ZRange(bb.ctx, bb.s.keys.Batches(), 0, -1).Val()
	for _, bid := range ids {
		bi, err := bb.b.Batch(bb.ctx, bid)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range bi.IDs {
			if GroupPriority(prio[id]) != GroupPriority(bi.Group) {
				t.Fatalf("batch %s of group %q holds %s of group %q", bid, bi.Group, id, prio[id])
			}
		}
	}
	// A claim takes the batch off its priority's waiting zset: room for
	// one more bulk batch.
	var bulkBatch string
	for _, bid := range ids {
		if bi, _ := bb.b.Batch(bb.ctx, bid); GroupPriority(bi.Group) == PriorityBulk {
			bulkBatch = bid
			break
		}
	}
	if c, err := bb.b.Claim(bb.ctx, bulkBatch, "tok", time.Minute, time.Now()); err != nil || c.State != ClaimOK {
		t.Fatalf("claim %v %v", c.State, err)
	}
	if n := bb.rdb.ZCard(bb.ctx, bb.s.keys.WaitingOf(PriorityBulk)).Val(); n != 2 {
		t.Fatalf("bulk waiting zset holds %d after a claim, want 2", n)
	}
	f = bb.form(t, p, now.Add(2*time.Second))
	if len(f) != 1 || GroupPriority(f[0].Group) != PriorityBulk {
		t.Fatalf("formed %+v, want one more bulk batch", f)
	}
}

// A flood of high messages never keeps bulk from being formed: the
// per-call bound is per priority (the asynq queues order them).
func TestFormHighFloodStillFormsBulk(t *testing.T) {
	bb := setupBatch(t)
	bb.add(t, 3000, "high", func(_ int, r *Record) { r.Priority = PriorityHigh })
	bb.add(t, 600, "bulk", func(_ int, r *Record) { r.Priority = PriorityBulk })
	f := bb.form(t, FormParams{MaxBatch: 500, Linger: time.Hour, MaxWaiting: 4, MaxForm: 2}, time.Now())
	var high, bulk int
	for _, x := range f {
		switch GroupPriority(x.Group) {
		case PriorityHigh:
			high++
		case PriorityBulk:
			bulk++
		}
	}
	if high != 2 || bulk != 1 || GroupPriority(f[0].Group) != PriorityHigh {
		t.Fatalf("formed %d high and %d bulk batches (%+v), want 2 high first and 1 bulk", high, bulk, f)
	}
	// An auth probe (MaxForm 1) forms one batch in all.
	if f := bb.form(t, FormParams{MaxBatch: 500, Linger: time.Hour, MaxWaiting: 4, MaxForm: 1}, time.Now()); len(f) != 1 {
		t.Fatalf("probe formed %d batches, want 1", len(f))
	}
}

// Form restricted to some priorities (the worker's high former and its
// other former) forms only theirs, and HasReadyOf tells a priority's
// waiting messages from the others'.
func TestFormRestrictedToPriorities(t *testing.T) {
	bb := setupBatch(t)
	bb.add(t, 1100, "bulk", func(_ int, r *Record) { r.Priority = PriorityBulk })
	bb.add(t, 3, "norm", nil)
	now := time.Now().Add(time.Second)
	p := FormParams{MaxBatch: 500, Linger: time.Millisecond, MaxWaiting: 4, MaxForm: 2, Priorities: []string{PriorityHigh}}
	if f := bb.form(t, p, now); len(f) != 0 {
		t.Fatalf("a high-only call formed %+v with no high message", f)
	}
	if ok, err := bb.b.HasReadyOf(bb.ctx, PriorityHigh); err != nil || ok {
		t.Fatalf("HasReadyOf(high) = %v, %v with no high message", ok, err)
	}
	high := bb.add(t, 2, "high", func(_ int, r *Record) { r.Priority = PriorityHigh })
	if ok, err := bb.b.HasReadyOf(bb.ctx, PriorityHigh); err != nil || !ok {
		t.Fatalf("HasReadyOf(high) = %v, %v with two high messages waiting", ok, err)
	}
	// The other former leaves high alone.
	low := p
	low.Priorities = []string{PriorityNormal, PriorityBulk}
	f := bb.form(t, low, now)
	if len(f) != 3 {
		t.Fatalf("normal+bulk call formed %d batches (%+v), want 2 bulk and 1 normal", len(f), f)
	}
	for _, x := range f {
		if GroupPriority(x.Group) == PriorityHigh {
			t.Fatalf("normal+bulk call formed high batch %+v", x)
		}
	}
	if n := bb.rdb.LLen(bb.ctx, bb.s.keys.Ready(WithPriority("now|always|http", PriorityHigh))).Val(); n != 2 {
		t.Fatalf("high ready list holds %d, want 2", n)
	}
	// The high call takes the two high messages, nothing else, even with
	// waiting batches of the other priorities.
	f = bb.form(t, p, now)
	if len(f) != 1 || f[0].Size != 2 || f[0].First[0] != high[0] || GroupPriority(f[0].Group) != PriorityHigh {
		t.Fatalf("high call formed %+v, want one batch of the 2 high messages", f)
	}
	if ok, _ := bb.b.HasReadyOf(bb.ctx, PriorityHigh); ok {
		t.Fatal("HasReadyOf(high) after the high messages were formed")
	}
	if ok, _ := bb.b.HasReadyOf(bb.ctx, PriorityBulk); !ok {
		t.Fatal("HasReadyOf(bulk) false with 100 bulk messages left")
	}
	if f := bb.form(t, p, now); len(f) != 0 {
		t.Fatalf("high call formed %+v with only bulk left", f)
	}
}
