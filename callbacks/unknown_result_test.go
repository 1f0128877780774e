package callbacks

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redoxygen/roxd/rox"
)

// TestReceiptUnknownResult: ROX's document lists two receipt results,
// "0000" (success: delivered) and "2011"-"2100" (sending errors: failed).
// Any other Result (a code it does not define for receipts, "" or none at
// all) was stored as failed, a sending error the receipt never reported,
// with err "receipt <result>". Such a receipt now leaves the message's
// status as it was; its stream entry says status "unknown" and carries the
// raw result, and status_after is the status the message keeps.
func TestReceiptUnknownResult(t *testing.T) {
	b := setup(t, nil, nil)
	results := []string{"9999", "2005", "2101", "1000", "abc", "0", ""}
	for i, res := range results {
		for j, from := range []string{"submitted", "failed", "delivered"} {
			id, sms := fmt.Sprintf("mu%d-%d", i, j), fmt.Sprintf("smsu%d-%d", i, j)
			b.record(t, id, sms, from, nil)
			b.mustOK(t, KindReceipt, receiptBody(testAccount, sms, res, ts1))
			rec := b.status(t, id)
			if rec["status"] != from || rec["err"] != "" {
				t.Errorf("%s + receipt %q: status %q err %q, want %s unchanged", from, res, rec["status"], rec["err"], from)
			}
		}
	}
	// A receipt without any Result is the same.
	b.record(t, "mnone", "smsnone", "submitted", nil)
	b.mustOK(t, KindReceipt, fmt.Sprintf(`{"Name":"ROX_API_Receipt","Version":1.1,"Sender":{"AccountId":%q},
"Messages":{"RequestId":"r","Receipt":{"SMSId":"smsnone","DestTn":"+61407555001","Timestamp":%q}}}`, testAccount, ts1))
	if s := b.status(t, "mnone")["status"]; s != "submitted" {
		t.Errorf("receipt without Result: status %s, want submitted", s)
	}
	entries := b.entries(t, b.cfg.ReceiptsStream)
	if len(entries) != 3*len(results)+1 {
		t.Fatalf("%d entries, want %d (every receipt is pushed)", len(entries), 3*len(results)+1)
	}
	for k, e := range entries {
		v := e.Values
		want := ""
		if k < 3*len(results) {
			want = results[k/3]
		}
		if v["status"] != StatusUnknown || v["result"] != want || v["message_id"] == "" {
			t.Errorf("entry %v: want status unknown, result %q, its message", v, want)
		}
		if rec := b.status(t, v["message_id"].(string)); v["status_after"] != rec["status"] {
			t.Errorf("entry %v: status_after, want %s", v, rec["status"])
		}
	}
	// The documented results still move the status.
	b.record(t, "mok", "smsok", "submitted", nil)
	b.mustOK(t, KindReceipt, receiptBody(testAccount, "smsok", " 0000 ", ts1))
	b.record(t, "mfail", "smsfail", "submitted", nil)
	b.mustOK(t, KindReceipt, receiptBody(testAccount, "smsfail", "2100", ts1))
	if a, f := b.status(t, "mok")["status"], b.status(t, "mfail")["status"]; a != "delivered" || f != "failed" {
		t.Errorf("receipts 0000 and 2100: %s, %s; want delivered, failed", a, f)
	}
}

// A receipt with an unknown result is still evidence that ROX took the SMS:
// a reconciling recipient it matches is recorded submitted with its SMSId,
// not failed.
func TestUnknownResultReceiptIsEvidenceNotFailure(t *testing.T) {
	b := setup(t, nil, nil)
	b.inFlight(t, "m1", "+61407555001", "hi", "reconciling", time.Now().Add(-3*time.Second))
	b.mustOK(t, KindReceipt, receiptTo("sx-u", "+61407555001", "9999"))
	m := b.status(t, "m1")
	if m["status"] != "submitted" || m["sms_id"] != "sx-u" || m["err"] != "" {
		t.Fatalf("record %v: want submitted with sms_id sx-u", m)
	}
	if got := b.rdb.Get(context.Background(), b.keys.SMS("sx-u")).Val(); got != "m1" {
		t.Fatalf("sms map → %q", got)
	}
	e := b.entries(t, b.cfg.ReceiptsStream)
	if len(e) != 1 || e[0].Values["status"] != StatusUnknown || e[0].Values["result"] != "9999" || e[0].Values["message_id"] != "m1" {
		t.Fatalf("entries %v", e)
	}
}

func TestReceiptStatus(t *testing.T) {
	for _, tc := range []struct{ result, want string }{
		{"0000", StatusDelivered}, {" 0000 ", StatusDelivered},
		{"2011", StatusFailed}, {"2050", StatusFailed}, {"2100", StatusFailed},
		{"2001", StatusUnknown}, {"2010", StatusUnknown}, {"2101", StatusUnknown}, {"9999", StatusUnknown},
		{"", StatusUnknown}, {"0", StatusUnknown}, {"00000", StatusUnknown}, {"abcd", StatusUnknown},
	} {
		if got := receiptStatus(rox.Code(tc.result)); got != tc.want {
			t.Errorf("receiptStatus(%q) = %q, want %q", tc.result, got, tc.want)
		}
	}
}
