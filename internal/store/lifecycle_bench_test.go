package store

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisCost reads Redis's CPU seconds (user+sys) and its command count
// (INFO commandstats, commands run by scripts included) by command.
func redisCost(ctx context.Context, rdb redis.UniversalClient) (float64, map[string]int64) {
	cpu := 0.0
	for _, l := range strings.Split(rdb.Info(ctx, "cpu").Val(), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), ":")
		if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
			f, _ := strconv.ParseFloat(v, 64)
			cpu += f
		}
	}
	calls := map[string]int64{}
	for _, l := range strings.Split(rdb.Info(ctx, "commandstats").Val(), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), ":")
		if !ok || !strings.HasPrefix(k, "cmdstat_") {
			continue
		}
		c, rest, _ := strings.Cut(strings.TrimPrefix(v, "calls="), ",")
		n, _ := strconv.ParseInt(c, 10, 64)
		calls[strings.TrimPrefix(k, "cmdstat_")] = n
		u, _, _ := strings.Cut(strings.TrimPrefix(rest, "usec="), ",")
		us, _ := strconv.ParseInt(u, 10, 64)
		calls["usec:"+strings.TrimPrefix(k, "cmdstat_")] = us
	}
	return cpu, calls
}

// BenchmarkFormClaimRecord is the worker's Redis part of a message's life
// (form, claim, record of batches of 500, every recipient submitted), per
// message: Redis CPU (µs) and commands, by command with -v. The enqueue
// is outside the measurement. Meant for a private Redis (TEST_REDIS_URL):
// the figures are the whole server's.
func BenchmarkFormClaimRecord(b *testing.B) {
	bb := setupBatch(&testing.T{})
	ctx := bb.ctx
	const size = 500
	var cpu float64
	var calls map[string]int64
	msgs := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		ids := bb.add(&testing.T{}, size, fmt.Sprintf("bm%d", i), nil)
		now := time.Now().Add(time.Second)
		c0, k0 := redisCost(ctx, bb.rdb)
		b.StartTimer()
		f, err := bb.b.Form(ctx, FormParams{MaxBatch: size, MaxWaiting: 1, MaxForm: 1, IDPrefix: fmt.Sprintf("bm%d-", i)}, now)
		if err != nil || len(f) != 1 || f[0].Size != size {
			b.Fatalf("form %+v %v", f, err)
		}
		c, err := bb.b.Claim(ctx, f[0].ID, "tok", time.Minute, now)
		if err != nil || len(c.Items) != size {
			b.Fatalf("claim %d %v", len(c.Items), err)
		}
		out := make([]SendOutcome, len(ids))
		for j, id := range ids {
			out[j] = SendOutcome{ID: id, Kind: OutcomeSubmitted, Value: "sms-" + id}
		}
		if _, err := bb.b.Record(ctx, f[0].ID, "tok", "req", out, now); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		c1, k1 := redisCost(ctx, bb.rdb)
		cpu += c1 - c0
		if calls == nil {
			calls = map[string]int64{}
		}
		for k, v := range k1 {
			calls[k] += v - k0[k]
		}
		calls["info"] -= 2
		msgs += size
		keys, _ := bb.rdb.Keys(ctx, bb.s.keys.Base()+"*").Result()
		if len(keys) > 0 {
			bb.rdb.Del(ctx, keys...)
		}
		b.StartTimer()
	}
	b.StopTimer()
	var total int64
	var by []string
	for k, v := range calls {
		if strings.HasPrefix(k, "usec:") {
			if v >= int64(msgs)/100 {
				by = append(by, fmt.Sprintf("%s %.2f", k, float64(v)/float64(msgs)))
			}
		} else if v >= int64(msgs)/100 {
			total += v
			by = append(by, fmt.Sprintf("%s %.2f", k, float64(v)/float64(msgs)))
		}
	}
	b.ReportMetric(cpu*1e6/float64(msgs), "redis-µs/msg")
	b.ReportMetric(float64(total)/float64(msgs), "cmds/msg")
	sort.Strings(by)
	b.Logf("commands per message: %s", strings.Join(by, ", "))
}
