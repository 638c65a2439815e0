package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/indexdir"
	"github.com/re2g/re2g/internal/atomicfile"
	"github.com/re2g/re2g/kilt"
	"github.com/re2g/re2g/neural"
	"github.com/re2g/re2g/pipeline"
)

// Models are the model directories the demo answers with; empty ones are
// left out of the pipeline.
type Models struct {
	QueryEncoder, CtxEncoder, Reranker, Generator string
	// Note says where the models came from, for the report.
	Note string
}

// Trainer trains small models on the demo's training questions and returns
// their directories (under work).
type Trainer func(ctx context.Context, work string, corpus []data.Passage, train, dev []QA) (Models, error)

// Options configure Run.
type Options struct {
	Work    string // working directory
	GoRoot  string
	Models  Models // given model directories; empty: train them with Train
	Train   Trainer
	Neural  neural.Options
	Show    int       // held-out questions to print with their answers (default 5)
	Out     io.Writer // report (default stdout)
	Percent int       // held-out share of packages (default 20)
}

// Run is the demo: corpus → (training) → index → answers → KILT metrics.
func Run(ctx context.Context, o Options) (*kilt.Result, error) {
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Show <= 0 {
		o.Show = 5
	}
	if o.Percent <= 0 {
		o.Percent = 20
	}
	start := time.Now()
	if err := os.MkdirAll(o.Work, 0o755); err != nil {
		return nil, err
	}
	c, err := Build(o.GoRoot)
	if err != nil {
		return nil, err
	}
	train, dev := Split(c.QA, o.Percent, "re2g-demo")
	fmt.Fprintf(o.Out, "corpus: Go %s documentation, %d passages; %d questions (%d for training, %d held out by package)\n",
		goVersion(o.GoRoot), len(c.Passages), len(c.QA), len(train), len(dev))
	corpusPath := filepath.Join(o.Work, "corpus.jsonl")
	if err := writeCorpus(corpusPath, c.Passages); err != nil {
		return nil, err
	}
	goldPath := filepath.Join(o.Work, "heldout.jsonl")
	gold := kiltRecords(dev, c.Passages)
	if err := kilt.WriteFile(goldPath, gold); err != nil {
		return nil, err
	}
	if err := kilt.WriteFile(filepath.Join(o.Work, "train.jsonl"), kiltRecords(train, c.Passages)); err != nil {
		return nil, err
	}

	m := o.Models
	if m == (Models{}) {
		if o.Train == nil {
			m.Note = "no models given and no trainer: BM25 retrieval only"
		} else {
			if m, err = o.Train(ctx, o.Work, c.Passages, train, dev); err != nil {
				return nil, fmt.Errorf("demo: training: %w", err)
			}
		}
	} else if m.Note == "" {
		m.Note = "models given on the command line"
	}
	fmt.Fprintf(o.Out, "models: %s\n", m.Note)

	index := filepath.Join(o.Work, "index")
	os.RemoveAll(index)
	io := indexdir.Options{Out: index, Progress: os.Stderr}
	if m.CtxEncoder != "" {
		enc, err := neural.LoadEncoder(m.CtxEncoder, o.Neural)
		if err != nil {
			return nil, err
		}
		defer enc.Close()
		io.Encoder, io.EncoderDir = enc, m.CtxEncoder
	}
	t0 := time.Now()
	if _, err := indexdir.Build(ctx, corpusPath, io); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Out, "index: %s (%.1f s)\n", index, time.Since(t0).Seconds())

	p, err := pipeline.New(pipeline.Config{Index: index, QueryEncoder: m.QueryEncoder, Reranker: m.Reranker,
		Generator: m.Generator, Models: o.Neural, MaxNewTokens: 16})
	if err != nil {
		return nil, err
	}
	defer p.Close()
	fmt.Fprintf(o.Out, "\n%d held-out questions:\n", o.Show)
	for _, q := range dev[:min(o.Show, len(dev))] {
		r, err := p.Answer(ctx, q.Question)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(o.Out, "\nQ: %s\n", q.Question)
		if r.Answer != "" {
			fmt.Fprintf(o.Out, "A: %s (p = %.2f)   gold: %s\n", r.Answer, r.Score, q.Answers[0])
		} else {
			fmt.Fprintf(o.Out, "   gold: %s\n", q.Answers[0])
		}
		for i, pv := range r.Provenance[:min(3, len(r.Provenance))] {
			mark := " "
			if pv.ID == q.PassageID {
				mark = "*"
			}
			fmt.Fprintf(o.Out, "  %s%d. %-40s p = %.2f  %s\n", mark, i+1, pv.ID, pv.Prob, clip(pv.Text, 70))
		}
	}
	t0 = time.Now()
	preds, err := p.Predict(ctx, gold, true, 16, true)
	if err != nil {
		return nil, err
	}
	if err := kilt.WriteFile(filepath.Join(o.Work, "predictions.jsonl"), preds); err != nil {
		return nil, err
	}
	res, err := kilt.Evaluate(gold, preds, kilt.Options{})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Out, "\nKILT metrics on %d held-out questions (passage-level provenance; %.1f s):\n", len(gold), time.Since(t0).Seconds())
	report(o.Out, res)
	fmt.Fprintf(o.Out, "\ndemo finished in %.1f s; files in %s\n", time.Since(start).Seconds(), o.Work)
	b, _ := json.Marshal(res)
	fmt.Fprintln(o.Out, string(b))
	return res, nil
}

func report(w io.Writer, r *kilt.Result) {
	row := func(group string, m map[string]float64, keys ...string) {
		for _, k := range keys {
			if v, ok := m[k]; ok {
				fmt.Fprintf(w, "  %-10s %-12s %.4f\n", group, k, v)
			}
		}
	}
	row("retrieval", r.Retrieval, "Rprec", "recall@5", "precision@1")
	row("answer", r.Downstream, "em", "f1", "accuracy", "rougel")
	kk := make([]string, 0, len(r.KILT))
	for k := range r.KILT {
		kk = append(kk, k)
	}
	sort.Strings(kk)
	row("kilt", r.KILT, kk...)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func goVersion(goroot string) string {
	b, err := os.ReadFile(filepath.Join(goroot, "VERSION"))
	if err != nil {
		return "toolchain"
	}
	return strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
}

func writeCorpus(path string, ps []data.Passage) error {
	return atomicfile.Write(path, 0o644, func(w io.Writer) error { return data.WriteCorpus(w, ps) })
}

// kiltRecords turns questions into a KILT task file with passage-level provenance.
func kiltRecords(qa []QA, ps []data.Passage) []kilt.Record {
	titles := make(map[string]string, len(ps))
	for _, p := range ps {
		titles[p.ID] = p.Title
	}
	recs := make([]kilt.Record, 0, len(qa))
	for _, q := range qa {
		r := kilt.NewGold(q.ID, q.Question, q.Answers, []kilt.Provenance{{"wikipedia_id": q.PassageID, "title": titles[q.PassageID]}})
		recs = append(recs, r)
	}
	return recs
}
