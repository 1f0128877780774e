//go:build race

package producer

// raceOn: the race detector makes libphonenumber ~50x slower; corpus
// tests use a smaller corpus under it.
const raceOn = true
