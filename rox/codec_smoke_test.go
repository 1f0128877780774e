package rox

import (
	"encoding/json"
	"testing"
	"time"
)

func TestMessagesRoundTrip(t *testing.T) {
	in := SendRequest{Name: NameRequest, Version: Version, Product: "p",
		Sender: Sender{AccountID: "CI1", Username: "u", Password: "secret"},
		Messages: Messages{ReceiptFlag: ReceiptAlways, ReceiptCallbackURL: "http://x/r", ReplyType: ReplyHTTP,
			ReplyCallbackURL: "http://x/p", TimeZoneOffset: -600,
			SendLater:  time.Date(2030, 1, 1, 0, 0, 1, 0, time.FixedZone("", 600*60)),
			Recipients: []Recipient{{DestTn: "+61407555001", SMSText: "a"}, {DestTn: "+61407555001", SMSText: "b"}}}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out SendRequest
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if out.Messages.Count != 2 || out.Messages.Recipients[1].SMSText != "b" || !out.Messages.SendLater.Equal(in.Messages.SendLater) {
		t.Fatalf("round trip: %+v\n%s", out.Messages, b)
	}
}
