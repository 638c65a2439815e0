package dirlock

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/re2g/re2g/internal/proctest"
)

// TestMain lets the test binary act as a second process holding a lock:
// with DIRLOCK_HOLD=DIR it locks DIR, prints "locked", and releases the
// lock when its standard input closes.
func TestMain(m *testing.M) {
	if dir := os.Getenv("DIRLOCK_HOLD"); dir != "" {
		l, err := Acquire(context.Background(), dir, 0)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(2)
		}
		fmt.Println("locked")
		io.Copy(io.Discard, os.Stdin)
		if err := l.Release(); err != nil {
			fmt.Println("error:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// holder starts another process holding dir's lock; closing the returned
// writer makes it release the lock and exit.
func holder(t *testing.T, dir string) (*exec.Cmd, io.WriteCloser) {
	t.Helper()
	cmd := proctest.Self("DIRLOCK_HOLD=" + dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("holder: %q %v", line, err)
	}
	return cmd, stdin
}

func TestSecondProcessIsToldTheHolderPID(t *testing.T) {
	dir := t.TempDir()
	cmd, _ := holder(t, dir)
	if held, pid := Held(dir); !held || pid != cmd.Process.Pid {
		t.Fatalf("Held = %v, %d; want true, %d", held, pid, cmd.Process.Pid)
	}
	start := time.Now()
	_, err := Acquire(context.Background(), dir, 300*time.Millisecond)
	var busy *BusyError
	if !errors.As(err, &busy) {
		t.Fatalf("want a BusyError, got %v", err)
	}
	if busy.PID != cmd.Process.Pid || !strings.Contains(err.Error(), fmt.Sprintf("%s is in use by PID %d", dir, cmd.Process.Pid)) {
		t.Fatalf("error %q, holder PID %d", err, cmd.Process.Pid)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 5*time.Second {
		t.Fatalf("gave up after %v, want the 300ms timeout", d)
	}
	if _, err := Acquire(context.Background(), dir, 0); !errors.As(err, &busy) {
		t.Fatalf("no timeout: want a BusyError at once, got %v", err)
	}
}

func TestWaiterGetsTheLockWhenTheHolderReleases(t *testing.T) {
	dir := t.TempDir()
	cmd, stdin := holder(t, dir)
	got := make(chan error, 1)
	var l *Lock
	go func() {
		var err error
		l, err = Acquire(context.Background(), dir, 20*time.Second)
		got <- err
	}()
	time.Sleep(200 * time.Millisecond)
	select {
	case err := <-got:
		t.Fatalf("acquired while another process held the lock: %v", err)
	default:
	}
	stdin.Close() // the holder releases (and removes the lock file)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("holder: %v", err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter did not get the released lock")
	}
	b, _ := os.ReadFile(filepath.Join(dir, FileName))
	if strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Fatalf("lock file holds %q, want our PID %d", b, os.Getpid())
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, FileName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("lock file left after release: %v", err)
	}
	if held, _ := Held(dir); held {
		t.Fatal("held after release")
	}
}

func TestWaitEndsWithTheContext(t *testing.T) {
	dir := t.TempDir()
	holder(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	_, err := Acquire(ctx, dir, time.Hour)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cancellation took %v", d)
	}
}

func TestKilledHolderLeavesNoLock(t *testing.T) {
	dir := t.TempDir()
	cmd, _ := holder(t, dir)
	cmd.Process.Kill()
	cmd.Wait()
	// its lock file (with its PID) is still there, but nobody holds it
	if _, err := os.Stat(filepath.Join(dir, FileName)); err != nil {
		t.Fatal(err)
	}
	l, err := Acquire(context.Background(), dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
}

func TestOneWriterPerProcessToo(t *testing.T) {
	dir := t.TempDir()
	a, err := Acquire(context.Background(), dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	var busy *BusyError
	if _, err := Acquire(context.Background(), dir, 100*time.Millisecond); !errors.As(err, &busy) || busy.PID != os.Getpid() {
		t.Fatalf("a second lock in the same process: %v", err)
	}
	// a directory built elsewhere replaces the locked one, which stays
	// locked throughout
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "data"), []byte("x"), 0o644)
	if err := os.WriteFile(filepath.Join(dir, "stray"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := a.ReplaceDir(src); err == nil {
		t.Fatal("replaced a directory that holds more than the lock")
	}
	if held, _ := Held(dir); !held {
		t.Fatal("failed replace: lock lost")
	}
	os.Remove(filepath.Join(dir, "stray"))
	if err := a.ReplaceDir(src); err != nil {
		t.Fatal(err)
	}
	if held, _ := Held(dir); !held {
		t.Fatal("replaced directory not held")
	}
	if b, err := os.ReadFile(filepath.Join(dir, "data")); err != nil || string(b) != "x" {
		t.Fatalf("replaced directory's file: %q %v", b, err)
	}
	if _, err := os.Stat(src); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("source directory still there: %v", err)
	}
	if err := a.Release(); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(); err != nil {
		t.Fatal(err)
	}
	if held, _ := Held(dir); held {
		t.Fatal("held after release")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("after release the directory holds %v, want its one file", ents)
	}
}
