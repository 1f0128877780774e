package store

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redoxygen/roxd/internal/testutil"
)

// BenchmarkRedisInstructionsLife reports the instructions Redis executes per
// message for each worker-side step of its life: enqueue (Enqueue of 500, as
// one POST /v1/messages/batch), form, claim and record (every recipient
// submitted), 20 batches of 500 messages of 160 characters with metadata,
// each to its own number. Run it through scripts/redis-instructions.sh,
// which starts Redis under callgrind; elsewhere it skips. The receipt's part
// is callbacks' BenchmarkRedisInstructionsReceipt.
func BenchmarkRedisInstructionsLife(b *testing.B) {
	cg := testutil.NewCallgrind(b)
	t := &testing.T{}
	bb := setupBatch(t)
	ctx := bb.ctx
	const batches, size = 20, 500
	text := strings.Repeat("x", 160)
	recs := func(run, bi int) []Record {
		rs := make([]Record, size)
		for i := range rs {
			id := fmt.Sprintf("r%d-%d-%d", run, bi, i)
			rs[i] = Record{ID: id, To: fmt.Sprintf("+614%02d%06d", run%100, bi*size+i), Text: text, Receipt: "always", Reply: "http",
				Metadata: map[string]string{"order": id}}
		}
		return rs
	}
	// every script loaded first (a server compiles a script on its first EVAL)
	lifeOnce(b, bb, recs(b.N, 0)[:10], "w-", nil)
	var per [4]int64
	for run := range b.N {
		all := make([][]Record, batches)
		for bi := range all {
			all[bi] = recs(run, bi)
		}
		cg.Zero(b)
		for _, rs := range all {
			if _, _, err := bb.s.Enqueue(ctx, rs); err != nil {
				b.Fatal(err)
			}
		}
		per[0] += cg.Dump(b)
		lifeOnce(b, bb, nil, fmt.Sprintf("r%d-", run), func(step int) { per[step] += cg.Dump(b) })
	}
	n := float64(b.N * batches * size)
	for i, name := range []string{"enqueue", "form", "claim", "record"} {
		b.ReportMetric(float64(per[i])/n, name+"-instr/msg")
	}
	b.ReportMetric(float64(per[0]+per[1]+per[2]+per[3])/n, "instr/msg")
}

// lifeOnce enqueues recs (none: they are enqueued already), then forms
// every ready message into batches of 500, claims and records each batch
// (every recipient submitted); step(1), step(2), step(3) are called after
// the forming, the claims and the records when step is not nil.
func lifeOnce(b *testing.B, bb *batchBundle, recs []Record, prefix string, step func(int)) {
	ctx := bb.ctx
	if len(recs) > 0 {
		if _, _, err := bb.s.Enqueue(ctx, recs); err != nil {
			b.Fatal(err)
		}
	}
	now := time.Now().Add(time.Second)
	var fs []Formed
	for i := 0; ; i++ {
		f, err := bb.b.Form(ctx, FormParams{MaxBatch: 500, MaxWaiting: 1 << 20, MaxForm: 1, IDPrefix: fmt.Sprintf("%s%d-", prefix, i)}, now)
		if err != nil {
			b.Fatal(err)
		}
		if len(f) == 0 {
			break
		}
		fs = append(fs, f...)
	}
	if len(fs) == 0 {
		b.Fatal("nothing formed")
	}
	if step != nil {
		step(1)
	}
	claims := make([]Claim, len(fs))
	for i, f := range fs {
		c, err := bb.b.Claim(ctx, f.ID, "tok", time.Minute, now)
		if err != nil || len(c.Items) != f.Size {
			b.Fatalf("claim %s: %d of %d, %v", f.ID, len(c.Items), f.Size, err)
		}
		claims[i] = c
	}
	if step != nil {
		step(2)
	}
	for i, f := range fs {
		out := make([]SendOutcome, len(claims[i].Items))
		for j, it := range claims[i].Items {
			out[j] = SendOutcome{ID: it.ID, Kind: OutcomeSubmitted, Value: "sms-" + it.ID}
		}
		if _, err := bb.b.Record(ctx, f.ID, "tok", "req", out, now); err != nil {
			b.Fatal(err)
		}
	}
	if step != nil {
		step(3)
	}
}
