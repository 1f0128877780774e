package main

import (
	"io"
	"sort"
	"testing"
)

// TestHelpIsNotAnError: `roxd -h`, `roxd help`, `roxd <sub> -h`,
// `roxd <sub> --help` and `roxd help <sub>` exit 0 for every subcommand
// (and every benchmark of `roxd bench`), while an unknown flag is a usage
// error (exit 2).
func TestHelpIsNotAnError(t *testing.T) {
	var names [][]string
	for name := range commands {
		names = append(names, []string{name})
	}
	names = append(names, []string{"bench", "pipeline"}, []string{"bench", "callbacks"})
	sort.Slice(names, func(i, j int) bool {
		return names[i][0]+names[i][len(names[i])-1] < names[j][0]+names[j][len(names[j])-1]
	})
	if len(names) < 10 {
		t.Fatalf("only %d commands registered", len(names))
	}
	for _, top := range [][]string{{"-h"}, {"--help"}, {"help"}} {
		if code := run(top, io.Discard); code != 0 {
			t.Errorf("roxd %v exits %d, want 0", top, code)
		}
	}
	for _, name := range names {
		for _, h := range []string{"-h", "--help", "-help"} {
			args := append(append([]string{}, name...), h)
			if code := run(args, io.Discard); code != 0 {
				t.Errorf("roxd %v exits %d, want 0", args, code)
			}
		}
		args := append(append([]string{}, name...), "--no-such-flag")
		if code := run(args, io.Discard); code != 2 {
			t.Errorf("roxd %v exits %d, want 2", args, code)
		}
		if len(name) == 1 {
			if code := run([]string{"help", name[0]}, io.Discard); code != 0 {
				t.Errorf("roxd help %s exits %d, want 0", name[0], code)
			}
		}
	}
	if code := run([]string{"help", "no-such-command"}, io.Discard); code != 2 {
		t.Errorf("roxd help no-such-command exits %d, want 2", code)
	}
}
