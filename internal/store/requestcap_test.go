package store

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/rox"
)

func TestRequestCapClasses(t *testing.T) {
	for _, c := range []struct {
		bytes, want int
	}{
		{220, 500}, {2000, 500}, {2100, 250}, {4200, 125}, {12_000, 62}, {24_100, 31}, {1 << 20, 1}, {0, 500},
	} {
		if got := RequestCap(c.bytes); got != c.want {
			t.Errorf("RequestCap(%d) = %d, want %d", c.bytes, got, c.want)
		}
		if k := RequestCap(c.bytes); k > 1 && k*c.bytes > rox.MaxRequestBytes {
			t.Errorf("RequestCap(%d) = %d: %d bytes of recipients, over %d", c.bytes, k, k*c.bytes, rox.MaxRequestBytes)
		}
	}
}

// A message whose request entry is large goes to a group with a cap
// ("|n=<k>"), which every reader of the group key still parses; the form
// script forms batches of at most k, and those requests fit in
// rox.MaxRequestBytes. A 160-character text keeps the plain group.
func TestEnqueueSizesGroupsByRequestBytes(t *testing.T) {
	bb := setupBatch(t)
	cjk := strings.Repeat("漢", rox.MaxTextLen-10)
	esc := strings.Repeat("<", rox.MaxTextLen-10) // each written \u003c: 6 bytes
	ids := bb.add(t, 300, "cap", func(i int, r *Record) {
		switch i % 3 {
		case 0:
			r.Text = fmt.Sprintf("%d %s", i, cjk)
		case 1:
			r.Text = fmt.Sprintf("%d %s", i, esc)
			r.Priority = PriorityHigh
			r.Account = "second"
		}
	})
	groups := map[string]int{}
	for _, id := range ids {
		rec, err := bb.s.Get(bb.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		groups[rec.Group]++
		if _, _, _, err := ParseGroup(rec.Group); err != nil {
			t.Fatalf("group %q: %v", rec.Group, err)
		}
	}
	want := map[string]int{
		"now|always|http|n=62":                100,
		"now|always|http|p=high|@second|n=31": 100,
		"now|always|http":                     100,
	}
	for g, n := range want {
		if groups[g] != n {
			t.Errorf("group %q has %d messages, want %d (groups %v)", g, groups[g], n, groups)
		}
	}
	if p, a := GroupPriority("now|always|http|p=high|@second|n=31"), GroupAccount("now|always|http|p=high|@second|n=31"); p != PriorityHigh || a != "second" {
		t.Errorf("priority %q, account %q", p, a)
	}
	formed := bb.form(t, FormParams{MaxBatch: rox.MaxRecipients, MaxWaiting: 1 << 20, Linger: 0}, time.Now().Add(time.Second))
	sizes := map[string][]int{}
	for _, f := range formed {
		sizes[f.Group] = append(sizes[f.Group], f.Size)
	}
	for g, cap := range map[string]int{"now|always|http|n=62": 62, "now|always|http|p=high|@second|n=31": 31, "now|always|http": 100} {
		total := 0
		for _, n := range sizes[g] {
			if n > cap {
				t.Errorf("group %q: a batch of %d, over its cap %d", g, n, cap)
			}
			total += n
		}
		if total != 100 {
			t.Errorf("group %q: %d formed, want 100 (%v)", g, total, sizes[g])
		}
	}
	// the largest batch's request, as the worker encodes it, fits
	req := rox.SendRequest{Messages: rox.Messages{}}
	for i := range 62 {
		req.Messages.Recipients = append(req.Messages.Recipients, rox.Recipient{DestTn: "+61407555001", SMSText: fmt.Sprintf("%d %s", i, cjk)})
	}
	if b, err := rox.EncodeSendRequest(&req); err != nil || len(b) > rox.MaxRequestBytes {
		t.Errorf("62 CJK texts encode to %d bytes (%v), over %d", len(b), err, rox.MaxRequestBytes)
	}
}

// roxd dev runs the scripts on miniredis, whose Lua (gopher-lua) is not
// Redis's: tonumber(nil) is an error there, and it made every Form fail in
// dev (TestDevFirstSMS). A plain and a capped group, enqueued and formed
// on miniredis.
func TestRequestCapOnMiniredis(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	s, err := New(rdb, Config{Prefix: "mini"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var recs []Record
	for i := range 6 {
		r := Record{ID: fmt.Sprintf("m%d", i), To: fmt.Sprintf("+6140755500%d", i), Text: "hi", Receipt: "always", Reply: "http"}
		if i >= 3 {
			r.Text = strings.Repeat("漢", rox.MaxTextLen)
		}
		recs = append(recs, r)
	}
	if _, _, err := s.Enqueue(ctx, recs); err != nil {
		t.Fatal(err)
	}
	f, err := s.Batches().Form(ctx, FormParams{MaxBatch: rox.MaxRecipients, MaxWaiting: 100, MaxForm: 8, IDPrefix: "b-"}, time.Now().Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, b := range f {
		got[b.Group] = b.Size
	}
	if len(f) != 2 || got["now|always|http"] != 3 || got["now|always|http|n=62"] != 3 {
		t.Errorf("formed %+v, want 3 in now|always|http and 3 in now|always|http|n=62", f)
	}
}
