package train

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/indexdir"
	"github.com/re2g/re2g/kilt"
	"github.com/re2g/re2g/neural"
	"github.com/re2g/re2g/pipeline"
	"github.com/re2g/re2g/torch"
)

const tokDir = "../../shared/data/tokenizers/bert-base-uncased"

func needTokenizer(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(tokDir, "tokenizer.json")); err != nil {
		t.Fatal("the ../shared/data tokenizer is needed: ", err)
	}
}

// tinyConfig is a config of minute models made from scratch, for tests.
func tinyConfig(out string) *Config {
	c := SmallConfig()
	c.Out, c.Tokenizer, c.Threads, c.Quiet, c.Init = out, tokDir, 2, true, InitScratch
	c.BERT = Shape{Hidden: 16, Layers: 1, Heads: 2, FFN: 32, MaxPos: 64}
	c.BART = Shape{Hidden: 16, Layers: 1, Heads: 2, FFN: 32, MaxPos: 64}
	c.QueryLen, c.PassageLen, c.PairLen, c.SourceLen, c.AnswerLen = 16, 32, 48, 48, 8
	c.Reranker.DenseK, c.Reranker.SparseK = 2, 3
	c.E2E.DenseK, c.E2E.SparseK = 2, 3
	c.E2E.K, c.Generator.K = 2, 2
	c.DPR.EvalDepth = 4
	for _, o := range []*Opt{&c.DPR.Stage1, &c.DPR.Stage2, &c.Generator.Opt, &c.Reranker.Opt, &c.E2E.Opt} {
		o.MaxSteps, o.BatchSize, o.EvalEvery, o.CheckpointEvery, o.Patience = 2, 2, 0, 0, 0
	}
	return c
}

var tinyPassages = []data.Passage{
	{ID: "Paris#0", Title: "Paris", Text: "Paris is the capital of France and lies on the Seine."},
	{ID: "Paris#1", Title: "Paris", Text: "The Eiffel Tower was completed in 1889 for a world fair."},
	{ID: "Oslo#0", Title: "Oslo", Text: "Oslo is the capital of Norway at the head of a fjord."},
	{ID: "Oslo#1", Title: "Oslo", Text: "The Nobel Peace Prize is awarded in Oslo every December."},
	{ID: "Rome#0", Title: "Rome", Text: "Rome was founded, legend says, by Romulus in 753 BC."},
	{ID: "Rome#1", Title: "Rome", Text: "The Colosseum in Rome held about fifty thousand people."},
}

// tinyTask writes a six-passage corpus, its BM25 index and KILT task files
// (four training and two dev examples, passage-level provenance, one
// training example whose provenance is not in the corpus) under dir.
func tinyTask(t *testing.T, dir string) (trainPath, devPath, index string) {
	t.Helper()
	corpus := filepath.Join(dir, "corpus.jsonl")
	f, err := os.Create(corpus)
	if err != nil {
		t.Fatal(err)
	}
	if err := data.WriteCorpus(f, tinyPassages); err != nil {
		t.Fatal(err)
	}
	f.Close()
	index = filepath.Join(dir, "index")
	if _, err := indexdir.Build(context.Background(), corpus, indexdir.Options{Out: index, Progress: nopWriter{}}); err != nil {
		t.Fatal(err)
	}
	rec := func(id, text, ans, gold string) kilt.Record {
		return kilt.NewGold(id, text, []string{ans}, []kilt.Provenance{{"wikipedia_id": gold}})
	}
	trainPath, devPath = filepath.Join(dir, "train.jsonl"), filepath.Join(dir, "dev.jsonl")
	if err := kilt.WriteFile(trainPath, []kilt.Record{
		rec("q1", "What is the capital of France?", "Paris", "Paris#0"),
		rec("q2", "When was the Eiffel Tower completed?", "1889", "Paris#1"),
		rec("q3", "Which city is the capital of Norway?", "Oslo", "Oslo#0"),
		rec("q4", "Where is the Nobel Peace Prize awarded?", "Oslo", "Oslo#1"),
		rec("q5", "Which river crosses Vienna?", "Danube", "Vienna#0"),
	}); err != nil {
		t.Fatal(err)
	}
	if err := kilt.WriteFile(devPath, []kilt.Record{
		rec("d1", "Who founded Rome?", "Romulus", "Rome#0"),
		rec("d2", "How many people did the Colosseum hold?", "fifty thousand", "Rome#1"),
	}); err != nil {
		t.Fatal(err)
	}
	return trainPath, devPath, index
}

func tinyDataset(t *testing.T) (*Dataset, string) {
	t.Helper()
	needTokenizer(t)
	dir := t.TempDir()
	tr, dv, ix := tinyTask(t, dir)
	ds, err := OpenDataset(context.Background(), tr, dv, ix)
	if err != nil {
		t.Fatal(err)
	}
	return ds, ix
}

// TestTaskProvenance: gold passages come from provenance; an example whose
// provenance is not in the corpus is counted and left out.
func TestTaskProvenance(t *testing.T) {
	ds, _ := tinyDataset(t)
	if len(ds.Train) != 4 || len(ds.Dev) != 2 {
		t.Fatalf("%d training, %d dev examples; want 4 and 2", len(ds.Train), len(ds.Dev))
	}
	st := ds.Stats[0]
	if st.Read != 5 || st.Used != 4 || st.NoPositive != 1 {
		t.Fatalf("training stats %+v: want 5 read, 4 used, 1 without a positive", st)
	}
	if g := ds.Train[1].Gold; len(g) != 1 || g[0] != "Paris#1" {
		t.Fatalf("q2 gold %v", g)
	}
}

// TestTrainAllFromScratch runs every phase (2 updates each) from scratch
// on the tiny task, then loads what it wrote as re2g ask does.
func TestTrainAllFromScratch(t *testing.T) {
	ds, ix := tinyDataset(t)
	cfg := tinyConfig(t.TempDir())
	m, err := TrainAll(context.Background(), cfg, ds, Models{Index: ix}, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Phases) != 4 {
		t.Fatalf("%d phases in the manifest", len(m.Phases))
	}
	b, err := os.ReadFile(filepath.Join(cfg.Out, "run.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Manifest
	if err := json.Unmarshal(b, &back); err != nil || back.Final.Generator != m.Final.Generator {
		t.Fatalf("run.json: %v, final %+v", err, back.Final)
	}
	if back.Phases[1].Inputs.QueryEncoder != back.Phases[0].Outputs.QueryEncoder || back.Phases[1].Inputs.Index != back.Phases[0].Outputs.Index {
		t.Errorf("the generator phase did not read the DPR phase's outputs: %+v", back.Phases[1].Inputs)
	}
	p, err := pipeline.New(pipeline.Config{Index: m.Final.Index, QueryEncoder: m.Final.QueryEncoder, Reranker: m.Final.Reranker,
		Generator: m.Final.Generator, MaxNewTokens: 4, NumBeams: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	res, err := p.Answer(context.Background(), "Who founded Rome?")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Provenance) == 0 {
		t.Fatal("no provenance")
	}
}

// TestCheckpointInitIsExplicit: without --init scratch a missing model
// directory is an error naming the flag.
func TestCheckpointInitIsExplicit(t *testing.T) {
	ds, ix := tinyDataset(t)
	cfg := tinyConfig(t.TempDir())
	cfg.Init = InitCheckpoint
	_, _, err := TrainDPR(context.Background(), cfg, ds, DPRInput{Index: ix}, cfg.Out, RunOptions{})
	if err == nil || !strings.Contains(err.Error(), "--query-encoder") {
		t.Fatalf("got %v", err)
	}
	_, _, err = TrainReranker(context.Background(), cfg, ds, RerankerInput{Index: ix}, cfg.Out, RunOptions{})
	if err == nil || !strings.Contains(err.Error(), "--query-encoder") {
		t.Fatalf("reranker without the lists' question encoder: got %v", err)
	}
	if _, _, err := TrainDPR(context.Background(), cfg, ds, DPRInput{QueryEncoder: t.TempDir(), Index: ix}, cfg.Out, RunOptions{}); err == nil {
		t.Fatal("an empty model directory: no error")
	}
}

// tinyModels trains DPR from scratch (2 updates) on the tiny task and
// returns an env over the re-encoded index with the models loaded.
func tinyModels(t *testing.T) (*env, *biEncoder, *crossEncoder, *generatorModel, []Question) {
	t.Helper()
	ds, ix := tinyDataset(t)
	cfg := tinyConfig(t.TempDir())
	cfg.DPR.Stage2 = Opt{}
	out, _, err := TrainDPR(context.Background(), cfg, ds, DPRInput{Index: ix}, filepath.Join(cfg.Out, "dpr"), RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := newEnv(cfg, ds, out.Index)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.close)
	q, err := e.loadBiEncoder(out.QueryEncoder, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.Close)
	torch.ManualSeed(3)
	rr, err := e.loadReranker("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rr.Close)
	g, err := e.loadGenerator("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return e, q, rr, g, e.trainQ
}

func gradState(t *testing.T, ps []torch.Param) bool {
	t.Helper()
	s := torch.NewScope()
	defer s.Close()
	for _, p := range ps {
		g := s.Grad(p.Tensor)
		if g == nil {
			continue
		}
		v, err := s.Sum(s.Abs(g), false).Item()
		if err != nil {
			t.Fatal(err)
		}
		if v > 0 {
			return true
		}
	}
	return false
}

func zeroGrads(t *testing.T, groups ...[]torch.Param) {
	for _, ps := range groups {
		for _, p := range ps {
			if err := p.Tensor.ZeroGrad(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestGradientFlowE2E checks which models the end-to-end loss trains under
// each query-encoder option: the reranker and the generator always; the
// question encoder with combined and distill only (the index's vectors are
// fixed data).
func TestGradientFlowE2E(t *testing.T) {
	e, q, rr, g, qs := tinyModels(t)
	ctx := context.Background()
	qp, _ := q.m.Parameters()
	rp, _ := rr.m.Parameters()
	gp, _ := g.m.Parameters()
	ls, err := e.filled(lists{{"Paris#0", "Paris#1", "Oslo#0", "Rome#0"}, {"Oslo#0", "Oslo#1", "Paris#0"}})
	if err != nil {
		t.Fatal(err)
	}
	m := e2eModels{q: q, rr: rr, g: g}
	for _, tc := range []struct {
		option string
		query  bool
	}{{Combined, true}, {Frozen, false}, {Distill, true}} {
		t.Run(tc.option, func(t *testing.T) {
			zeroGrads(t, qp, rp, gp)
			s := torch.NewScope()
			defer s.Close()
			loss, err := e.e2eLoss(ctx, s, m, qs[:2], ls, tc.option, e.cfg.E2E.K)
			if err != nil {
				t.Fatal(err)
			}
			s.Backward(loss)
			if err := s.Err(); err != nil {
				t.Fatal(err)
			}
			if !gradState(t, rp) {
				t.Error("reranker got no gradient")
			}
			if !gradState(t, gp) {
				t.Error("generator got no gradient")
			}
			if got := gradState(t, qp); got != tc.query {
				t.Errorf("question encoder gradient: got %v, want %v", got, tc.query)
			}
		})
	}
}

// TestGradientFlowRAG: the generation phase trains the generator and the
// question encoder through the inner products with the index's vectors.
func TestGradientFlowRAG(t *testing.T) {
	e, q, _, g, qs := tinyModels(t)
	ctx := context.Background()
	for _, obj := range []string{"sequence", "token"} {
		e.cfg.Generator.Objective = obj
		task, err := e.ragTask(q, g, qs, qs, func(string) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		zeroGrads(t, task.Params["question_encoder"], task.Params["generator"])
		s := torch.NewScope()
		loss, _, err := task.Loss(ctx, s, Batch{Idx: []int{0, 1, 2}, Global: []int{0, 1, 2}})
		if err != nil {
			t.Fatal(err)
		}
		s.Backward(loss)
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if !gradState(t, task.Params["question_encoder"]) || !gradState(t, task.Params["generator"]) {
			t.Errorf("%s: question encoder %v, generator %v (want both)", obj,
				gradState(t, task.Params["question_encoder"]), gradState(t, task.Params["generator"]))
		}
	}
}

func paramValues(t *testing.T, ps []torch.Param) [][]float32 {
	t.Helper()
	out := make([][]float32, len(ps))
	for i, p := range ps {
		v, err := p.Tensor.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		out[i] = v
	}
	return out
}

// TestResumeEquality: a run killed after a checkpoint and resumed (into
// freshly initialised models) ends with the same weights, optimiser path and
// loss curve as the uninterrupted run, dropout included.
func TestResumeEquality(t *testing.T) {
	ds, ix := tinyDataset(t)
	cfg := tinyConfig(t.TempDir())
	cfg.Dropout = 0.1
	e, err := newEnv(cfg, ds, ix)
	if err != nil {
		t.Fatal(err)
	}
	defer e.close()
	ctx := context.Background()
	ranked, err := e.bm25(ctx, e.trainQ, 8)
	if err != nil {
		t.Fatal(err)
	}
	exs, err := e.hardNegatives(e.trainQ, ranked, 1)
	if err != nil {
		t.Fatal(err)
	}
	o := Opt{MaxSteps: 6, BatchSize: 2, Accum: 2, LR: 1e-2, Warmup: 0.2, WeightDecay: 0.01, ClipNorm: 1, CheckpointEvery: 2, EvalEvery: 3, Patience: 0}
	run := func(dir string, initSeed uint64, ro RunOptions) ([][]float32, *Result) {
		torch.ManualSeed(initSeed)
		q, err := e.loadBiEncoder("", true, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		c, err := e.loadBiEncoder("", false, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		task, err := e.dprTask("dpr", q, c, exs, nil)
		if err != nil {
			t.Fatal(err)
		}
		task.Eval = func(ctx context.Context) (map[string]float64, error) {
			return map[string]float64{"recall@20": 0.5}, nil
		}
		r, err := Run(ctx, task, o, 7, dir, ro)
		if err != nil {
			t.Fatal(err)
		}
		return append(paramValues(t, task.Params["question_encoder"]), paramValues(t, task.Params["ctx_encoder"])...), r
	}
	whole, rw := run(filepath.Join(cfg.Out, "whole"), 1, RunOptions{})
	dir := filepath.Join(cfg.Out, "killed")
	_, rk := run(dir, 1, RunOptions{StopAt: 5})
	if rk.Step != 5 {
		t.Fatalf("killed run stopped at %d", rk.Step)
	}
	resumed, rr := run(dir, 99, RunOptions{Resume: true})
	if rr.Step != 6 || len(rr.Loss) != len(rw.Loss) {
		t.Fatalf("resumed run: %d steps, %d losses; uninterrupted: %d, %d", rr.Step, len(rr.Loss), rw.Step, len(rw.Loss))
	}
	for i := range rw.Loss {
		if rw.Loss[i] != rr.Loss[i] {
			t.Errorf("loss %d: uninterrupted %v, resumed %v", i, rw.Loss[i], rr.Loss[i])
		}
	}
	for i := range whole {
		for j := range whole[i] {
			if whole[i][j] != resumed[i][j] {
				t.Fatalf("parameter %d element %d: uninterrupted %v, resumed %v", i, j, whole[i][j], resumed[i][j])
			}
		}
	}
	for _, f := range []string{"loss.png", "metrics.png", "history.json", "checkpoint/state.json",
		"model/question_encoder/config.json", "model/question_encoder/tokenizer.json", "model/ctx_encoder/model.safetensors"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	if _, err := neural.LoadEncoder(filepath.Join(dir, "model", "question_encoder"), neural.Options{}); err != nil {
		t.Errorf("saved encoder does not load: %v", err)
	}
	// A corrupt checkpoint is an error naming it, not a panic.
	if err := os.WriteFile(filepath.Join(dir, "checkpoint", "state.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	q, _ := e.loadBiEncoder("", true, nil)
	defer q.Close()
	c, _ := e.loadBiEncoder("", false, nil)
	defer c.Close()
	task, _ := e.dprTask("dpr", q, c, exs, nil)
	if _, err := Run(ctx, task, o, 7, dir, RunOptions{Resume: true}); err == nil || !strings.Contains(err.Error(), "state.json") {
		t.Errorf("corrupt checkpoint: got %v", err)
	}
}

// TestBatchStream: micro-batches are a pure function of (seed, index), each
// epoch a permutation of all examples.
func TestBatchStream(t *testing.T) {
	seen := map[int]int{}
	for m := 0; m < 5; m++ {
		for _, i := range batchAt(3, 10, 2, m) {
			seen[i]++
		}
	}
	if len(seen) != 10 {
		t.Fatalf("one epoch covers %d of 10 examples", len(seen))
	}
	a, b := batchAt(3, 10, 2, 7), batchAt(3, 10, 2, 7)
	if a[0] != b[0] || a[1] != b[1] {
		t.Fatal("batchAt is not deterministic")
	}
}

// TestConfigChecks: bad settings are errors naming the field.
func TestConfigChecks(t *testing.T) {
	for _, c := range []*Config{FinetuneConfig(), SmallConfig(), LargeConfig()} {
		if err := c.Check(); err != nil {
			t.Fatal(err)
		}
	}
	for name, mut := range map[string]func(c *Config){
		"query_encoder": func(c *Config) { c.E2E.QueryEncoder = "both" },
		"objective":     func(c *Config) { c.Generator.Objective = "tokens" },
		"bert":          func(c *Config) { c.BERT.Heads = 3 },
		"temperature":   func(c *Config) { c.E2E.Temperature = 0 },
		"lr":            func(c *Config) { c.Reranker.LR = 0 },
		"max_positions": func(c *Config) { c.PassageLen = 1000 },
		"init":          func(c *Config) { c.Init = "random" },
		"dtype":         func(c *Config) { c.DType = "float8" },
		"dense_k":       func(c *Config) { c.E2E.DenseK, c.E2E.SparseK = 0, 0 },
		"warmup":        func(c *Config) { c.E2E.Warmup = 2 },
		// numbers out of range, NaN included (issue 14)
		"threads":              func(c *Config) { c.Threads = 100000 },
		"max_train":            func(c *Config) { c.MaxTrain = -1 },
		"max_dev":              func(c *Config) { c.MaxDev = -5 },
		"dropout":              func(c *Config) { c.Dropout = math.NaN() },
		"e2e.epochs":           func(c *Config) { c.E2E.Epochs = math.NaN() },
		"reranker.batch_size":  func(c *Config) { c.Reranker.BatchSize = -1 },
		"generator.grad_accum": func(c *Config) { c.Generator.Accum = -2 },
		"e2e.eval_every":       func(c *Config) { c.E2E.EvalEvery = -1 },
		"dpr.stage1.patience":  func(c *Config) { c.DPR.Stage1.Patience = -1 },
		"e2e.distill_weight":   func(c *Config) { c.E2E.DistillWeight = 2 },
		"e2e.temperature":      func(c *Config) { c.E2E.Temperature = math.Inf(1) },
		"generator.k":          func(c *Config) { c.Generator.K = 1 << 20 },
		"answer_len":           func(c *Config) { c.AnswerLen = -1 },
	} {
		c := SmallConfig()
		mut(c)
		err := c.Check()
		if err == nil {
			t.Errorf("%s: no error", name)
		} else if strings.Contains(name, ".") || name == "threads" || strings.HasPrefix(name, "max_") || name == "dropout" || name == "answer_len" {
			if !strings.Contains(err.Error(), name) {
				t.Errorf("%s: error %q does not name it", name, err)
			}
		}
	}
	p := t.TempDir() + "/bad.json"
	os.WriteFile(p, []byte(`{"dpr": [}`), 0o644)
	if _, err := LoadConfig(p, nil); err == nil {
		t.Error("malformed config: no error")
	}
	// a config saved with a UTF-8 byte order mark reads as without it
	os.WriteFile(p, []byte("\xef\xbb\xbf"+`{"seed": 7}`), 0o644)
	if c, err := LoadConfig(p, nil); err != nil || c.Seed != 7 {
		t.Errorf("config with a byte order mark: %v", err)
	}
}

// TestBFloat16Training: --dtype bfloat16 trains under autocast with float32
// master weights: every phase runs, the first DPR loss is the float32 one
// within bf16's precision, and the saved weights are float32.
func TestBFloat16Training(t *testing.T) {
	ds, ix := tinyDataset(t)
	first := map[string]float64{}
	for _, dt := range []string{"float32", "bfloat16"} {
		cfg := tinyConfig(t.TempDir())
		cfg.DType = dt
		m, err := TrainAll(context.Background(), cfg, ds, Models{Index: ix}, RunOptions{})
		if err != nil {
			t.Fatalf("%s: %v", dt, err)
		}
		first[dt] = m.Phases[0].Reports[0].FirstLoss
		for _, p := range m.Phases {
			for _, r := range p.Reports {
				if r.Steps != 2 || r.LastLoss != r.LastLoss {
					t.Errorf("%s %s: %d steps, last loss %v", dt, r.Phase, r.Steps, r.LastLoss)
				}
			}
		}
		f, err := torch.OpenSafetensors(filepath.Join(m.Final.Generator, "model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range f.Names() {
			if info, _ := f.Info(n); info.DType != torch.Float32 {
				t.Errorf("%s: saved %s is %v", dt, n, info.DType)
			}
		}
		f.Close()
	}
	if d := first["bfloat16"] - first["float32"]; d > 0.02*first["float32"] || d < -0.02*first["float32"] {
		t.Errorf("first DPR loss: float32 %v, bfloat16 %v", first["float32"], first["bfloat16"])
	}
	t.Logf("first DPR loss: float32 %.5f, bfloat16 %.5f", first["float32"], first["bfloat16"])
}
