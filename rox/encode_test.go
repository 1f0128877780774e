package rox

import (
	"strings"
	"testing"
)

// RecipientBytes is the size of the entry EncodeSendRequest writes, and
// RecipientBytesBound never below it, whatever the characters (escaped
// ASCII, CJK, U+2028, invalid UTF-8).
func TestRecipientBytes(t *testing.T) {
	for _, r := range []Recipient{
		{DestTn: "+61407555001"},
		{DestTn: "+61407555001", DestName: "Ann", DestEmail: "a@b.c", SMSText: "hi"},
		{DestTn: "+61407555001", SMSText: strings.Repeat("<&>\"\\\n", 600)},
		{DestTn: "+61407555001", DestName: "名前", SMSText: strings.Repeat("漢", MaxTextLen)},
		{DestTn: "+61407555001", SMSText: strings.Repeat("\u2028\x01", 1000) + "\xff"},
	} {
		one := SendRequest{Messages: Messages{Recipients: []Recipient{r}}}
		none := SendRequest{}
		a, err1 := EncodeSendRequest(&one)
		b, err2 := EncodeSendRequest(&none)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		// the key "1" is 2 bytes shorter than "500", which RecipientBytes counts
		want := len(a) - len(b) + 2
		if got := RecipientBytes(r); got != want {
			t.Errorf("RecipientBytes = %d, want %d (%.40q)", got, want, r.SMSText)
		}
		if bound := RecipientBytesBound(r); bound < want {
			t.Errorf("RecipientBytesBound = %d, below %d (%.40q)", bound, want, r.SMSText)
		}
	}
}
