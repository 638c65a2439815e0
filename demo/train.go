package demo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/indexdir"
	"github.com/re2g/re2g/train"
)

// TrainConfig is the demo's training budget: train.SmallConfig's shapes,
// from scratch, with a fixed number of updates per phase so that the whole
// demo stays within about ten minutes on two CPU cores.
func TrainConfig(work string) *train.Config {
	cfg := train.SmallConfig()
	cfg.Init = train.InitScratch
	cfg.Out = filepath.Join(work, "train")
	cfg.Tokenizer = filepath.Join(work, "tokenizer.json")
	cfg.MaxDev = 100
	cfg.QueryLen, cfg.PassageLen, cfg.PairLen, cfg.SourceLen, cfg.AnswerLen = 32, 96, 128, 128, 12
	steps := func(o train.Opt, n int) train.Opt {
		o.MaxSteps, o.EvalEvery, o.CheckpointEvery, o.Patience = n, 0, 100, 0
		return o
	}
	cfg.DPR.Stage1 = steps(cfg.DPR.Stage1, 120)
	cfg.DPR.Stage2 = steps(cfg.DPR.Stage2, 60)
	cfg.Generator.Opt = steps(cfg.Generator.Opt, 1200)
	cfg.Reranker.Opt = steps(cfg.Reranker.Opt, 1000)
	cfg.E2E.Opt = steps(cfg.E2E.Opt, 60)
	return cfg
}

// Train is the demo's Trainer: it learns a WordPiece vocabulary from the
// corpus, builds a BM25 index of it, then trains all four Re2G phases from
// scratch (train.TrainAll with --init scratch, as `re2g train all` does) on
// the KILT task files the demo wrote (train.jsonl, heldout.jsonl), and
// returns the final models: the context encoder of DPR, and the question
// encoder, reranker and generator chosen on dev.
func Train(ctx context.Context, work string, passages []data.Passage, trainQA, devQA []QA) (Models, error) {
	start := time.Now()
	texts := make([]string, 0, len(passages)+len(trainQA))
	for _, p := range passages {
		texts = append(texts, p.Title+" "+p.Text)
	}
	for _, q := range trainQA {
		texts = append(texts, q.Question)
	}
	cfg := TrainConfig(work)
	n, err := WriteTokenizer(cfg.Tokenizer, texts, 12000)
	if err != nil {
		return Models{}, err
	}
	corpusPath := filepath.Join(work, "corpus.jsonl")
	bm := filepath.Join(work, "train-index")
	if ix, err := indexdir.Open(ctx, bm); err == nil {
		ix.Close()
	} else {
		os.RemoveAll(bm)
		if _, err := indexdir.Build(ctx, corpusPath, indexdir.Options{Out: bm, Progress: os.Stderr}); err != nil {
			return Models{}, err
		}
	}
	ds, err := train.OpenDataset(ctx, filepath.Join(work, "train.jsonl"), filepath.Join(work, "heldout.jsonl"), bm)
	if err != nil {
		return Models{}, err
	}
	os.MkdirAll(cfg.Out, 0o755)
	fmt.Fprintf(os.Stderr, "demo: training four phases from scratch (vocabulary %d, %d training questions) into %s\n", n, len(ds.Train), cfg.Out)
	m, err := train.TrainAll(ctx, cfg, ds, train.Models{Index: bm}, train.RunOptions{Resume: true, Progress: os.Stderr})
	if err != nil {
		return Models{}, err
	}
	return choose(m, time.Since(start))
}

// choose picks the models the demo answers with from what training wrote,
// by the dev metrics training measured: the end-to-end phase's question
// encoder only if it kept DPR's Recall@20, and a reranker only if it
// ranks the merged candidates better than their merged order does. A
// component that did not learn enough in the demo's budget is left out
// (and said so) rather than allowed to spoil the answers.
func choose(man *train.Manifest, took time.Duration) (Models, error) {
	metrics := map[string]map[string]float64{}
	outs := map[string]train.Models{}
	for _, p := range man.Phases {
		outs[p.Phase] = p.Outputs
		for _, r := range p.Reports {
			metrics[r.Phase] = r.Metrics
		}
	}
	d := outs["dpr"]
	m := Models{CtxEncoder: d.CtxEncoder, QueryEncoder: d.QueryEncoder}
	if m.CtxEncoder == "" || m.QueryEncoder == "" {
		return Models{}, fmt.Errorf("demo: training left no DPR encoders")
	}
	var notes []string
	e2e := metrics["e2e-distill"]
	dpr := metrics["dpr-stage2"]
	if dpr == nil {
		dpr = metrics["dpr-stage1"]
	}
	if e2e["dpr_recall@20"] >= dpr["index_recall@20"] {
		m.QueryEncoder = man.Final.QueryEncoder
	} else {
		notes = append(notes, fmt.Sprintf("DPR question encoder of stage 2 (Recall@20 %.2f; after distillation %.2f)", dpr["index_recall@20"], e2e["dpr_recall@20"]))
	}
	rr := metrics["reranker"]
	rrDir, rrScore := outs["reranker"].Reranker, rr["r_precision"]
	if v, ok := e2e["r_precision"]; ok && v > rrScore {
		rrDir, rrScore = man.Final.Reranker, v
	}
	// The merged order the pipeline would keep without a reranker starts
	// with the hits of the question encoder it uses; training measured the
	// reranker against lists from the generation phase's encoder, which can
	// be worse, so the baseline is the better of the two.
	base := max(rr["merged_r_precision"], dpr["index_r_precision"])
	if m.QueryEncoder != d.QueryEncoder {
		base = max(rr["merged_r_precision"], e2e["dpr_r_precision"])
	}
	if rrScore > base {
		m.Reranker = rrDir
	} else {
		notes = append(notes, fmt.Sprintf("no reranker: its dev R-Precision %.2f is below the merged order's %.2f", rrScore, base))
	}
	m.Generator = man.Final.Generator
	m.Note = fmt.Sprintf("trained from scratch here in %.0f s (DPR, generator, reranker, end-to-end with distillation; %s)", took.Seconds(), man.Config.Out)
	if len(notes) > 0 {
		m.Note += "; chosen on dev: " + strings.Join(notes, "; ")
	}
	return m, nil
}
