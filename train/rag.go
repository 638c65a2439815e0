package train

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/re2g/re2g/kilt"
	"github.com/re2g/re2g/model/bart"
	"github.com/re2g/re2g/model/bert"
	"github.com/re2g/re2g/neural"
	"github.com/re2g/re2g/pipeline"
	"github.com/re2g/re2g/tokenizer"
	"github.com/re2g/re2g/torch"
)

// source is the generator's input for a question and a passage, question
// first so that truncation cuts the passage ("question // title / text").
func source(question, title, text string) string {
	return question + " // " + title + " / " + text
}

func (e *env) generator(m *bart.Model) *neural.Generator {
	return neural.NewGenerator(m, e.tok, e.genConfig(m), neural.Options{Device: e.dev, MaxLength: e.cfg.SourceLen, BatchSize: 48})
}

// labels tokenizes answers as "[CLS] answer [SEP]" padded with -100 [B, T].
func (e *env) labels(ctx context.Context, s *torch.Scope, answers []string) (*torch.Tensor, error) {
	in := make([]tokenizer.Input, len(answers))
	for i, a := range answers {
		in[i] = tokenizer.Input{A: a}
	}
	encs, err := e.tok.EncodeBatch(ctx, in, tokenizer.Options{MaxLength: e.cfg.AnswerLen})
	if err != nil {
		return nil, err
	}
	t := 0
	for _, x := range encs {
		t = max(t, len(x.IDs))
	}
	v := make([]int64, len(encs)*t)
	for i, x := range encs {
		for j := 0; j < t; j++ {
			v[i*t+j] = -100
			if j < len(x.IDs) {
				v[i*t+j] = int64(x.IDs[j])
			}
		}
	}
	return s.To(s.FromInt64(v, int64(len(encs)), int64(t)), e.dev), s.Err()
}

// ragLoss is the marginal negative log-likelihood of each question's first
// answer over K passages: docScores [B, K] weight the passages (retrieval or
// reranker scores, with gradients), rows[b][k] are the passages.
func (e *env) ragLoss(ctx context.Context, s *torch.Scope, m *bart.Model, qs []Question, rows [][]int, docScores *torch.Tensor, objective string) (*torch.Tensor, error) {
	b, k := len(qs), len(rows[0])
	srcs := make([]string, 0, b*k)
	answers := make([]string, b)
	for i, q := range qs {
		if len(q.Answers) == 0 {
			return nil, fmt.Errorf("question %s has no answer", q.ID)
		}
		answers[i] = q.Answers[0]
		for _, j := range rows[i] {
			p := e.d.Passages[j]
			srcs = append(srcs, source(q.Text, p.Title, p.Text))
		}
	}
	ids, mask, err := e.generator(m).Tokenize(ctx, s, srcs)
	if err != nil {
		return nil, err
	}
	lab, err := e.labels(ctx, s, answers)
	if err != nil {
		return nil, err
	}
	labK := s.RepeatInterleave(lab, int64(k), 0)
	dec := bart.ShiftRight(s, labK, m.Cfg.PadTokenID, m.Cfg.DecoderStartTokenID)
	enc := m.Encode(s, ids, mask, true)
	logits := m.Decode(s, dec, enc, mask, nil, true)
	if objective == "token" {
		return RAGTokenLoss(s, docScores, logits, lab), s.Err()
	}
	ll := s.View(SequenceLogLik(s, logits, labK), int64(b), int64(k))
	return RAGSequenceLoss(s, docScores, ll), s.Err()
}

// answer generates greedily from each of a question's passages and
// marginalises as RAG-Sequence, weighting passages by softmax(logits).
func (e *env) answers(ctx context.Context, g *neural.Generator, qs []Question, rows [][]int, logits [][]float64) ([]string, error) {
	var srcs []string
	for i, q := range qs {
		for _, j := range rows[i] {
			p := e.d.Passages[j]
			srcs = append(srcs, source(q.Text, p.Title, p.Text))
		}
	}
	outs, err := g.Generate(ctx, srcs, nil)
	if err != nil {
		return nil, err
	}
	res := make([]string, len(qs))
	at := 0
	for i := range qs {
		probs, err := pipeline.Softmax(logits[i])
		if err != nil {
			return nil, err
		}
		var gens []pipeline.Generation
		for z := range rows[i] {
			for _, o := range outs[at] {
				gens = append(gens, pipeline.Generation{Passage: z, Text: o.Text, Score: o.Score, Length: len(o.IDs)})
			}
			at++
		}
		ans, err := pipeline.Marginalize(probs, gens, pipeline.WeightConfig{Mode: pipeline.ScoreAsLogProb})
		if err != nil {
			return nil, err
		}
		if len(ans) > 0 {
			res[i] = ans[0].Text
		}
	}
	return res, nil
}

// answerMetrics are KILT's EM and F1 (best over the reference answers).
func answerMetrics(qs []Question, preds []string) map[string]float64 {
	em, f1 := 0.0, 0.0
	for i, q := range qs {
		be, bf := 0.0, 0.0
		for _, a := range q.Answers {
			if kilt.ExactMatch(preds[i], a) {
				be = 1
			}
			bf = max(bf, kilt.F1(preds[i], a))
		}
		em += be
		f1 += bf
	}
	n := float64(len(qs))
	return map[string]float64{"em": em / n, "f1": f1 / n}
}

// evalRAG answers qs from the top K dense passages of the whole corpus.
func (e *env) evalRAG(ctx context.Context, q *bert.DPR, m *bart.Model, all *denseIndex, qs []Question, k int) (map[string]float64, error) {
	rows, scores, err := e.denseSearch(ctx, q, all, qs, max(k, 20))
	if err != nil {
		return nil, err
	}
	met := e.retrievalMetrics(qs, rows, 20)
	top := make([][]int, len(rows))
	sc := make([][]float64, len(rows))
	for i := range rows {
		top[i], sc[i] = rows[i][:k], scores[i][:k]
	}
	preds, err := e.answers(ctx, e.generator(m), qs, top, sc)
	if err != nil {
		return nil, err
	}
	for k, v := range answerMetrics(qs, preds) {
		met[k] = v
	}
	return met, nil
}

// trainGenerator is phase 2: RAG over the stage-2 DPR, context encoder and
// index fixed; the generator and the question encoder learn.
func (e *env) trainGenerator(ctx context.Context, ro RunOptions) (PhaseReport, error) {
	dpr := filepath.Join(e.cfg.Out, "dpr", "stage2", "model")
	q, err := e.loadDPR(filepath.Join(dpr, "question_encoder"))
	if err != nil {
		return PhaseReport{}, err
	}
	defer q.Close()
	c, err := e.loadDPR(filepath.Join(dpr, "ctx_encoder"))
	if err != nil {
		return PhaseReport{}, err
	}
	defer c.Close()
	trainIx, err := e.buildIndex(ctx, c, e.train)
	if err != nil {
		return PhaseReport{}, err
	}
	defer trainIx.close()
	allIx, err := e.buildIndex(ctx, c, nil)
	if err != nil {
		return PhaseReport{}, err
	}
	defer allIx.close()
	torch.ManualSeed(e.cfg.Seed + 2) // initialisation
	m, err := bart.New(e.bartConfig(), e.dev)
	if err != nil {
		return PhaseReport{}, err
	}
	defer m.Close()
	t, err := e.ragTask(q, m, trainIx, allIx)
	if err != nil {
		return PhaseReport{}, err
	}
	dir := filepath.Join(e.cfg.Out, "generator")
	r, err := Run(ctx, t, e.cfg.Generator.Opt, e.cfg.Seed+2, dir, ro)
	if err != nil {
		return PhaseReport{}, err
	}
	return report("generator", dir, r), nil
}

func (e *env) ragTask(q *bert.DPR, m *bart.Model, trainIx, allIx *denseIndex) (*Task, error) {
	qp, err := q.Parameters()
	if err != nil {
		return nil, err
	}
	gp, err := m.Parameters()
	if err != nil {
		return nil, err
	}
	k := min(e.cfg.Generator.K, len(trainIx.rows))
	t := &Task{
		Name: "generator", N: len(e.trainQ), Metric: "f1",
		Params: map[string][]torch.Param{"generator": gp},
		Loss: func(ctx context.Context, s *torch.Scope, idx []int) (*torch.Tensor, error) {
			qs := make([]Question, len(idx))
			texts := make([]string, len(idx))
			for i, j := range idx {
				qs[i], texts[i] = e.trainQ[j], e.trainQ[j].Text
			}
			qv, err := e.encodeQuestions(ctx, s, q, texts, true)
			if err != nil {
				return nil, err
			}
			vals, top := s.TopK(trainIx.scores(s, qv), int64(k), 1)
			tv, err := top.Int64s()
			if err != nil {
				return nil, err
			}
			rows := make([][]int, len(idx))
			for i := range rows {
				for z := 0; z < k; z++ {
					rows[i] = append(rows[i], trainIx.rows[tv[i*k+z]])
				}
			}
			return e.ragLoss(ctx, s, m, qs, rows, vals, e.cfg.Generator.Objective)
		},
		Eval: func(ctx context.Context) (map[string]float64, error) {
			return e.evalRAG(ctx, q, m, allIx, e.devQ, k)
		},
		Save: func(dir string) error {
			if err := e.saveBART(filepath.Join(dir, "generator"), m); err != nil {
				return err
			}
			return e.saveDPR(filepath.Join(dir, "question_encoder"), q)
		},
	}
	e.trainable(t, "question_encoder", qp)
	if sc := e.cfg.Generator.QueryLRScale; sc > 0 {
		t.LRScale = map[string]float64{"question_encoder": sc}
	}
	return t, nil
}
