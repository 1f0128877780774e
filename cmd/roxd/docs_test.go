package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestRepositoryStandsAlone: no document or source file of the repository
// points at files outside it (the provider's API text, reading notes, a
// shared directory), and every relative Markdown link of README.md and
// docs/*.md names a file that exists.
func TestRepositoryStandsAlone(t *testing.T) {
	root := filepath.Join("..", "..")
	outside := regexp.MustCompile(`(?i)rox-api\.txt|asynq-notes|rox-notes|\.\./shared|/work/shared`)
	link := regexp.MustCompile(`\]\(([^)#\s]+)(#[^)]*)?\)`)
	n := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name == ".git" || name == "testdata" || name == "var" {
				return filepath.SkipDir
			}
			return nil
		}
		ext := filepath.Ext(path)
		if ext != ".go" && ext != ".md" && ext != ".json" && ext != ".yml" && ext != ".sh" && d.Name() != "Makefile" && d.Name() != "Dockerfile" {
			return nil
		}
		if strings.HasSuffix(path, "docs_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n++
		if m := outside.Find(b); m != nil {
			t.Errorf("%s refers to %q, outside the repository", path, m)
		}
		if ext == ".md" {
			for _, m := range link.FindAllSubmatch(b, -1) {
				target := string(m[1])
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				if _, err := os.Stat(filepath.Join(filepath.Dir(path), target)); err != nil {
					t.Errorf("%s links to %s, which does not exist", path, target)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 50 {
		t.Fatalf("only %d files read", n)
	}
	rox, err := os.ReadFile(filepath.Join(root, "docs", "ROX.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, must := range []string{"https://www.redoxygen.com/", "https://awsap.redoxygen.net/smsapi/send",
		"ROX_API_Request", "ROX_API_Response", "ROX_API_Receipt", "ROX_API_Receipt_Response", "ROX_API_Reply",
		"ROX_API_Reply_Response", "Count", "SendLater", "TimeZoneOffset", `"1"`, "2001", "2011", "2100", "0000",
		"ReceiptFlag", "ReplyType", "GlobalText", "SMSId", "RequestId", "contradicts"} {
		if !strings.Contains(string(rox), must) {
			t.Errorf("docs/ROX.md does not mention %s", must)
		}
	}
}
