package callbacks

import (
	"encoding/json"
	"net/http"

	"github.com/redoxygen/roxd/rox"
)

// Result codes of the receiver's error answers. ROX defines "0000" for
// success, 2001..2010 for authentication errors and 2011..2100 for sending
// errors; the receiver answers in the same families so that ROX (and
// whoever reads its forwarded e-mail) sees a failure with a reason.
const (
	// ResultBadToken: the URL's token is not ours (HTTP 404).
	ResultBadToken rox.Code = "2001"
	// ResultWrongAccount: Sender.AccountId is not ROXD_ROX_ACCOUNT_ID (403).
	ResultWrongAccount rox.Code = "2002"
	// ResultBadRequest: not a POST, not JSON, wrong Name, a field missing
	// or of the wrong type (405, 400). ResultText names the field.
	ResultBadRequest rox.Code = "2011"
	// ResultTooLarge: the body is over ROXD_CALLBACK_MAX_BODY (413).
	ResultTooLarge rox.Code = "2012"
	// ResultNotStored: Redis (and the spool) could not take the callback;
	// post it again later (503).
	ResultNotStored rox.Code = "2013"
)

// answerName is the Name of our answer to a callback of kind: the receipt
// answer for a path that is neither kind.
func answerName(kind string) string {
	if kind == KindReply {
		return rox.NameReplyResponse
	}
	return rox.NameReceiptResponse
}

// writeAnswer writes a ROX_API_*_Response with HTTP status code, result
// and text.
func writeAnswer(w http.ResponseWriter, kind string, code int, result rox.Code, text string) {
	b, err := json.Marshal(rox.CallbackResponse{Name: answerName(kind), Version: rox.Version, Result: result, ResultText: text})
	if err != nil { // cannot happen: strings and a number
		b = []byte(`{"Name":"` + answerName(kind) + `","Version":1.1,"Result":"2011","ResultText":"error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}
