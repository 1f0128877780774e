// Package rox is the contract with Red Oxygen's CompleteSMS JSON API (ROX),
// described in docs/ROX.md ("the document" below is the provider's API
// document it is written from): the messages as Go types (types.go), their
// wire encoding
// with recipients under the keys "1".."N" beside the control fields
// (encode.go, decode.go), validation that names the wire field
// (validate.go), the result-code taxonomy and retry policy (codes.go,
// errors.go), an HTTP client (client.go) and the decoders of ROX's callbacks
// (callbacks.go).
//
// Choices where the document is silent or contradicts itself:
//   - An empty ReplyType is read as E (email) and omitted on the wire.
//   - Results are mapped to recipients by key, never by DestTn.
//   - Every decoder accepts trailing commas before } or ], as in the
//     document's own examples; our encodings are always valid JSON.
//   - A reply body may be named ROX_API_Reply or ROX_API_Reply_Response.
//   - Sending errors (2011..2100) are retried unless configured permanent;
//     unknown codes are not retried.
//
// Passwords never reach a log line, an error or a panic: Sender, Client and
// ClientConfig redact themselves when printed, no error of this package
// quotes a request body, and the Client scrubs the password out of anything
// a server echoes back. Callback URLs are never quoted in errors either (they
// carry a secret token).
package rox
