package demo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/train"
)

// TrainConfig is the demo's training budget: train.SmallConfig's shapes,
// with a fixed number of updates per phase so that the whole demo stays
// within about ten minutes on two CPU cores.
func TrainConfig(work string) *train.Config {
	cfg := train.SmallConfig()
	cfg.Out = filepath.Join(work, "train")
	cfg.Tokenizer = filepath.Join(work, "tokenizer.json")
	cfg.MaxDev, cfg.MaxDevFinal = 100, 100
	cfg.QueryLen, cfg.PassageLen, cfg.PairLen, cfg.SourceLen, cfg.AnswerLen = 32, 96, 128, 128, 12
	steps := func(o train.Opt, n int) train.Opt {
		o.MaxSteps, o.EvalEvery, o.CheckpointEvery, o.Patience = n, 0, 100, 0
		return o
	}
	cfg.DPR.Stage1 = steps(cfg.DPR.Stage1, 120)
	cfg.DPR.Stage2 = steps(cfg.DPR.Stage2, 60)
	cfg.Generator.Opt = steps(cfg.Generator.Opt, 2000)
	cfg.Reranker.Opt = steps(cfg.Reranker.Opt, 1000)
	cfg.E2E.Opt = steps(cfg.E2E.Opt, 60)
	return cfg
}

// Train is the demo's Trainer: it learns a WordPiece vocabulary from the
// corpus, then trains all four Re2G phases from scratch with re2g's
// training (train.RunPhases) on the training questions, and returns the
// final models: the context encoder of DPR stage 2, and the question
// encoder, reranker and generator of the end-to-end phase (distillation).
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
	held := map[string]bool{}
	for _, q := range devQA {
		held[q.Package] = true
	}
	d := &train.Data{Passages: passages, TrainPassages: make([]bool, len(passages))}
	for i, p := range passages {
		d.TrainPassages[i] = !held[packageOfTitle(p.Title)]
	}
	conv := func(qs []QA) []train.Question {
		out := make([]train.Question, len(qs))
		for i, q := range qs {
			out[i] = train.Question{ID: q.ID, Text: q.Question, Answers: q.Answers, Gold: []string{q.PassageID}}
		}
		return out
	}
	d.Train, d.Dev = conv(trainQA), conv(devQA)
	os.MkdirAll(cfg.Out, 0o755)
	fmt.Fprintf(os.Stderr, "demo: training four phases from scratch (vocabulary %d, %d training questions) into %s\n", n, len(d.Train), cfg.Out)
	rep, err := train.RunPhases(ctx, cfg, d, train.Phases, train.RunOptions{Resume: true, Progress: os.Stderr})
	if err != nil {
		return Models{}, err
	}
	return choose(cfg.Out, rep, time.Since(start))
}

// choose picks the models the demo answers with from what training wrote,
// by the dev metrics training measured: the end-to-end phase's question
// encoder only if it kept DPR's Recall@20, and a reranker only if it
// ranks the merged candidates better than their merged order does. A
// component that did not learn enough in the demo's budget is left out
// (and said so) rather than allowed to spoil the answers.
func choose(o string, rep *train.Report, took time.Duration) (Models, error) {
	metrics := map[string]map[string]float64{}
	for _, p := range rep.Phases {
		metrics[p.Phase] = p.Metrics
	}
	pick := func(paths ...string) string {
		for _, p := range paths {
			if _, err := os.Stat(filepath.Join(p, "config.json")); err == nil {
				return p
			}
		}
		return ""
	}
	dpr2 := filepath.Join(o, "dpr", "stage2", "model")
	m := Models{CtxEncoder: pick(filepath.Join(dpr2, "ctx_encoder")), QueryEncoder: pick(filepath.Join(dpr2, "question_encoder"))}
	if m.CtxEncoder == "" || m.QueryEncoder == "" {
		return Models{}, fmt.Errorf("demo: training left no DPR encoders under %s", o)
	}
	var notes []string
	e2e, dpr := metrics["e2e-distill"], metrics["dpr-stage2"]
	if q := pick(filepath.Join(o, "e2e-distill", "model", "question_encoder")); q != "" && e2e["dpr_recall@20"] >= dpr["recall@20"] {
		m.QueryEncoder = q
	} else {
		notes = append(notes, fmt.Sprintf("DPR question encoder of stage 2 (Recall@20 %.2f; after distillation %.2f)", dpr["recall@20"], e2e["dpr_recall@20"]))
	}
	rr := metrics["reranker"]
	rrDir, rrScore := pick(filepath.Join(o, "reranker", "model", "reranker")), rr["r_precision"]
	if v, ok := e2e["r_precision"]; ok && v > rrScore {
		rrDir, rrScore = pick(filepath.Join(o, "e2e-distill", "model", "reranker")), v
	}
	// The merged order the pipeline would keep without a reranker starts
	// with the hits of the question encoder it uses; training measured the
	// reranker against lists from the generation phase's encoder, which can
	// be worse, so the baseline is the better of the two.
	base := max(rr["merged_r_precision"], dpr["r_precision"])
	if m.QueryEncoder != filepath.Join(dpr2, "question_encoder") {
		base = max(rr["merged_r_precision"], e2e["dpr_r_precision"])
	}
	if rrScore > base {
		m.Reranker = rrDir
	} else {
		notes = append(notes, fmt.Sprintf("no reranker: its dev R-Precision %.2f is below the merged order's %.2f", rrScore, base))
	}
	m.Generator = pick(filepath.Join(o, "e2e-distill", "model", "generator"), filepath.Join(o, "generator", "model", "generator"))
	m.Note = fmt.Sprintf("trained from scratch here in %.0f s (DPR, generator, reranker, end-to-end with distillation; %s)", took.Seconds(), o)
	if len(notes) > 0 {
		m.Note += "; chosen on dev: " + strings.Join(notes, "; ")
	}
	return m, nil
}

// packageOfTitle maps a function passage's title ("strings.Contains") to its package.
func packageOfTitle(t string) string {
	for i := len(t) - 1; i >= 0; i-- {
		if t[i] == '.' {
			return t[:i]
		}
		if t[i] == '/' {
			break
		}
	}
	return t
}
