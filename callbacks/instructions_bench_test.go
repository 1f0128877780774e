package callbacks

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redoxygen/roxd/internal/testutil"
)

// BenchmarkRedisInstructionsReceipt reports the instructions Redis executes
// per delivery receipt stored (known SMSId, record submitted -> delivered,
// entry on the receipts stream), in groups of 25 callbacks per script call
// (what the receiver's group commit makes of ~8,000 receipts/s). Run it
// through scripts/redis-instructions.sh, which starts Redis under
// callgrind; elsewhere it skips. The rest of a message's life is
// internal/store's BenchmarkRedisInstructionsLife.
func BenchmarkRedisInstructionsReceipt(b *testing.B) {
	cg := testutil.NewCallgrind(b)
	bn := setup(b, nil, nil)
	ctx := context.Background()
	const n, group = 20000, 25
	st := bn.recv.st
	events := func(run int) []*event {
		p := bn.rdb.Pipeline()
		evs := make([]*event, 0, n)
		now := time.Now()
		for i := range n {
			id, sms := fmt.Sprintf("m%d-%d", run, i), fmt.Sprintf("sms-%d-%d", run, i)
			p.HSet(ctx, bn.keys.Msg(id), "to", "+61407555001", "text", strings.Repeat("x", 160), "meta", `{"order":"`+id+`"}`,
				"status", "submitted", "sms_id", sms, "request_id", "req-1", "t_submitted", "1")
			p.Set(ctx, bn.keys.SMS(sms), id, time.Hour)
			ev, _, err := bn.recv.decode(KindReceipt, []byte(receiptBody(testAccount, sms, "0000", ts1)), now)
			if err != nil {
				b.Fatal(err)
			}
			evs = append(evs, ev)
		}
		if _, err := p.Exec(ctx); err != nil {
			b.Fatal(err)
		}
		return evs
	}
	store := func(evs []*event) {
		for i := 0; i < len(evs); i += group {
			for _, r := range st.exec(ctx, evs[i:min(i+group, len(evs))]) {
				if r.err != nil || r.dup || r.deferred || !r.moved || r.id == "" {
					b.Fatalf("store: %+v", r)
				}
			}
		}
	}
	// the script loaded first (a server compiles a script on its first EVAL)
	store(events(b.N)[:1])
	var total int64
	for run := range b.N {
		evs := events(run)
		cg.Zero(b)
		store(evs)
		total += cg.Dump(b)
	}
	b.ReportMetric(float64(total)/float64(b.N*n), "instr/receipt")
}
