package train

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/model/bart"
	"github.com/re2g/re2g/model/bert"
	"github.com/re2g/re2g/torch"
)

const tokDir = "../../shared/data/tokenizers/bert-base-uncased"

func needTokenizer(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(tokDir, "tokenizer.json")); err != nil {
		t.Skip("no ../shared/data tokenizer: ", err)
	}
}

// tinyConfig is a config of minute models for tests.
func tinyConfig(out string) *Config {
	c := SmallConfig()
	c.Out, c.Tokenizer, c.Threads, c.Quiet = out, tokDir, 2, true
	c.BERT = Shape{Hidden: 16, Layers: 1, Heads: 2, FFN: 32, MaxPos: 64}
	c.BART = Shape{Hidden: 16, Layers: 1, Heads: 2, FFN: 32, MaxPos: 64}
	c.QueryLen, c.PassageLen, c.PairLen, c.SourceLen, c.AnswerLen = 16, 32, 48, 48, 8
	c.Reranker.DenseK, c.Reranker.SparseK = 2, 3
	c.E2E.K, c.Generator.K = 2, 2
	return c
}

// tinyData is a six-passage corpus with four training and two dev questions.
func tinyData() *Data {
	ps := []data.Passage{
		{ID: "Paris#0", Title: "Paris", Text: "Paris is the capital of France and lies on the Seine."},
		{ID: "Paris#1", Title: "Paris", Text: "The Eiffel Tower was completed in 1889 for a world fair."},
		{ID: "Oslo#0", Title: "Oslo", Text: "Oslo is the capital of Norway at the head of a fjord."},
		{ID: "Oslo#1", Title: "Oslo", Text: "The Nobel Peace Prize is awarded in Oslo every December."},
		{ID: "Rome#0", Title: "Rome", Text: "Rome was founded, legend says, by Romulus in 753 BC."},
		{ID: "Rome#1", Title: "Rome", Text: "The Colosseum in Rome held about fifty thousand people."},
	}
	q := func(id, text, ans, gold string) Question {
		return Question{ID: id, Text: text, Answers: []string{ans}, Gold: []string{gold}}
	}
	return &Data{
		Passages:      ps,
		TrainPassages: []bool{true, true, true, true, false, false},
		Train: []Question{
			q("q1", "What is the capital of France?", "Paris", "Paris#0"),
			q("q2", "When was the Eiffel Tower completed?", "1889", "Paris#1"),
			q("q3", "Which city is the capital of Norway?", "Oslo", "Oslo#0"),
			q("q4", "Where is the Nobel Peace Prize awarded?", "Oslo", "Oslo#1"),
		},
		Dev: []Question{
			q("d1", "Who founded Rome?", "Romulus", "Rome#0"),
			q("d2", "How many people did the Colosseum hold?", "fifty thousand", "Rome#1"),
		},
	}
}

func tinyEnv(t *testing.T) *env {
	t.Helper()
	needTokenizer(t)
	e, err := newEnv(context.Background(), tinyConfig(t.TempDir()), tinyData())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.close)
	return e
}

// gradState says, per parameter group, whether some parameter got a
// non-zero gradient.
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
// each --query-encoder option: the reranker and the generator always; the
// question encoder with combined and distill only; the context encoder
// (the fixed index) never.
func TestGradientFlowE2E(t *testing.T) {
	e := tinyEnv(t)
	ctx := context.Background()
	torch.ManualSeed(3)
	q, err := bert.NewDPR(e.bertConfig(0), true, e.dev)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	c, err := bert.NewDPR(e.bertConfig(0), false, e.dev)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rr, err := bert.NewCrossEncoder(e.bertConfig(1), e.dev)
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Close()
	g, err := bart.New(e.bartConfig(), e.dev)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ix, err := e.buildIndex(ctx, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.close()
	// Every parameter of the query encoder requires grad, even for frozen:
	// the option itself must keep gradients away from it.
	qp, _ := q.Parameters()
	rp, _ := rr.Parameters()
	gp, _ := g.Parameters()
	cp, _ := c.Parameters()
	lists := candidates{{0, 1, 2, 3}, {2, 3, 0}}
	qs := e.trainQ[:2]
	m := e2eModels{q: q, rr: rr, g: g, ix: ix}
	for _, tc := range []struct {
		option string
		query  bool
	}{{Combined, true}, {Frozen, false}, {Distill, true}} {
		t.Run(tc.option, func(t *testing.T) {
			zeroGrads(t, qp, rp, gp, cp)
			s := torch.NewScope()
			defer s.Close()
			loss, err := e.e2eLoss(ctx, s, m, qs, lists, tc.option)
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
			if gradState(t, cp) {
				t.Error("context encoder (fixed index) got a gradient")
			}
		})
	}
	// Distillation alone (no generation loss): the reranker is the teacher
	// and is detached, so only the question encoder learns from the KL.
	t.Run("distill-teacher-detached", func(t *testing.T) {
		zeroGrads(t, qp, rp, gp, cp)
		s := torch.NewScope()
		defer s.Close()
		z, err := e.rerankLogits(ctx, s, rr, qs[:1], lists[:1], false)
		if err != nil {
			t.Fatal(err)
		}
		qv, err := e.encodeQuestions(ctx, s, q, []string{qs[0].Text}, false)
		if err != nil {
			t.Fatal(err)
		}
		p := s.IndexSelect(ix.m, 0, s.FromInt64([]int64{0, 1, 2, 3}, 4))
		d := s.Matmul(p, s.Select(qv, 0, 0))
		s.Backward(DistillLoss(s, s.Unsqueeze(d, 0), s.Unsqueeze(z, 0), 10))
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		if !gradState(t, qp) || gradState(t, rp) {
			t.Errorf("KL(reranker ‖ DPR): question encoder grad %v (want true), reranker grad %v (want false)", gradState(t, qp), gradState(t, rp))
		}
	})
}

// TestGradientFlowRAG: the generation phase trains the generator and the
// question encoder through the retrieval scores; the index stays fixed.
func TestGradientFlowRAG(t *testing.T) {
	e := tinyEnv(t)
	ctx := context.Background()
	torch.ManualSeed(4)
	q, _ := bert.NewDPR(e.bertConfig(0), true, e.dev)
	defer q.Close()
	c, _ := bert.NewDPR(e.bertConfig(0), false, e.dev)
	defer c.Close()
	g, err := bart.New(e.bartConfig(), e.dev)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ix, err := e.buildIndex(ctx, c, e.train)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.close()
	cp, _ := c.Parameters()
	for _, obj := range []string{"sequence", "token"} {
		e.cfg.Generator.Objective = obj
		task, err := e.ragTask(q, g, ix, ix)
		if err != nil {
			t.Fatal(err)
		}
		zeroGrads(t, task.Params["question_encoder"], task.Params["generator"], cp)
		s := torch.NewScope()
		loss, err := task.Loss(ctx, s, []int{0, 1, 2})
		if err != nil {
			t.Fatal(err)
		}
		s.Backward(loss)
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if !gradState(t, task.Params["question_encoder"]) || !gradState(t, task.Params["generator"]) || gradState(t, cp) {
			t.Errorf("%s: question encoder %v, generator %v (want both), context encoder %v (want none)", obj,
				gradState(t, task.Params["question_encoder"]), gradState(t, task.Params["generator"]), gradState(t, cp))
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
	e := tinyEnv(t)
	ctx := context.Background()
	neg, err := e.bm25Negatives(ctx)
	if err != nil {
		t.Fatal(err)
	}
	o := Opt{MaxSteps: 6, BatchSize: 2, Accum: 2, LR: 1e-2, Warmup: 0.2, WeightDecay: 0.01, ClipNorm: 1, CheckpointEvery: 2, EvalEvery: 3, Patience: 0}
	run := func(dir string, initSeed uint64, ro RunOptions) ([][]float32, *Result) {
		torch.ManualSeed(initSeed)
		q, _ := bert.NewDPR(e.bertConfig(0), true, e.dev)
		defer q.Close()
		c, _ := bert.NewDPR(e.bertConfig(0), false, e.dev)
		defer c.Close()
		task, err := e.dprTask("dpr", q, c, neg)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Run(ctx, task, o, 7, dir, ro)
		if err != nil {
			t.Fatal(err)
		}
		return append(paramValues(t, task.Params["question_encoder"]), paramValues(t, task.Params["ctx_encoder"])...), r
	}
	whole, rw := run(filepath.Join(e.cfg.Out, "whole"), 1, RunOptions{})
	dir := filepath.Join(e.cfg.Out, "killed")
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
	// The run wrote curves, history and Hugging Face model directories.
	for _, f := range []string{"loss.png", "metrics.png", "history.json", "checkpoint/state.json",
		"model/question_encoder/config.json", "model/question_encoder/tokenizer.json", "model/ctx_encoder/model.safetensors"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	if _, err := bert.LoadDPR(filepath.Join(dir, "model", "question_encoder"), modelOptions(e.dev)); err != nil {
		t.Errorf("saved encoder does not load: %v", err)
	}
	// A corrupt checkpoint is an error naming it, not a panic.
	if err := os.WriteFile(filepath.Join(dir, "checkpoint", "state.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	q, _ := bert.NewDPR(e.bertConfig(0), true, e.dev)
	defer q.Close()
	c, _ := bert.NewDPR(e.bertConfig(0), false, e.dev)
	defer c.Close()
	task, _ := e.dprTask("dpr", q, c, neg)
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
