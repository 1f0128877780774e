package redisconn

import (
	"errors"
	"strings"

	"github.com/redis/go-redis/v9"
)

// permanentPrefixes start the error answers of Redis that retrying cannot
// change: the credentials or the database number of REDIS_URL are wrong.
var permanentPrefixes = []string{
	"WRONGPASS",                    // wrong password, or unknown/disabled user (AUTH, HELLO)
	"NOAUTH",                       // the server wants a password and the URL has none
	"NOPERM",                       // the ACL user may not run what roxd needs
	"ERR AUTH",                     // "ERR AUTH <password> called without any password configured"
	"ERR invalid password",         // Redis < 6
	"ERR DB index is out of range", // SELECT of a database the server does not have
	"ERR invalid DB index",         // SELECT of a malformed index
	"ERR SELECT is not allowed in cluster mode",
}

// IsPermanent reports whether err is an answer of Redis that no retry can
// change because REDIS_URL is wrong: authentication (WRONGPASS, NOAUTH,
// NOPERM, AUTH without a configured password) or a database that does not
// exist ("DB index is out of range"). Connection errors, timeouts, LOADING,
// MASTERDOWN and the like are not permanent.
func IsPermanent(err error) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	msg := rerr.Error()
	for _, p := range permanentPrefixes {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}
