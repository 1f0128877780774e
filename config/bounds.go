package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"time"
)

var durationType = reflect.TypeOf(time.Duration(0))

// checkBounds checks every field with min/max tags and returns one *Error
// per value out of its range, e.g. "ROXD_SEND_CONCURRENCY: 1000000 is above
// the maximum 4096". A field of kind int or int64 (durations included)
// needs both tags; one without any is skipped here and fails
// TestEveryBoundHasAMaximum.
func (c Config) checkBounds() []error {
	var errs []error
	v := reflect.ValueOf(c)
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Type.Kind() != reflect.Int && f.Type.Kind() != reflect.Int64 {
			continue
		}
		name := envName(f)
		if f.Tag.Get("min") == "" && f.Tag.Get("max") == "" {
			continue // undocumented: TestEveryBoundHasAMaximum fails, start-up does not
		}
		lo, hi, err := bounds(f)
		if err != nil {
			errs = append(errs, varErr(name, "%v", err))
			continue
		}
		x := v.Field(i).Int()
		show := func(n int64) string {
			if f.Type == durationType {
				return time.Duration(n).String()
			}
			return strconv.FormatInt(n, 10)
		}
		switch {
		case x < lo:
			errs = append(errs, varErr(name, "%s is below the minimum %s (range %s...%s)", show(x), f.Tag.Get("min"), f.Tag.Get("min"), f.Tag.Get("max")))
		case x > hi:
			errs = append(errs, varErr(name, "%s is above the maximum %s (range %s...%s)", show(x), f.Tag.Get("max"), f.Tag.Get("min"), f.Tag.Get("max")))
		}
	}
	return errs
}

// bounds parses the min and max tags of f.
func bounds(f reflect.StructField) (lo, hi int64, err error) {
	parse := func(s string) (int64, error) {
		if s == "" {
			return 0, errors.New("no documented bound (min/max tag)")
		}
		if f.Type == durationType {
			d, err := time.ParseDuration(s)
			return int64(d), err
		}
		return strconv.ParseInt(s, 10, 64)
	}
	if lo, err = parse(f.Tag.Get("min")); err != nil {
		return 0, 0, err
	}
	hi, err = parse(f.Tag.Get("max"))
	return lo, hi, err
}

// CheckDirs checks the directories the roles of c write to: each must exist
// or be creatable, and accept a file (created, synced and removed). It is
// separate from Validate because it touches the file system. An unusable
// directory is an *Error naming its variable, e.g. "ROXD_SPOOL_DIR:
// /data/spool is not usable: mkdir /data: permission denied".
func (c Config) CheckDirs() error {
	var errs []error
	if c.HasRole(RoleCallbacks) {
		if err := CheckDir(c.SpoolDir); err != nil {
			errs = append(errs, varErr("ROXD_SPOOL_DIR", "%s is not usable: %v", c.SpoolDir, err))
		}
	}
	return errors.Join(errs...)
}

// CheckDir creates dir (mode 0700) when missing and proves that a file can
// be created, written, synced and removed in it.
func CheckDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("not a directory")
	}
	f, err := os.CreateTemp(dir, ".roxd-check-*")
	if err != nil {
		return err
	}
	name := f.Name()
	_, werr := f.Write([]byte("roxd\n"))
	serr := f.Sync()
	cerr := f.Close()
	rerr := os.Remove(name)
	return errors.Join(werr, serr, cerr, rerr)
}
