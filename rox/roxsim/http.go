package roxsim

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
)

// routes serves the inspection and control endpoints under /sim/.
func (s *Sim) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+RequestsPath, func(w http.ResponseWriter, r *http.Request) {
		limit, ok := limitParam(w, r)
		if !ok {
			return
		}
		reqs := s.Requests()
		if limit > 0 && len(reqs) > limit {
			reqs = reqs[len(reqs)-limit:]
		}
		writeJSON(w, http.StatusOK, reqs)
	})
	mux.HandleFunc("GET "+RecipientsPath, func(w http.ResponseWriter, r *http.Request) {
		limit, ok := limitParam(w, r)
		if !ok {
			return
		}
		q := r.URL.Query()
		writeJSON(w, http.StatusOK, s.FindRecipients(RecipientFilter{
			RequestID: q.Get("request_id"), SMSID: q.Get("sms_id"), DestTn: q.Get("dest_tn"),
			Text: q.Get("text"), Limit: limit,
		}))
	})
	mux.HandleFunc("GET "+CallbacksPath, func(w http.ResponseWriter, r *http.Request) {
		limit, ok := limitParam(w, r)
		if !ok {
			return
		}
		q := r.URL.Query()
		kind, sms := q.Get("kind"), q.Get("sms_id")
		var out []RecordedCallback
		for _, c := range s.Callbacks() {
			if (kind == "" || c.Kind == kind) && (sms == "" || c.SMSID == sms) {
				out = append(out, c)
			}
		}
		if limit > 0 && len(out) > limit {
			out = out[len(out)-limit:]
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET "+StatsPath, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Stats())
	})
	mux.HandleFunc("POST "+ResetPath, func(w http.ResponseWriter, r *http.Request) {
		s.Reset()
		writeJSON(w, http.StatusOK, map[string]string{"status": "reset"})
	})
	mux.HandleFunc("GET "+FaultsPath, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Faults())
	})
	mux.HandleFunc("PUT "+FaultsPath, func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "reading body: " + err.Error()})
			return
		}
		f := s.Faults()
		if err := json.Unmarshal(body, &f); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		if err := s.SetFaults(f); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, s.Faults())
	})
	mux.HandleFunc("POST "+ReplyPath, func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			SMSID  string `json:"sms_id"`
			DestTn string `json:"dest_tn"`
			Text   string `json:"text"`
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
		if err == nil {
			err = json.Unmarshal(body, &in)
		}
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "want {\"sms_id\" or \"dest_tn\", \"text\"}"})
			return
		}
		if in.Text == "" {
			in.Text = s.Faults().AutoReplyText
		}
		rec, err := s.Reply(r.Context(), in.SMSID, in.DestTn, in.Text)
		switch {
		case errors.Is(err, ErrNotFound):
			writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
		case err != nil:
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		default:
			writeJSON(w, http.StatusAccepted, map[string]string{
				"request_id": rec.RequestID, "sms_id": rec.SMSID, "dest_tn": rec.DestTn, "reply_type": string(rec.ReplyType)})
		}
	})
	return mux
}

// DefaultListLimit is how many (newest) records the list endpoints return
// without ?limit=; limit=0 returns all.
const DefaultListLimit = 1000

func limitParam(w http.ResponseWriter, r *http.Request) (int, bool) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return DefaultListLimit, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "limit: want a number >= 0"})
		return 0, false
	}
	return n, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
