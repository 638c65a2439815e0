package train

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"sort"

	"github.com/re2g/re2g/bm25"
	"github.com/re2g/re2g/internal/atomicfile"
	"github.com/re2g/re2g/model/bert"
	"github.com/re2g/re2g/neural"
	"github.com/re2g/re2g/pipeline"
	"github.com/re2g/re2g/torch"
)

// candidates are each question's merged DPR + BM25 list (passage indices,
// DPR hits first, as pipeline.Merge).
type candidates [][]int

// mergedLists builds the merged lists of qs: DPR's top denseK from ix (with
// question encoder q), then BM25's top sparseK from bm not already there.
func (e *env) mergedLists(ctx context.Context, q *bert.DPR, ix *denseIndex, bm *bm25.Index, qs []Question) (candidates, error) {
	cfg := e.cfg.Reranker
	var dense [][]int
	if cfg.DenseK > 0 {
		var err error
		if dense, _, err = e.denseSearch(ctx, q, ix, qs, cfg.DenseK); err != nil {
			return nil, err
		}
	}
	var sparse [][]int
	if cfg.SparseK > 0 {
		var err error
		if sparse, _, err = e.search(ctx, bm, qs, cfg.SparseK); err != nil {
			return nil, err
		}
	}
	out := make(candidates, len(qs))
	for i := range qs {
		var dh, sh []pipeline.Hit
		if dense != nil {
			for _, j := range dense[i] {
				dh = append(dh, pipeline.Hit{ID: e.d.Passages[j].ID})
			}
		}
		if sparse != nil {
			for _, j := range sparse[i] {
				sh = append(sh, pipeline.Hit{ID: e.d.Passages[j].ID})
			}
		}
		for _, c := range pipeline.Merge(dh, sh) {
			out[i] = append(out[i], e.pidx[c.ID])
		}
	}
	return out, nil
}

// cachedLists reads path (passage ids per question id) when it was built
// for the same questions, else builds the lists and writes them.
func (e *env) cachedLists(path string, qs []Question, build func() (candidates, error)) (candidates, error) {
	if b, err := os.ReadFile(path); err == nil {
		var m map[string][]string
		if json.Unmarshal(b, &m) == nil && len(m) == len(qs) {
			out := make(candidates, len(qs))
			ok := true
			for i, q := range qs {
				ids, found := m[q.ID]
				if !found {
					ok = false
					break
				}
				for _, id := range ids {
					j, known := e.pidx[id]
					if !known {
						ok = false
						break
					}
					out[i] = append(out[i], j)
				}
			}
			if ok {
				return out, nil
			}
		}
	}
	c, err := build()
	if err != nil {
		return nil, err
	}
	m := make(map[string][]string, len(qs))
	for i, q := range qs {
		m[q.ID] = e.ids(c[i])
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	return c, atomicfile.WriteFile(path, b, 0o644)
}

func (e *env) reranker(c *bert.CrossEncoder) *neural.Reranker {
	return neural.NewReranker(c, e.tok, neural.Options{Device: e.dev, MaxLength: e.cfg.PairLen, BatchSize: 64})
}

// rerankLogits scores every candidate of every question in one forward pass
// and returns the flat logits [ΣN] in s.
func (e *env) rerankLogits(ctx context.Context, s *torch.Scope, c *bert.CrossEncoder, qs []Question, lists candidates, train bool) (*torch.Tensor, error) {
	var pairs []neural.Pair
	for i, q := range qs {
		for _, j := range lists[i] {
			p := e.d.Passages[j]
			pairs = append(pairs, neural.Pair{Query: q.Text, Passage: p.Title + " / " + p.Text})
		}
	}
	in, err := e.reranker(c).Tokenize(ctx, s, pairs)
	if err != nil {
		return nil, err
	}
	return c.Scores(s, in, train), s.Err()
}

// rerankOrder sorts each list by the reranker, best first (stable).
func (e *env) rerankOrder(ctx context.Context, c *bert.CrossEncoder, qs []Question, lists candidates) (candidates, [][]float64, error) {
	out := make(candidates, len(qs))
	scores := make([][]float64, len(qs))
	for lo := 0; lo < len(qs); lo += 16 {
		hi := min(len(qs), lo+16)
		s := torch.NewScope().NoGrad()
		z, err := e.rerankLogits(ctx, s, c, qs[lo:hi], lists[lo:hi], false)
		var v []float64
		if err == nil {
			v, err = z.Float64s()
		}
		s.Close()
		if err != nil {
			return nil, nil, err
		}
		at := 0
		for i := lo; i < hi; i++ {
			n := len(lists[i])
			idx := make([]int, n)
			for k := range idx {
				idx[k] = k
			}
			zz := v[at : at+n]
			sort.SliceStable(idx, func(a, b int) bool { return zz[idx[a]] > zz[idx[b]] })
			for _, k := range idx {
				out[i] = append(out[i], lists[i][k])
				scores[i] = append(scores[i], zz[k])
			}
			at += n
		}
	}
	return out, scores, nil
}

// evalReranker compares the merged order with the reranked one on lists.
func (e *env) evalReranker(ctx context.Context, c *bert.CrossEncoder, qs []Question, lists candidates) (map[string]float64, error) {
	ranked, _, err := e.rerankOrder(ctx, c, qs, lists)
	if err != nil {
		return nil, err
	}
	m := map[string]float64{}
	for k, v := range e.retrievalMetrics(qs, ranked, 1, 5) {
		m[k] = v
	}
	for k, v := range e.retrievalMetrics(qs, lists, 1, 5) {
		m["merged_"+k] = v
	}
	return m, nil
}

// rerankLoss is the mean over questions with a gold candidate of
// −Σ_{i∈Prov} log softmax(z)_i; nil when no question has one.
func (e *env) rerankLoss(s *torch.Scope, z *torch.Tensor, qs []Question, lists candidates) *torch.Tensor {
	var total *torch.Tensor
	n := 0
	at := int64(0)
	for i, q := range qs {
		l := int64(len(lists[i]))
		var gold []int64
		for k, j := range lists[i] {
			if e.isGold(q, j) {
				gold = append(gold, int64(k))
			}
		}
		if loss := RerankLoss(s, s.Slice(z, 0, at, at+l, 1), gold); loss != nil {
			if total == nil {
				total = loss
			} else {
				total = s.Add(total, loss)
			}
			n++
		}
		at += l
	}
	if total == nil {
		return nil
	}
	return s.DivScalar(total, float64(n))
}

// listSources loads the DPR the lists come from: the question encoder of
// the generation phase and the stage-2 context encoder.
func (e *env) listSources(ctx context.Context) (q *bert.DPR, trainIx, allIx *denseIndex, err error) {
	qdir := filepath.Join(e.cfg.Out, "generator", "model", "question_encoder")
	if q, err = e.loadDPR(qdir); err != nil {
		return nil, nil, nil, err
	}
	c, err := e.loadDPR(filepath.Join(e.cfg.Out, "dpr", "stage2", "model", "ctx_encoder"))
	if err != nil {
		q.Close()
		return nil, nil, nil, err
	}
	defer c.Close()
	if trainIx, err = e.buildIndex(ctx, c, e.train); err == nil {
		if allIx, err = e.buildIndex(ctx, c, nil); err != nil {
			trainIx.close()
		}
	}
	if err != nil {
		q.Close()
		return nil, nil, nil, err
	}
	return q, trainIx, allIx, nil
}

// lists are the cached merged candidate lists of the training questions
// (training corpus) and of qs (whole corpus) for the query encoder q.
func (e *env) lists(ctx context.Context, tag string, q *bert.DPR, trainIx, allIx *denseIndex, qs []Question) (tr, dv candidates, err error) {
	dir := filepath.Join(e.cfg.Out, "candidates")
	// The cache is keyed by the question encoder's weights.
	b, err := os.ReadFile(filepath.Join(e.cfg.Out, "generator", "model", "question_encoder", "model.safetensors"))
	if err != nil {
		return nil, nil, err
	}
	h := fnv.New64a()
	h.Write(b)
	tag = fmt.Sprintf("%s-%016x", tag, h.Sum64())
	tr, err = e.cachedLists(filepath.Join(dir, tag+"-train.json"), e.trainQ, func() (candidates, error) {
		return e.mergedLists(ctx, q, trainIx, e.bmTrain, e.trainQ)
	})
	if err != nil {
		return nil, nil, err
	}
	dv, err = e.cachedLists(filepath.Join(dir, fmt.Sprintf("%s-dev%d.json", tag, len(qs))), qs, func() (candidates, error) {
		return e.mergedLists(ctx, q, allIx, e.bmAll, qs)
	})
	return tr, dv, err
}

// trainReranker is phase 3: a cross-encoder on the merged candidates of the
// training questions, lists built once and cached.
func (e *env) trainReranker(ctx context.Context, ro RunOptions) (PhaseReport, error) {
	q, trainIx, allIx, err := e.listSources(ctx)
	if err != nil {
		return PhaseReport{}, err
	}
	defer q.Close()
	defer trainIx.close()
	defer allIx.close()
	tr, dv, err := e.lists(ctx, "rerank", q, trainIx, allIx, e.devQ)
	if err != nil {
		return PhaseReport{}, err
	}
	torch.ManualSeed(e.cfg.Seed + 3) // initialisation
	c, err := bert.NewCrossEncoder(e.bertConfig(1), e.dev)
	if err != nil {
		return PhaseReport{}, err
	}
	defer c.Close()
	if err := e.initScratch(c.Bert, false); err != nil {
		return PhaseReport{}, err
	}
	cp, err := c.Parameters()
	if err != nil {
		return PhaseReport{}, err
	}
	t := &Task{
		Name: "reranker", N: len(e.trainQ), Metric: "r_precision",
		Params: map[string][]torch.Param{},
		Loss: func(ctx context.Context, s *torch.Scope, idx []int) (*torch.Tensor, error) {
			qs := make([]Question, len(idx))
			ls := make(candidates, len(idx))
			for i, j := range idx {
				qs[i], ls[i] = e.trainQ[j], tr[j]
			}
			z, err := e.rerankLogits(ctx, s, c, qs, ls, true)
			if err != nil {
				return nil, err
			}
			return e.rerankLoss(s, z, qs, ls), s.Err()
		},
		Eval: func(ctx context.Context) (map[string]float64, error) { return e.evalReranker(ctx, c, e.devQ, dv) },
		Save: func(dir string) error { return e.saveCross(filepath.Join(dir, "reranker"), c) },
	}
	e.trainable(t, "reranker", cp)
	dir := filepath.Join(e.cfg.Out, "reranker")
	r, err := Run(ctx, t, e.cfg.Reranker.Opt, e.cfg.Seed+3, dir, ro)
	if err != nil {
		return PhaseReport{}, err
	}
	return report("reranker", dir, r), nil
}
