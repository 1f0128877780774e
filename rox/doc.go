// Package rox is the contract with Red Oxygen's CompleteSMS JSON API (ROX):
// the messages of rox-api.txt as Go types, their wire encoding (recipients
// under the keys "1".."N" beside the control fields), validation that names
// the field, the result-code taxonomy, and an HTTP client.
//
// Passwords never reach a log line, an error or a panic: Sender redacts
// itself when printed, and no error of this package quotes a request body.
package rox
