package redisconn

import (
	"errors"
	"strings"
)

// SlotCount is the number of Redis Cluster hash slots.
const SlotCount = 16384

// HashTag returns the part of key that Redis Cluster hashes: the text
// between the first '{' and the next '}' when that is not empty, else the
// whole key (the Redis Cluster specification's rule).
func HashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

// Slot is the Redis Cluster hash slot of key: CRC16 (XMODEM) of its hash
// tag, modulo SlotCount. It equals `CLUSTER KEYSLOT key`.
func Slot(key string) int {
	return int(crc16(HashTag(key))) % SlotCount
}

// SameSlotKey returns a key named suffix that hashes to the slot of key:
// "{<hash tag of key>}:" + suffix. key must pass CheckTaggedName (a name
// such as "a{}b" hashes whole and cannot be wrapped in braces).
func SameSlotKey(key, suffix string) string {
	return "{" + HashTag(key) + "}:" + suffix
}

// ErrBadHashTag is returned by CheckTaggedName.
var ErrBadHashTag = errors.New("braces must form one hash tag {tag} with a non-empty tag, e.g. {roxd}:receipts")

// CheckTaggedName accepts a key name with no braces, or with exactly one
// '{' followed later by exactly one '}' enclosing a non-empty tag: names
// whose slot is plain to read. Other uses of braces are refused, as is
// white space.
func CheckTaggedName(name string) error {
	if strings.ContainsAny(name, " \t\r\n") {
		return errors.New("must not contain spaces")
	}
	open, close := strings.Count(name, "{"), strings.Count(name, "}")
	if open == 0 && close == 0 {
		return nil
	}
	i, j := strings.IndexByte(name, '{'), strings.IndexByte(name, '}')
	if open != 1 || close != 1 || j < i+2 {
		return ErrBadHashTag
	}
	return nil
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial 0), the checksum Redis
// Cluster hashes keys with.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
