package train

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/indexdir"
	"github.com/re2g/re2g/internal/atomicfile"
	"github.com/re2g/re2g/kilt"
)

// Phases are the phase names, in training order.
var Phases = []string{"dpr", "generator", "reranker", "e2e"}

// IndexPositives maps provenance to the passages of the index at dir: by
// passage id when the corpus has passage-level ids, else every passage of
// the page whose paragraph range overlaps the provenance's
// (kilt.PassageMap: ids, pages and ranges only, no texts).
func IndexPositives(ctx context.Context, dir string) (Positives, error) {
	ix, err := indexdir.Open(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	defer ix.Close()
	// By row from the passage store: no list of every id in memory. Rows
	// of deleted passages are skipped (an updated index).
	pages := ix.HasPages()
	var live []uint32 // live rows, when some are deleted
	if ix.Len() != ix.Rows() {
		live = make([]uint32, 0, ix.Len())
		for r := range ix.Rows() {
			if !ix.Deleted(r) {
				live = append(live, uint32(r))
			}
		}
	}
	pm, err := kilt.NewPassageMapRows(ix.Len(), func(i int) (string, string, error) {
		if i&0xffff == 0 && ctx.Err() != nil {
			return "", "", ctx.Err()
		}
		r := i
		if live != nil {
			r = int(live[i])
		}
		p, err := ix.Row(r)
		if !pages {
			return p.ID, "", err
		}
		return p.ID, p.Page, err
	})
	if err != nil {
		return nil, fmt.Errorf("train: index %s: %w", dir, err)
	}
	slog.Info("passage map", "index", dir, "passages", pm.Len(), "pages", pm.Pages())
	return func(prov []data.KILTProvenance) ([]string, error) {
		ev := make([]kilt.Evidence, len(prov))
		for i, p := range prov {
			ev[i] = kilt.EvidenceFromData(p)
		}
		return pm.Positives(ev)
	}, nil
}

// OpenDataset reads the training and dev task files with positives from
// the index at dir.
func OpenDataset(ctx context.Context, trainPath, devPath, index string) (*Dataset, error) {
	pos, err := IndexPositives(ctx, index)
	if err != nil {
		return nil, err
	}
	return LoadDataset(ctx, trainPath, devPath, pos)
}

// Models are the model directories a run starts from ("" for a model
// made from scratch with Init scratch) and the index it reads.
type Models struct {
	QueryEncoder string `json:"query_encoder,omitempty"`
	CtxEncoder   string `json:"ctx_encoder,omitempty"`
	Reranker     string `json:"reranker,omitempty"`
	Generator    string `json:"generator,omitempty"`
	RAG          string `json:"rag,omitempty"`
	Index        string `json:"index,omitempty"`
}

// ManifestPhase is one phase of a run: what it read, what it wrote, its
// training report.
type ManifestPhase struct {
	Phase   string        `json:"phase"`
	Inputs  Models        `json:"inputs"`
	Outputs Models        `json:"outputs"`
	Reports []PhaseReport `json:"reports"`
	Started time.Time     `json:"started"`
	Seconds float64       `json:"seconds"`
}

// Manifest is a `re2g train all` run, written to out/run.json after each phase.
type Manifest struct {
	Config  *Config         `json:"config"`
	Data    []TaskStats     `json:"data"`
	Inputs  Models          `json:"inputs"`
	Phases  []ManifestPhase `json:"phases"`
	Final   Models          `json:"final"`
	Created time.Time       `json:"created"`
	// WorldSize is the number of data-parallel ranks that trained (1 alone).
	WorldSize int `json:"world_size"`
}

// write writes out/run.json (rank 0 alone under data parallelism).
func (m *Manifest) write(out string, rank int) error {
	if rank != 0 {
		return nil
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(out, "run.json"), append(b, '\n'), 0o644)
}

// TrainAll runs the four phases in the paper's order under out, each
// reading what the one before it wrote: DPR (out/dpr, which also encodes
// the corpus into out/dpr/index), the generator on that index
// (out/generator), the reranker on the lists of the generation phase's
// question encoder (out/reranker), and end to end (out/e2e-<option>). The
// run manifest out/run.json says which phase read and wrote what, with its
// metrics; Final are the models to serve.
func TrainAll(ctx context.Context, cfg *Config, ds *Dataset, in Models, ro RunOptions) (*Manifest, error) {
	if cfg.Out == "" {
		return nil, fmt.Errorf("train: no output folder")
	}
	m := &Manifest{Config: cfg, Data: ds.Stats, Inputs: in, Created: time.Now().UTC(), WorldSize: ro.Group.Size()}
	phase := func(name string, pin Models, f func() (Models, []PhaseReport, error)) (Models, error) {
		t0 := time.Now()
		out, reps, err := f()
		if err != nil {
			return Models{}, fmt.Errorf("phase %s: %w", name, err)
		}
		m.Phases = append(m.Phases, ManifestPhase{Phase: name, Inputs: pin, Outputs: out, Reports: reps, Started: t0.UTC(), Seconds: time.Since(t0).Seconds()})
		for _, r := range reps {
			slog.Info("phase done", "phase", r.Phase, "steps", r.Steps, "examples/s", fmt.Sprintf("%.1f", r.Throughput), "metrics", r.Metrics)
		}
		return out, m.write(cfg.Out, ro.Group.Rank())
	}
	dprIn := Models{QueryEncoder: in.QueryEncoder, CtxEncoder: in.CtxEncoder, Index: in.Index}
	if in.RAG != "" && dprIn.QueryEncoder == "" {
		dprIn.QueryEncoder = in.RAG
	}
	d, err := phase("dpr", dprIn, func() (Models, []PhaseReport, error) {
		o, reps, err := TrainDPR(ctx, cfg, ds, DPRInput{QueryEncoder: dprIn.QueryEncoder, CtxEncoder: dprIn.CtxEncoder, Index: in.Index}, filepath.Join(cfg.Out, "dpr"), ro)
		return Models{QueryEncoder: o.QueryEncoder, CtxEncoder: o.CtxEncoder, Index: o.Index}, reps, err
	})
	if err != nil {
		return m, err
	}
	genIn := Models{QueryEncoder: d.QueryEncoder, Generator: in.Generator, Index: d.Index}
	if genIn.Generator == "" {
		genIn.Generator = in.RAG
	}
	g, err := phase("generator", genIn, func() (Models, []PhaseReport, error) {
		o, rep, err := TrainGenerator(ctx, cfg, ds, GeneratorInput{QueryEncoder: genIn.QueryEncoder, Generator: genIn.Generator, Index: genIn.Index}, filepath.Join(cfg.Out, "generator"), ro)
		return Models{QueryEncoder: o.QueryEncoder, Generator: o.Generator, RAG: o.RAG}, []PhaseReport{rep}, err
	})
	if err != nil {
		return m, err
	}
	rrIn := Models{QueryEncoder: g.QueryEncoder, Reranker: in.Reranker, Index: d.Index}
	r, err := phase("reranker", rrIn, func() (Models, []PhaseReport, error) {
		o, rep, err := TrainReranker(ctx, cfg, ds, RerankerInput{QueryEncoder: rrIn.QueryEncoder, Reranker: rrIn.Reranker, Index: rrIn.Index}, filepath.Join(cfg.Out, "reranker"), ro)
		return Models{Reranker: o.Reranker}, []PhaseReport{rep}, err
	})
	if err != nil {
		return m, err
	}
	e2eIn := Models{QueryEncoder: g.QueryEncoder, Reranker: r.Reranker, Generator: g.Generator, Index: d.Index}
	if g.RAG != "" {
		e2eIn.Generator = g.RAG
	}
	e, err := phase("e2e", e2eIn, func() (Models, []PhaseReport, error) {
		o, rep, err := TrainE2E(ctx, cfg, ds, E2EInput{QueryEncoder: e2eIn.QueryEncoder, Reranker: e2eIn.Reranker, Generator: e2eIn.Generator, Index: e2eIn.Index},
			filepath.Join(cfg.Out, "e2e-"+cfg.E2E.QueryEncoder), ro)
		return Models{QueryEncoder: o.QueryEncoder, Reranker: o.Reranker, Generator: o.Generator, RAG: o.RAG}, []PhaseReport{rep}, err
	})
	if err != nil {
		return m, err
	}
	m.Final = Models{QueryEncoder: e.QueryEncoder, CtxEncoder: d.CtxEncoder, Reranker: e.Reranker, Generator: e.Generator, RAG: e.RAG, Index: d.Index}
	if e.RAG != "" {
		// A RAG generator is served from its RAG directory, which keeps
		// RAG's question handling (the question tokenizer's decoding).
		m.Final.Generator = e.RAG
	}
	return m, m.write(cfg.Out, ro.Group.Rank())
}
