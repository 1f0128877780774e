package main

import (
	"bytes"
	"strings"
	"testing"
)

// A usage error that names what is wrong is printed (it exited 2 in
// silence: `roxd bench whole -n 0` said nothing); a bad flag is printed by
// the flag package (to os.Stderr), not a second time by run.
func TestUsageErrorsArePrinted(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "whole", "-n", "0"}, "-n, -bare-n"},
		{[]string{"bench", "whole", "-redis-keys", "-1"}, "-redis-keys must not be negative"},
		{[]string{"bench", "whole", "-mode", "bogus"}, `-mode "bogus"`},
		{[]string{"status"}, "want exactly one message id"},
		{[]string{"send", "--to", "+61400000000", "--text", "x", "extra"}, `unexpected argument "extra"`},
	} {
		var stderr bytes.Buffer
		if code := run(c.args, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2", c.args, code)
		}
		if !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: stderr %q lacks %q", c.args, stderr.String(), c.want)
		}
	}
	var stderr bytes.Buffer
	if code := run([]string{"bench", "whole", "-nosuchflag"}, &stderr); code != 2 {
		t.Errorf("bad flag: exit %d, want 2", code)
	}
	if strings.Contains(stderr.String(), "nosuchflag") {
		t.Errorf("bad flag printed again by run: %q", stderr.String())
	}
}
