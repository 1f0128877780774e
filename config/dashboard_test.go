package config

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestDashboardOperators(t *testing.T) {
	h1, _ := bcrypt.GenerateFromPassword([]byte("alice-pw-0123456789"), 4)
	h2, _ := bcrypt.GenerateFromPassword([]byte("bob-pw-0123456789"), 4)
	c := Config{DashboardUsers: "alice:" + string(h1) + ", bob:" + string(h2)}
	ops, err := c.DashboardOperators()
	if err != nil || len(ops) != 2 || bcrypt.CompareHashAndPassword(ops["bob"], []byte("bob-pw-0123456789")) != nil {
		t.Fatalf("%v %v", ops, err)
	}
	c.DashboardUsers = "alice:" + string(h1) + ",alice:" + string(h2)
	if _, err := c.DashboardOperators(); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("duplicate user: %v", err)
	}
	c.DashboardUsers = "carol:not-a-hash-but-a-secret"
	_, err = c.DashboardOperators()
	if err == nil || strings.Contains(err.Error(), "not-a-hash-but-a-secret") || !strings.Contains(err.Error(), "carol") {
		t.Fatalf("bad hash error must name the user, not the value: %v", err)
	}
	m := complete()
	m["ROXD_DASHBOARD_PASSWORD"] = m["ROXD_API_TOKEN"]
	c2, err := Load(env(m))
	if err == nil {
		err = c2.Validate()
	}
	if err == nil || !strings.Contains(err.Error(), "ROXD_DASHBOARD_PASSWORD") {
		t.Fatalf("dashboard password = API token accepted: %v", err)
	}
}
