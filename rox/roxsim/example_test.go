package roxsim_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/rox"
	"github.com/redoxygen/roxd/rox/roxsim"
)

// A test mounts the simulator on an httptest.Server, points the real
// client at it, and inspects what "ROX" received and sent back.
func Example() {
	// Something to receive the delivery receipts.
	receipts := make(chan *rox.Receipt, 10)
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if rc, err := rox.DecodeReceipt(body); err == nil {
			receipts <- rc
		}
		fmt.Fprint(w, `{"Name":"ROX_API_Receipt_Response","Version":1.1,"Result":"0000","ResultText":"OK"}`)
	}))
	defer cb.Close()

	sim, err := roxsim.New(roxsim.Config{Seed: 1}, zerolog.Nop())
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := httptest.NewServer(sim)
	defer srv.Close()
	defer sim.Close(context.Background())

	client, err := rox.NewClient(rox.ClientConfig{URL: srv.URL + roxsim.SendPath,
		AccountID: roxsim.DefaultAccountID, Username: roxsim.DefaultUsername, Password: roxsim.DefaultPassword})
	if err != nil {
		fmt.Println(err)
		return
	}
	resp, err := client.Send(context.Background(), rox.Messages{
		ReceiptFlag:        rox.ReceiptAlways,
		ReceiptCallbackURL: cb.URL + "/receipt",
		GlobalText:         "Your table is ready",
		Recipients:         []rox.Recipient{{DestTn: "+61407555001"}, {DestTn: "+61407555002"}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(resp.Result, resp.ResultText, len(resp.Messages.Results), resp.Messages.Results[0].ResultText)

	if err := sim.WaitIdle(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	rc := <-receipts
	fmt.Println(rc.Name, rc.Messages.Receipt.Result, rc.Messages.Receipt.ResultText)
	st := sim.Stats()
	fmt.Println("recipients:", st.Recipients, "receipts sent:", st.ReceiptsSent)
	fmt.Println("text as delivered:", sim.Recipients()[1].Text)
	// Output:
	// 0000 Success 2 Queued
	// ROX_API_Receipt 0000 Delivered
	// recipients: 2 receipts sent: 2
	// text as delivered: Your table is ready
}
