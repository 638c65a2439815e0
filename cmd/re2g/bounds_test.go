package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/re2g/re2g/internal/limits"
	"github.com/urfave/cli/v2"
)

// numericFlag is one numeric flag of one command.
type numericFlag struct {
	path []string
	name string
	def  float64
	dur  bool
}

// numericFlags lists the numeric flags of cmds and their subcommands.
func numericFlags(cmds []*cli.Command, path []string) []numericFlag {
	var out []numericFlag
	for _, cmd := range cmds {
		p := append(append([]string(nil), path...), cmd.Name)
		for _, fl := range cmd.Flags {
			nf := numericFlag{path: p, name: fl.Names()[0]}
			switch f := fl.(type) {
			case *cli.IntFlag:
				nf.def = float64(f.Value)
			case *cli.Int64Flag:
				nf.def = float64(f.Value)
			case *cli.UintFlag:
				nf.def = float64(f.Value)
			case *cli.Uint64Flag:
				nf.def = float64(f.Value)
			case *cli.Float64Flag:
				nf.def = f.Value
			case *cli.DurationFlag:
				nf.def, nf.dur = float64(f.Value), true
			default:
				continue
			}
			out = append(out, nf)
		}
		out = append(out, numericFlags(cmd.Subcommands, p)...)
	}
	return out
}

// TestEveryNumericFlagHasABound: every numeric flag of every command (but
// serve's server flags, which server.Config checks) has a range in bounds,
// its default is inside it, and it has a flag action that enforces it.
func TestEveryNumericFlagHasABound(t *testing.T) {
	app := newApp()
	server := map[string]bool{}
	for _, f := range serveFlags() {
		server[f.Names()[0]] = true
	}
	n := 0
	for _, f := range numericFlags(app.Commands, nil) {
		cmd := strings.Join(f.path, " ")
		if cmd == "serve" && server[f.name] {
			continue
		}
		n++
		b, ok := lookup(f.path, f.name)
		if !ok {
			t.Errorf("re2g %s --%s has no bound", cmd, f.name)
			continue
		}
		if err := b.check(f.name, f.def, fmt.Sprint(f.def), f.dur); err != nil && !b.unset {
			t.Errorf("re2g %s: the default is out of range: %v", cmd, err)
		}
	}
	if n < 80 {
		t.Errorf("only %d numeric flags found: is the walk missing commands?", n)
	}
}

// TestBadNumbersStopCommandsBeforeTheyRun: each bad value, on the real
// commands run in-process, is an error naming the flag and the range, and
// the command does nothing (no output file, no index directory).
func TestBadNumbersStopCommandsBeforeTheyRun(t *testing.T) {
	dir := t.TempDir()
	corpus := filepath.Join(dir, "corpus.jsonl")
	if err := os.WriteFile(corpus, []byte(`{"_id": "a", "title": "A", "text": "alpha beta"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(dir, "in.jsonl")
	if err := os.WriteFile(in, []byte(`{"id": "q1", "input": "alpha", "text": "alpha", "query": "alpha", "passage": "beta", "source": "alpha"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	idx := filepath.Join(dir, "index")
	model := "../../testdata/hf/bert/safetensors"
	maxThreads := fmt.Sprint(limits.MaxThreads())
	ask := []string{"ask", "--index", idx}
	run := []string{"run", "--index", idx, "--in", in, "--out", out}
	index := []string{"index", "--corpus", corpus, "--out", out}
	encode := []string{"encode", "--model", model, "--in", in, "--out", out}
	rerank := []string{"rerank", "--model", model, "--in", in, "--out", out}
	generate := []string{"generate", "--model", "../../testdata/hf/bart/safetensors", "--in", in, "--out", out}
	train := []string{"train", "all", "--train", in, "--dev", in, "--index", idx, "--out", out}
	for _, tc := range []struct {
		args []string
		want string // the error names the flag, the value and the range
	}{
		{append(index, "--threads", "100000"), "--threads 100000: want 0 to " + maxThreads + " (0: one per core; at most " + limits.MaxThreadsNote() + ")"},
		{append(index, "--threads", "-1"), "--threads -1: want 0 to " + maxThreads},
		{append(index, "--batch-size", "-1"), "--batch-size -1: want 1 to 4096"},
		{append(index, "--chunk", "0"), "--chunk 0: want 1 to"},
		{append(index, "--hnsw-m", "1"), "--hnsw-m 1: want 2 to 512"},
		{append(index, "--ef-search", "0"), "--ef-search 0: want 1 to"},
		{append(index, "--max-length", "-5"), "--max-length -5: want 0 to"},
		{append(index, "--dist-timeout", "0s"), "--dist-timeout 0s: want more than 0s, at most 24h0m0s"},
		{append(ask, "--dense-k", "-1", "what"), "--dense-k -1: want 1 to 10000"},
		{append(ask, "--bm25-k", "20000", "what"), "--bm25-k 20000: want 1 to 10000"},
		{append(ask, "--rerank-k", "-3", "what"), "--rerank-k -3: want 1 to 1000"},
		{append(ask, "--ef-search", "-1", "what"), "--ef-search -1: want 0 to 65536 (0: the index's)"},
		{append(ask, "--k1", "NaN", "what"), "--k1 NaN: want 0 to 100"},
		{append(ask, "--b", "1.5", "what"), "--b 1.5: want 0 to 1"},
		{append(run, "--num-beams", "-1"), "--num-beams -1: want 1 to 64"},
		{append(run, "--num-return-sequences", "0"), "--num-return-sequences 0: want 1 to 64"},
		{append(run, "--max-new-tokens", "-2"), "--max-new-tokens -2: want 1 to 4096"},
		{append(run, "--batch-size", "-1"), "--batch-size -1: want 1 to 4096"},
		{append(run, "--threads", "100000"), "--threads 100000"},
		{append(encode, "--batch-size", "-1"), "--batch-size -1"},
		{append(rerank, "--max-length", "-1"), "--max-length -1"},
		{append(generate, "--num-beams", "-1"), "--num-beams -1: want 0 to 64 (0: generation_config.json's)"},
		{[]string{"tokenize", "--tokenizer", model, "--in", in, "--out", out, "--max-length", "-1"}, "--max-length -1: want 0 to"},
		{append(train, "--threads", "100000"), "--threads 100000"},
		{append(train, "--max-train", "-1"), "--max-train -1: want 0 to"},
		{append(train, "--temperature", "0"), "--temperature 0: want more than 0, at most 1000000"},
		{append(train, "--distill-weight", "1.5"), "--distill-weight 1.5: want 0 to 1"},
		{[]string{"eval", "retrieval", "--corpus", corpus, "--queries", in, "--qrels", in, "--run-out", out, "--threads", "0"}, "--threads 0: want 1 to"},
		{[]string{"eval", "retrieval", "--corpus", corpus, "--queries", in, "--qrels", in, "--run-out", out, "--hits", "-1"}, "--hits -1: want 1 to 100000"},
		{[]string{"dense", "index", "--out", out, "--threads", "100000", dir}, "--threads 100000: want 0 to " + maxThreads + " (0: all cores"},
		{[]string{"data", "kilt-passages", "--in", corpus, "--out", out, "--min-words", "0"}, "--min-words 0: want 1 to"},
		{[]string{"data", "kilt-positives", "--corpus", corpus, "--task", in, "--out", out, "--min-overlap", "-0.5"}, "--min-overlap -0.5: want 0 to 1"},
		{[]string{"data", "squad-kilt", "--in", corpus, "--out", out, "--limit", "-1"}, "--limit -1: want 0 to"},
		{[]string{"demo", "--work", out, "--batch-size", "0"}, "--batch-size 0: want 1 to 4096"},
		{[]string{"device", "--device", "cpu", "--size", "-1"}, "--size -1: want 1 to 16384"},
		{[]string{"device", "--device", "cpu", "--threads", "100000"}, "--threads 100000"},
		{[]string{"bench", "batching", "--rounds", "0"}, "--rounds 0: want 1 to 100"},
		{[]string{"bench", "encoder", "--batch", "-1"}, "--batch -1: want 1 to 4096"},
		{[]string{"bench", "generate", "--beams", "-1"}, "--beams -1: want 1 to 64"},
		{[]string{"bench", "serve", "--work", out, "--duration", "-1s"}, "--duration -1s: want more than 0s, at most 24h0m0s"},
		{[]string{"bench", "serve", "--work", out, "--clients", "0"}, "--clients 0: want 1 to 10000"},
		{[]string{"serve", "--index", idx, "--dense-k", "-1"}, "--dense-k -1"},
	} {
		err := newApp().Run(append([]string{"re2g"}, tc.args...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("re2g %s:\n got %v\nwant an error containing %q", strings.Join(tc.args, " "), err, tc.want)
		}
		for _, p := range []string{out, idx} {
			if _, err := os.Stat(p); err == nil {
				t.Errorf("re2g %s wrote %s", strings.Join(tc.args, " "), p)
				os.RemoveAll(p)
			}
		}
	}
}

// TestThreadsInRangeRun: the largest allowed --threads runs.
func TestThreadsInRangeRun(t *testing.T) {
	dir := t.TempDir()
	corpus := filepath.Join(dir, "corpus.jsonl")
	os.WriteFile(corpus, []byte(`{"_id": "a", "title": "A", "text": "alpha beta"}`+"\n"), 0o644)
	start := time.Now()
	err := newApp().Run([]string{"re2g", "--progress", "off", "index", "--corpus", corpus, "--out", filepath.Join(dir, "index"),
		"--threads", fmt.Sprint(limits.MaxThreads())})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Minute {
		t.Errorf("a one-passage index with the most threads took %v", d)
	}
}
