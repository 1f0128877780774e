// Package roxsim is a simulated Red Oxygen CompleteSMS endpoint (ROX): the
// product's test double and demo partner. `roxd sim` runs it as a server;
// tests mount it on an httptest.Server.
//
// # What it does
//
// A *Sim is an http.Handler. POST /smsapi/send reads a ROX_API_Request with
// the rox codec, checks the credentials and rox's Validate, and answers a
// ROX_API_Response in the document's shape: Result "0000"/"Success", a
// RequestId, and for each numbered recipient an SMSId, the DestTn, Result
// "0000"/"Queued" and a Timestamp. (DestTn is returned as sent: Validate
// already requires the fully qualified E.164 form ROX would return.)
// Results are numbered like the request's recipients; ids are random
// version-4 UUIDs drawn from the seeded source. Each queued recipient is then
// "delivered" at max(now, SendLater) + Faults.ReceiptDelay: a SendLater
// message is held, and nothing about it is posted before it is due. On
// delivery the simulator posts a ROX_API_Receipt to ReceiptCallbackURL when
// ReceiptFlag is 1, or 2 and the delivery failed; never when it is 0.
// POST /sim/reply (or Sim.Reply) makes it post a reply (Name
// Config.ReplyName, default the document's example ROX_API_Reply_Response)
// to the message's ReplyCallbackURL when its ReplyType is H.
//
// A callback counts as answered when the receiver replies 2xx with a body
// whose Result is "0000" (a trailing comma before the closing brace, as in
// the document's examples, is forgiven). A transport error, another status
// or another Result counts as failed; as at ROX the callback is then
// "forwarded to email" (Stats.ForwardedToEmail, a RecordedCallback with
// OutcomeForwardedToEmail). Config.RetryCallbacks retries once first.
//
// Callbacks are posted by a fixed pool of Config.Workers goroutines over
// keep-alive connections, fed by one scheduler goroutine with a timer heap
// of accepted requests: no goroutine per message.
//
// # Result codes
//
// The document fixes only the ranges; the simulator uses:
//
//	"0000" Success / Queued / Delivered
//	"2001" CodeAuthFailed    wrong or missing AccountId, Username or Password, or Faults.AuthFail
//	"2011" CodeMalformed     not a ROX_API_Request: not JSON (HTTP 400), not an object,
//	                         a field of the wrong JSON type; also the body of 405 and 413 answers
//	"2012" CodeInvalid       a field breaks the document's rules; ResultText is
//	                         "<field path>: <reason>", e.g. "Messages.3.DestTn: ..."
//	"2015" CodeBarred        } default per-recipient sending errors (Faults.RecipientErrors);
//	"2020" CodeNoCredit      } a refused entry has an empty SMSId and is never delivered
//	"2050" CodeUndeliverable default Result of a failed delivery receipt (Faults.DeliveryFailures)
//
// Errors are answered HTTP 200 with a ROX_API_Response carrying only Name,
// Version, Result and ResultText, except: a body that is not JSON (400), a
// body over Config.MaxBody (413), a method other than POST (405), and the
// injected 5xx (500, plain text). Authentication is checked before
// validation, so a request with a wrong password is answered 2001 whatever
// else is wrong with it (but a request that cannot be decoded at all is
// answered 2011/2012 first). The password is never echoed or logged.
//
// # Faults
//
// Faults (Config.Faults, SetFaults, PUT /sim/faults, and `roxd sim` flags)
// inject HTTP 500s, latency with jitter, hung requests (held until the
// client gives up or the simulator closes), authentication failure,
// per-recipient sending errors with chosen codes, duplicate callbacks,
// delivery delay and delivery failures, automatic replies, and late answers
// (accepted first, answered after a delay: a client timeout that hides an
// accepted request). Every random
// choice comes from one source seeded by Config.Seed.
//
// # Records and inspection
//
// The simulator records every send request (password replaced by
// Redacted), every recipient of an accepted request (with the text as
// delivered: GlobalText or SMSText) and every callback attempt with its
// outcome. Tests read them with Requests, Recipients, FindRecipients,
// Callbacks and Stats, wait for pending callbacks with WaitIdle, and clear
// them with Reset. The same is served as JSON:
//
//	GET  /sim/requests?limit=N
//	GET  /sim/recipients?request_id=&sms_id=&dest_tn=&text=&limit=N
//	GET  /sim/callbacks?kind=receipt|reply&sms_id=&limit=N
//	GET  /sim/stats
//	POST /sim/reset
//	GET  /sim/faults, PUT /sim/faults (a partial JSON object changes only its fields)
//	POST /sim/reply {"sms_id": "...", "text": "..."} or {"dest_tn": "+61...", "text": "..."}
//
// Lists return the newest DefaultListLimit records unless ?limit= says
// otherwise (limit=0: all), oldest first.
//
// Config.CountOnly keeps only Stats (for benchmarks); Config.MaxRecords
// bounds each record list.
//
// # In tests
//
//	sim, _ := roxsim.New(roxsim.Config{Seed: 1}, zerolog.Nop())
//	srv := httptest.NewServer(sim)
//	defer srv.Close()
//	defer sim.Close(context.Background())
//	// point the code under test at srv.URL + roxsim.SendPath with
//	// roxsim.DefaultAccountID, DefaultUsername, DefaultPassword, then:
//	_ = sim.WaitIdle(ctx)
//	got := sim.FindRecipients(roxsim.RecipientFilter{DestTn: "+61407555001"})
package roxsim
