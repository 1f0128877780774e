// Package httpapi serves the producer over HTTP (role api of `roxd serve`):
// send one message or a batch of up to 10,000, read a message's status and
// history, cancel it before it is handed to ROX, and read or change the
// suppression (opt-out) list. Every request carries the bearer token
// ROXD_API_TOKEN; every error is JSON {"error":{"code","message","field"}}.
// docs/openapi.json documents the endpoints; a test keeps it in step with
// Routes.
package httpapi
