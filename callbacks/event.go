package callbacks

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	"github.com/redoxygen/roxd/internal/store"
	"github.com/redoxygen/roxd/rox"
)

// Kinds of callback, as written to the "kind" field of stream entries.
const (
	KindReceipt = "receipt"
	KindReply   = "reply"
)

// What a receipt says, by its Result (receiptStatus), as written to the
// "status" field of its stream entry. Delivered and failed move the
// message's status; unknown leaves it as it was.
const (
	StatusDelivered = "delivered"
	StatusFailed    = "failed"
	StatusUnknown   = "unknown"
)

// receiptStatus reads a receipt's Result as ROX's document defines it for
// receipts: "0000" success (delivered), "2011"-"2100" sending errors
// (failed). Anything else ("9999", an authentication code, "", no Result)
// is a result the document does not give a receipt: unknown, not a
// failure it never reported. The stream entry keeps the raw result.
func receiptStatus(result rox.Code) string {
	switch rox.Code(strings.TrimSpace(string(result))).Class() {
	case rox.ClassSuccess:
		return StatusDelivered
	case rox.ClassSending:
		return StatusFailed
	default:
		return StatusUnknown
	}
}

// event is one callback, flattened: what goes to the stream and, while Redis
// is unreachable, to the spool (one JSON line each).
type event struct {
	Kind       string `json:"kind"`
	EventID    string `json:"event_id"`
	SMSID      string `json:"sms_id"`
	RequestID  string `json:"request_id"`
	AccountID  string `json:"account_id"`
	Timestamp  string `json:"timestamp"`   // RFC 3339, UTC
	ReceivedMS int64  `json:"received_ms"` // when we got it (unix ms)
	DestTn     string `json:"dest_tn,omitempty"`
	Result     string `json:"result,omitempty"`
	ResultText string `json:"result_text,omitempty"`
	Status     string `json:"status,omitempty"`
	ReplyFrom  string `json:"reply_from,omitempty"`
	ReplyText  string `json:"reply_text,omitempty"`
	SMSText    string `json:"sms_text,omitempty"`
	// Keyword is the reply's keyword (KeywordStop, KeywordStart,
	// KeywordHelp) or "".
	Keyword string `json:"keyword,omitempty"`
	// OptOut is the action on the suppression list (stop | start | "");
	// OptOutNumber the E.164 number it applies to ("" when ReplyFrom is no
	// phone number: the record's `to` is used once the SMSId is known).
	// OptOutDone is set in a deferred member whose action was applied when
	// it was deferred (never applied twice); OptOut and OptOutNumber then
	// say what was done.
	OptOut       string `json:"optout,omitempty"`
	OptOutNumber string `json:"optout_number,omitempty"`
	OptOutDone   bool   `json:"optout_done,omitempty"`
	// Attempt counts the deferrals so far of a callback whose SMSId was not
	// recorded yet (0 for a new callback: the spool never writes it).
	Attempt int `json:"attempt,omitempty"`
	// Shard is 1 + the shard (store.ShardOf) the callback URL named with
	// s=<n>, the shard of the message; 0 when unknown (then the SMSId's
	// map is looked up in every shard).
	Shard int `json:"shard,omitempty"`

	// member is the {P}:cb:deferred member this event was read from ("" for
	// a new callback); the store script claims it.
	member string
}

// eventID hashes the parts that identify one callback, so that ROX calling
// twice yields the same id.
func eventID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// normTimestamp turns ROX's "01-Jan-2030 00:00:01 (UTC)" into RFC 3339 UTC.
// An unreadable timestamp falls back to the time we received the callback:
// a cosmetic field never costs a callback.
func normTimestamp(s string, received time.Time) string {
	if t, err := rox.ParseTimestamp(strings.TrimSpace(s)); err == nil {
		return t.UTC().Format(time.RFC3339)
	}
	return received.UTC().Format(time.RFC3339)
}

func receiptEvent(r *rox.Receipt, now time.Time) *event {
	d := r.Messages.Receipt
	status := receiptStatus(d.Result)
	return &event{
		Kind: KindReceipt,
		// One event per SMSId and result: ROX re-posting a receipt with a
		// new Timestamp (or ResultText) is the same receipt.
		EventID:    eventID(KindReceipt, store.CanonicalSMSID(d.SMSID), strings.TrimSpace(string(d.Result))),
		SMSID:      d.SMSID,
		RequestID:  r.Messages.RequestID,
		AccountID:  r.Sender.AccountID,
		Timestamp:  normTimestamp(d.Timestamp, now),
		ReceivedMS: now.UnixMilli(),
		DestTn:     d.DestTn,
		Result:     string(d.Result),
		ResultText: d.ResultText,
		Status:     status,
	}
}

func replyEvent(r *rox.Reply, now time.Time, kw keywords, region string) *event {
	d := r.Messages.Reply
	e := &event{
		Kind:       KindReply,
		EventID:    eventID(KindReply, store.CanonicalSMSID(d.SMSID), d.ReplyFrom, d.ReplyText, d.Timestamp),
		SMSID:      d.SMSID,
		RequestID:  r.Messages.RequestID,
		AccountID:  r.Sender.AccountID,
		Timestamp:  normTimestamp(d.Timestamp, now),
		ReceivedMS: now.UnixMilli(),
		ReplyFrom:  d.ReplyFrom,
		ReplyText:  d.ReplyText,
		SMSText:    d.SMSText,
		Keyword:    kw.classify(d.ReplyText),
	}
	if e.Keyword == KeywordStop || e.Keyword == KeywordStart {
		e.OptOut = e.Keyword
		e.OptOutNumber = optOutNumber(d.ReplyFrom, region)
	}
	return e
}

// appendStreamFields appends the values of the event's own stream fields to
// f, in the order of receiptFields or replyFields (by kind): the store
// script knows the names, so that a callback does not carry 8 names into
// Redis each time. They go after event_id, kind, message_id (added by the
// script) and before metadata.
func (e *event) appendStreamFields(f []any) []any {
	f = append(f, e.SMSID, e.RequestID, e.AccountID, e.Timestamp)
	switch e.Kind {
	case KindReceipt:
		f = append(f, e.DestTn, e.Result, e.ResultText, e.Status)
	case KindReply:
		f = append(f, e.ReplyFrom, e.ReplyText, e.SMSText, e.Keyword)
	}
	return f
}

// receiptFields and replyFields name the stream fields appendStreamFields
// gives the values of (the store script holds the same lists, and the same
// names in its XADD table constructors: TestStreamEntriesCarryEveryField).
var (
	receiptFields = []string{"sms_id", "request_id", "account_id", "timestamp", "dest_tn", "result", "result_text", "status"}
	replyFields   = []string{"sms_id", "request_id", "account_id", "timestamp", "reply_from", "reply_text", "sms_text", "keyword"}
)
