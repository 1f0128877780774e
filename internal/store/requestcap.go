package store

import (
	"strconv"

	"github.com/redoxygen/roxd/rox"
)

// groupCapTag marks a group whose messages are large: "|n=<k>", at most k
// of them per ROX request (the form script reads it).
const groupCapTag = "n="

// requestReserve is the room a request keeps for all but its recipients
// (names, credentials, callback URLs, SendLater): generous.
const requestReserve = 16 << 10

// RequestCap is the most recipients of recipientBytes each (rox.RecipientBytes)
// one ROX request carries within rox.MaxRequestBytes: rox.MaxRecipients
// (500), or 250, 125, 62, 31, 15, 7, 3 or 1, so that messages of similar
// size share a group (and a batch) instead of one group per size. A
// 160-character text is ~220 bytes (500); a 4,000-character CJK text
// 12,000 (62).
func RequestCap(recipientBytes int) int {
	k := rox.MaxRecipients
	for k > 1 && k*recipientBytes > rox.MaxRequestBytes-requestReserve {
		k /= 2
	}
	return k
}

// WithRequestCap returns group with the part "|n=<k>" when k is below
// rox.MaxRecipients (the form script then forms batches of at most k).
// Older formers, which do not read it, take up to 500 as before.
func WithRequestCap(group string, k int) string {
	if k >= rox.MaxRecipients || k < 1 {
		return group
	}
	return group + "|" + groupCapTag + strconv.Itoa(k)
}
