package producer

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// BenchmarkValidate is the CPU cost of one message before Redis: number
// parsing, limits, encoding, content hash.
func BenchmarkValidate(b *testing.B) {
	p := &Producer{cfg: Config{}.WithDefaults()}
	m := Message{To: "0412 345 678", Text: "Your verification code is 123456", Metadata: map[string]string{"order": "42"}}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, res := p.prepare(&m, now); res.Err != nil {
			b.Fatal(res.Err)
		}
	}
}

// BenchmarkSendMany1000 is one SendMany of 1,000 messages (validation and
// one pipelined round trip) per iteration, on the test Redis.
func BenchmarkSendMany1000(b *testing.B) {
	tb := setup(b)
	msgs := make([]Message, 1000)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		for i := range msgs {
			n++
			msgs[i] = Message{ID: fmt.Sprintf("b%08d", n), To: fmt.Sprintf("04%08d", 12000000+n%1000000), Text: "Your code is 123456"}
		}
		res, err := tb.p.SendMany(tb.ctx, msgs)
		if err != nil || res[0].Err != nil {
			b.Fatal(err, res[0].Err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkEncoding is the encoding and segment count of texts as ingest
// sees them: a short GSM-7 code, a 3-part GSM-7 text with a line break, and
// a 3-part UCS-2 text with emoji (grapheme clusters of several code points).
func BenchmarkEncoding(b *testing.B) {
	for _, bc := range []struct{ name, text string }{
		{"gsm-short", "Your verification code is 123456"},
		{"gsm-3parts", strings.Repeat("Your parcel is on its way.\r\n", 12)},
		{"ucs2-3parts", strings.Repeat("Hi 👋🏽 your table 🇮🇹 is ready ", 6)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, n := Encoding(bc.text); n < 1 {
					b.Fatal(n)
				}
			}
		})
	}
}
