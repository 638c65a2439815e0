// Package dirlock is the writer lock of a directory: an exclusive flock(2)
// on DIR/.lock, which holds the PID of the process that has it, so that a
// second writer is told who holds the directory (and can give up after a
// timeout) instead of waiting silently. Readers do not take it.
//
// The lock file is removed when the lock is released; a process that waited
// on a file that was removed meanwhile notices and locks the new one.
package dirlock

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gofrs/flock"
)

// FileName is the lock file's name inside the locked directory.
const FileName = ".lock"

// retry is how often a waiting Acquire tries again.
const retry = 50 * time.Millisecond

// BusyError reports a directory whose lock another process holds.
type BusyError struct {
	Dir    string
	PID    int           // the holder's PID (0: not known yet)
	Waited time.Duration // how long Acquire waited
}

func (e *BusyError) Error() string {
	who := "another process"
	if e.PID > 0 {
		who = "PID " + strconv.Itoa(e.PID)
	}
	if e.Waited <= 0 {
		return fmt.Sprintf("%s is in use by %s", e.Dir, who)
	}
	return fmt.Sprintf("%s is in use by %s (waited %s; --lock-timeout waits longer)", e.Dir, who, e.Waited.Round(time.Millisecond))
}

// Lock is a held directory lock.
type Lock struct {
	fl   *flock.Flock
	path string
}

// Acquire takes the lock of dir, which must exist, waiting while another
// process holds it: up to timeout (0: not at all), or until ctx ends. A lock
// still held then is a *BusyError naming the holder's PID.
func Acquire(ctx context.Context, dir string, timeout time.Duration) (*Lock, error) {
	path := filepath.Join(dir, FileName)
	start := time.Now()
	var deadline <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	logged := false
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("lock %s: %w", dir, err)
		}
		fl := flock.New(path)
		ok, err := fl.TryLock()
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", dir, err)
		}
		if ok {
			if same, err := stillAt(fl, path); err != nil {
				fl.Unlock()
				return nil, fmt.Errorf("lock %s: %w", dir, err)
			} else if !same { // the holder removed the file we waited on
				fl.Unlock()
				continue
			}
			l := &Lock{fl: fl, path: path}
			if err := os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
				l.Release()
				return nil, fmt.Errorf("lock %s: %w", dir, err)
			}
			return l, nil
		}
		fl.Close()
		pid := readPID(path)
		if timeout <= 0 {
			return nil, &BusyError{Dir: dir, PID: pid}
		}
		if !logged {
			slog.Info("waiting for the directory's lock", "dir", dir, "holder_pid", pid, "timeout", timeout)
			logged = true
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("lock %s: waiting for PID %d: %w", dir, pid, ctx.Err())
		case <-deadline:
			return nil, &BusyError{Dir: dir, PID: readPID(path), Waited: time.Since(start)}
		case <-time.After(retry):
		}
	}
}

// stillAt reports whether the locked file is the one at path.
func stillAt(fl *flock.Flock, path string) (bool, error) {
	held, err := fl.Stat()
	if err != nil {
		return false, err
	}
	now, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(held, now), nil
}

// readPID is the PID written in a lock file (0 if none yet).
func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// Held reports whether a process holds dir's lock, and its PID if known. It
// writes nothing: a directory without a lock file is not held.
func Held(dir string) (held bool, pid int) {
	path := filepath.Join(dir, FileName)
	fl := flock.New(path, flock.SetFlag(os.O_RDONLY))
	ok, err := fl.TryRLock()
	if err != nil {
		return false, 0
	}
	fl.Close()
	if ok {
		return false, 0
	}
	return true, readPID(path)
}

// ReplaceDir puts the directory src in the place of the locked directory,
// which must hold nothing but the lock file, keeping the lock throughout:
// the lock file moves into src, the locked directory is removed, and src is
// renamed to its name. src must be on the same file system.
func (l *Lock) ReplaceDir(src string) error {
	dir := filepath.Dir(l.path)
	moved := filepath.Join(src, FileName)
	if err := os.Rename(l.path, moved); err != nil {
		return fmt.Errorf("replace %s: %w", dir, err)
	}
	if err := os.Remove(dir); err != nil {
		if berr := os.Rename(moved, l.path); berr != nil {
			l.path = moved
		}
		return fmt.Errorf("replace %s: %w", dir, err)
	}
	if err := os.Rename(src, dir); err != nil {
		l.path = moved
		return fmt.Errorf("replace %s: %w", dir, err)
	}
	if d, err := os.Open(filepath.Dir(dir)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Dir is the locked directory.
func (l *Lock) Dir() string { return filepath.Dir(l.path) }

// Release removes the lock file and releases the lock; releasing again does
// nothing.
func (l *Lock) Release() error {
	if l == nil || l.fl == nil {
		return nil
	}
	var errs []error
	if same, _ := stillAt(l.fl, l.path); same {
		if err := os.Remove(l.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("unlock %s: %w", l.path, err))
		}
	}
	if err := l.fl.Unlock(); err != nil {
		errs = append(errs, fmt.Errorf("unlock %s: %w", l.path, err))
	}
	l.fl = nil
	return errors.Join(errs...)
}
