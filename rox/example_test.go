package rox_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/redoxygen/roxd/rox"
)

// A send: fill Messages, call Send, read each recipient's result by
// position. A top-level failure comes back as an *rox.Error whose Kind and
// rox.Policy say what to do.
func ExampleClient_Send() {
	// A stand-in for ROX that accepts every recipient.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req, err := rox.DecodeSendRequest(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		resp := rox.SendResponse{Name: rox.NameResponse, Version: rox.Version, Result: rox.CodeOK, ResultText: "Success",
			Messages: rox.ResponseMessages{RequestID: "req-1"}}
		for i, rcpt := range req.Messages.Recipients {
			resp.Messages.Results = append(resp.Messages.Results, rox.RecipientResult{
				SMSID: fmt.Sprintf("sms-%d", i+1), DestTn: rcpt.DestTn, Result: rox.CodeOK, ResultText: "Queued"})
		}
		out, _ := rox.EncodeSendResponse(&resp)
		_, _ = w.Write(out)
	}))
	defer srv.Close()

	client, err := rox.NewClient(rox.ClientConfig{URL: srv.URL, AccountID: "CI00000001",
		Username: "user@example.com", Password: "secret"})
	if err != nil {
		fmt.Println(err)
		return
	}
	resp, err := client.Send(context.Background(), rox.Messages{
		ReceiptFlag: rox.ReceiptNever,
		Recipients: []rox.Recipient{
			{DestTn: "+61407555001", SMSText: "Hello"},
			{DestTn: "+61407555002", SMSText: "Hi"},
		},
	})
	if err != nil {
		fmt.Println("send failed; retry:", rox.NewPolicy(nil).Retryable(err), err)
		return
	}
	for i, res := range resp.Messages.Results {
		fmt.Println(i+1, res.SMSID, res.Result)
	}
	// Output:
	// 1 sms-1 0000
	// 2 sms-2 0000
}

// Receipts may carry a trailing comma, as the document's examples do.
func ExampleDecodeReceipt() {
	body := []byte(`{"Name":"ROX_API_Receipt","Version":1.1,
		"Messages":{"RequestId":"r1","Receipt":{"SMSId":"s1","DestTn":"+61407555001","Result":"0000","ResultText":"Delivered",}}}`)
	r, err := rox.DecodeReceipt(body)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(r.Messages.Receipt.SMSID, r.Messages.Receipt.Result.Class())

	_, err = rox.DecodeReceipt([]byte(`{"Name":"ROX_API_Reply","Messages":{}}`))
	fmt.Println(err)
	// Output:
	// s1 success
	// rox: Name: is "ROX_API_Reply", want ROX_API_Receipt
}
