package rox

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

// validRequest returns a request that passes Validate; rows of the table
// break one rule each.
func validRequest() SendRequest {
	return SendRequest{
		Name: NameRequest, Version: Version, Product: "test",
		Sender: Sender{AccountID: "CI00000001", Username: "user@example.com", Password: "hunter2-secret"},
		Messages: Messages{
			ReceiptFlag: ReceiptAlways, ReceiptCallbackURL: "https://cb.example.com/rox/tok/receipt",
			ReplyType: ReplyHTTP, ReplyCallbackURL: "https://cb.example.com/rox/tok/reply",
			TimeZoneOffset: -600, Count: 2,
			Recipients: []Recipient{
				{DestTn: "+61407555001", SMSText: "one"},
				{DestTn: "+61407555002", SMSText: "two", DestName: "Two", DestEmail: "two@example.com"},
			},
		},
	}
}

func TestValidate(t *testing.T) {
	long := strings.Repeat("é", MaxTextLen+1) // 4001 runes
	exact := strings.Repeat("é", MaxTextLen)  // 4000 runes, 8000 bytes: allowed
	many := make([]Recipient, MaxRecipients+1)
	for i := range many {
		many[i] = Recipient{DestTn: "+61407555001", SMSText: "x"}
	}
	tests := []struct {
		name  string
		edit  func(r *SendRequest)
		field string // "" = valid
	}{
		{"valid", func(r *SendRequest) {}, ""},
		{"wrong name", func(r *SendRequest) { r.Name = "ROX_API_Receipt" }, "Name"},
		{"no account", func(r *SendRequest) { r.Sender.AccountID = "" }, "Sender.AccountId"},
		{"no username", func(r *SendRequest) { r.Sender.Username = "" }, "Sender.Username"},
		{"no password", func(r *SendRequest) { r.Sender.Password = "" }, "Sender.Password"},
		{"no recipients", func(r *SendRequest) { r.Messages.Recipients = nil; r.Messages.Count = 0 }, "Messages.Count"},
		{"count mismatch", func(r *SendRequest) { r.Messages.Count = 3 }, "Messages.Count"},
		{"count unset is derived", func(r *SendRequest) { r.Messages.Count = 0 }, ""},
		{"too many", func(r *SendRequest) { r.Messages.Recipients = many; r.Messages.Count = len(many) }, "Messages.Count"},
		{"500 is fine", func(r *SendRequest) { r.Messages.Recipients = many[:500]; r.Messages.Count = 500 }, ""},
		{"DestTn missing", func(r *SendRequest) { r.Messages.Recipients[1].DestTn = "" }, "Messages.2.DestTn"},
		{"DestTn national", func(r *SendRequest) { r.Messages.Recipients[1].DestTn = "0407555001" }, "Messages.2.DestTn"},
		{"DestTn leading zero", func(r *SendRequest) { r.Messages.Recipients[0].DestTn = "+0407555001" }, "Messages.1.DestTn"},
		{"DestTn too long", func(r *SendRequest) { r.Messages.Recipients[0].DestTn = "+1234567890123456" }, "Messages.1.DestTn"},
		{"DestTn too short", func(r *SendRequest) { r.Messages.Recipients[0].DestTn = "+123456" }, "Messages.1.DestTn"},
		{"DestTn spaces", func(r *SendRequest) { r.Messages.Recipients[0].DestTn = "+61 407 555 001" }, "Messages.1.DestTn"},
		{"SMSText missing", func(r *SendRequest) { r.Messages.Recipients[1].SMSText = "" }, "Messages.2.SMSText"},
		{"SMSText missing but GlobalText", func(r *SendRequest) {
			r.Messages.Recipients[1].SMSText = ""
			r.Messages.GlobalText = "to all"
		}, ""},
		{"SMSText too long", func(r *SendRequest) { r.Messages.Recipients[0].SMSText = long }, "Messages.1.SMSText"},
		{"SMSText 4000 runes", func(r *SendRequest) { r.Messages.Recipients[0].SMSText = exact }, ""},
		{"GlobalText too long", func(r *SendRequest) { r.Messages.GlobalText = long }, "Messages.GlobalText"},
		{"DestName too long", func(r *SendRequest) { r.Messages.Recipients[1].DestName = long }, "Messages.2.DestName"},
		{"DestEmail too long", func(r *SendRequest) { r.Messages.Recipients[1].DestEmail = long }, "Messages.2.DestEmail"},
		{"ReceiptFlag 3", func(r *SendRequest) { r.Messages.ReceiptFlag = 3 }, "Messages.ReceiptFlag"},
		{"ReceiptFlag -1", func(r *SendRequest) { r.Messages.ReceiptFlag = -1 }, "Messages.ReceiptFlag"},
		{"receipt URL missing", func(r *SendRequest) { r.Messages.ReceiptCallbackURL = "" }, "Messages.ReceiptCallbackURL"},
		{"receipt URL missing on error", func(r *SendRequest) {
			r.Messages.ReceiptFlag = ReceiptOnError
			r.Messages.ReceiptCallbackURL = ""
		}, "Messages.ReceiptCallbackURL"},
		{"receipt URL not needed", func(r *SendRequest) {
			r.Messages.ReceiptFlag = ReceiptNever
			r.Messages.ReceiptCallbackURL = ""
		}, ""},
		{"receipt URL relative", func(r *SendRequest) { r.Messages.ReceiptCallbackURL = "/rox/receipt" }, "Messages.ReceiptCallbackURL"},
		{"receipt URL ftp", func(r *SendRequest) { r.Messages.ReceiptCallbackURL = "ftp://x/receipt" }, "Messages.ReceiptCallbackURL"},
		{"ReplyType X", func(r *SendRequest) { r.Messages.ReplyType = "X" }, "Messages.ReplyType"},
		{"ReplyType lower h", func(r *SendRequest) { r.Messages.ReplyType = "h" }, "Messages.ReplyType"},
		{"ReplyType empty means email", func(r *SendRequest) {
			r.Messages.ReplyType = ""
			r.Messages.ReplyCallbackURL = ""
		}, ""},
		{"ReplyType E without URL", func(r *SendRequest) {
			r.Messages.ReplyType = ReplyEmail
			r.Messages.ReplyCallbackURL = ""
		}, ""},
		{"reply URL missing", func(r *SendRequest) { r.Messages.ReplyCallbackURL = "" }, "Messages.ReplyCallbackURL"},
		{"reply URL no host", func(r *SendRequest) { r.Messages.ReplyCallbackURL = "http://" }, "Messages.ReplyCallbackURL"},
		{"TimeZoneOffset -841", func(r *SendRequest) { r.Messages.TimeZoneOffset = -841 }, "Messages.TimeZoneOffset"},
		{"TimeZoneOffset 721", func(r *SendRequest) { r.Messages.TimeZoneOffset = 721 }, "Messages.TimeZoneOffset"},
		{"TimeZoneOffset -840", func(r *SendRequest) { r.Messages.TimeZoneOffset = -840 }, ""},
		{"TimeZoneOffset 720", func(r *SendRequest) { r.Messages.TimeZoneOffset = 720 }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := validRequest()
			tt.edit(&r)
			err := r.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate() = %v (%T), want *FieldError on %s", err, err, tt.field)
			}
			if fe.Field != tt.field {
				t.Fatalf("Field = %q (%v), want %q", fe.Field, err, tt.field)
			}
			if strings.Contains(err.Error(), r.Sender.Password) && r.Sender.Password != "" {
				t.Fatalf("error quotes the password: %v", err)
			}
			if strings.Contains(err.Error(), "/rox/tok/") {
				t.Fatalf("error quotes a callback URL (token): %v", err)
			}
		})
	}
}

func TestValidateNil(t *testing.T) {
	var r *SendRequest
	if err := r.Validate(); err == nil {
		t.Fatal("nil request validated")
	}
	var m *Messages
	if err := m.Validate(); err == nil {
		t.Fatal("nil messages validated")
	}
}

func TestValidateErrorIsBounded(t *testing.T) {
	r := validRequest()
	r.Name = strings.Repeat("N", 10000)
	err := r.Validate()
	if err == nil || len(err.Error()) > 200 {
		t.Fatalf("error not bounded: %d bytes", len(err.Error()))
	}
}

func TestIsE164MatchesRegexp(t *testing.T) {
	re := regexp.MustCompile(`^\+[1-9]\d{6,14}$`)
	for _, s := range []string{"", "+", "+1", "+123456", "+1234567", "+123456789012345", "+1234567890123456",
		"+0234567", "61407555001", "+61407555001", "+6140755500a", "+61 407555001", "++61407555001", "+٦١٤٠٧٥٥٥٠٠١"} {
		if got, want := IsE164(s), re.MatchString(s); got != want {
			t.Errorf("IsE164(%q) = %v, regexp says %v", s, got, want)
		}
	}
}

func FuzzIsE164(f *testing.F) {
	re := regexp.MustCompile(`^\+[1-9]\d{6,14}$`)
	f.Add("+61407555001")
	f.Fuzz(func(t *testing.T, s string) {
		if IsE164(s) != re.MatchString(s) {
			t.Fatalf("IsE164(%q) = %v", s, IsE164(s))
		}
	})
}
