package roxsim

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/redoxygen/roxd/rox"
)

// FuzzSend posts arbitrary bodies: the simulator must never panic, must
// always answer a ROX_API_Response with a documented code, never echo the
// password, and accept only what Validate accepts.
func FuzzSend(f *testing.F) {
	valid, _ := rox.EncodeSendRequest(&rox.SendRequest{Name: rox.NameRequest, Version: rox.Version,
		Sender:   rox.Sender{AccountID: DefaultAccountID, Username: DefaultUsername, Password: DefaultPassword},
		Messages: rox.Messages{GlobalText: "hi", Recipients: []rox.Recipient{{DestTn: "+61407555001"}}}})
	f.Add(valid)
	f.Add(bytes.Replace(valid, []byte(`"Count":1`), []byte(`"Count":2`), 1))
	f.Add([]byte(`{"Name":"ROX_API_Request","Messages":{"Count":1,"1":{"DestTn":"+1"}}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{`))
	sim, err := New(Config{Seed: 1, CountOnly: true}, zerolog.Nop())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = sim.Close(f.Context()) })
	f.Fuzz(func(t *testing.T, body []byte) {
		w := httptest.NewRecorder()
		sim.ServeHTTP(w, httptest.NewRequest(http.MethodPost, SendPath, bytes.NewReader(body)))
		out, err := rox.DecodeSendResponse(w.Body.Bytes())
		if err != nil {
			t.Fatalf("HTTP %d: answer is not a ROX_API_Response: %v", w.Code, err)
		}
		switch out.Result {
		case rox.CodeOK:
			req, err := rox.DecodeSendRequest(body)
			if err != nil || req.Validate() != nil || w.Code != http.StatusOK ||
				len(out.Messages.Results) != len(req.Messages.Recipients) {
				t.Fatalf("accepted a request the codec rejects (%v) or answered badly", err)
			}
		case CodeAuthFailed, CodeMalformed, CodeInvalid:
		default:
			t.Fatalf("undocumented code %q", out.Result)
		}
		// When the password appears once, in Sender.Password, the answer
		// must not carry it. (Elsewhere it is just text and may be quoted.)
		if req, err := rox.DecodeSendRequest(body); err == nil && req.Sender.Password == DefaultPassword &&
			bytes.Count(body, []byte(DefaultPassword)) == 1 && strings.Contains(w.Body.String(), DefaultPassword) {
			t.Fatal("answer contains the password")
		}
	})
}
