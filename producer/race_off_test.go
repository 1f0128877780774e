//go:build !race

package producer

const raceOn = false
