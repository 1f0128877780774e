package roxsim

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestPutFaultsUnknownField: PUT /sim/faults updates only the fields it
// names, so a misspelt one ({"throtle":1}) was answered 200 with nothing
// changed: the caller believed the simulator was throttling. A name that
// is no fault is a 400 naming it, and the faults stay as they were.
func TestPutFaultsUnknownField(t *testing.T) {
	b := setup(t, Config{})
	for _, body := range []string{`{"throtle":1}`, `{"throttle":0.5,"latncy":"1s"}`, `{"fail5xx":1}`} {
		hr, _ := http.NewRequest(http.MethodPut, b.srv.URL+FaultsPath, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		bad := body[strings.LastIndex(body, `,"`)+1:]
		bad = strings.Trim(bad[:strings.Index(bad, ":")], `{"`)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(msg), bad) {
			t.Errorf("PUT %s: %d %s, want 400 naming %s", body, resp.StatusCode, msg, bad)
		}
	}
	if f := b.sim.Faults(); f.Throttle != 0 || f.Fail5xx != 0 {
		t.Errorf("a refused PUT changed the faults: %+v", f)
	}
}
