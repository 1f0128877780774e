// Package callbacks receives ROX's delivery receipts and replies and turns
// them into Redis stream entries, correlated with the producer's message,
// deduplicated, and never lost once answered.
//
// # Endpoints
//
// Receiver.Handler serves POST /rox/{token}/receipt and POST
// /rox/{token}/reply, the URLs the worker hands ROX in every request. The
// token is compared in constant time (on SHA-256 digests, so its length does
// not leak either); a wrong or missing token is 404 and nothing is stored.
// A body over Config.MaxBody is 413, malformed JSON or a wrong Name is 400,
// an AccountId other than Config.AccountID is 403; every refusal is a JSON
// ROX_API_*_Response with a non-zero Result (answer.go) and a ResultText
// naming the problem, and a refused reply whose text is a stop keyword
// still opts its number out (salvage.go). A valid callback is
// answered ROX_API_Receipt_Response / ROX_API_Reply_Response with Result
// "0000" only after it is durably stored: in Redis, or in the fsynced spool.
//
// # One script call per group of callbacks
//
// Each callback is stored by one Lua script (script.go), which stores a
// whole group of callbacks in one call (see below): skip it when its event id
// was seen ({P}:cb:seen:<event_id>, TTL Config.DedupTTL); map its SMSId to
// the producer's message id ({P}:sms:<smsid>) and read the record's
// metadata; for a receipt move the record's status forward to delivered or
// failed (from queued, scheduled, sending or submitted, and failed to
// delivered; never backwards, never out of cancelled or suppressed), stamp
// t_<status> and write status_after into the entry; for a reply whose text
// is a stop keyword (optout.go: NFKC, case folded, invisible characters and
// surrounding punctuation ignored) add the number (ReplyFrom normalised as
// `to` is, else the record's `to`) to {P}:suppressed, or remove it for a
// start keyword unless an operator suppressed it; XADD the entry with
// MAXLEN ~; set the dedup marker last, so a callback that fails half-way
// leaves no marker behind.
//
// # Callbacks that beat the worker
//
// The worker writes {P}:sms:<smsid> only after ROX has answered its
// request, and ROX may post a receipt (or a reply) for that SMSId before.
// When the SMSId is unknown, the same script, in the same round trip,
// stores the event durably in the zset {P}:cb:deferred (member: the
// spool's JSON of the event plus an attempt counter; score: when it is
// due) instead of pushing it, sets no dedup marker, applies a stop or start
// keyword at once (or, when ReplyFrom is no number, once the SMSId is
// known), and the callback is answered "0000" (outcome "deferred").
// A resolver goroutine in Run takes due members every 100 ms and runs the
// script again on each: the script claims the member (several receivers
// may share Redis: each member is stored once) and stores it correlated if
// the SMSId is known by now, defers it again by the next of
// Config.DeferDelays (default 250 ms, 1 s, 3 s, 10 s, 30 s: about 45 s in
// all), or after the last one pushes it with an empty message_id: a
// callback is never dropped. A duplicate posted meanwhile is deferred as
// well and found a duplicate when resolved. A spooled callback replayed
// later may be deferred the same way. Deferral reorders only these
// callbacks: their entries come after entries stored meanwhile.
//
// ROX's timestamp ("01-Jan-2030 00:00:01 (UTC)") becomes RFC 3339 UTC; one
// that cannot be read is replaced by the time the callback arrived rather
// than refused (a cosmetic field never costs a callback). The AccountId is
// compared ignoring case and surrounding spaces.
//
// The event id is a hash of kind, canonical SMSId (store.CanonicalSMSID)
// and result for a receipt (one event per SMSId and result, whatever its
// Timestamp), and of kind, canonical SMSId, number, text and timestamp for
// a reply: ROX calling twice yields one entry, and the second call is
// answered "0000" too.
//
// Concurrent callbacks are stored in group commits: Config.Pipelines
// batchers each take whatever callbacks are waiting (up to Config.MaxBatch)
// and store them with one script call per shard among them, all in one
// pipelined round trip; each HTTP callback is answered once its own entry
// is stored. Inside the call each callback runs under pcall: one whose
// command fails gets its own error (spooled or rejected as a single
// failure would be) and the others of the group are stored; a callback
// repeated within one group is stored once. No timer is involved: while
// one round trip is in flight the next batch gathers by itself, so a lone
// callback waits for nothing and a busy receiver pays one round trip per
// batch.
//
// # Redis down: the spool
//
// We chose a local spool over answering non-2xx: ROX forwards a failed
// callback to email, where it is lost to every downstream system. When the
// script fails (connection refused or reset, timeout after
// Config.StoreTimeout (3s: a slow Redis slows the answer, it does not
// divert it), LOADING, READONLY, OOM, ...; spooldecision.go lists them and
// roxd_callbacks_spooled_total{reason} counts them), the callback is
// appended as one JSON line to a file in Config.SpoolDir and fsynced before
// "0000" goes back. Concurrent callbacks share one fsync (group commit).
// While the spool holds anything, new callbacks go to it as well, behind the
// older ones, so that the streams receive callbacks in the order they were
// answered (except deferred ones, see above). A replayer goroutine retries with backoff (up to
// Config.ReplayInterval): it rotates the current file, stores each closed
// file into Redis oldest first through the same script (idempotent through
// the dedup key, so a file cut short by a crash or an outage is simply
// replayed again), and removes it. When nothing is left, callbacks go to
// Redis directly again. On start, Run replays whatever an earlier process
// left. A spooled callback Redis refuses for good (not a connection
// problem, e.g. WRONGTYPE on a misconfigured stream key) is moved to
// SpoolDir/rejected.log with the error, so that it neither blocks the spool
// nor is lost. Without a SpoolDir, a callback that cannot be stored is
// answered 503.
//
// Shutdown: stop the HTTP server first (it drains handlers), then cancel
// Run's context; Run waits for its batchers and replayer and closes the
// current spool file. A callback that still arrives after Run returned is
// spooled (and replayed by the next start) rather than refused.
//
// # Redis Cluster
//
// Every roxd key carries the {prefix} hash tag, but the stream names are
// configured freely: under Redis Cluster give them the same tag (e.g.
// "{roxd}:receipts") so the script's keys share one slot.
//
// Package consumer (callbacks/consumer) reads the streams for downstream
// services.
package callbacks
