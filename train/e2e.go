package train

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"

	"github.com/re2g/re2g/pipeline"
	"github.com/re2g/re2g/torch"
)

// E2EInput are the end-to-end phase's inputs: the three trained models and
// the index (its stored vectors by the fixed context encoder).
type E2EInput struct {
	QueryEncoder, Reranker, Generator string
	Index                             string
}

// E2EOutput are the models it writes (RAG when the generator came from a
// RAG directory).
type E2EOutput struct {
	QueryEncoder, Reranker, Generator, RAG string
}

type e2eModels struct {
	q  *biEncoder
	rr *crossEncoder
	g  *generatorModel
}

// e2eLoss is phase 4's loss for questions qs with candidate lists: the
// reranker's logits over each list pick the top K passages and weight them
// in the generator's RAG-Sequence likelihood. With Combined the DPR scores
// (question vector · the passages' stored vectors) are added to the
// reranker's; with Distill, weight·KL(reranker ‖ DPR) over the whole list
// (temperature T) is added to the loss; with Frozen the question encoder
// takes no part. At most maxK passages of each list are marginalised (the
// caller's cap: the shortest list of the whole micro-batch under data
// parallelism, so that every rank keeps as many as one process would).
func (e *env) e2eLoss(ctx context.Context, s *torch.Scope, m e2eModels, qs []Question, ls [][]pipeline.Candidate, option string, maxK int) (*torch.Tensor, error) {
	c := e.cfg.E2E
	k := min(c.K, maxK)
	for _, l := range ls {
		k = min(k, len(l))
	}
	if k == 0 {
		return nil, fmt.Errorf("e2e: empty candidate list")
	}
	z, err := e.rerankLogits(ctx, s, m.rr, qs, ls, true)
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
		qv = toFloat32(s, qv)
	}
	docs := make([]*torch.Tensor, len(qs))
	rows := make([][]pipeline.Candidate, len(qs))
	var kl *torch.Tensor
	at := 0
	d := int64(e.ix.Dim())
	for i := range qs {
		n := len(ls[i])
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
			rows[i] = append(rows[i], ls[i][order[j]])
		}
		topT := s.To(s.FromInt64(top, int64(k)), e.dev)
		doc := s.IndexSelect(zi, 0, topT)
		if qv != nil {
			vecs, found, err := e.ix.Vectors(candIDs(ls[i]))
			if err != nil {
				return nil, err
			}
			for j, f := range found {
				if !f {
					return nil, fmt.Errorf("e2e: passage %q has no stored vector in %s", ls[i][j].ID, e.ix.Dir)
				}
			}
			p := s.To(s.FromFloat32(vecs, int64(n), d), e.dev) // [n, D]
			di := s.Matmul(p, s.Select(qv, 0, int64(i)))       // [n]
			switch option {
			case Combined:
				doc = s.Add(doc, s.IndexSelect(di, 0, topT))
			case Distill:
				dl := DistillLoss(s, s.Unsqueeze(di, 0), s.Unsqueeze(zi, 0), c.Temperature)
				if kl == nil {
					kl = dl
				} else {
					kl = s.Add(kl, dl)
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

// evalE2E runs the pipeline as trained on qs: DPR (the current question
// encoder) + BM25 merged, reranked, top K generated and marginalised.
func (e *env) evalE2E(ctx context.Context, m e2eModels, qs []Question) (map[string]float64, error) {
	c := e.cfg.E2E
	ls, err := e.merged(ctx, m.q, qs, c.DenseK, c.SparseK)
	if err != nil {
		return nil, err
	}
	ranked, scores, err := e.rerankOrder(ctx, m.rr, qs, ls)
	if err != nil {
		return nil, err
	}
	ids := make([][]string, len(ranked))
	top := make([][]pipeline.Candidate, len(qs))
	sc := make([][]float64, len(qs))
	for i := range ranked {
		ids[i] = candIDs(ranked[i])
		n := min(c.K, len(ranked[i]))
		top[i], sc[i] = ranked[i][:n], scores[i][:n]
	}
	met := retrievalMetrics(qs, ids, 1, 5)
	dense, err := e.dense(ctx, m.q, qs, 20)
	if err != nil {
		return nil, err
	}
	dids := make([][]string, len(dense))
	for i, h := range dense {
		dids[i] = hitIDs(h)
	}
	dm := retrievalMetrics(qs, dids, 20)
	met["dpr_recall@20"], met["dpr_r_precision"] = dm["recall@20"], dm["r_precision"]
	preds, err := e.answers(ctx, m.g, qs, top, sc)
	if err != nil {
		return nil, err
	}
	for k, v := range answerMetrics(qs, preds) {
		met[k] = v
	}
	return met, nil
}

// TrainE2E is phase 4 with the configured query-encoder option: reranker
// and generator (and, unless frozen, the question encoder) learn together
// on the merged DPR + BM25 lists of in.Index.
func TrainE2E(ctx context.Context, cfg *Config, ds *Dataset, in E2EInput, out string, ro RunOptions) (E2EOutput, PhaseReport, error) {
	e, err := newEnv(cfg, ds, in.Index)
	if err != nil {
		return E2EOutput{}, PhaseReport{}, err
	}
	defer e.close()
	e.g = ro.Group
	logData("e2e", e)
	option := cfg.E2E.QueryEncoder
	trainQ, devQ := withAnswers(e.trainQ), withAnswers(e.devQ)
	if len(trainQ) == 0 || len(devQ) == 0 {
		return E2EOutput{}, PhaseReport{}, fmt.Errorf("train e2e: no training or dev examples with an answer")
	}
	if in.QueryEncoder == "" {
		return E2EOutput{}, PhaseReport{}, fmt.Errorf("train e2e: give --query-encoder DIR (the generation phase's): it makes the candidate lists")
	}
	q, err := e.loadBiEncoder(in.QueryEncoder, true, nil)
	if err != nil {
		return E2EOutput{}, PhaseReport{}, err
	}
	defer q.Close()
	torch.ManualSeed(cfg.Seed + 4) // initialisation of models made from scratch
	rr, err := e.loadReranker(in.Reranker)
	if err != nil {
		return E2EOutput{}, PhaseReport{}, err
	}
	defer rr.Close()
	g, err := e.loadGenerator(in.Generator)
	if err != nil {
		return E2EOutput{}, PhaseReport{}, err
	}
	defer g.Close()
	trL, err := e.candidateLists(ctx, q, in.QueryEncoder, trainQ, cfg.E2E.DenseK, cfg.E2E.SparseK, filepath.Join(out, "candidates"))
	if err != nil {
		return E2EOutput{}, PhaseReport{}, err
	}
	slog.Info("e2e lists", "train", len(trL), "option", option)
	m := e2eModels{q: q, rr: rr, g: g}
	model := filepath.Join(out, "model")
	res := E2EOutput{QueryEncoder: filepath.Join(model, "question_encoder"), Reranker: filepath.Join(model, "reranker"),
		Generator: filepath.Join(model, "generator")}
	ragDir := ""
	if g.rag != nil {
		ragDir = filepath.Join(model, "rag")
		res.RAG = ragDir
	}
	rp, err := rr.m.Parameters()
	if err != nil {
		return E2EOutput{}, PhaseReport{}, err
	}
	gp, err := g.m.Parameters()
	if err != nil {
		return E2EOutput{}, PhaseReport{}, err
	}
	t := &Task{
		Name: "e2e-" + option, N: len(trainQ), Metric: "f1", Params: map[string][]torch.Param{"generator": gp}, NewScope: e.scope,
		Loss: func(ctx context.Context, s *torch.Scope, b Batch) (*torch.Tensor, int, error) {
			qs := make([]Question, len(b.Idx))
			ls := make([][]pipeline.Candidate, len(b.Idx))
			for i, j := range b.Idx {
				qs[i] = trainQ[j]
				var err error
				if ls[i], err = e.fill(trL[j]); err != nil {
					return nil, 0, err
				}
			}
			k := cfg.E2E.K
			for _, j := range b.Global {
				k = min(k, len(trL[j]))
			}
			loss, err := e.e2eLoss(ctx, s, m, qs, ls, option, k)
			return loss, len(qs), err
		},
		Eval: func(ctx context.Context) (map[string]float64, error) { return e.evalE2E(ctx, m, devQ) },
		Save: func(dir string) error {
			if err := e.saveGenerator(filepath.Join(dir, "generator"), g, q, rebase(ragDir, model, dir)); err != nil {
				return err
			}
			if err := e.saveCross(filepath.Join(dir, "reranker"), rr); err != nil {
				return err
			}
			return e.saveDPR(filepath.Join(dir, "question_encoder"), q)
		},
	}
	e.trainable(t, "reranker", rp)
	if option != Frozen {
		qp, err := q.m.Parameters()
		if err != nil {
			return E2EOutput{}, PhaseReport{}, err
		}
		e.trainable(t, "question_encoder", qp)
	}
	r, err := Run(ctx, t, cfg.E2E.Opt, cfg.Seed+4, out, ro)
	if err != nil {
		return E2EOutput{}, PhaseReport{}, err
	}
	return res, report("e2e-"+option, out, r), nil
}
