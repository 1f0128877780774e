package main

import (
	"os"
	"regexp"
	"testing"

	"github.com/redoxygen/roxd/config"
)

// TestREADMEIsTrue keeps README.md honest for a newcomer: every `roxd X`
// command it names exists, every command that exists is named, and every
// environment variable it names is a setting of config.Config or one of the
// few read elsewhere.
func TestREADMEIsTrue(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)

	named := map[string]bool{}
	for _, m := range regexp.MustCompile("roxd ([a-z]+)").FindAllStringSubmatch(readme, -1) {
		named[m[1]] = true
	}
	for name := range named {
		if _, ok := commands[name]; !ok && name != "is" && name != "delivers" {
			t.Errorf("README names `roxd %s`, which is no command", name)
		}
	}
	for name := range commands {
		if !named[name] {
			t.Errorf("command `roxd %s` is not in the README", name)
		}
	}

	vars := map[string]bool{}
	for _, v := range config.Table() {
		vars[v.Name] = true
	}
	elsewhere := map[string]bool{
		"ROXD_API_URL":           true, // the CLI's API address
		"TEST_REDIS_URL":         true, // tests
		"TEST_REDIS_CLUSTER_URL": true, // tests: scripts/with-cluster.sh
		"ROXD_SCREENSHOT_DIR":    true, // the browser test
		"FUZZTIME":               true, // make fuzz
	}
	for _, m := range regexp.MustCompile("`((?:ROXD|ROX|LOG|REDIS|TEST)_[A-Z_]+)").FindAllStringSubmatch(readme, -1) {
		if !vars[m[1]] && !elsewhere[m[1]] {
			t.Errorf("README names %s, which nothing reads", m[1])
		}
	}
}
