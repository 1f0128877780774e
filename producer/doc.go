// Package producer accepts SMS for delivery: it validates each message
// (E.164 normalisation with libphonenumber, text and metadata limits,
// SendAt bounds), reports its encoding (GSM-7 or UCS-2) and segment count,
// and stores it in Redis with one script per message, many messages in one
// pipeline. The worker coalesces stored messages into ROX requests.
//
// Idempotency: a Message's ID is the caller's key. Sending the same ID with
// the same content again returns the existing message (Result.Replayed) and
// queues nothing; the same ID with other content is ErrConflict.
//
// Sub-package httpapi serves the producer over HTTP (role api of
// `roxd serve`).
package producer
