package store_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every Lua script is made with store.NewScript, so that the cluster test
// (internal/app's TestClusterEndToEnd) sees it: redis.NewScript anywhere
// else in the product fails here.
func TestScriptsAreRegistered(t *testing.T) {
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != root || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") ||
			filepath.ToSlash(path) == "../../internal/store/scripts.go" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), "redis.NewScript(") {
			t.Errorf("%s: redis.NewScript: use store.NewScript so that the cluster test runs the script", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
