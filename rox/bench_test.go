package rox

import (
	"fmt"
	"testing"
	"time"
)

func request500() *SendRequest {
	r := &SendRequest{Name: NameRequest, Version: Version, Product: "roxd",
		Sender: Sender{AccountID: "CI00000001", Username: "user@example.com", Password: "secret"},
		Messages: Messages{ReceiptFlag: ReceiptAlways, ReceiptCallbackURL: "https://cb.example.com/rox/0123456789abcdef/receipt",
			ReplyType: ReplyHTTP, ReplyCallbackURL: "https://cb.example.com/rox/0123456789abcdef/reply",
			SendLater: time.Date(2030, 1, 1, 0, 0, 1, 0, time.UTC)}}
	for i := 0; i < MaxRecipients; i++ {
		r.Messages.Recipients = append(r.Messages.Recipients, Recipient{
			DestTn: fmt.Sprintf("+61407%06d", i), DestName: fmt.Sprintf("Customer %d", i),
			SMSText: "Your appointment is at 10:30 tomorrow. Reply YES to confirm & NO to cancel."})
	}
	r.Messages.Count = MaxRecipients
	return r
}

func response500() *SendResponse {
	r := &SendResponse{Name: NameResponse, Version: Version, Result: CodeOK, ResultText: "Success",
		Messages: ResponseMessages{RequestID: "123e4567-e89b-12d3-a456-426614174000"}}
	for i := 0; i < MaxRecipients; i++ {
		r.Messages.Results = append(r.Messages.Results, RecipientResult{
			SMSID: fmt.Sprintf("123e4567-e89b-12d3-a456-%012d", i), DestTn: fmt.Sprintf("+61407%06d", i),
			Result: CodeOK, ResultText: "Queued", Timestamp: "01-Jan-2030 00:00:01 (UTC)"})
	}
	r.Messages.Count = MaxRecipients
	return r
}

func BenchmarkEncodeRequest500(b *testing.B) {
	r := request500()
	b.ReportAllocs()
	for b.Loop() {
		out, err := EncodeSendRequest(r)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(out)))
	}
}

func BenchmarkDecodeRequest500(b *testing.B) {
	body, err := EncodeSendRequest(request500())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeSendRequest(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidateRequest500(b *testing.B) {
	r := request500()
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeResponse500(b *testing.B) {
	r := response500()
	b.ReportAllocs()
	for b.Loop() {
		out, err := EncodeSendResponse(r)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(out)))
	}
}

func BenchmarkDecodeResponse500(b *testing.B) {
	body, err := EncodeSendResponse(response500())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeSendResponse(body); err != nil {
			b.Fatal(err)
		}
	}
}
