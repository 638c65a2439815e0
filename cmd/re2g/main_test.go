package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/re2g/re2g/internal/dirlock"
	"github.com/re2g/re2g/internal/limits"
	"github.com/urfave/cli/v2"
)

// TestMain runs main itself when RE2G_TEST_MAIN is set, so that tests can
// run the test binary as the re2g command: exit status, stderr and all.
func TestMain(m *testing.M) {
	if os.Getenv("RE2G_TEST_MAIN") == "1" {
		// a command busy where it does not look at its context, as native code is
		commands = append(commands, &cli.Command{Name: "test-busy", Hidden: true, Action: func(c *cli.Context) error {
			fmt.Fprintln(os.Stderr, "busy")
			time.Sleep(time.Minute)
			return c.Context.Err()
		}})
		os.Args = append([]string{"re2g"}, os.Args[1:]...)
		main()
		os.Exit(0)
	}
	if os.Getenv("RE2G_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	if dir := os.Getenv("RE2G_HOLD_LOCK"); dir != "" {
		// a writer holding dir's lock until stdin closes
		l, err := dirlock.Acquire(context.Background(), dir, 0)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("locked")
		io.Copy(io.Discard, os.Stdin)
		l.Release()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// re2g runs the re2g command in a process of its own with stderr to a file
// (as make demo's log, CI or docker logs get it) and returns its exit
// status and stderr.
func re2g(t *testing.T, args ...string) (int, string) {
	t.Helper()
	errPath := filepath.Join(t.TempDir(), "stderr.log")
	f, err := os.Create(errPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "RE2G_TEST_MAIN=1")
	cmd.Stderr, cmd.Stdout = f, f
	err = cmd.Run()
	f.Close()
	b, rerr := os.ReadFile(errPath)
	if rerr != nil {
		t.Fatal(rerr)
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(b)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(b)
	}
	t.Fatal(err)
	return 0, ""
}

// TestSecondSIGTERMEnds: the first SIGTERM cancels the command's context;
// a command that does not look at it (busy in native code, as --threads
// 100000 was) ends at the second, where before it went on.
func TestSecondSIGTERMEnds(t *testing.T) {
	cmd := exec.Command(os.Args[0], "test-busy")
	cmd.Env = append(os.Environ(), "RE2G_TEST_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line := make([]byte, 5)
	if _, err := io.ReadFull(stderr, line); err != nil || string(line) != "busy\n" {
		t.Fatalf("the command did not start: %q %v", line, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		t.Fatalf("the first SIGTERM ended a command that ignores its context: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != -1 {
			t.Fatalf("want the process ended by the signal, got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the second SIGTERM did not end the command")
	}
}

func writeNumberedCorpus(t *testing.T, n int) string {
	t.Helper()
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `{"_id": "p%d", "title": "Title %d", "text": "passage number %d about topic %d"}`+"\n", i, i, i, i%7)
	}
	p := filepath.Join(t.TempDir(), "corpus.jsonl")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBadThreadsExitsAtOnce: re2g index --threads 100000, which ran past 10
// minutes at load average 78, now exits 1 at once with the range, and
// builds nothing.
func TestBadThreadsExitsAtOnce(t *testing.T) {
	corpus := writeNumberedCorpus(t, 3)
	out := filepath.Join(t.TempDir(), "index")
	start := time.Now()
	code, stderr := re2g(t, "index", "--corpus", corpus, "--out", out, "--threads", "100000")
	want := fmt.Sprintf("re2g: --threads 100000: want 0 to %d (0: one per core; at most %s)", limits.MaxThreads(), limits.MaxThreadsNote())
	if code != 1 || !strings.Contains(stderr, want) {
		t.Fatalf("exit %d, stderr:\n%s\nwant exit 1 and %q", code, stderr, want)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("took %v", d)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("%s was created", out)
	}
}

// TestIndexProgressInALogFile: re2g index with stderr to a file writes
// progress as slog lines and never a carriage return; --progress off writes
// none; --progress bar draws the bar all the same (the check can fail).
func TestIndexProgressInALogFile(t *testing.T) {
	corpus := writeNumberedCorpus(t, 200)
	dir := t.TempDir()
	for i, tc := range []struct {
		mode     string
		progress bool // progress lines expected
		cr       bool // carriage returns expected
	}{{"", true, false}, {"log", true, false}, {"off", false, false}, {"bar", false, true}} {
		args := []string{"index", "--corpus", corpus, "--out", filepath.Join(dir, fmt.Sprint(i))}
		if tc.mode != "" {
			args = append([]string{"--progress", tc.mode}, args...)
		}
		code, stderr := re2g(t, args...)
		if code != 0 {
			t.Fatalf("re2g %v: exit %d\n%s", args, code, stderr)
		}
		if got := strings.Contains(stderr, "\r"); got != tc.cr {
			t.Errorf("--progress %q: carriage returns %v, want %v:\n%q", tc.mode, got, tc.cr, stderr)
		}
		got := strings.Contains(stderr, `msg="progress finished" task=indexing done=200 total=200 unit=docs`)
		if got != tc.progress {
			t.Errorf("--progress %q: progress line %v, want %v:\n%s", tc.mode, got, tc.progress, stderr)
		}
		if !strings.Contains(stderr, "indexed 200 passages") {
			t.Errorf("--progress %q: no summary:\n%s", tc.mode, stderr)
		}
	}
	code, stderr := re2g(t, "--progress", "fancy", "index", "--corpus", corpus, "--out", filepath.Join(dir, "x"))
	if code != 1 || !strings.Contains(stderr, `--progress: progress mode "fancy": want auto, bar, log or off`) {
		t.Errorf("--progress fancy: exit %d\n%s", code, stderr)
	}
}

// TestEncodeProgressInALogFile: a JSON-lines command (jsonl.Map) with
// stderr to a file reports its bytes in a log line, without carriage
// returns; --progress off leaves only the summary.
func TestEncodeProgressInALogFile(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	var b bytes.Buffer
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&b, `{"id": %d, "title": "T%d", "text": "passage %d"}`+"\n", i, i, i)
	}
	if err := os.WriteFile(in, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"auto", "off"} {
		code, stderr := re2g(t, "--progress", mode, "encode", "--model", "../../testdata/hf/dpr-ctx/safetensors",
			"--in", in, "--out", filepath.Join(dir, mode+".jsonl"), "--threads", "1")
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		if strings.Contains(stderr, "\r") {
			t.Errorf("--progress %s: carriage returns in %q", mode, stderr)
		}
		want := `msg="progress finished" task=encode done="2.4 KiB" total="2.4 KiB"`
		if got := strings.Contains(stderr, want); got != (mode == "auto") {
			t.Errorf("--progress %s: progress line %v:\n%s", mode, got, stderr)
		}
		if !strings.Contains(stderr, "msg=encoded lines=50") {
			t.Errorf("--progress %s: no summary:\n%s", mode, stderr)
		}
	}
}
