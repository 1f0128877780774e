package config

import (
	"fmt"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// DashboardOperators parses ROXD_DASHBOARD_USERS ("user:bcrypt-hash,..."):
// user name -> bcrypt hash. An empty value gives an empty map. The error
// names the entry by position and user, never the hash.
func (c Config) DashboardOperators() (map[string][]byte, error) {
	out := map[string][]byte{}
	if strings.TrimSpace(c.DashboardUsers) == "" {
		return out, nil
	}
	for i, e := range strings.Split(c.DashboardUsers, ",") {
		e = strings.TrimSpace(e)
		user, hash, ok := strings.Cut(e, ":")
		switch {
		case !ok || user == "":
			return nil, fmt.Errorf("entry %d: want user:bcrypt-hash", i+1)
		case strings.ContainsAny(user, " \t"):
			return nil, fmt.Errorf("entry %d: user name %q has spaces", i+1, truncate(user, 32))
		}
		if _, dup := out[user]; dup {
			return nil, fmt.Errorf("entry %d: user %q given twice", i+1, truncate(user, 32))
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("entry %d (user %q): not a bcrypt hash (make one with htpasswd -nbB %s PASSWORD)", i+1, truncate(user, 32), truncate(user, 32))
		}
		out[user] = []byte(hash)
	}
	return out, nil
}
