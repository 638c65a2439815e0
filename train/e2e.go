package train

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"

	"github.com/re2g/re2g/model/bart"
	"github.com/re2g/re2g/model/bert"
	"github.com/re2g/re2g/torch"
)

// e2eModels are the models of the end-to-end phase; ix holds every
// passage's fixed embedding (row i is passage i).
type e2eModels struct {
	q  *bert.DPR
	rr *bert.CrossEncoder
	g  *bart.Model
	ix *denseIndex
}

// e2eLoss is phase 4's loss for questions qs with candidate lists: the
// reranker's logits over each list pick the top K passages and weight them
// in the generator's RAG-Sequence likelihood. With Combined the DPR scores
// are added to the reranker's; with Distill, weight·KL(reranker ‖ DPR) over
// the whole list (temperature T) is added to the loss; with Frozen the
// question encoder takes no part.
func (e *env) e2eLoss(ctx context.Context, s *torch.Scope, m e2eModels, qs []Question, lists candidates, option string) (*torch.Tensor, error) {
	c := e.cfg.E2E
	k := c.K
	for _, l := range lists {
		k = min(k, len(l))
	}
	if k == 0 {
		return nil, fmt.Errorf("e2e: empty candidate list")
	}
	z, err := e.rerankLogits(ctx, s, m.rr, qs, lists, true)
	if err != nil {
		return nil, err
	}
	zv, err := s.Detach(z).Float64s()
	if err != nil {
		return nil, err
	}
	var qv *torch.Tensor
	if option != Frozen {
		texts := make([]string, len(qs))
		for i, q := range qs {
			texts[i] = q.Text
		}
		if qv, err = e.encodeQuestions(ctx, s, m.q, texts, true); err != nil {
			return nil, err
		}
	}
	docs := make([]*torch.Tensor, len(qs))
	rows := make([][]int, len(qs))
	var kl *torch.Tensor
	at := 0
	for i := range qs {
		n := len(lists[i])
		zi := s.Slice(z, 0, int64(at), int64(at+n), 1)
		order := make([]int, n)
		for j := range order {
			order[j] = j
		}
		vals := zv[at : at+n]
		sort.SliceStable(order, func(a, b int) bool { return vals[order[a]] > vals[order[b]] })
		top := make([]int64, k)
		for j := 0; j < k; j++ {
			top[j] = int64(order[j])
			rows[i] = append(rows[i], lists[i][order[j]])
		}
		topT := s.To(s.FromInt64(top, int64(k)), e.dev)
		doc := s.IndexSelect(zi, 0, topT)
		if qv != nil {
			li := make([]int64, n)
			for j, p := range lists[i] {
				li[j] = int64(p)
			}
			p := s.IndexSelect(m.ix.m, 0, s.To(s.FromInt64(li, int64(n)), e.dev)) // [n, D]
			di := s.Matmul(p, s.Select(qv, 0, int64(i)))                          // [n]
			switch option {
			case Combined:
				doc = s.Add(doc, s.IndexSelect(di, 0, topT))
			case Distill:
				d := DistillLoss(s, s.Unsqueeze(di, 0), s.Unsqueeze(zi, 0), c.Temperature)
				if kl == nil {
					kl = d
				} else {
					kl = s.Add(kl, d)
				}
			}
		}
		docs[i] = doc
		at += n
	}
	loss, err := e.ragLoss(ctx, s, m.g, qs, rows, s.Stack(0, docs...), "sequence")
	if err != nil {
		return nil, err
	}
	if kl != nil {
		loss = s.Add(loss, s.MulScalar(kl, c.DistillWeight/float64(len(qs))))
	}
	return loss, s.Err()
}

// evalE2E runs the trained pipeline on qs: DPR (the current question
// encoder) + BM25 merged, reranked, top K generated and marginalised.
func (e *env) evalE2E(ctx context.Context, m e2eModels, qs []Question) (map[string]float64, error) {
	lists, err := e.mergedLists(ctx, m.q, m.ix, e.bmAll, qs)
	if err != nil {
		return nil, err
	}
	ranked, scores, err := e.rerankOrder(ctx, m.rr, qs, lists)
	if err != nil {
		return nil, err
	}
	met := e.retrievalMetrics(qs, ranked, 1, 5)
	dense, _, err := e.denseSearch(ctx, m.q, m.ix, qs, 20)
	if err != nil {
		return nil, err
	}
	met["dpr_recall@20"] = e.retrievalMetrics(qs, dense, 20)["recall@20"]
	k := e.cfg.E2E.K
	top := make([][]int, len(qs))
	sc := make([][]float64, len(qs))
	for i := range ranked {
		n := min(k, len(ranked[i]))
		top[i], sc[i] = ranked[i][:n], scores[i][:n]
	}
	preds, err := e.answers(ctx, e.generator(m.g), qs, top, sc)
	if err != nil {
		return nil, err
	}
	for k, v := range answerMetrics(qs, preds) {
		met[k] = v
	}
	return met, nil
}

// trainE2E is phase 4 with the configured query-encoder option; it starts
// from the generation phase's generator and question encoder and the
// reranker phase's reranker, and writes under out/e2e-<option>.
func (e *env) trainE2E(ctx context.Context, ro RunOptions) (PhaseReport, error) {
	option := e.cfg.E2E.QueryEncoder
	q, trainIx, allIx, err := e.listSources(ctx)
	if err != nil {
		return PhaseReport{}, err
	}
	defer q.Close()
	defer trainIx.close()
	defer allIx.close()
	tr, _, err := e.lists(ctx, "rerank", q, trainIx, allIx, e.devQ)
	if err != nil {
		return PhaseReport{}, err
	}
	rr, err := bert.LoadCrossEncoder(filepath.Join(e.cfg.Out, "reranker", "model", "reranker"), modelOptions(e.dev))
	if err != nil {
		return PhaseReport{}, err
	}
	defer rr.Close()
	g, err := bart.Load(filepath.Join(e.cfg.Out, "generator", "model", "generator"), modelOptions(e.dev))
	if err != nil {
		return PhaseReport{}, err
	}
	defer g.Close()
	m := e2eModels{q: q, rr: rr, g: g, ix: allIx}
	t, err := e.e2eTask(m, tr, option)
	if err != nil {
		return PhaseReport{}, err
	}
	dir := filepath.Join(e.cfg.Out, "e2e-"+option)
	r, err := Run(ctx, t, e.cfg.E2E.Opt, e.cfg.Seed+4, dir, ro)
	if err != nil {
		return PhaseReport{}, err
	}
	return report("e2e-"+option, dir, r), nil
}

func (e *env) e2eTask(m e2eModels, tr candidates, option string) (*Task, error) {
	rp, err := m.rr.Parameters()
	if err != nil {
		return nil, err
	}
	gp, err := m.g.Parameters()
	if err != nil {
		return nil, err
	}
	t := &Task{
		Name: "e2e-" + option, N: len(e.trainQ), Metric: "f1", Params: map[string][]torch.Param{"generator": gp},
		Loss: func(ctx context.Context, s *torch.Scope, idx []int) (*torch.Tensor, error) {
			qs := make([]Question, len(idx))
			ls := make(candidates, len(idx))
			for i, j := range idx {
				qs[i], ls[i] = e.trainQ[j], tr[j]
			}
			return e.e2eLoss(ctx, s, m, qs, ls, option)
		},
		Eval: func(ctx context.Context) (map[string]float64, error) { return e.evalE2E(ctx, m, e.devQ) },
		Save: func(dir string) error {
			if err := e.saveBART(filepath.Join(dir, "generator"), m.g); err != nil {
				return err
			}
			if err := e.saveCross(filepath.Join(dir, "reranker"), m.rr); err != nil {
				return err
			}
			return e.saveDPR(filepath.Join(dir, "question_encoder"), m.q)
		},
	}
	e.trainable(t, "reranker", rp)
	if option != Frozen {
		qp, err := m.q.Parameters()
		if err != nil {
			return nil, err
		}
		e.trainable(t, "question_encoder", qp)
	}
	return t, nil
}
