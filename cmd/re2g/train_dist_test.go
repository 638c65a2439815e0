package main

import (
	"bufio"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/re2g/re2g/internal/fixturedir"
	"github.com/re2g/re2g/kilt"
	"github.com/re2g/re2g/train"
)

// trainTask writes KILT task files over writeCorpus's passages (p0…p7,
// passage-level provenance), a BM25 index of them, and a config of minute
// models made from scratch, and returns the `re2g train` arguments.
func trainTask(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	rec := func(id, q, a, gold string) kilt.Record {
		return kilt.NewGold(id, q, []string{a}, []kilt.Provenance{{"wikipedia_id": gold}})
	}
	tr, dv := filepath.Join(dir, "train.jsonl"), filepath.Join(dir, "dev.jsonl")
	if err := kilt.WriteFile(tr, []kilt.Record{
		rec("q0", "Who elects the delegates?", "the members", "p0"),
		rec("q1", "Who confirms the judges?", "the Senate", "p1"),
		rec("q2", "What is tea made from?", "leaves", "p2"),
		rec("q3", "Who wrote the Iliad?", "Homer", "p3"),
		rec("q4", "How often does the assembly meet?", "twice a year", "p4"),
		rec("q5", "Who wrote the Odyssey?", "Homer", "p5"),
	}); err != nil {
		t.Fatal(err)
	}
	if err := kilt.WriteFile(dv, []kilt.Record{
		rec("d0", "What do delegates vote on?", "the budget", "p6"),
		rec("d1", "What is done to coffee beans?", "roasted", "p7"),
	}); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.json")
	opt := `{"batch_size": 4, "grad_accum": 1, "lr": 1e-4, "checkpoint_every": 2, "eval_every": 0, "patience": 0}`
	if err := os.WriteFile(cfg, []byte(`{
  "bert": {"hidden": 16, "layers": 1, "heads": 2, "ffn": 32, "max_positions": 64},
  "bart": {"hidden": 16, "layers": 1, "heads": 2, "ffn": 32, "max_positions": 64},
  "query_len": 16, "passage_len": 32, "pair_len": 48, "source_len": 48, "answer_len": 8,
  "dpr": {"stage1": `+opt+`, "stage2": {"epochs": 0, "max_steps": 0}, "eval_depth": 4},
  "generator": {"batch_size": 2, "grad_accum": 2, "lr": 1e-4, "checkpoint_every": 2, "eval_every": 0, "patience": 0, "k": 2},
  "reranker": {"batch_size": 4, "grad_accum": 1, "lr": 1e-4, "checkpoint_every": 2, "eval_every": 0, "patience": 0, "dense_k": 2, "sparse_k": 3},
  "e2e": {"batch_size": 2, "grad_accum": 2, "lr": 1e-4, "checkpoint_every": 2, "eval_every": 0, "patience": 0, "k": 2, "dense_k": 2, "sparse_k": 3}
}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tok := "../../../shared/data/tokenizers/bert-base-uncased"
	if _, err := os.Stat(filepath.Join(tok, "tokenizer.json")); err != nil {
		t.Fatal("the ../shared/data tokenizer is needed: ", err)
	}
	return []string{"--train", tr, "--dev", dv, "--index", bm25Index(t), "--preset", "small", "--config", cfg,
		"--init", "scratch", "--tokenizer", tok, "--threads", "1", "--max-steps", "5", "--quiet", "--dist-timeout", "60s"}
}

// readTrace reads the JSON lines of `--trace`.
func readTrace(t *testing.T, path string) []train.TraceRecord {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []train.TraceRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<22)
	for sc.Scan() {
		var r train.TraceRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// TestTrainAllUnderTorchrun: `torchrun --no-python --nproc_per_node 2 re2g
// train all …` (Debian's torchrun, Gloo) trains every phase as one process
// does with the same global batch: the same micro-batches, each rank its
// half; both ranks' parameters the same bits after every update; every
// phase's parameters within 1e-5 of the single process's after 5 updates;
// rank 0 alone prints the result and writes run.json, which records the
// world size.
func TestTrainAllUnderTorchrun(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	launcher := torchrun(t)
	args := trainTask(t)
	dir := t.TempDir()
	one, two := filepath.Join(dir, "one"), filepath.Join(dir, "two")

	t0 := time.Now()
	code, out := re2g(t, append([]string{"train", "all", "--out", one, "--trace", filepath.Join(one, "trace")}, args...)...)
	if code != 0 {
		t.Fatalf("re2g train all: exit %d\n%s", code, out)
	}
	t.Logf("one process: %v", time.Since(t0).Round(time.Millisecond))

	t0 = time.Now()
	b, err := runTorchrun(launcher, []string{"RE2G_DIST_BACKEND=", "RE2G_DIST_TIMEOUT="},
		append([]string{"train", "all", "--out", two, "--trace", filepath.Join(two, "trace")}, args...)...)
	if err != nil {
		t.Fatalf("torchrun re2g train all: %v\n%s", err, b)
	}
	t.Logf("torchrun, 2 ranks: %v", time.Since(t0).Round(time.Millisecond))
	if n := strings.Count(string(b), `{"final":`); n != 1 {
		t.Errorf("the result line was printed %d times (want once, by rank 0):\n%s", n, b)
	}
	var m train.Manifest
	rb, err := os.ReadFile(filepath.Join(two, "run.json"))
	if err != nil || json.Unmarshal(rb, &m) != nil || m.WorldSize != 2 || len(m.Phases) != 4 {
		t.Fatalf("run.json: %v, world size %d, %d phases", err, m.WorldSize, len(m.Phases))
	}

	// The traces: one file per rank, the phases one after the other.
	ref := readTrace(t, filepath.Join(one, "trace", "trace-rank0.jsonl"))
	r0, r1 := readTrace(t, filepath.Join(two, "trace", "trace-rank0.jsonl")), readTrace(t, filepath.Join(two, "trace", "trace-rank1.jsonl"))
	if len(ref) != 20 || len(r0) != 20 || len(r1) != 20 {
		t.Fatalf("%d, %d and %d updates traced; want 4 phases × 5", len(ref), len(r0), len(r1))
	}
	for i := range ref {
		for a, gl := range ref[i].Global {
			if !slices.Equal(r0[i].Global[a], gl) || !slices.Equal(append(slices.Clone(r0[i].Local[a]), r1[i].Local[a]...), gl) {
				t.Errorf("update %d, micro-batch %d: one process %v; ranks %v + %v", i, a, gl, r0[i].Local[a], r1[i].Local[a])
			}
		}
		if r0[i].ParamHash != r1[i].ParamHash {
			t.Errorf("update %d: the ranks' parameters differ", i)
		}
	}
	for _, ph := range []string{"dpr/stage1", "generator", "reranker", "e2e-distill"} {
		a := fixturedir.Float64s(t, filepath.Join(one, ph, "checkpoint", "params.safetensors"))
		c := fixturedir.Float64s(t, filepath.Join(two, ph, "checkpoint", "params.safetensors"))
		d, skipped := 0.0, 0.0
		for n, x := range a {
			y := c[n]
			if len(y) != len(x) {
				t.Fatalf("%s: %s has %d values, %d under torchrun", ph, n, len(x), len(y))
			}
			for i := range x {
				// The reranker's score bias has no gradient (the listwise
				// softmax is shift-invariant): AdamW moves it on noise.
				if strings.HasSuffix(n, "classifier.bias") {
					skipped = max(skipped, math.Abs(x[i]-y[i]))
					continue
				}
				d = max(d, math.Abs(x[i]-y[i]))
			}
		}
		t.Logf("%s: max |Δparam| %.3g after 5 updates (classifier.bias, unbounded: %.3g)", ph, d, skipped)
		if d > 1e-5 {
			t.Errorf("%s: 2 ranks under torchrun differ from one process by %g", ph, d)
		}
	}
}
