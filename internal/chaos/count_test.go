package chaos

import (
	"testing"

	"github.com/redoxygen/roxd/internal/store"
)

// Each kind of failure is counted once, and a clean run counts nothing.
func TestCount(t *testing.T) {
	msgs := func() []Message {
		return []Message{
			{ID: "a", DestTn: "+61410000001", Accepted: true},
			{ID: "b", DestTn: "+61410000002", Accepted: true},
			{ID: "c", DestTn: "+61410000003", Accepted: true},
		}
	}
	clean := func() Evidence {
		return Evidence{
			Messages: msgs(),
			Recipients: []SimRecipient{
				{DestTn: "+61410000001", SMSID: "s1", Queued: true},
				{DestTn: "+61410000002", SMSID: "s2", Queued: true},
				{DestTn: "+61410000003", SMSID: "s3", Queued: true},
			},
			Callbacks: []SimCallback{{Kind: "receipt", SMSID: "s1"}, {Kind: "receipt", SMSID: "s2"}, {Kind: "receipt", SMSID: "s3"}},
			Receipts:  []StreamReceipt{{SMSID: "s1", MessageID: "a"}, {SMSID: "s2", MessageID: "b"}, {SMSID: "s3", MessageID: "c"}},
			Statuses:  map[string]store.Status{"a": "delivered", "b": "delivered", "c": "delivered"},
		}
	}
	for _, tc := range []struct {
		name   string
		change func(*Evidence)
		want   func(Tally) int // the count that must be 1
		bad    bool
	}{
		{"clean", func(*Evidence) {}, func(Tally) int { return 1 }, false},
		{"sent twice", func(e *Evidence) {
			e.Recipients = append(e.Recipients, SimRecipient{DestTn: "+61410000002", SMSID: "s2b", Queued: true})
		}, func(t Tally) int { return t.SentTwice }, true},
		{"refused recipient is no SMS", func(e *Evidence) {
			e.Recipients = append(e.Recipients, SimRecipient{DestTn: "+61410000002", Queued: false})
		}, func(Tally) int { return 1 }, false},
		{"lost", func(e *Evidence) {
			e.Recipients = e.Recipients[1:]
			e.Receipts = e.Receipts[1:]
			e.Statuses["a"] = "sending"
		}, func(t Tally) int { return t.Lost }, true},
		{"forwarded to email", func(e *Evidence) {
			e.Callbacks = append(e.Callbacks, SimCallback{Kind: "receipt", SMSID: "s1", ForwardedToEmail: true})
		}, func(t Tally) int { return t.ForwardedToEmail }, true},
		{"receipt missing", func(e *Evidence) { e.Receipts = e.Receipts[:2] }, func(t Tally) int { return t.ReceiptsMissing }, true},
		{"receipt uncorrelated is missing for its message", func(e *Evidence) { e.Receipts[0].MessageID = "" },
			func(t Tally) int { return t.ReceiptsMissing * t.Uncorrelated }, true},
		{"receipt doubled", func(e *Evidence) { e.Receipts = append(e.Receipts, e.Receipts[2]) },
			func(t Tally) int { return t.ReceiptsDoubled }, true},
		{"uncorrelated doubled", func(e *Evidence) {
			e.Receipts = append(e.Receipts, StreamReceipt{SMSID: "x"}, StreamReceipt{SMSID: "x"})
		}, func(t Tally) int { return t.ReceiptsDoubled }, true},
		{"not final", func(e *Evidence) { e.Statuses["b"] = "submitted" }, func(t Tally) int { return t.NotFinal }, true},
		{"record missing", func(e *Evidence) { delete(e.Statuses, "c") },
			func(t Tally) int { return t.NotFinal * t.RecordsMissing }, true},
		{"not accepted", func(e *Evidence) {
			e.Messages[2].Accepted = false
			e.Recipients, e.Receipts = e.Recipients[:2], e.Receipts[:2]
		}, func(t Tally) int { return t.NotAccepted }, true},
		{"failed is told, not lost", func(e *Evidence) {
			e.Recipients, e.Receipts = e.Recipients[:2], e.Receipts[:2]
			e.Statuses["c"] = "failed"
		}, func(t Tally) int { return t.Failed }, false},
		{"stray SMS", func(e *Evidence) {
			e.Recipients = append(e.Recipients, SimRecipient{DestTn: "+61499999999", SMSID: "z", Queued: true})
		}, func(t Tally) int { return t.StraySMS }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := clean()
			tc.change(&ev)
			got := Count(ev)
			if n := tc.want(got); n != 1 {
				t.Errorf("count = %d, want 1: %+v", n, got)
			}
			if got.Bad() != tc.bad {
				t.Errorf("Bad() = %v, want %v: %+v", got.Bad(), tc.bad, got)
			}
		})
	}
}
