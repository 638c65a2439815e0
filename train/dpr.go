package train

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/re2g/re2g/faiss"
	"github.com/re2g/re2g/kilt"
	"github.com/re2g/re2g/model/bert"
	"github.com/re2g/re2g/torch"
)

// retrievalMetrics scores ranked passage lists against gold provenance:
// KILT R-Precision and Recall@k (gold found in the first k).
func (e *env) retrievalMetrics(qs []Question, ranked [][]int, ks ...int) map[string]float64 {
	m := map[string]float64{}
	for i, q := range qs {
		ids := e.ids(ranked[i])
		m["r_precision"] += kilt.RPrecision(ids, [][]string{q.Gold})
		for _, k := range ks {
			hit := 0.0
			for _, j := range ranked[i][:min(k, len(ranked[i]))] {
				if e.isGold(q, j) {
					hit = 1
					break
				}
			}
			m[fmt.Sprintf("recall@%d", k)] += hit
		}
	}
	for k := range m {
		m[k] /= float64(len(qs))
	}
	return m
}

// evalDPR is Recall@20 and R-Precision of dense retrieval over the whole
// corpus for the questions qs.
func (e *env) evalDPR(ctx context.Context, q, c *bert.DPR, qs []Question) (map[string]float64, error) {
	ix, err := e.buildIndex(ctx, c, nil)
	if err != nil {
		return nil, err
	}
	defer ix.close()
	ranked, _, err := e.denseSearch(ctx, q, ix, qs, 100)
	if err != nil {
		return nil, err
	}
	return e.retrievalMetrics(qs, ranked, 1, 5, 20, 100), nil
}

// firstNegative is the first passage of ranked that is not gold for q, or
// a seeded random training passage when there is none.
func (e *env) firstNegative(q Question, ranked []int, qi int) int {
	for _, j := range ranked {
		if !e.isGold(q, j) {
			return j
		}
	}
	for k := 0; ; k++ {
		j := e.train[int(uint64(qi*7919+k*104729)+e.cfg.Seed)%len(e.train)]
		if !e.isGold(q, j) {
			return j
		}
	}
}

// bm25Negatives are DPR stage 1's hard negatives.
func (e *env) bm25Negatives(ctx context.Context) ([]int, error) {
	ranked, _, err := e.search(ctx, e.bmTrain, e.trainQ, e.cfg.DPR.NegativeDepth)
	if err != nil {
		return nil, err
	}
	neg := make([]int, len(e.trainQ))
	for i, q := range e.trainQ {
		neg[i] = e.firstNegative(q, ranked[i], i)
	}
	return neg, nil
}

// denseNegatives are DPR stage 2's hard negatives: the training passages
// embedded by the stage-1 context encoder in a FAISS HNSW index, searched
// with the stage-1 question encoder.
func (e *env) denseNegatives(ctx context.Context, q, c *bert.DPR) ([]int, error) {
	ix, err := e.buildIndex(ctx, c, e.train)
	if err != nil {
		return nil, err
	}
	defer ix.close()
	h, err := faiss.NewHNSW(ix.dim, faiss.HNSWConfig{Metric: faiss.InnerProduct})
	if err != nil {
		return nil, err
	}
	defer h.Close()
	ids := make([]int64, len(ix.rows))
	for i := range ids {
		ids[i] = int64(i)
	}
	if err := h.Add(ctx, ix.flat, ids); err != nil {
		return nil, fmt.Errorf("hnsw: %w", err)
	}
	texts := make([]string, len(e.trainQ))
	for i, x := range e.trainQ {
		texts[i] = x.Text
	}
	qv, err := e.queryEncoder(q).EncodeQueries(ctx, texts)
	if err != nil {
		return nil, err
	}
	flat := make([]float32, 0, len(qv)*ix.dim)
	for _, v := range qv {
		flat = append(flat, v...)
	}
	res, err := h.Search(ctx, flat, e.cfg.DPR.NegativeDepth, nil)
	if err != nil {
		return nil, fmt.Errorf("hnsw search: %w", err)
	}
	neg := make([]int, len(e.trainQ))
	for i, x := range e.trainQ {
		row, _ := res.Row(i)
		var ranked []int
		for _, id := range row {
			if id >= 0 {
				ranked = append(ranked, ix.rows[id])
			}
		}
		neg[i] = e.firstNegative(x, ranked, i)
	}
	return neg, nil
}

// dprTask trains question and context encoders on (question, positive,
// hard negative) with DPR's in-batch loss.
func (e *env) dprTask(name string, q, c *bert.DPR, neg []int) (*Task, error) {
	qp, err := q.Parameters()
	if err != nil {
		return nil, err
	}
	t := &Task{
		Name: name, N: len(e.trainQ), Metric: "recall@20", Params: map[string][]torch.Param{},
		Loss: func(ctx context.Context, s *torch.Scope, idx []int) (*torch.Tensor, error) {
			texts := make([]string, len(idx))
			var rows []int
			at := map[int]int{}
			add := func(j int) int {
				if k, ok := at[j]; ok {
					return k
				}
				at[j] = len(rows)
				rows = append(rows, j)
				return at[j]
			}
			pos := make([]int64, len(idx))
			for i, k := range idx {
				x := e.trainQ[k]
				texts[i] = x.Text
				pos[i] = int64(add(e.pidx[x.Gold[0]]))
			}
			for _, k := range idx {
				add(neg[k])
			}
			qv, err := e.encodeQuestions(ctx, s, q, texts, true)
			if err != nil {
				return nil, err
			}
			cv, err := e.encodePassageRows(ctx, s, c, rows, true)
			if err != nil {
				return nil, err
			}
			return DPRLoss(s, qv, cv, pos), s.Err()
		},
		Eval: func(ctx context.Context) (map[string]float64, error) { return e.evalDPR(ctx, q, c, e.devQ) },
		Save: func(dir string) error {
			if err := e.saveDPR(filepath.Join(dir, "question_encoder"), q); err != nil {
				return err
			}
			return e.saveDPR(filepath.Join(dir, "ctx_encoder"), c)
		},
	}
	e.trainable(t, "question_encoder", qp)
	if c.Bert != q.Bert {
		cp, err := c.Parameters()
		if err != nil {
			return nil, err
		}
		e.trainable(t, "ctx_encoder", cp)
	}
	return t, nil
}

// PhaseReport is one phase's outcome.
type PhaseReport struct {
	Phase      string             `json:"phase"`
	Dir        string             `json:"dir"`
	Steps      int                `json:"steps"`
	Examples   int                `json:"examples"`
	Seconds    float64            `json:"seconds"`
	Throughput float64            `json:"examples_per_second"`
	Metrics    map[string]float64 `json:"metrics"` // final evaluation
}

func report(name, dir string, r *Result) PhaseReport {
	return PhaseReport{Phase: name, Dir: dir, Steps: r.Step, Examples: r.Examples, Seconds: r.Seconds, Throughput: r.Throughput, Metrics: r.Final}
}

// trainDPR runs both DPR stages; the stage-2 encoders are in out/dpr/stage2/model.
func (e *env) trainDPR(ctx context.Context, ro RunOptions) ([]PhaseReport, error) {
	var reps []PhaseReport
	// Stage 1.
	dir1 := filepath.Join(e.cfg.Out, "dpr", "stage1")
	torch.ManualSeed(e.cfg.Seed) // initialisation
	q, err := bert.NewDPR(e.bertConfig(0), true, e.dev)
	if err != nil {
		return nil, err
	}
	if err := e.initScratch(q.Bert, true); err != nil {
		q.Close()
		return nil, err
	}
	c := sharedContext(q)
	if !e.cfg.DPR.Shared {
		if c, err = bert.NewDPR(e.bertConfig(0), false, e.dev); err == nil {
			err = e.initScratch(c.Bert, true)
		}
		if err != nil {
			q.Close()
			return nil, err
		}
	}
	neg, err := e.bm25Negatives(ctx)
	if err == nil {
		var t *Task
		if t, err = e.dprTask("dpr-stage1", q, c, neg); err == nil {
			var r *Result
			if r, err = Run(ctx, t, e.cfg.DPR.Stage1, e.cfg.Seed, dir1, ro); err == nil {
				reps = append(reps, report("dpr-stage1", dir1, r))
			}
		}
	}
	q.Close()
	c.Close()
	if err != nil {
		return nil, err
	}
	if ro.StopAt > 0 {
		return reps, nil
	}
	// Stage 2: the best stage-1 encoders, hard negatives from their HNSW index.
	dir2 := filepath.Join(e.cfg.Out, "dpr", "stage2")
	if q, err = e.loadDPR(filepath.Join(dir1, "model", "question_encoder")); err != nil {
		return nil, err
	}
	defer q.Close()
	if c = sharedContext(q); !e.cfg.DPR.Shared {
		if c, err = e.loadDPR(filepath.Join(dir1, "model", "ctx_encoder")); err != nil {
			return nil, err
		}
	}
	defer c.Close()
	if neg, err = e.denseNegatives(ctx, q, c); err != nil {
		return nil, err
	}
	slog.Info("stage 2 negatives mined from HNSW", "questions", len(neg))
	t, err := e.dprTask("dpr-stage2", q, c, neg)
	if err != nil {
		return nil, err
	}
	r, err := Run(ctx, t, e.cfg.DPR.Stage2, e.cfg.Seed+1, dir2, ro)
	if err != nil {
		return nil, err
	}
	return append(reps, report("dpr-stage2", dir2, r)), nil
}

// sharedContext is a context encoder that shares q's weights (Siamese DPR).
func sharedContext(q *bert.DPR) *bert.DPR {
	return &bert.DPR{Cfg: q.Cfg, Bert: q.Bert, Proj: q.Proj, Question: false}
}

// initScratch applies the from-scratch initialisation of a DPR encoder
// (dpr: zeroCLS with token types, scaleOutput) or cross-encoder.
func (e *env) initScratch(m *bert.Model, dpr bool) error {
	if err := e.zeroCLS(m, dpr); err != nil {
		return err
	}
	if dpr {
		return scaleOutput(m)
	}
	return nil
}

// trainable drops the embeddings from ps (and from autograd) when the
// config freezes them: AdamW keeps moving a row for many steps after its
// word was last seen, so that in a from-scratch model every word seen in
// training drifts along a common direction and the passages of unseen
// (dev) articles fall to the bottom of every ranking. Frozen random
// embeddings keep seen and unseen words alike.
// The frozen tensors are still checkpointed, under group+"#frozen", so
// that a resumed run gets them back.
func (e *env) trainable(t *Task, group string, ps []torch.Param) {
	if !e.cfg.FreezeWordEmbeddings {
		t.Params[group] = ps
		return
	}
	var keep, frozen []torch.Param
	for _, p := range ps {
		if strings.Contains(p.Name, "_embeddings.") {
			p.Tensor.SetRequiresGrad(false)
			frozen = append(frozen, p)
			continue
		}
		keep = append(keep, p)
	}
	t.Params[group] = keep
	if t.Frozen == nil {
		t.Frozen = map[string][]torch.Param{}
	}
	t.Frozen[group] = frozen
}
