package train

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/re2g/re2g/internal/atomicfile"
	"github.com/re2g/re2g/model/bart"
	"github.com/re2g/re2g/model/bert"
	"github.com/re2g/re2g/torch"
)

// Phases are the phase names, in training order.
var Phases = []string{"dpr", "generator", "reranker", "e2e"}

// Report is the outcome of a run: each phase's training report, and the
// held-out table when it was computed.
type Report struct {
	Phases []PhaseReport                 `json:"phases"`
	Table  map[string]map[string]float64 `json:"table,omitempty"`
}

// RunPhases trains the named phases in order on d (each phase reads the
// models of the phases before it from cfg.Out).
func RunPhases(ctx context.Context, cfg *Config, d *Data, phases []string, ro RunOptions) (*Report, error) {
	if cfg.Threads > 0 {
		torch.SetNumThreads(cfg.Threads)
	}
	e, err := newEnv(ctx, cfg, d)
	if err != nil {
		return nil, err
	}
	defer e.close()
	slog.Info("data", "passages", len(d.Passages), "train_passages", len(e.train), "train_questions", len(e.trainQ), "dev_questions", len(d.Dev))
	rep := &Report{}
	for _, p := range phases {
		var prs []PhaseReport
		switch p {
		case "dpr":
			prs, err = e.trainDPR(ctx, ro)
		case "generator":
			var pr PhaseReport
			pr, err = e.trainGenerator(ctx, ro)
			prs = []PhaseReport{pr}
		case "reranker":
			var pr PhaseReport
			pr, err = e.trainReranker(ctx, ro)
			prs = []PhaseReport{pr}
		case "e2e":
			var pr PhaseReport
			pr, err = e.trainE2E(ctx, ro)
			prs = []PhaseReport{pr}
		default:
			return nil, fmt.Errorf("train: unknown phase %q (want %s)", p, strings.Join(Phases, ", "))
		}
		if err != nil {
			return rep, fmt.Errorf("phase %s: %w", p, err)
		}
		rep.Phases = append(rep.Phases, prs...)
		for _, pr := range prs {
			slog.Info("phase done", "phase", pr.Phase, "steps", pr.Steps, "examples/s", fmt.Sprintf("%.1f", pr.Throughput), "metrics", pr.Metrics)
		}
	}
	return rep, nil
}

// RunAll trains the four phases, then evaluates the held-out table.
func RunAll(ctx context.Context, cfg *Config, d *Data, ro RunOptions) (*Report, error) {
	rep, err := RunPhases(ctx, cfg, d, Phases, ro)
	if err != nil {
		return rep, err
	}
	tab, err := Evaluate(ctx, cfg, d)
	if err != nil {
		return rep, err
	}
	rep.Table = tab
	b, _ := json.MarshalIndent(rep, "", " ")
	return rep, atomicfile.WriteFile(filepath.Join(cfg.Out, "report.json"), b, 0o644)
}

// Evaluate computes the held-out table from the models under cfg.Out (those
// that exist): BM25 alone, DPR stages 1 and 2, the merged list against the
// reranker, the generation phase and each end-to-end option. It writes
// out/results.json and out/results.md.
func Evaluate(ctx context.Context, cfg *Config, d *Data) (map[string]map[string]float64, error) {
	e, err := newEnv(ctx, cfg, d)
	if err != nil {
		return nil, err
	}
	defer e.close()
	qs := e.finalQ
	tab := map[string]map[string]float64{}
	ranked, _, err := e.search(ctx, e.bmAll, qs, 100)
	if err != nil {
		return nil, err
	}
	tab["bm25"] = e.retrievalMetrics(qs, ranked, 1, 5, 20, 100)
	exists := func(p ...string) bool {
		_, err := os.Stat(filepath.Join(append([]string{cfg.Out}, p...)...))
		return err == nil
	}
	for _, st := range []string{"stage1", "stage2"} {
		if !exists("dpr", st, "model") {
			continue
		}
		dir := filepath.Join(cfg.Out, "dpr", st, "model")
		q, err := e.loadDPR(filepath.Join(dir, "question_encoder"))
		if err != nil {
			return nil, err
		}
		c, err := e.loadDPR(filepath.Join(dir, "ctx_encoder"))
		if err != nil {
			q.Close()
			return nil, err
		}
		m, err := e.evalDPR(ctx, q, c, qs)
		q.Close()
		c.Close()
		if err != nil {
			return nil, err
		}
		tab["dpr-"+st] = m
	}
	if !exists("generator", "model") || !exists("dpr", "stage2", "model") {
		return tab, writeTable(cfg.Out, tab)
	}
	q, trainIx, allIx, err := e.listSources(ctx)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	defer trainIx.close()
	defer allIx.close()
	g, err := bart.Load(filepath.Join(cfg.Out, "generator", "model", "generator"), modelOptions(e.dev))
	if err != nil {
		return nil, err
	}
	if tab["generator"], err = e.evalRAG(ctx, q, g, allIx, qs, cfg.Generator.K); err != nil {
		g.Close()
		return nil, err
	}
	g.Close()
	if exists("reranker", "model") {
		_, dv, err := e.lists(ctx, "rerank", q, trainIx, allIx, qs)
		if err != nil {
			return nil, err
		}
		rr, err := bert.LoadCrossEncoder(filepath.Join(cfg.Out, "reranker", "model", "reranker"), modelOptions(e.dev))
		if err != nil {
			return nil, err
		}
		m, err := e.evalReranker(ctx, rr, qs, dv)
		rr.Close()
		if err != nil {
			return nil, err
		}
		tab["reranker"] = m
	}
	for _, opt := range []string{Combined, Frozen, Distill} {
		dir := filepath.Join(cfg.Out, "e2e-"+opt, "model")
		if !exists("e2e-"+opt, "model") {
			continue
		}
		m, err := e.evalE2EDir(ctx, dir, allIx, qs)
		if err != nil {
			return nil, fmt.Errorf("evaluate e2e-%s: %w", opt, err)
		}
		tab["e2e-"+opt] = m
	}
	return tab, writeTable(cfg.Out, tab)
}

func (e *env) evalE2EDir(ctx context.Context, dir string, allIx *denseIndex, qs []Question) (map[string]float64, error) {
	q, err := e.loadDPR(filepath.Join(dir, "question_encoder"))
	if err != nil {
		return nil, err
	}
	defer q.Close()
	rr, err := bert.LoadCrossEncoder(filepath.Join(dir, "reranker"), modelOptions(e.dev))
	if err != nil {
		return nil, err
	}
	defer rr.Close()
	g, err := bart.Load(filepath.Join(dir, "generator"), modelOptions(e.dev))
	if err != nil {
		return nil, err
	}
	defer g.Close()
	return e.evalE2E(ctx, e2eModels{q: q, rr: rr, g: g, ix: allIx}, qs)
}

// writeTable writes results.json and a Markdown table.
func writeTable(out string, tab map[string]map[string]float64) error {
	b, err := json.MarshalIndent(tab, "", " ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(out, "results.json"), b, 0o644); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(out, "results.md"), []byte(FormatTable(tab)), 0o644)
}

// FormatTable renders the held-out table as Markdown.
func FormatTable(tab map[string]map[string]float64) string {
	rows := []string{"bm25", "dpr-stage1", "dpr-stage2", "generator", "reranker", "e2e-combined", "e2e-frozen", "e2e-distill"}
	cols := []string{"r_precision", "recall@5", "recall@20", "merged_r_precision", "dpr_recall@20", "em", "f1"}
	var b strings.Builder
	b.WriteString("| system | " + strings.Join(cols, " | ") + " |\n|---|" + strings.Repeat("---|", len(cols)) + "\n")
	seen := map[string]bool{}
	emit := func(r string) {
		m, ok := tab[r]
		if !ok || seen[r] {
			return
		}
		seen[r] = true
		b.WriteString("| " + r + " |")
		for _, c := range cols {
			if v, ok := m[c]; ok {
				fmt.Fprintf(&b, " %.3f |", v)
			} else {
				b.WriteString(" |")
			}
		}
		b.WriteString("\n")
	}
	for _, r := range rows {
		emit(r)
	}
	var rest []string
	for r := range tab {
		rest = append(rest, r)
	}
	sort.Strings(rest)
	for _, r := range rest {
		emit(r)
	}
	return b.String()
}
