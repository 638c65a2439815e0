package indexdir

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/re2g/re2g/internal/dirtest"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/re2g/re2g/bm25"
	"github.com/re2g/re2g/internal/procstat"
	"github.com/re2g/re2g/internal/proctest"
	"github.com/re2g/re2g/neural"
)

// TestMain lets the test binary act as a second process (RE2G_HELPER):
//
//	hold DIR: open the index, print "open", close it when stdin closes
//	readonly DIR: bind-mount DIR read-only over itself (in the mount
//	  namespace the parent gave it), then open and search the index
//	build OUT CORPUS CTX_ENCODER RESUME: build an index, printing "chunk"
//	  after the first chunk and then waiting for stdin to close
//	bm25 OUT CORPUS: build a BM25-only index, then print "vmhwm KB", the
//	  process's peak resident memory
//	update, reader, reopener: see updateHelper
func TestMain(m *testing.M) {
	if mode := os.Getenv("RE2G_HELPER"); mode != "" {
		if err := helper(mode, strings.Fields(os.Getenv("RE2G_HELPER_ARGS"))); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	for _, d := range []string{denseTmp, squadTmp} {
		if d != "" {
			os.RemoveAll(d)
		}
	}
	os.Exit(code)
}

func helper(mode string, args []string) error {
	ctx := context.Background()
	switch mode {
	case "hold":
		ix, err := Open(ctx, args[0])
		if err != nil {
			return err
		}
		fmt.Println("open")
		io.Copy(io.Discard, os.Stdin)
		return ix.Close()
	case "readonly":
		dir := args[0]
		if err := syscall.Mount(dir, dir, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
			fmt.Println("skip: bind mount:", err)
			return nil
		}
		if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
			fmt.Println("skip: read-only remount:", err)
			return nil
		}
		if err := os.WriteFile(filepath.Join(dir, "probe"), nil, 0o644); !errors.Is(err, syscall.EROFS) {
			return fmt.Errorf("the mount is not read-only: writing a file gave %v", err)
		}
		ix, err := Open(ctx, dir)
		if err != nil {
			return err
		}
		defer ix.Close()
		hs, err := ix.SparseSearch(ctx, "city university", 5, bm25.Params{})
		if err != nil {
			return err
		}
		fmt.Println("ok", len(hs))
		return nil
	case "build":
		enc, err := neural.LoadEncoder(args[2], neural.Options{MaxLength: 64})
		if err != nil {
			return err
		}
		defer enc.Close()
		waited := false
		_, err = Build(ctx, args[1], Options{Out: args[0], Encoder: enc, Chunk: 8, Resume: args[3] == "true",
			Progress: io.Discard, afterChunk: func(int) error {
				if !waited {
					waited = true
					fmt.Println("chunk")
					io.Copy(io.Discard, os.Stdin)
				}
				return nil
			}})
		return err
	case "bm25":
		if _, err := Build(ctx, args[1], Options{Out: args[0], Progress: io.Discard}); err != nil {
			return err
		}
		m, err := procstat.Read(0)
		if err != nil {
			return err
		}
		fmt.Println("vmhwm", m.Peak)
		return nil
	}
	if ok, err := updateHelper(mode, args); ok {
		return err
	}
	return fmt.Errorf("unknown helper %q", mode)
}

// helperProc is a running helper process.
type helperProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

// helperCmd is the command that runs the helper mode with args.
func helperCmd(mode string, args ...string) *exec.Cmd {
	return proctest.Self("RE2G_HELPER="+mode, "RE2G_HELPER_ARGS="+strings.Join(args, " "))
}

func startHelper(t *testing.T, attr *syscall.SysProcAttr, mode string, args ...string) *helperProc {
	t.Helper()
	cmd := helperCmd(mode, args...)
	cmd.SysProcAttr = attr
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) {
			t.Skipf("cannot start a helper in its own mount namespace: %v", err)
		}
		t.Fatal(err)
	}
	h := &helperProc{cmd: cmd, stdin: stdin, out: bufio.NewReader(out)}
	t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
	return h
}

// line reads the helper's next line, or fails after a while.
func (h *helperProc) line(t *testing.T) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		s, _ := h.out.ReadString('\n')
		got <- strings.TrimSpace(s)
	}()
	select {
	case s := <-got:
		return s
	case <-time.After(60 * time.Second):
		t.Fatal("the helper process said nothing for 60 s")
		return ""
	}
}

// finish closes the helper's stdin and waits for it to exit.
func (h *helperProc) finish(t *testing.T) {
	t.Helper()
	h.stdin.Close()
	rest, _ := io.ReadAll(h.out)
	if err := h.cmd.Wait(); err != nil {
		t.Fatalf("helper: %v: %s", err, rest)
	}
}

// TestReadOnlyMount opens and searches an index on a read-only file system
// (a read-only bind mount in the helper's own mount namespace), which bleve's
// read-write open refused ("open root.bolt: read-only file system").
func TestReadOnlyMount(t *testing.T) {
	dir := dirtest.Copy(t, denseIndex(t))
	h := startHelper(t, &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}, "readonly", dir)
	got := h.line(t)
	if strings.HasPrefix(got, "skip:") {
		t.Skip(got)
	}
	if got != "ok 5" {
		rest, _ := io.ReadAll(h.out)
		t.Fatalf("helper on a read-only mount: %q %s", got, rest)
	}
	h.finish(t)
}

// TestReadersShareTheIndexAcrossProcesses: while another process has the
// index open, this one opens it at once and searches (a second process used
// to wait forever on bleve's exclusive lock, deaf to SIGTERM).
func TestReadersShareTheIndexAcrossProcesses(t *testing.T) {
	dir := denseIndex(t)
	var hs []*helperProc
	for range 2 {
		h := startHelper(t, nil, "hold", dir)
		if got := h.line(t); got != "open" {
			t.Fatalf("helper: %q", got)
		}
		hs = append(hs, h)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	ix, err := Open(ctx, dir)
	if err != nil {
		t.Fatalf("open while two other processes have it open: %v", err)
	}
	searchAll(t, ix)
	ix.Close()
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("open took %v", d)
	}
	for _, h := range hs {
		h.finish(t)
	}
}

// TestBuildIsLocked: while another process builds an index (stopped after
// its first chunk), a second build (--resume) of the same directory is told
// which PID holds it instead of doing all the work again, and opening it
// says that it is being built; once the first finishes, a resume finds the
// index finished.
func TestBuildIsLocked(t *testing.T) {
	ctxDir := ctxEncoderDir(t)
	corpusPath := kiltCorpus(t, 30)
	out := filepath.Join(t.TempDir(), "index")
	h := startHelper(t, nil, "build", out, corpusPath, ctxDir, "false")
	if got := h.line(t); got != "chunk" {
		t.Fatalf("helper: %q", got)
	}
	pid := h.cmd.Process.Pid
	enc := loadEncoder(t, ctxDir, 0)
	encoded := 0
	o := Options{Out: out, Encoder: enc, Chunk: 8, Resume: true, LockTimeout: 300 * time.Millisecond, Progress: io.Discard,
		afterChunk: func(int) error { encoded++; return nil }}
	start := time.Now()
	_, err := Build(context.Background(), corpusPath, o)
	want := fmt.Sprintf("index %s is in use by PID %d", out, pid)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("a second build: %v; want %q", err, want)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 10*time.Second {
		t.Fatalf("gave up after %v, want the 300ms lock timeout", d)
	}
	if encoded != 0 {
		t.Fatalf("the locked-out build encoded %d chunks", encoded)
	}
	if _, err := Open(context.Background(), out); err == nil || !strings.Contains(err.Error(), "being built by PID "+strconv.Itoa(pid)) {
		t.Fatalf("opening an index being built: %v", err)
	}
	m := filepath.Join(t.TempDir(), "merged")
	if _, err := Merge(context.Background(), corpusPath, m, []string{out}, o); err == nil {
		t.Fatal("merged an unfinished build")
	}
	if _, err := os.Stat(m); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed merge left %s: %v", m, err)
	}
	h.finish(t)
	_, err = Build(context.Background(), corpusPath, o)
	if err == nil || !strings.Contains(err.Error(), "already holds a finished index") || encoded != 0 {
		t.Fatalf("resume after the other build finished: %v (%d chunks encoded)", err, encoded)
	}
	searchAll(t, open(t, out))
	if _, err := os.Stat(filepath.Join(out, ".lock")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("lock file left in the finished index: %v", err)
	}
}
