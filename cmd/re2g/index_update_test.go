package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/re2g/re2g/indexdir"
)

// writePassages writes BEIR lines of (id, text) pairs.
func writePassages(t *testing.T, kv ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "more.jsonl")
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(&b, `{"_id": %q, "title": "T", "text": %q}`+"\n", kv[i], kv[i+1])
	}
	os.WriteFile(p, []byte(b.String()), 0o644)
	return p
}

// TestIndexUpdateCommands runs add, delete, compact, verify and info as
// the README writes them, on a dense index: the manifest's counts follow,
// refusals say what to do, and ask finds what was added and not what was
// deleted.
func TestIndexUpdateCommands(t *testing.T) {
	corpus := writeCorpus(t)
	enc := "../../testdata/hf/dpr-ctx/safetensors"
	idx := filepath.Join(t.TempDir(), "idx")
	run := func(args ...string) error {
		return newApp().Run(append([]string{"re2g", "--progress", "off"}, args...))
	}
	if err := run("index", "--corpus", corpus, "--ctx-encoder", enc, "--out", idx, "--chunk", "2"); err != nil {
		t.Fatal(err)
	}
	more := writePassages(t, "p8", "Quokkas are small marsupials of Rottnest Island.", "p9", "The zither is a stringed instrument.")
	if err := run("index", "add", "--index", idx, "--corpus", more); err == nil || !strings.Contains(err.Error(), "--ctx-encoder is required") {
		t.Fatalf("add without the encoder: %v", err)
	}
	if err := run("index", "add", "--index", idx, "--corpus", more, "--ctx-encoder", enc); err != nil {
		t.Fatal(err)
	}
	if err := run("index", "add", "--index", idx, "--corpus", more, "--ctx-encoder", enc); err == nil || !strings.Contains(err.Error(), `passage id "p8" is in index`) {
		t.Fatalf("adding the same ids again: %v", err)
	}
	ids := filepath.Join(t.TempDir(), "ids.txt")
	os.WriteFile(ids, []byte("p3\nnope\n"), 0o644)
	if err := run("index", "delete", "--index", idx, "--ids", ids); err == nil || !strings.Contains(err.Error(), `no passage "nope"`) {
		t.Fatalf("deleting an unknown id: %v", err)
	}
	if err := run("index", "delete", "--index", idx, "--ids", ids, "--ignore-missing"); err != nil {
		t.Fatal(err)
	}
	m, err := indexdir.ReadManifest(idx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Generation != 2 || m.Passages != 9 || m.Deleted != 1 || m.Dense.Vectors != 9 || len(m.Segments) != 2 {
		t.Fatalf("manifest after add and delete: generation %d, %d passages, %d deleted, %d vectors, %d segments",
			m.Generation, m.Passages, m.Deleted, m.Dense.Vectors, len(m.Segments))
	}
	ask := func(q string) string {
		t.Helper()
		// every live passage: 12 dense hits of 9, all kept
		p := start2(t, "ask", "--index", idx, "--query-encoder", enc, "--rerank-k", "30", "--json", q)
		if code := p.wait(t, 60*time.Second); code != 0 {
			t.Fatalf("ask: exit %d:\n%s", code, p.output())
		}
		return p.output()
	}
	out := ask("Homer iliad epic poem")
	if !strings.Contains(out, `"id": "p8"`) || !strings.Contains(out, `"id": "p9"`) || strings.Contains(out, `"id": "p3"`) {
		t.Fatalf("ask does not find the added passages, or finds the deleted one:\n%s", out)
	}
	if err := run("index", "compact", "--index", idx); err != nil {
		t.Fatal(err)
	}
	if err := run("index", "verify", idx); err != nil {
		t.Fatal(err)
	}
	if err := run("index", "info", idx); err != nil {
		t.Fatal(err)
	}
	if m, err = indexdir.ReadManifest(idx); err != nil || m.Generation != 3 || m.Passages != 9 || m.Deleted != 0 || len(m.Segments) != 1 {
		t.Fatalf("manifest after compact: %+v %v", m, err)
	}
	// a damaged file: quick checks see a size, verify every byte
	st := filepath.Join(idx, filepath.FromSlash(m.Segments[0].Dir), "passages", "passages.dat")
	b, _ := os.ReadFile(st)
	b[len(b)-3] ^= 0x20
	os.WriteFile(st, b, 0o644)
	if err := run("index", "verify", idx); err == nil || !strings.Contains(err.Error(), st) {
		t.Fatalf("verify of a damaged index: %v", err)
	}
	if err := run("ask", "--index", idx, "--verify", "full", "delegates"); err == nil || !strings.Contains(err.Error(), st) {
		t.Fatalf("ask --verify full on a damaged index: %v", err)
	}
	if err := run("index", "add", "--index", idx, "--corpus", more, "--max-length", "-1"); err == nil || !strings.Contains(err.Error(), "--max-length -1: want 0 to") {
		t.Fatalf("--max-length -1: %v", err)
	}
	if err := run("serve", "--index", idx, "--reload-poll", "-1s"); err == nil || !strings.Contains(err.Error(), "--reload-poll -1s: want 0s to 24h0m0s (0: off; SIGHUP reloads)") {
		t.Fatalf("--reload-poll -1s: %v", err)
	}
	if err := run("ask", "--index", idx, "--verify", "some", "delegates"); err == nil || !strings.Contains(err.Error(), `--verify: verify "some": want quick or full`) {
		t.Fatalf("--verify some: %v", err)
	}
}

// TestServeReloadsUnderLoad: two real `re2g serve` processes, one with
// --reload-poll and one without, answer clients without pause while `re2g
// index add` (another process) and `re2g index delete` change their
// index: the first picks up each generation by itself, the second stays on
// its generation until SIGHUP; both find what was added once they load it
// and answer every request: 0 errors.
func TestServeReloadsUnderLoad(t *testing.T) {
	corpus := writeCorpus(t)
	enc := "../../testdata/hf/dpr-ctx/safetensors"
	idx := filepath.Join(t.TempDir(), "idx")
	if err := newApp().Run([]string{"re2g", "--progress", "off", "index", "--corpus", corpus, "--ctx-encoder", enc, "--out", idx, "--chunk", "2"}); err != nil {
		t.Fatal(err)
	}
	type server struct {
		p   *proc
		url string
	}
	var servers []server
	for _, extra := range [][]string{{"--reload-poll", "200ms"}, nil} {
		p := start2(t, append([]string{"serve", "--index", idx, "--query-encoder", enc, "--addr", "127.0.0.1:0"}, extra...)...)
		m := regexp.MustCompile(`addr=(\S+)`).FindStringSubmatch(p.waitFor(t, "msg=ready", 60*time.Second))
		if m == nil {
			t.Fatal("no address")
		}
		servers = append(servers, server{p, "http://" + m[1]})
	}
	polled, hupped := servers[0], servers[1]
	generation := func(s server) (int, int) {
		res, err := http.Get(s.url + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var r struct{ Generation, Passages int }
		json.NewDecoder(res.Body).Decode(&r)
		return r.Generation, r.Passages
	}
	waitGen := func(s server, g int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if got, _ := generation(s); got == g {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("the server did not load generation %d:\n%s", g, s.p.output())
	}
	var stop atomic.Bool
	var ok, bad atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			url := servers[i%2].url
			qs := []string{"who elects the delegates?", "quokkas of rottnest", "tea leaves"}
			for n := 0; !stop.Load(); n++ {
				res, err := http.Post(url+"/v1/retrieve", "application/json", strings.NewReader(fmt.Sprintf(`{"query": %q}`, qs[(i+n)%3])))
				if err != nil {
					bad.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					bad.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %s", res.StatusCode, body))
					continue
				}
				ok.Add(1)
			}
		}()
	}
	finds := func(s server, id string) {
		t.Helper()
		res, err := http.Post(s.url+"/v1/retrieve", "application/json", strings.NewReader(`{"query": "quokkas marsupials rottnest"}`))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if !strings.Contains(string(body), `"id":"`+id+`"`) {
			t.Fatalf("%s is not retrieved: %s", id, body)
		}
	}
	more := writePassages(t, "p8", "Quokkas are small marsupials of Rottnest Island.")
	a := start2(t, "index", "add", "--index", idx, "--corpus", more, "--ctx-encoder", enc)
	if code := a.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("index add: exit %d:\n%s", code, a.output())
	}
	waitGen(polled, 1)
	finds(polled, "p8")
	if g, _ := generation(hupped); g != 0 {
		t.Fatalf("the server without --reload-poll loaded generation %d by itself", g)
	}
	hupped.p.cmd.Process.Signal(syscall.SIGHUP)
	waitGen(hupped, 1)
	finds(hupped, "p8")
	ids := filepath.Join(t.TempDir(), "ids")
	os.WriteFile(ids, []byte("p0\n"), 0o644)
	if err := newApp().Run([]string{"re2g", "index", "delete", "--index", idx, "--ids", ids}); err != nil {
		t.Fatal(err)
	}
	waitGen(polled, 2)
	hupped.p.cmd.Process.Signal(syscall.SIGHUP)
	waitGen(hupped, 2)
	for _, s := range servers {
		if _, n := generation(s); n != 8 {
			t.Fatalf("/readyz: %d passages after deleting one of 9", n)
		}
	}
	time.Sleep(300 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if bad.Load() != 0 || ok.Load() < 10 {
		t.Fatalf("%d errors (first: %v), %d answers", bad.Load(), firstErr.Load(), ok.Load())
	}
	t.Logf("%d requests answered across two reloads of each server, 0 errors", ok.Load())
	for _, s := range servers {
		s.p.cmd.Process.Signal(syscall.SIGTERM)
		if code := s.p.wait(t, 30*time.Second); code != 0 {
			t.Fatalf("serve: exit %d:\n%s", code, s.p.output())
		}
		if !strings.Contains(s.p.output(), "msg=\"index reloaded\" generation=2") {
			t.Fatalf("no reload logged:\n%s", s.p.output())
		}
	}
	if !strings.Contains(hupped.p.output(), "SIGHUP: reloading the index") {
		t.Fatalf("no SIGHUP logged:\n%s", hupped.p.output())
	}
}
