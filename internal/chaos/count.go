package chaos

import (
	"fmt"
	"io"
	"sort"

	"github.com/redoxygen/roxd/internal/store"
)

// Message is one message the run offered through the API.
type Message struct {
	ID     string
	DestTn string
	// Accepted: the API answered it with a status (202/200 in a batch).
	Accepted bool
}

// SimRecipient is one recipient of a request the simulator accepted.
type SimRecipient struct {
	DestTn string
	SMSID  string
	// Queued: the simulator answered it "0000" (it is an SMS sent).
	Queued bool
}

// SimCallback is one callback the simulator made (or gave up).
type SimCallback struct {
	Kind  string // receipt or reply
	SMSID string
	// ForwardedToEmail: every attempt failed, so ROX would have forwarded
	// it to email.
	ForwardedToEmail bool
}

// StreamReceipt is one entry of the receipts stream.
type StreamReceipt struct {
	SMSID     string
	MessageID string // empty when roxd could not correlate the SMSId
}

// Evidence is everything the tally is computed from.
type Evidence struct {
	Messages   []Message
	Recipients []SimRecipient
	Callbacks  []SimCallback
	Receipts   []StreamReceipt
	// Statuses maps a message id to its record's status; a missing entry
	// (or "") means the record is gone.
	Statuses map[string]store.Status
}

// Tally is the count of what went wrong. The first seven fields are
// failures (Bad); the rest describe the run.
type Tally struct {
	// NotAccepted: messages the API never accepted, retries included.
	NotAccepted int `json:"not_accepted"`
	// Lost: accepted messages of which ROX never accepted an SMS and whose
	// record does not say failed (nobody was told).
	Lost int `json:"lost"`
	// SentTwice: SMS beyond the first for one message (ROX accepted its
	// DestTn more than once); MessagesSentTwice: messages with any.
	SentTwice         int `json:"sent_twice"`
	MessagesSentTwice int `json:"messages_sent_twice"`
	// ForwardedToEmail: receipts the simulator could not deliver to roxd.
	ForwardedToEmail int `json:"receipts_forwarded_to_email"`
	// ReceiptsMissing: accepted messages with an SMS at ROX but no receipt
	// entry carrying their message id on the stream.
	ReceiptsMissing int `json:"receipts_missing"`
	// ReceiptsDoubled: receipt entries beyond the first for one message
	// (entries without message_id: for one SMSId).
	ReceiptsDoubled int `json:"receipts_doubled"`
	// NotFinal: accepted messages whose status is not delivered, failed,
	// cancelled or suppressed (a missing record counts).
	NotFinal int `json:"not_final"`

	Messages       int            `json:"messages"`
	SMS            int            `json:"sms"`             // SMS ROX accepted for the run's messages
	Failed         int            `json:"failed"`          // records that ended failed
	Uncorrelated   int            `json:"uncorrelated"`    // receipt entries without message_id
	RecordsMissing int            `json:"records_missing"` // accepted messages whose record is gone
	StraySMS       int            `json:"stray_sms"`       // SMS to a DestTn of no offered message
	Statuses       map[string]int `json:"statuses"`        // final count per status
	// Failovers done (fault failover) and, of them, those during which the
	// API's /readyz answered not ready at least once.
	Failovers      int `json:"failovers,omitempty"`
	ReadyzNotReady int `json:"readyz_not_ready,omitempty"`
}

// Bad reports whether any failure count is non-zero.
func (t Tally) Bad() bool {
	return t.NotAccepted+t.Lost+t.SentTwice+t.ForwardedToEmail+t.ReceiptsMissing+t.ReceiptsDoubled+t.NotFinal+t.StraySMS > 0
}

// Count computes the Tally of ev. Messages must have distinct DestTns.
func Count(ev Evidence) Tally {
	t := Tally{Messages: len(ev.Messages), Statuses: map[string]int{}}
	byTn := make(map[string]*Message, len(ev.Messages))
	for i := range ev.Messages {
		byTn[ev.Messages[i].DestTn] = &ev.Messages[i]
	}
	sms := map[string]int{} // DestTn -> SMS accepted by ROX
	for _, r := range ev.Recipients {
		if !r.Queued {
			continue
		}
		if byTn[r.DestTn] == nil {
			t.StraySMS++
			continue
		}
		sms[r.DestTn]++
		t.SMS++
	}
	for _, c := range ev.Callbacks {
		if c.Kind == "receipt" && c.ForwardedToEmail {
			t.ForwardedToEmail++
		}
	}
	perMsg := map[string]int{}
	perSMS := map[string]int{}
	for _, r := range ev.Receipts {
		if r.MessageID == "" {
			t.Uncorrelated++
			perSMS[r.SMSID]++
			continue
		}
		perMsg[r.MessageID]++
	}
	for _, n := range perMsg {
		t.ReceiptsDoubled += max(0, n-1)
	}
	for _, n := range perSMS {
		t.ReceiptsDoubled += max(0, n-1)
	}
	for _, m := range ev.Messages {
		if !m.Accepted {
			t.NotAccepted++
			continue
		}
		st, ok := ev.Statuses[m.ID]
		if !ok || st == "" {
			t.RecordsMissing++
			st = "(missing)"
		}
		t.Statuses[string(st)]++
		if !st.Final() {
			t.NotFinal++
		}
		if st == store.StatusFailed {
			t.Failed++
		}
		n := sms[m.DestTn]
		switch {
		case n == 0 && st != store.StatusFailed && st != store.StatusCancelled && st != store.StatusSuppressed:
			t.Lost++
		case n > 1:
			t.SentTwice += n - 1
			t.MessagesSentTwice++
		}
		if n > 0 && perMsg[m.ID] == 0 {
			t.ReceiptsMissing++
		}
	}
	return t
}

// Print writes t for people: one line per count, failures first.
func (t Tally) Print(w io.Writer) {
	line := func(name string, v int, bad bool) {
		mark := "  "
		if bad && v != 0 {
			mark = "! "
		}
		fmt.Fprintf(w, "%s%-44s %d\n", mark, name, v)
	}
	fmt.Fprintf(w, "messages offered: %d, SMS accepted by ROX: %d\n", t.Messages, t.SMS)
	line("messages the API never accepted", t.NotAccepted, true)
	line("messages lost (no SMS, not failed)", t.Lost, true)
	line(fmt.Sprintf("SMS sent twice (extra SMS, %d messages)", t.MessagesSentTwice), t.SentTwice, true)
	line("SMS to numbers of no message", t.StraySMS, true)
	line("receipts the simulator could not deliver", t.ForwardedToEmail, true)
	line("receipts missing on the stream", t.ReceiptsMissing, true)
	line("receipts doubled on the stream", t.ReceiptsDoubled, true)
	line("messages not in a final status", t.NotFinal, true)
	line("messages failed (told, not lost)", t.Failed, false)
	line("receipt entries without message_id", t.Uncorrelated, false)
	line("message records missing", t.RecordsMissing, false)
	if t.Failovers > 0 {
		line("sentinel failovers", t.Failovers, false)
		line("failovers /readyz reported (not ready)", t.ReadyzNotReady, false)
	}
	names := make([]string, 0, len(t.Statuses))
	for s := range t.Statuses {
		names = append(names, s)
	}
	sort.Strings(names)
	fmt.Fprint(w, "statuses:")
	for _, s := range names {
		fmt.Fprintf(w, " %s=%d", s, t.Statuses[s])
	}
	fmt.Fprintln(w)
}
