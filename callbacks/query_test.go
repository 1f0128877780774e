package callbacks

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzQueryGet holds queryGet to url.ParseQuery(raw).Get, which the
// receiver called before (req.URL.Query()).
func FuzzQueryGet(f *testing.F) {
	for _, q := range []string{"", "s=0", "s=1&s=2", "a=1;s=2&s=3", "s=%zz&s=4", "%73=5", "s", "s=&s=6", "&&s=7",
		"s=%2", "x=1&" + ShardParam + "=+3", strings.Repeat("&", 10000) + "s=1"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		want, _ := url.ParseQuery(raw)
		if got := queryGet(raw, ShardParam); got != want.Get(ShardParam) {
			t.Fatalf("queryGet(%q) = %q, ParseQuery: %q", raw, got, want.Get(ShardParam))
		}
	})
}

// BenchmarkReceiptGroupArgs is the receiver's CPU per receipt before
// Redis in a group of 8: decode, event, the group's script arguments.
func BenchmarkReceiptGroupArgs(b *testing.B) {
	r := fuzzReceiver(b)
	body := []byte(receiptBody(testAccount, "123e4567-e89b-12d3-a456-426614174001", "0000", ts1))
	evs := make([]*event, 8)
	b.ReportAllocs()
	for b.Loop() {
		for i := range evs {
			ev, _, err := r.decode(KindReceipt, body, fuzzNow)
			if err != nil {
				b.Fatal(err)
			}
			evs[i] = ev
		}
		r.st.groupArgs(0, evs)
	}
}
