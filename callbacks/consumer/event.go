package consumer

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Kinds of entry, the stream's "kind" field.
const (
	KindReceipt = "receipt"
	KindReply   = "reply"
	// KindExpired: a message whose validity (valid_for, expires_at) ran
	// out before it was handed to ROX; it was never sent. On the receipts
	// stream, with status and status_after "expired".
	KindExpired = "expired"
)

// Receipt is a delivery receipt: the outcome of one SMS.
type Receipt struct {
	EventID    string // stable id of the callback; the same on a redelivery
	MessageID  string // the producer's message id; empty when ROX's SMSId was unknown
	SMSID      string
	RequestID  string
	AccountID  string
	DestTn     string
	Result     string // ROX result code, raw: "0000" delivered, "2011".."2100" sending errors
	ResultText string
	// Status is what this receipt says: "delivered", "failed", or
	// "unknown" for a Result ROX's document does not define for receipts
	// (the message's status is then left as it was: see StatusAfter).
	Status string
	// StatusAfter is the message's status once this receipt was applied
	// (what GET /v1/messages/{id} says): a failed receipt after a
	// delivered one leaves it delivered. Empty when MessageID is.
	StatusAfter string
	Timestamp   time.Time
	Metadata    map[string]string // the producer's metadata
}

// Delivered reports whether the receipt says the SMS was delivered.
func (r *Receipt) Delivered() bool { return r.Status == "delivered" }

// Reply is an SMS sent back by a recipient.
type Reply struct {
	EventID   string
	MessageID string // the message replied to; empty when unknown
	SMSID     string
	RequestID string
	AccountID string
	From      string // the replying number, as ROX sent it
	Text      string // the reply, as typed
	// Keyword is "stop", "start", "help" or "" (README: reply keywords).
	Keyword string
	// OptOut says what the reply did to the suppression list: "stop" (the
	// number was added), "start" (removed) or "" (nothing). OptOutNumber
	// is that number in E.164.
	OptOut       string
	OptOutNumber string
	SMSText      string // the last text we sent that number, per ROX
	Timestamp    time.Time
	Metadata     map[string]string
}

// Expired says a message was never sent: its validity ran out before the
// worker handed it to ROX. Its status is final ("expired").
type Expired struct {
	EventID   string // "expired-" + MessageID: the same on a redelivery
	MessageID string
	AccountID string
	DestTn    string // the number it was for, E.164
	ExpiresAt time.Time
	Reason    string
	Timestamp time.Time // when it was found expired
	Metadata  map[string]string
}

// Event is one stream entry. Exactly one of Receipt, Reply and Expired is
// set when Err is nil.
type Event struct {
	ID      string // stream entry id
	Kind    string
	Receipt *Receipt
	Reply   *Reply
	Expired *Expired
	// Fields are the entry's raw fields.
	Fields map[string]string
	// Err is set when the entry could not be fully parsed (an unknown kind,
	// a bad timestamp or metadata); the fields it could read are still set.
	Err error
}

// ErrUnknownKind is wrapped by Event.Err for an entry of another kind.
var ErrUnknownKind = errors.New("consumer: unknown kind")

// Parse turns a stream entry into an Event. It never fails: problems are
// reported in Event.Err.
func Parse(msg redis.XMessage) Event {
	f := make(map[string]string, len(msg.Values))
	for k, v := range msg.Values {
		switch v := v.(type) {
		case string:
			f[k] = v
		case nil:
		default:
			f[k] = fmt.Sprint(v)
		}
	}
	return ParseFields(msg.ID, f)
}

// ParseFields is Parse on an entry id and its fields.
func ParseFields(id string, f map[string]string) Event {
	ev := Event{ID: id, Kind: f["kind"], Fields: f}
	var errs []error
	ts, err := parseTime(f["timestamp"])
	if err != nil {
		errs = append(errs, err)
	}
	meta, err := parseMetadata(f["metadata"])
	if err != nil {
		errs = append(errs, err)
	}
	switch ev.Kind {
	case KindReceipt:
		ev.Receipt = &Receipt{
			EventID: f["event_id"], MessageID: f["message_id"], SMSID: f["sms_id"], RequestID: f["request_id"],
			AccountID: f["account_id"], DestTn: f["dest_tn"], Result: f["result"], ResultText: f["result_text"],
			Status: f["status"], StatusAfter: f["status_after"], Timestamp: ts, Metadata: meta,
		}
	case KindReply:
		ev.Reply = &Reply{
			EventID: f["event_id"], MessageID: f["message_id"], SMSID: f["sms_id"], RequestID: f["request_id"],
			AccountID: f["account_id"], From: f["reply_from"], Text: f["reply_text"], SMSText: f["sms_text"],
			Keyword: f["keyword"], OptOut: f["optout"], OptOutNumber: f["optout_number"], Timestamp: ts, Metadata: meta,
		}
	case KindExpired:
		ev.Expired = &Expired{
			EventID: f["event_id"], MessageID: f["message_id"], AccountID: f["account_id"], DestTn: f["dest_tn"],
			Reason: f["result_text"], Timestamp: ts, Metadata: meta,
		}
		if ms, err := strconv.ParseInt(f["expires_at"], 10, 64); err == nil && ms > 0 {
			ev.Expired.ExpiresAt = time.UnixMilli(ms).UTC()
		}
	default:
		errs = append(errs, fmt.Errorf("%w %q in entry %s", ErrUnknownKind, ev.Kind, id))
	}
	ev.Err = errors.Join(errs...)
	return ev
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("consumer: timestamp %q: %w", s, err)
	}
	return t.UTC(), nil
}

// parseMetadata reads the producer's metadata: a JSON object whose values
// are strings (other JSON values are kept in their JSON form).
func parseMetadata(s string) (map[string]string, error) {
	if s == "" || s == "{}" || s == "null" {
		return map[string]string{}, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return map[string]string{}, fmt.Errorf("consumer: metadata is not a JSON object: %w", err)
	}
	m := make(map[string]string, len(raw))
	for k, v := range raw {
		var str string
		if err := json.Unmarshal(v, &str); err == nil {
			m[k] = str
		} else {
			m[k] = string(v)
		}
	}
	return m, nil
}
