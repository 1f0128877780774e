package producer

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// plainNumber is normalizeNumber's answer computed with libphonenumber
// alone, no cache: the reference of the differential test.
func plainNumber(number, region string) (string, string) {
	num, err := phonenumbers.Parse(number, region)
	if err != nil {
		return "", fmt.Sprintf("not a phone number (%v)", err)
	}
	if !phonenumbers.IsValidNumber(num) {
		return "", fmt.Sprintf("%q is not a valid phone number (default region %s)", number, region)
	}
	return phonenumbers.Format(num, phonenumbers.E164), ""
}

// numberCorpus is a large mix of valid, invalid and odd numbers, bare and
// with a country code, national prefixes, separators.
func numberCorpus(n int) []string {
	r := rand.New(rand.NewPCG(13, 42))
	prefixes := []string{"+61", "+614", "04", "02", "+64", "021", "+44", "+447", "07", "+1", "1", "+49", "+91", "+86", "+7", "+33", "0", "+610", "+6104", "00", "+800", "+882", ""}
	out := make([]string, 0, n+len(numberBases))
	for _, b := range numberBases {
		out = append(out, b.in)
	}
	for len(out) < n {
		s := prefixes[r.IntN(len(prefixes))]
		for range 4 + r.IntN(10) {
			s += strconv.Itoa(r.IntN(10))
			if r.IntN(12) == 0 {
				s += []string{" ", "-", "."}[r.IntN(3)]
			}
		}
		out = append(out, strings.TrimSpace(s)) // normalizeNumber trims
	}
	return out
}

// TestNumberCacheDifferential: every answer through the cache (a miss,
// then a hit) is plain libphonenumber's, for 10,000 numbers in 4 regions.
func TestNumberCacheDifferential(t *testing.T) {
	size := 10000
	if raceOn {
		size = 400 // the same code paths; the full corpus runs without -race
	}
	corpus := numberCorpus(size)
	valid := 0
	for _, region := range []string{"AU", "NZ", "GB", "US"} {
		for _, in := range corpus {
			if numberSyntax(in) != "" {
				continue
			}
			want, wantMsg := plainNumber(in, region)
			if want != "" {
				valid++
			}
			for pass := 0; pass < 2; pass++ {
				a := numbers.get(in, region)
				if a.e164 != want || a.msg != wantMsg {
					t.Fatalf("%q in %s (pass %d): cache says (%q, %q), libphonenumber (%q, %q)", in, region, pass, a.e164, a.msg, want, wantMsg)
				}
			}
			got, ferr := normalizeNumber("to", in, region)
			if want != "" && (ferr != nil || got != want) {
				t.Fatalf("%q in %s: normalizeNumber (%q, %v), want %q", in, region, got, ferr, want)
			}
			if want == "" && (ferr == nil || ferr.Message != wantMsg || ferr.Field != "to" || ferr.Code != CodeInvalid) {
				t.Fatalf("%q in %s: normalizeNumber error %+v, want message %q", in, region, ferr, wantMsg)
			}
		}
	}
	if valid < size/10 {
		t.Fatalf("only %d valid numbers in the corpus: it does not test the valid path", valid)
	}
}

// TestNumberCacheBounded: the cache never holds more than its bound and
// keeps answering what lookup answers once entries are dropped.
func TestNumberCacheBounded(t *testing.T) {
	calls := 0
	c := newNumCache(func(number, region string) numAnswer {
		calls++
		return numAnswer{e164: region + number}
	})
	const n = 4 * numCacheShards * numCacheShardSize
	for i := range n {
		k := strconv.Itoa(i)
		if a := c.get(k, "AU"); a.e164 != "AU"+k {
			t.Fatalf("get(%s) = %+v", k, a)
		}
	}
	total := 0
	for i := range c.shards {
		total += len(c.shards[i].m)
	}
	if total > numCacheShards*numCacheShardSize || total < numCacheShards*numCacheShardSize/2 {
		t.Fatalf("cache holds %d entries, bound %d", total, numCacheShards*numCacheShardSize)
	}
	before := calls
	if a := c.get(strconv.Itoa(n-1), "AU"); a.e164 != "AU"+strconv.Itoa(n-1) || calls != before {
		t.Fatalf("the latest entry was not kept: %+v, %d lookups", a, calls-before)
	}
}

func BenchmarkNormalizeNumberCached(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_, _ = normalizeNumber("to", "+61412345678", "AU")
	}
}

// BenchmarkNormalizeNumberDistinct: every number new (the cache's worst
// case, all misses) against libphonenumber alone.
func BenchmarkNormalizeNumberDistinct(b *testing.B) {
	b.Run("cache", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			_, _ = normalizeNumber("to", "+614"+strconv.Itoa(10000000+i), "AU")
		}
	})
	b.Run("plain", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			_ = libNumber("+614"+strconv.Itoa(10000000+i), "AU")
		}
	})
}
