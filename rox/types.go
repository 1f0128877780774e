package rox

import "time"

// Protocol constants of the ROX contract (docs/ROX.md).
const (
	// Version is the API version this package speaks. It is a JSON number.
	Version = 1.1
	// MaxRecipients is the most recipients one send request may carry.
	MaxRecipients = 500
	// MaxTextLen is the size of every String(4000) field, in characters.
	MaxTextLen = 4000
	// MaxRequestBytes is the largest send request body roxd makes: 1 MiB.
	// ROX documents no limit, and 500 recipients of 4,000-character texts
	// can make 6-12 MB (a CJK character is 3 bytes); front-end servers
	// commonly refuse bodies over 1 MiB (nginx's default). The producer's
	// store sizes each message's batches by RecipientBytes so that a
	// request stays within it (internal/store, WithRequestCap).
	MaxRequestBytes = 1 << 20

	NameRequest         = "ROX_API_Request"
	NameResponse        = "ROX_API_Response"
	NameReceipt         = "ROX_API_Receipt"
	NameReceiptResponse = "ROX_API_Receipt_Response"
	NameReply           = "ROX_API_Reply"
	NameReplyResponse   = "ROX_API_Reply_Response" // also the reply body's name in the document's example
	DefaultEndpoint     = "https://awsap.redoxygen.net/smsapi/send"
	SendLaterLayout     = "02-Jan-2006 15:04:05"
	timestampLayoutNoTZ = "02-Jan-2006 15:04:05"
	timestampZoneSuffix = " (UTC)"
)

// ReceiptFlag says when ROX sends a delivery receipt.
type ReceiptFlag int

const (
	ReceiptNever   ReceiptFlag = 0 // no receipt
	ReceiptAlways  ReceiptFlag = 1 // a receipt for every message
	ReceiptOnError ReceiptFlag = 2 // a receipt only when delivery failed
)

// ReplyType says where ROX forwards replies.
type ReplyType string

const (
	ReplyEmail ReplyType = "E"
	ReplySMS   ReplyType = "S"
	ReplyBoth  ReplyType = "B"
	ReplyHTTP  ReplyType = "H"
)

// Sender identifies the account in a send request. Password is a secret:
// Sender's String and GoString never print it, and neither does any error of
// this package.
type Sender struct {
	AccountID string `json:"AccountId"`
	Username  string `json:"Username"`
	Password  string `json:"Password"`
}

// CallbackSender identifies the account in a callback (no password).
type CallbackSender struct {
	AccountID string `json:"AccountId"`
	Username  string `json:"Username"`
}

// SendRequest is ROX_API_Request.
type SendRequest struct {
	Name     string   `json:"Name"`
	Version  float64  `json:"Version"`
	Product  string   `json:"Product"`
	Sender   Sender   `json:"Sender"`
	Messages Messages `json:"Messages"`
}

// Messages is the "Messages" object of a send request: control fields and
// the numbered recipients "1".."N" side by side. Its JSON form is written and
// read by MarshalJSON/UnmarshalJSON (codec.go); Count is derived from
// len(Recipients) when encoding and checked against it when decoding.
type Messages struct {
	ReceiptFlag        ReceiptFlag
	ReceiptCallbackURL string
	ReplyType          ReplyType
	ReplyCallbackURL   string
	// SendLater, when not zero, is when ROX should send. On the wire it is
	// written in the zone given by TimeZoneOffset at one-second precision.
	SendLater time.Time
	// TimeZoneOffset is in minutes with the sign inverted, as in JavaScript's
	// getTimezoneOffset(): UTC+10:00 is -600. It tells ROX how to read
	// SendLater.
	TimeZoneOffset int
	// Count is the recipient count on the wire. It is set from
	// len(Recipients) when encoding.
	Count      int
	GlobalText string
	Recipients []Recipient
}

// Recipient is one numbered entry of a send request.
type Recipient struct {
	DestTn    string `json:"DestTn"`
	DestName  string `json:"DestName,omitempty"`
	DestEmail string `json:"DestEmail,omitempty"`
	SMSText   string `json:"SMSText,omitempty"`
}

// SendResponse is ROX_API_Response.
type SendResponse struct {
	Name       string           `json:"Name"`
	Version    float64          `json:"Version"`
	Result     Code             `json:"Result"`
	ResultText string           `json:"ResultText"`
	Messages   ResponseMessages `json:"Messages"`
}

// ResponseMessages is the "Messages" object of a send response. Results[i]
// is the entry under key i+1 and answers Recipients[i] of the request: map
// results by position (key), never by DestTn.
type ResponseMessages struct {
	Count     int
	RequestID string
	Results   []RecipientResult
}

// RecipientResult is one numbered entry of a send response.
type RecipientResult struct {
	SMSID      string `json:"SMSId"`
	DestTn     string `json:"DestTn"`
	Result     Code   `json:"Result"`
	ResultText string `json:"ResultText"`
	Timestamp  string `json:"Timestamp"`
}

// Receipt is ROX_API_Receipt, the body ROX posts to ReceiptCallbackURL.
type Receipt struct {
	Name     string          `json:"Name"`
	Version  float64         `json:"Version"`
	Sender   CallbackSender  `json:"Sender"`
	Messages ReceiptMessages `json:"Messages"`
}

// ReceiptMessages is the "Messages" object of a receipt.
type ReceiptMessages struct {
	RequestID string        `json:"RequestId"`
	Receipt   ReceiptDetail `json:"Receipt"`
}

// ReceiptDetail is the delivery outcome of one SMS.
type ReceiptDetail struct {
	SMSID      string `json:"SMSId"`
	DestTn     string `json:"DestTn"`
	Result     Code   `json:"Result"`
	ResultText string `json:"ResultText"`
	Timestamp  string `json:"Timestamp"`
}

// Reply is the body ROX posts to ReplyCallbackURL. The document calls it
// ROX_API_Reply in prose and ROX_API_Reply_Response in its example; both
// names are accepted.
type Reply struct {
	Name     string         `json:"Name"`
	Version  float64        `json:"Version"`
	Sender   CallbackSender `json:"Sender"`
	Messages ReplyMessages  `json:"Messages"`
}

// ReplyMessages is the "Messages" object of a reply.
type ReplyMessages struct {
	RequestID string      `json:"RequestId"`
	Reply     ReplyDetail `json:"Reply"`
}

// ReplyDetail is one reply from a handset.
type ReplyDetail struct {
	SMSID     string `json:"SMSId"`
	ReplyFrom string `json:"ReplyFrom"`
	ReplyText string `json:"ReplyText"`
	SMSText   string `json:"SMSText"`
	Timestamp string `json:"Timestamp"`
}

// CallbackResponse is what we answer to a callback:
// ROX_API_Receipt_Response or ROX_API_Reply_Response.
type CallbackResponse struct {
	Name       string  `json:"Name"`
	Version    float64 `json:"Version"`
	Result     Code    `json:"Result"`
	ResultText string  `json:"ResultText"`
}

// String keeps the password out of %v and %+v.
func (s Sender) String() string {
	return "{AccountId:" + s.AccountID + " Username:" + s.Username + " Password:[REDACTED]}"
}

// GoString keeps the password out of %#v.
func (s Sender) GoString() string { return "rox.Sender" + s.String() }
