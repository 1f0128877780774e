package roxsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/redoxygen/roxd/rox"
)

// Defaults of Config and Faults.
const (
	DefaultAccountID       = "CI00000001"
	DefaultUsername        = "sim@example.com"
	DefaultPassword        = "sim-password"
	DefaultWorkers         = 64
	DefaultCallbackTimeout = 5 * time.Second
	DefaultMaxBody         = 4 << 20
	DefaultMaxRecords      = 200_000
	DefaultReplyName       = rox.NameReplyResponse
	DefaultAutoReplyText   = "Thanks, got it"
	// DefaultDeliveryFailureCode is the Result of a receipt for a message
	// the simulated carrier failed to deliver.
	DefaultDeliveryFailureCode = CodeUndeliverable
)

// DefaultRecipientErrorCodes are the codes drawn for per-recipient sending
// errors when Faults.RecipientErrorCodes is empty.
var DefaultRecipientErrorCodes = []rox.Code{CodeBarred, CodeNoCredit}

// Result codes the simulator answers with. The document fixes only the
// ranges ("2001".."2010" authentication, "2011".."2100" sending); the
// numbers inside them are the simulator's choice.
const (
	// CodeAuthFailed: AccountId, Username or Password is wrong or missing,
	// or the AuthFail fault is on. Top level only.
	CodeAuthFailed rox.Code = "2001"
	// CodeMalformed: the body is not a ROX_API_Request at all: not JSON
	// (then with HTTP 400), not an object, a field of the wrong JSON type,
	// too large (HTTP 413), or a method other than POST (HTTP 405).
	CodeMalformed rox.Code = "2011"
	// CodeInvalid: a field breaks the document's rules: Count mismatch or
	// more than 500 recipients, a DestTn that is not E.164, a missing text,
	// a missing callback URL, ... ResultText starts with the field's path,
	// e.g. "Messages.3.DestTn: ...".
	CodeInvalid rox.Code = "2012"
	// CodeBarred and CodeNoCredit are the default per-recipient sending
	// errors of the RecipientErrors fault.
	CodeBarred   rox.Code = "2015"
	CodeNoCredit rox.Code = "2020"
	// CodeUndeliverable is the default Result of a failed delivery receipt
	// (DeliveryFailures fault).
	CodeUndeliverable rox.Code = "2050"
)

// codeText is the ResultText of the simulator's sending-error codes.
func codeText(c rox.Code) string {
	switch c {
	case CodeBarred:
		return "Destination number barred (simulated)"
	case CodeNoCredit:
		return "Insufficient credit (simulated)"
	case CodeUndeliverable:
		return "Undeliverable: carrier reported failure (simulated)"
	default:
		return "Sending error " + string(c) + " (simulated)"
	}
}

// ErrConfig is wrapped by every Config and Faults validation error.
var ErrConfig = errors.New("roxsim: invalid config")

// Config configures a Sim. The zero value is usable: every empty field
// takes its default.
type Config struct {
	// Credentials the simulator accepts. Defaults DefaultAccountID,
	// DefaultUsername, DefaultPassword.
	AccountID string
	Username  string
	Password  string
	// Seed seeds every random choice (faults, SMSIds, RequestIds). 0 picks a
	// random seed, so that a restarted simulator never repeats SMSIds; set
	// it for reproducible runs.
	Seed uint64
	// Faults is the initial fault set; SetFaults changes it at runtime.
	Faults Faults
	// ReplyName is the Name of reply bodies: rox.NameReplyResponse (the
	// document's example, the default) or rox.NameReply (its prose).
	ReplyName string
	// CountOnly turns recording off: only Stats are kept (for benchmarks
	// and long runs). Requests, Recipients and Callbacks stay empty, and
	// Reply cannot find messages.
	CountOnly bool
	// MaxRecords bounds each record list (recipients, requests,
	// callbacks). When one is full its oldest quarter is dropped and
	// Stats.RecordsDropped grows. Default DefaultMaxRecords.
	MaxRecords int
	// Workers is the number of goroutines posting callbacks. Default
	// DefaultWorkers.
	Workers int
	// CallbackTimeout bounds one callback POST. Default
	// DefaultCallbackTimeout.
	CallbackTimeout time.Duration
	// RetryCallbacks retries a failed callback once before counting it as
	// forwarded to email. Off by default: ROX's document promises no retry.
	RetryCallbacks bool
	// MaxBody is the largest send request body, in bytes; larger ones are
	// answered 413. Default DefaultMaxBody.
	MaxBody int64
	// AcceptFirst accepts a valid send request as soon as it is read and
	// spends Faults.Latency (+ jitter) before writing the answer, as ROX
	// does when the answer is slow on the way back: a client that dies or
	// gives up during the latency has still sent its SMS, and their
	// receipts come. Off (the default), the latency comes first and a
	// client gone by then sends nothing.
	AcceptFirst bool
}

func (c Config) withDefaults() Config {
	if c.AccountID == "" {
		c.AccountID = DefaultAccountID
	}
	if c.Username == "" {
		c.Username = DefaultUsername
	}
	if c.Password == "" {
		c.Password = DefaultPassword
	}
	if c.ReplyName == "" {
		c.ReplyName = DefaultReplyName
	}
	if c.MaxRecords == 0 {
		c.MaxRecords = DefaultMaxRecords
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.CallbackTimeout == 0 {
		c.CallbackTimeout = DefaultCallbackTimeout
	}
	if c.MaxBody == 0 {
		c.MaxBody = DefaultMaxBody
	}
	c.Faults = c.Faults.withDefaults()
	return c
}

// Validate reports the first invalid field of c (after defaults), naming it.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.ReplyName != rox.NameReply && c.ReplyName != rox.NameReplyResponse:
		return fmt.Errorf("%w: ReplyName is %q, want %s or %s", ErrConfig, c.ReplyName, rox.NameReply, rox.NameReplyResponse)
	case c.MaxRecords < 1:
		return fmt.Errorf("%w: MaxRecords is %d, want >= 1", ErrConfig, c.MaxRecords)
	case c.Workers < 1 || c.Workers > 4096:
		return fmt.Errorf("%w: Workers is %d, want 1..4096", ErrConfig, c.Workers)
	case c.CallbackTimeout < 0:
		return fmt.Errorf("%w: CallbackTimeout is %s, want > 0", ErrConfig, c.CallbackTimeout)
	case c.MaxBody < 1024:
		return fmt.Errorf("%w: MaxBody is %d, want >= 1024", ErrConfig, c.MaxBody)
	}
	return c.Faults.Validate()
}

// Faults are the simulator's injected misbehaviours. Rates are
// probabilities in 0..1, drawn per request (Fail5xx, Hang), per recipient
// (RecipientErrors, DeliveryFailures, AutoReplyRate) or per callback
// (Duplicates). The zero value injects nothing and delivers at once.
//
// Its JSON form (GET/PUT /sim/faults) uses snake_case names and duration
// strings such as "20ms"; a PUT changes only the fields it names.
type Faults struct {
	// Fail5xx answers a send request HTTP 500 without accepting it.
	Fail5xx float64
	// Throttle answers a send request HTTP 429 without accepting it, with
	// a Retry-After header of ThrottleRetryAfter (whole seconds, rounded
	// up) when that is > 0.
	Throttle           float64
	ThrottleRetryAfter time.Duration
	// Latency is added before every send answer, plus a uniform random
	// 0..Jitter.
	Latency time.Duration
	Jitter  time.Duration
	// Hang holds a send request without answering until the client gives
	// up or the simulator closes. Nothing is accepted.
	Hang float64
	// AuthFail answers every send request with CodeAuthFailed.
	AuthFail bool
	// RecipientErrors refuses a recipient with one of RecipientErrorCodes
	// (uniformly chosen; default DefaultRecipientErrorCodes). A refused
	// recipient's entry has an empty SMSId and is never delivered.
	RecipientErrors     float64
	RecipientErrorCodes []rox.Code
	// Duplicates posts a callback (receipt or reply) a second time.
	Duplicates float64
	// ReceiptDelay is the time from due (now, or SendLater) to delivery.
	ReceiptDelay time.Duration
	// DeliveryFailures makes a queued message fail delivery: its receipt
	// carries DeliveryFailureCode (default DefaultDeliveryFailureCode).
	DeliveryFailures    float64
	DeliveryFailureCode rox.Code
	// AutoReplyRate makes a delivered message with ReplyType H answer with
	// a reply of AutoReplyText (default DefaultAutoReplyText).
	AutoReplyRate float64
	AutoReplyText string
	// LateAnswer accepts a request (SMSIds drawn, receipts scheduled) and
	// only then waits LateAnswerDelay before answering: a client whose
	// timeout is shorter sees a timeout for a request ROX took. Drawn per
	// request; off while LateAnswerDelay is 0.
	LateAnswer      float64
	LateAnswerDelay time.Duration
}

func (f Faults) withDefaults() Faults {
	if len(f.RecipientErrorCodes) == 0 {
		f.RecipientErrorCodes = append([]rox.Code(nil), DefaultRecipientErrorCodes...)
	}
	if f.DeliveryFailureCode == "" {
		f.DeliveryFailureCode = DefaultDeliveryFailureCode
	}
	if f.AutoReplyText == "" {
		f.AutoReplyText = DefaultAutoReplyText
	}
	return f
}

// Validate reports the first invalid field of f (after defaults), naming it.
func (f Faults) Validate() error {
	f = f.withDefaults()
	rates := []struct {
		name string
		v    float64
	}{{"Fail5xx", f.Fail5xx}, {"Hang", f.Hang}, {"RecipientErrors", f.RecipientErrors},
		{"Duplicates", f.Duplicates}, {"DeliveryFailures", f.DeliveryFailures}, {"AutoReplyRate", f.AutoReplyRate},
		{"LateAnswer", f.LateAnswer}, {"Throttle", f.Throttle}}
	for _, r := range rates {
		if !(r.v >= 0 && r.v <= 1) { // also rejects NaN
			return fmt.Errorf("%w: Faults.%s is %v, want a rate in 0..1", ErrConfig, r.name, r.v)
		}
	}
	durs := []struct {
		name string
		v    time.Duration
	}{{"Latency", f.Latency}, {"Jitter", f.Jitter}, {"ReceiptDelay", f.ReceiptDelay}, {"LateAnswerDelay", f.LateAnswerDelay}, {"ThrottleRetryAfter", f.ThrottleRetryAfter}}
	for _, d := range durs {
		if d.v < 0 {
			return fmt.Errorf("%w: Faults.%s is %s, want >= 0", ErrConfig, d.name, d.v)
		}
	}
	if len(f.RecipientErrorCodes) > 32 {
		return fmt.Errorf("%w: Faults.RecipientErrorCodes has %d codes, at most 32 allowed", ErrConfig, len(f.RecipientErrorCodes))
	}
	for i, c := range f.RecipientErrorCodes {
		if c.Class() != rox.ClassSending {
			return fmt.Errorf("%w: Faults.RecipientErrorCodes[%d] is %q, want a sending error 2011..2100", ErrConfig, i, string(c))
		}
	}
	if f.DeliveryFailureCode.Class() != rox.ClassSending {
		return fmt.Errorf("%w: Faults.DeliveryFailureCode is %q, want a sending error 2011..2100", ErrConfig, string(f.DeliveryFailureCode))
	}
	if len(f.AutoReplyText) > rox.MaxTextLen {
		return fmt.Errorf("%w: Faults.AutoReplyText is longer than %d characters", ErrConfig, rox.MaxTextLen)
	}
	return nil
}

// faultsJSON is the wire form of Faults.
type faultsJSON struct {
	Fail5xx             float64    `json:"fail_5xx"`
	Latency             string     `json:"latency"`
	Jitter              string     `json:"jitter"`
	Hang                float64    `json:"hang"`
	AuthFail            bool       `json:"auth_fail"`
	RecipientErrors     float64    `json:"recipient_errors"`
	RecipientErrorCodes []rox.Code `json:"recipient_error_codes"`
	Duplicates          float64    `json:"duplicates"`
	ReceiptDelay        string     `json:"receipt_delay"`
	DeliveryFailures    float64    `json:"delivery_failures"`
	DeliveryFailureCode rox.Code   `json:"delivery_failure_code"`
	AutoReplyRate       float64    `json:"auto_reply_rate"`
	AutoReplyText       string     `json:"auto_reply_text"`
	LateAnswer          float64    `json:"late_answer"`
	LateAnswerDelay     string     `json:"late_answer_delay"`
	Throttle            float64    `json:"throttle"`
	ThrottleRetryAfter  string     `json:"throttle_retry_after"`
}

// MarshalJSON writes f with snake_case names and duration strings.
func (f Faults) MarshalJSON() ([]byte, error) {
	return json.Marshal(faultsJSON{
		Fail5xx: f.Fail5xx, Latency: f.Latency.String(), Jitter: f.Jitter.String(), Hang: f.Hang,
		AuthFail: f.AuthFail, RecipientErrors: f.RecipientErrors, RecipientErrorCodes: f.RecipientErrorCodes,
		Duplicates: f.Duplicates, ReceiptDelay: f.ReceiptDelay.String(), DeliveryFailures: f.DeliveryFailures,
		DeliveryFailureCode: f.DeliveryFailureCode, AutoReplyRate: f.AutoReplyRate, AutoReplyText: f.AutoReplyText,
		LateAnswer: f.LateAnswer, LateAnswerDelay: f.LateAnswerDelay.String(),
		Throttle: f.Throttle, ThrottleRetryAfter: f.ThrottleRetryAfter.String(),
	})
}

// UnmarshalJSON reads the form MarshalJSON writes. Fields absent from data
// keep their current value in f, so a partial document updates f; a name
// that is no field is an error.
func (f *Faults) UnmarshalJSON(data []byte) error {
	var w faultsJSON
	cur, err := f.MarshalJSON()
	if err != nil {
		return err
	}
	if err := json.Unmarshal(cur, &w); err != nil {
		return err
	}
	// A name that is no fault (a typo) would otherwise change nothing
	// without a word.
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("roxsim: faults: trailing data after the JSON object")
	}
	next := Faults{Fail5xx: w.Fail5xx, Hang: w.Hang, AuthFail: w.AuthFail, RecipientErrors: w.RecipientErrors,
		RecipientErrorCodes: w.RecipientErrorCodes, Duplicates: w.Duplicates, DeliveryFailures: w.DeliveryFailures,
		DeliveryFailureCode: w.DeliveryFailureCode, AutoReplyRate: w.AutoReplyRate, AutoReplyText: w.AutoReplyText,
		LateAnswer: w.LateAnswer, Throttle: w.Throttle}
	for _, d := range []struct {
		name string
		s    string
		dst  *time.Duration
	}{{"latency", w.Latency, &next.Latency}, {"jitter", w.Jitter, &next.Jitter}, {"receipt_delay", w.ReceiptDelay, &next.ReceiptDelay},
		{"late_answer_delay", w.LateAnswerDelay, &next.LateAnswerDelay},
		{"throttle_retry_after", w.ThrottleRetryAfter, &next.ThrottleRetryAfter}} {
		v, err := time.ParseDuration(d.s)
		if err != nil {
			return fmt.Errorf("%w: %s is %s, want a duration such as \"20ms\"", ErrConfig, d.name, strconv.Quote(d.s))
		}
		*d.dst = v
	}
	*f = next
	return nil
}
