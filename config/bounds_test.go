package config

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// setVar returns complete() with name set to value.
func setVar(name, value string) map[string]string {
	m := complete()
	m[name] = value
	return m
}

// wantVarErr fails unless err is an *Error naming name.
func wantVarErr(t *testing.T, err error, name string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: accepted", name)
	}
	var ce *Error
	if !errors.As(err, &ce) || ce.Var != name || !strings.HasPrefix(err.Error(), name+": ") {
		t.Fatalf("error %q does not name %s first", err, name)
	}
}

// TestEmptyMeansUnsetOnlyWhereSaid: for every variable, a value that is
// empty or blanks is the default only where the table says "default"; where
// the variable has a non-empty default and the table says "error", Load
// fails naming the variable; the same holds for the flag.
func TestEmptyMeansUnsetOnlyWhereSaid(t *testing.T) {
	doc := Markdown()
	for _, v := range Table() {
		for _, blank := range []string{"", "  ", "\t"} {
			t.Run(v.Name+"="+strconv.Quote(blank), func(t *testing.T) {
				c, err := Load(env(setVar(v.Name, blank)))
				switch {
				case v.Default == "":
					if err != nil {
						t.Fatalf("variable without default: %v", err)
					}
				case v.EmptyIsUnset:
					if err != nil {
						t.Fatalf("empty should mean unset: %v", err)
					}
					want, _ := Load(env(complete()))
					if !reflect.DeepEqual(c, want) {
						t.Fatalf("empty did not give the default:\n%v\n%v", c, want)
					}
				default:
					wantVarErr(t, err, v.Name)
					if !strings.Contains(err.Error(), "unset") {
						t.Fatalf("error %q does not say to unset it", err)
					}
				}
				if v.Secret {
					return
				}
				// The flag follows the same rule.
				c, _ = Load(env(complete()))
				fs := flag.NewFlagSet("x", flag.ContinueOnError)
				fs.SetOutput(io.Discard)
				c.RegisterFlags(fs)
				ferr := fs.Parse([]string{"-" + FlagName(v.Name) + "=" + blank})
				if v.Default != "" && !v.EmptyIsUnset {
					if ferr == nil || !strings.Contains(ferr.Error(), v.Name) {
						t.Fatalf("flag -%s=%q: %v", FlagName(v.Name), blank, ferr)
					}
				} else if ferr != nil {
					t.Fatalf("flag -%s=%q: %v", FlagName(v.Name), blank, ferr)
				}
			})
		}
		// The generated table says which.
		row := ""
		for _, line := range strings.Split(doc, "\n") {
			if strings.HasPrefix(line, "| `"+v.Name+"` |") {
				row = line
			}
		}
		want := "| error |"
		if v.EmptyIsUnset || v.Default == "" {
			want = "| default |"
		}
		if !strings.Contains(row, want) {
			t.Errorf("table row of %s lacks %q: %s", v.Name, want, row)
		}
	}
	// The examples of the issue.
	_, err := Load(env(setVar("REDIS_URL", "")))
	wantVarErr(t, err, "REDIS_URL")
}

// TestEveryBoundHasAMaximum: every numeric or duration variable has a
// documented minimum and maximum; the bounds themselves validate, one step
// beyond each fails naming the variable, and the table shows the range.
func TestEveryBoundHasAMaximum(t *testing.T) {
	doc := Markdown()
	ty := reflect.TypeOf(Config{})
	n := 0
	for i := 0; i < ty.NumField(); i++ {
		f := ty.Field(i)
		if f.Type.Kind() != reflect.Int && f.Type.Kind() != reflect.Int64 {
			continue
		}
		n++
		name := envName(f)
		lo, hi := f.Tag.Get("min"), f.Tag.Get("max")
		if lo == "" || hi == "" {
			t.Errorf("%s has no min/max tag", name)
			continue
		}
		step := func(s string, d int64) string {
			if f.Type == reflect.TypeOf(time.Duration(0)) {
				v, err := time.ParseDuration(s)
				if err != nil {
					t.Fatalf("%s: bound %q: %v", name, s, err)
				}
				return time.Duration(int64(v) + d*int64(time.Millisecond)).String()
			}
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				t.Fatalf("%s: bound %q: %v", name, s, err)
			}
			return strconv.FormatInt(v+d, 10)
		}
		for _, ok := range []string{lo, hi} {
			m := setVar(name, ok)
			if name == "ROXD_RETRY_MAX_INTERVAL" {
				m["ROXD_RETRY_INITIAL"] = "1ms"
			}
			if name == "ROXD_RETRY_INITIAL" {
				m["ROXD_RETRY_MAX_INTERVAL"] = step(hi, 0)
			}
			c, err := Load(env(m))
			if err == nil {
				err = c.Validate()
			}
			if err != nil {
				t.Errorf("%s=%s (a bound) refused: %v", name, ok, err)
			}
		}
		for _, bad := range []string{step(lo, -1), step(hi, 1)} {
			c, err := Load(env(setVar(name, bad)))
			if err == nil {
				err = c.Validate()
			}
			wantVarErr(t, err, name)
		}
		if !strings.Contains(doc, "| `"+name+"` |") || !strings.Contains(doc, lo+"..."+hi) {
			t.Errorf("table does not show %s's range %s...%s", name, lo, hi)
		}
	}
	if n < 12 {
		t.Fatalf("only %d numeric variables found", n)
	}
	// The examples of the issue.
	for name, v := range map[string]string{"ROXD_SEND_CONCURRENCY": "1000000", "ROXD_DEQUEUE_LANES": "100000"} {
		c, err := Load(env(setVar(name, v)))
		if err == nil {
			err = c.Validate()
		}
		wantVarErr(t, err, name)
		if !strings.Contains(err.Error(), "maximum") {
			t.Errorf("%s=%s: %v does not give the maximum", name, v, err)
		}
	}
}

// TestCheckDirs: an unusable ROXD_SPOOL_DIR fails naming the variable; a
// usable one (created when missing) passes and is left empty.
func TestCheckDirs(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{file, filepath.Join(file, "sub"), "/proc/roxd-spool", "/dev/null"} {
		c, _ := Load(env(setVar("ROXD_SPOOL_DIR", dir)))
		wantVarErr(t, c.CheckDirs(), "ROXD_SPOOL_DIR")
		// Without role callbacks the spool is not used.
		c.Roles = []string{RoleAPI}
		if err := c.CheckDirs(); err != nil {
			t.Fatalf("role api checks the spool: %v", err)
		}
	}
	good := filepath.Join(tmp, "a", "spool")
	c, _ := Load(env(setVar("ROXD_SPOOL_DIR", good)))
	if err := c.CheckDirs(); err != nil {
		t.Fatal(err)
	}
	if ents, err := os.ReadDir(good); err != nil || len(ents) != 0 {
		t.Fatalf("spool after the check: %v %v", ents, err)
	}
}

// A value that does not parse names its variable and says what to write,
// not strconv's words.
func TestUnparsableValuesSayWhatToWrite(t *testing.T) {
	for _, c := range []struct{ name, value, want string }{
		{"ROXD_RATE_LIMIT", "1e3", "whole number"},
		{"ROXD_RATE_LIMIT", "1,000", "whole number"},
		{"ROXD_MAX_ATTEMPTS", "5.0", "whole number"},
		{"ROXD_SHARDS", "99999999999999999999999", "out of range"},
		{"ROXD_PPROF", "yes please", "true or false"},
	} {
		m := map[string]string{c.name: c.value}
		_, err := Load(env(m))
		if err == nil {
			t.Errorf("%s=%q: loaded", c.name, c.value)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, c.name+":") || !strings.Contains(msg, c.want) || strings.Contains(msg, "strconv") {
			t.Errorf("%s=%q: %q; want the variable named, %q, and no strconv", c.name, c.value, msg, c.want)
		}
	}
}

// TestEachConfigErrorOnce: a value out of its variable's range is reported
// once. ROXD_SEND_CONCURRENCY=0 printed two lines ("0 is below the minimum
// 1 (range 1...4096)" from the range, "must be >= 1" from a check of its
// own), and so did every variable with a range and a check of its own, or
// a check against another variable (ROXD_RETRY_MAX_INTERVAL below its
// minimum and below ROXD_RETRY_INITIAL).
func TestEachConfigErrorOnce(t *testing.T) {
	ty := reflect.TypeOf(Config{})
	for i := 0; i < ty.NumField(); i++ {
		f := ty.Field(i)
		lo, hi := f.Tag.Get("min"), f.Tag.Get("max")
		if lo == "" || hi == "" {
			continue
		}
		name := envName(f)
		var bads []string
		if f.Type == reflect.TypeOf(time.Duration(0)) {
			l, _ := time.ParseDuration(lo)
			h, _ := time.ParseDuration(hi)
			bads = []string{(l - time.Millisecond).String(), "-1h", (h + time.Millisecond).String()}
			if l > 0 {
				bads = append(bads, "0s")
			}
		} else {
			l, _ := strconv.ParseInt(lo, 10, 64)
			h, _ := strconv.ParseInt(hi, 10, 64)
			bads = []string{strconv.FormatInt(l-1, 10), strconv.FormatInt(h+1, 10), "-1"}
			if l > 0 {
				bads = append(bads, "0")
			}
		}
		for _, bad := range bads {
			c, err := Load(env(setVar(name, bad)))
			if err == nil {
				err = c.Validate()
			}
			if n := countVarErrs(err, name); n != 1 {
				t.Errorf("%s=%s: %d errors name it, want 1:\n%v", name, bad, n, err)
			}
		}
	}
	// The exported maxima are the ranges' (Validate checks only these).
	for name, max := range map[string]time.Duration{"ROXD_CALLBACK_DRAIN": MaxCallbackDrain, "ROXD_API_TIMEOUT": MaxAPITimeout} {
		f, _ := ty.FieldByNameFunc(func(n string) bool { g, _ := ty.FieldByName(n); return envName(g) == name })
		if d, err := time.ParseDuration(f.Tag.Get("max")); err != nil || d != max {
			t.Errorf("%s: max tag %q, exported maximum %s", name, f.Tag.Get("max"), max)
		}
	}
	// The example of the issue, as `roxd serve` prints it.
	c, _ := Load(env(setVar("ROXD_SEND_CONCURRENCY", "0")))
	err := c.Validate()
	if err == nil || strings.Count(err.Error(), "ROXD_SEND_CONCURRENCY") != 1 {
		t.Errorf("ROXD_SEND_CONCURRENCY=0: %v", err)
	}
}

// countVarErrs counts the *Error of err (joined or not) that name name.
func countVarErrs(err error, name string) int {
	if err == nil {
		return 0
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		n := 0
		for _, e := range j.Unwrap() {
			n += countVarErrs(e, name)
		}
		return n
	}
	var ce *Error
	if errors.As(err, &ce) && ce.Var == name {
		return 1
	}
	return 0
}

// TestNumbersAreDecimal: a whole-number variable is read in decimal, as
// the table and the error ("digits only") say, in the environment and as
// a flag: go-envconfig alone parses with strconv's base 0, so
// ROXD_RATE_LIMIT=0500 was 320 (octal), ROXD_SHARDS=0x10 was 16 and 1_0
// was 10, silently. Leading zeros are decimal; a base prefix, an
// underscore or a plus sign is refused naming the variable.
func TestNumbersAreDecimal(t *testing.T) {
	ty := reflect.TypeOf(Config{})
	n := 0
	for i := 0; i < ty.NumField(); i++ {
		f := ty.Field(i)
		if f.Type == durationType || f.Type.Kind() != reflect.Int && f.Type.Kind() != reflect.Int64 {
			continue
		}
		n++
		name := envName(f)
		hi, err := strconv.ParseInt(f.Tag.Get("max"), 10, 64)
		if err != nil {
			t.Fatalf("%s: max tag: %v", name, err)
		}
		lo, _ := strconv.ParseInt(f.Tag.Get("min"), 10, 64)
		v := min(max(lo, 10), hi) // a value in range with two digits or more
		want := strconv.FormatInt(v, 10)
		for _, given := range []string{"0" + want, "00" + want, " 0" + want + " "} {
			// The environment.
			c, err := Load(env(setVar(name, given)))
			if err != nil {
				t.Fatalf("%s=%q: %v", name, given, err)
			}
			if got := reflect.ValueOf(c).Field(i).Int(); got != v {
				t.Errorf("%s=%q read as %d, want %d", name, given, got, v)
			}
			// The flags of roxd serve and roxd dev (Flags), and RegisterFlags.
			fs := flag.NewFlagSet("roxd", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			lookup := Flags(fs, env(complete()))
			if err := fs.Parse([]string{"-" + FlagName(name), given}); err != nil {
				t.Fatalf("-%s %q: %v", FlagName(name), given, err)
			}
			if c, err = Load(lookup); err != nil {
				t.Fatalf("-%s %q: %v", FlagName(name), given, err)
			}
			if got := reflect.ValueOf(c).Field(i).Int(); got != v {
				t.Errorf("-%s %q read as %d, want %d", FlagName(name), given, got, v)
			}
			c, _ = Load(env(complete()))
			fs = flag.NewFlagSet("roxd", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			c.RegisterFlags(fs)
			if err := fs.Parse([]string{"-" + FlagName(name), given}); err != nil {
				t.Fatalf("RegisterFlags -%s %q: %v", FlagName(name), given, err)
			}
			if got := reflect.ValueOf(c).Field(i).Int(); got != v {
				t.Errorf("RegisterFlags -%s %q read as %d, want %d", FlagName(name), given, got, v)
			}
		}
		for _, bad := range []string{"0x10", "0X10", "0b11", "0o7", "0O7", "1_0", "+5", "--5", "-0x1", "٣"} {
			_, err := Load(env(setVar(name, bad)))
			wantVarErr(t, err, name)
			if !strings.Contains(err.Error(), "whole number") {
				t.Errorf("%s=%q: %v does not say what to write", name, bad, err)
			}
			fs := flag.NewFlagSet("roxd", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			Flags(fs, env(complete()))
			if err := fs.Parse([]string{"-" + FlagName(name), bad}); err == nil || !strings.Contains(err.Error(), name+": ") {
				t.Errorf("-%s %q: %v, want an error naming %s", FlagName(name), bad, err, name)
			}
			c, _ := Load(env(complete()))
			before := reflect.ValueOf(c).Field(i).Int()
			fs = flag.NewFlagSet("roxd", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			c.RegisterFlags(fs)
			if err := fs.Parse([]string{"-" + FlagName(name), bad}); err == nil || !strings.Contains(err.Error(), name+": ") {
				t.Errorf("RegisterFlags -%s %q: %v, want an error naming %s", FlagName(name), bad, err, name)
			}
			if got := reflect.ValueOf(c).Field(i).Int(); got != before {
				t.Errorf("RegisterFlags -%s %q changed the value to %d", FlagName(name), bad, got)
			}
		}
		// A negative number still reads, to be refused by its bound.
		c, err := Load(env(setVar(name, "-1")))
		if err != nil {
			t.Fatalf("%s=-1: %v", name, err)
		}
		wantVarErr(t, c.Validate(), name)
	}
	if n < 8 {
		t.Fatalf("only %d whole-number variables found", n)
	}
}
