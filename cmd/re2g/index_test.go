package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proc is a process under test, its stderr (or stdout) read line by line.
type proc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	mu    sync.Mutex
	lines []string
	more  chan struct{}
	done  chan error
}

// start runs the test binary as re2g with args (or with env as a helper).
func start(t *testing.T, env string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	if env == "" {
		env = "RE2G_MAIN=1"
	}
	cmd.Env = append(os.Environ(), env)
	p := &proc{cmd: cmd, more: make(chan struct{}, 1), done: make(chan error, 1)}
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	r, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
			select {
			case p.more <- struct{}{}:
			default:
			}
		}
	}()
	go func() { err := cmd.Wait(); w.Close(); p.done <- err }()
	t.Cleanup(func() { p.stdin.Close(); cmd.Process.Kill() })
	return p
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// waitFor waits for an output line containing s and returns it.
func (p *proc) waitFor(t *testing.T, s string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		p.mu.Lock()
		for _, l := range p.lines {
			if strings.Contains(l, s) {
				p.mu.Unlock()
				return l
			}
		}
		p.mu.Unlock()
		select {
		case <-p.more:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no %q from %v after %v; output:\n%s", s, p.cmd.Args[1:], timeout, p.output())
		}
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case err := <-p.done:
		time.Sleep(20 * time.Millisecond) // the last lines
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(timeout):
		t.Fatalf("%v still running after %v; output:\n%s", p.cmd.Args[1:], timeout, p.output())
		return -1
	}
}

func writeCorpus(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "passages.jsonl")
	var b strings.Builder
	for i, s := range []string{
		"The delegates are elected by the members of the assembly.",
		"The Senate confirms the judges the president nominates.",
		"Tea is a beverage made from the leaves of Camellia sinensis.",
		"The Iliad is an epic poem attributed to Homer.",
		"The assembly meets twice a year in the capital.",
		"Homer is the legendary author of the Odyssey.",
		"Delegates vote on the budget and on new members.",
		"Coffee beans are roasted before they are ground.",
	} {
		fmt.Fprintf(&b, `{"_id": "p%d", "title": "T%d", "text": %q}`+"\n", i, i%3, s)
	}
	os.WriteFile(p, []byte(b.String()), 0o644)
	return p
}

// indexShards runs `re2g index --shard I/n` for each shard of corpus into
// dir/partI and returns the shard directories.
func indexShards(t *testing.T, dir, corpus, enc string, n int) []string {
	t.Helper()
	var parts []string
	for i := range n {
		part := filepath.Join(dir, fmt.Sprintf("part%d", i))
		if err := newApp().Run([]string{"re2g", "index", "--corpus", corpus, "--ctx-encoder", enc, "--out", part, "--shard", fmt.Sprintf("%d/%d", i, n), "--chunk", "2"}); err != nil {
			t.Fatal(err)
		}
		parts = append(parts, part)
	}
	return parts
}

// TestIndexMergeAsTheREADMEWritesIt runs the README's sharded indexing:
// `re2g index ... --shard I/N` per shard, then `re2g index merge --corpus C
// --out DIR SHARD...`, which failed to parse ("Required flags corpus, out
// not set": index's own required flags were checked before merge ran).
func TestIndexMergeAsTheREADMEWritesIt(t *testing.T) {
	dir := t.TempDir()
	corpus := writeCorpus(t)
	enc := "../../testdata/hf/dpr-ctx/safetensors"
	parts := indexShards(t, dir, corpus, enc, 2)
	idx := filepath.Join(dir, "idx")
	// one shard missing: an error, and nothing left behind
	if err := newApp().Run([]string{"re2g", "index", "merge", "--corpus", corpus, "--out", idx, parts[0]}); err == nil || !strings.Contains(err.Error(), "a shard is missing") {
		t.Fatalf("merge of one of two shards: %v", err)
	}
	if _, err := os.Stat(idx); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed merge left %s: %v", idx, err)
	}
	if err := newApp().Run(append([]string{"re2g", "index", "merge", "--corpus", corpus, "--out", idx}, parts...)); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "pred.jsonl")
	task := filepath.Join(dir, "task.jsonl")
	os.WriteFile(task, []byte(`{"id": "q1", "input": "who elects the delegates?"}`+"\n"), 0o644)
	if err := newApp().Run([]string{"re2g", "run", "--index", idx, "--query-encoder", enc, "--in", task, "--out", out}); err != nil {
		t.Fatal(err)
	}
	type pred struct {
		Output []struct {
			Provenance []map[string]any `json:"provenance"`
		} `json:"output"`
	}
	if ps := readLines[pred](t, out); len(ps) != 1 || len(ps[0].Output) == 0 || len(ps[0].Output[0].Provenance) == 0 {
		t.Fatalf("predictions from the merged index: %+v", ps)
	}
	// the flags are still checked, by the commands themselves
	if err := newApp().Run([]string{"re2g", "index", "merge", "--out", idx, parts[0]}); err == nil || !strings.Contains(err.Error(), "--corpus is required") {
		t.Fatalf("merge without --corpus: %v", err)
	}
	if err := newApp().Run([]string{"re2g", "index", "--corpus", corpus}); err == nil || !strings.Contains(err.Error(), "--out is required") {
		t.Fatalf("index without --out: %v", err)
	}
}

// holdLock starts a process holding dir's writer lock.
func holdLock(t *testing.T, dir string) *proc {
	t.Helper()
	h := start(t, "RE2G_HOLD_LOCK="+dir, "-test.run=^$")
	h.waitFor(t, "locked", 30*time.Second)
	return h
}

// TestSecondWriterIsToldWhoHoldsTheIndex: `re2g index --resume` on a
// directory another process is writing (two --resume runs used to both do
// all the work) gives up after --lock-timeout naming the holder's PID.
func TestSecondWriterIsToldWhoHoldsTheIndex(t *testing.T) {
	corpus := writeCorpus(t)
	out := t.TempDir()
	h := holdLock(t, out)
	begun := time.Now()
	p := start2(t, "index", "--corpus", corpus, "--out", out, "--resume", "--lock-timeout", "500ms")
	if code := p.wait(t, 30*time.Second); code != 1 {
		t.Fatalf("exit code %d; output:\n%s", code, p.output())
	}
	want := fmt.Sprintf("index %s is in use by PID %d", out, h.cmd.Process.Pid)
	if !strings.Contains(p.output(), want) {
		t.Fatalf("want %q in:\n%s", want, p.output())
	}
	if d := time.Since(begun); d < 500*time.Millisecond {
		t.Fatalf("gave up after %v, before --lock-timeout", d)
	}
	// merge takes the same lock
	m := start2(t, "index", "merge", "--corpus", corpus, "--out", out, "--lock-timeout", "100ms", out)
	if code := m.wait(t, 30*time.Second); code != 1 || !strings.Contains(m.output(), want) {
		t.Fatalf("merge into a locked directory: exit %d:\n%s", code, m.output())
	}
}

func start2(t *testing.T, args ...string) *proc { return start(t, "", args...) }

// TestWaitingWriterStopsOnSIGTERM: a writer waiting for the lock stops at
// once on SIGTERM.
func TestWaitingWriterStopsOnSIGTERM(t *testing.T) {
	corpus := writeCorpus(t)
	out := t.TempDir()
	holdLock(t, out)
	p := start2(t, "index", "--corpus", corpus, "--out", out, "--resume", "--lock-timeout", "10m")
	p.waitFor(t, "waiting for the directory's lock", 30*time.Second)
	sent := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 10*time.Second); code != 1 || !strings.Contains(p.output(), "context canceled") {
		t.Fatalf("exit %d:\n%s", code, p.output())
	}
	if d := time.Since(sent); d > 5*time.Second {
		t.Fatalf("took %v to stop after SIGTERM", d)
	}
}

// TestServersAndAskShareAnIndex: two `re2g serve` and a `re2g ask` on one
// index at once. The second server used to stay 503 and ask to hang (deaf to
// SIGTERM) on the first server's exclusive lock of the BM25 store.
func TestServersAndAskShareAnIndex(t *testing.T) {
	corpus := writeCorpus(t)
	idx := filepath.Join(t.TempDir(), "idx")
	if err := newApp().Run([]string{"re2g", "index", "--corpus", corpus, "--out", idx}); err != nil {
		t.Fatal(err)
	}
	addr := regexp.MustCompile(`addr=(\S+)`)
	var servers []*proc
	for range 2 {
		s := start2(t, "serve", "--index", idx, "--addr", "127.0.0.1:0")
		line := s.waitFor(t, "msg=ready", 60*time.Second)
		m := addr.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("no address in %q", line)
		}
		res, err := http.Get("http://" + m[1] + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("server %d: /readyz %d", len(servers), res.StatusCode)
		}
		res, err = http.Post("http://"+m[1]+"/v1/retrieve", "application/json", strings.NewReader(`{"query": "who elects the delegates?"}`))
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Candidates []struct{ ID string } `json:"candidates"`
		}
		json.NewDecoder(res.Body).Decode(&got)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || len(got.Candidates) == 0 || got.Candidates[0].ID != "p0" {
			t.Fatalf("server %d: /v1/retrieve %d %+v", len(servers), res.StatusCode, got)
		}
		servers = append(servers, s)
	}
	a := start2(t, "ask", "--index", idx, "--json", "who elects the delegates?")
	if code := a.wait(t, 60*time.Second); code != 0 || !strings.Contains(a.output(), `"id": "p0"`) {
		t.Fatalf("ask while two servers have the index open: exit %d:\n%s", code, a.output())
	}
	for i, s := range servers {
		s.cmd.Process.Signal(syscall.SIGTERM)
		if code := s.wait(t, 30*time.Second); code != 0 {
			t.Fatalf("server %d: exit %d:\n%s", i, code, s.output())
		}
	}
}
