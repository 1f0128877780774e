package testutil

import (
	"testing"
	"time"
)

// Eventually polls cond every 10 ms until it is true or timeout passes, then
// fails the test with the message. Use it instead of sleeping.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: "+format, append([]any{timeout}, args...)...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
