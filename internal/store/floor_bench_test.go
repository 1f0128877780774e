package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redoxygen/roxd/internal/testutil"
)

// BenchmarkRedisInstructionsFloor reports the instructions Redis executes
// per message for the plainest life a message can have in it: the data
// roxd must keep, written with plain pipelined commands, no Lua, no
// in-flight index, no checks beyond what each step needs to read. It is the
// floor BenchmarkRedisInstructionsLife plus callbacks'
// BenchmarkRedisInstructionsReceipt are measured against (the same 20
// batches of 500 messages of 160 characters with metadata, each to its own
// number, in the same steps):
//
//   - enqueue, chunks of 128: EXISTS over the chunk's record keys (a replay
//     must not create twice), SMISMEMBER of their numbers (the opt-out
//     list), one HSET of the record (the fields the enqueue script writes)
//     each, one RPUSH of the ids to the ready list;
//   - form, batches of 500: LPOP 500 ids, one HSET of the batch;
//   - claim: per message an HMGET of what ROX needs and the status, and an
//     HSET of status sending, its time and the attempt;
//   - record: per message an HSET of status submitted, sms_id, request_id
//     and its time, its PEXPIRE (the status TTL) and the SMSId map's SET
//     ... PX;
//   - receipt, groups of 25 callbacks (two round trips: the SMSId maps and
//     the dedup markers first, then the rest): per callback a GET of its
//     SMSId map and of its dedup marker (one MGET per group), the record's
//     HMGET of meta and status, an HSET of status delivered and its time,
//     the stream entry's XADD (the same 17 fields) and the dedup marker's
//     SET ... PX.
//
// What it leaves out is what makes the steps safe (atomic scripts, the
// duplicate guard, the in-flight index and the evidence of the reconcile
// protocol, status order, opt-out replies, the deferral of early
// callbacks): it is not a design, only the cost of the data itself. Run it
// through scripts/redis-instructions.sh; elsewhere it skips.
func BenchmarkRedisInstructionsFloor(b *testing.B) {
	cg := testutil.NewCallgrind(b)
	rdb := testutil.Redis(b)
	ctx := context.Background()
	const batches, size, chunk, group = 20, 500, 128, 25
	base := "{" + testutil.Name("floor") + "}:"
	text := strings.Repeat("x", 160)
	ttl := 24 * time.Hour
	exec := func(p redis.Pipeliner) []redis.Cmder {
		cmds, err := p.Exec(ctx)
		if err != nil {
			b.Fatal(err)
		}
		return cmds
	}
	var per [5]int64
	for run := range b.N {
		n := batches * size
		id := func(i int) string { return fmt.Sprintf("f%d-%d", run, i) }
		sms := func(i int) string { return fmt.Sprintf("sms-%d-%d", run, i) }
		to := func(i int) string { return fmt.Sprintf("+614%02d%06d", run%100, i) }
		ready := base + "ready:now|always|http"
		cg.Zero(b)
		// enqueue
		for c := 0; c < n; c += chunk {
			p := rdb.Pipeline()
			var keys, ids []any
			var tos []any
			for i := c; i < min(c+chunk, n); i++ {
				keys = append(keys, base+"msg:"+id(i))
				tos = append(tos, to(i))
				ids = append(ids, id(i))
			}
			ks := make([]string, len(keys))
			for i, k := range keys {
				ks[i] = k.(string)
			}
			p.Exists(ctx, ks...)
			p.SMIsMember(ctx, base+"suppressed", tos...)
			for i := c; i < min(c+chunk, n); i++ {
				p.HSet(ctx, base+"msg:"+id(i), "to", to(i), "text", text, "receipt", "always", "reply", "http",
					"hash", "0123456789abcdef0123456789abcdef", "group", "now|always|http", "status", "queued",
					"t_queued", "1700000000000", "meta", `{"order":"`+id(i)+`"}`)
			}
			p.RPush(ctx, ready, ids...)
			exec(p)
		}
		per[0] += cg.Dump(b)
		// form
		for bi := range batches {
			ids, err := rdb.LPopCount(ctx, ready, size).Result()
			if err != nil {
				b.Fatal(err)
			}
			if err := rdb.HSet(ctx, base+"batch:"+strconv.Itoa(bi), "group", "now|always|http", "ids", strings.Join(ids, ",")).Err(); err != nil {
				b.Fatal(err)
			}
		}
		per[1] += cg.Dump(b)
		// claim
		for bi := range batches {
			p := rdb.Pipeline()
			for i := bi * size; i < (bi+1)*size; i++ {
				k := base + "msg:" + id(i)
				p.HMGet(ctx, k, "status", "to", "text")
				p.HSet(ctx, k, "status", "sending", "t_sending", "1700000000001", "attempts", "1")
			}
			exec(p)
		}
		per[2] += cg.Dump(b)
		// record
		for bi := range batches {
			p := rdb.Pipeline()
			for i := bi * size; i < (bi+1)*size; i++ {
				k := base + "msg:" + id(i)
				p.HSet(ctx, k, "status", "submitted", "sms_id", sms(i), "request_id", "req", "t_submitted", "1700000000002")
				p.PExpire(ctx, k, ttl)
				p.Set(ctx, base+"sms:"+sms(i), id(i), ttl)
			}
			exec(p)
		}
		per[3] += cg.Dump(b)
		// receipt
		for g := 0; g < n; g += group {
			ks := make([]string, 0, 2*group)
			for i := g; i < g+group; i++ {
				ks = append(ks, base+"sms:"+sms(i), base+"cb:seen:ev-"+sms(i))
			}
			got, err := rdb.MGet(ctx, ks...).Result()
			if err != nil {
				b.Fatal(err)
			}
			p := rdb.Pipeline()
			recs := make([]*redis.SliceCmd, group)
			for i := g; i < g+group; i++ {
				mid, _ := got[2*(i-g)].(string)
				recs[i-g] = p.HMGet(ctx, base+"msg:"+mid, "meta", "status")
			}
			exec(p)
			p = rdb.Pipeline()
			for i := g; i < g+group; i++ {
				mid, _ := got[2*(i-g)].(string)
				meta, _ := recs[i-g].Val()[0].(string)
				p.HSet(ctx, base+"msg:"+mid, "status", "delivered", "t_delivered", "1700000000003")
				p.XAdd(ctx, &redis.XAddArgs{Stream: base + "receipts", MaxLen: 1_000_000, Approx: true, Values: []any{
					"event_id", "ev-" + sms(i), "kind", "receipt", "message_id", mid,
					"sms_id", sms(i), "request_id", "req", "account_id", "acct", "timestamp", "2026-12-01T00:00:00Z",
					"dest_tn", to(i), "result", "0000", "result_text", "Delivered", "status", "delivered",
					"status_after", "delivered", "metadata", meta}})
				p.Set(ctx, base+"cb:seen:ev-"+sms(i), "1", 7*24*time.Hour)
			}
			exec(p)
		}
		per[4] += cg.Dump(b)
	}
	total := float64(b.N * batches * size)
	var sum int64
	for i, name := range []string{"enqueue", "form", "claim", "record", "receipt"} {
		b.ReportMetric(float64(per[i])/total, name+"-instr/msg")
		sum += per[i]
	}
	b.ReportMetric(float64(sum)/total, "instr/msg")
	keys, _ := rdb.Keys(ctx, base+"*").Result()
	for len(keys) > 0 {
		k := min(len(keys), 1000)
		rdb.Del(ctx, keys[:k]...)
		keys = keys[k:]
	}
}
