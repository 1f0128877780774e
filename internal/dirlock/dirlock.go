// Package dirlock gives one process at a time a directory: an advisory,
// exclusive flock(2) on <dir>/LOCK (github.com/gofrs/flock), held until Unlock
// or the process exits (the kernel drops it on exit, even after kill -9, so a
// crash never leaves a stale lock behind).
//
// Two processes (or two openers in one process: flock locks belong to the
// open file) asking for the same directory: the second gets ErrLocked. The
// lock file records the holder's pid for the error message.
package dirlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gofrs/flock"
)

// FileName is the lock file inside the directory.
const FileName = "LOCK"

// ErrLocked means another process (or another opener in this one) holds the
// directory.
var ErrLocked = errors.New("dirlock: directory is in use by another process")

// Lock is a held directory lock.
type Lock struct {
	dir string
	fl  *flock.Flock
}

// Acquire creates dir (0700) if needed and takes its lock without waiting.
// It returns an error wrapping ErrLocked, naming the directory and the pid
// recorded by the holder, when the directory is taken.
func Acquire(dir string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("dirlock: %w", err)
	}
	path := filepath.Join(dir, FileName)
	fl := flock.New(path, flock.SetPermissions(0o600))
	ok, err := fl.TryLock()
	if err != nil {
		return nil, fmt.Errorf("dirlock: lock %s: %w", path, err)
	}
	if !ok {
		holder := "unknown"
		if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			holder = strings.TrimSpace(string(b))
		}
		return nil, fmt.Errorf("%w: %s (held by pid %s)", ErrLocked, dir, holder)
	}
	// Record our pid for the error message of the next opener (best effort:
	// the lock, not the text, is what excludes).
	if f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0o600); err == nil {
		_, _ = f.WriteString(strconv.Itoa(os.Getpid()) + "\n")
		_ = f.Close()
	}
	return &Lock{dir: dir, fl: fl}, nil
}

// Dir is the locked directory.
func (l *Lock) Dir() string { return l.dir }

// Unlock releases the lock. It is safe to call more than once.
func (l *Lock) Unlock() error {
	if l == nil || l.fl == nil {
		return nil
	}
	if err := l.fl.Close(); err != nil {
		return fmt.Errorf("dirlock: unlock %s: %w", l.dir, err)
	}
	return nil
}
