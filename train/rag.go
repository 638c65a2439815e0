package train

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/re2g/re2g/kilt"
	"github.com/re2g/re2g/model/bart"
	"github.com/re2g/re2g/neural"
	"github.com/re2g/re2g/pipeline"
	"github.com/re2g/re2g/tokenizer"
	"github.com/re2g/re2g/torch"
)

// GeneratorInput are the generation phase's inputs: the question encoder
// (DPR, BertModel or RAG directory), the generator (BART or RAG directory;
// "" with Init scratch) and an index holding the corpus' passage vectors
// by the context encoder, which stays fixed.
type GeneratorInput struct {
	QueryEncoder, Generator string
	Index                   string
}

// GeneratorOutput are its outputs; RAG is set when the generator came
// from a RAG directory (both models saved as one RAG directory too).
type GeneratorOutput struct {
	QueryEncoder, Generator, RAG string
}

func (e *env) generator(g *generatorModel) *neural.Generator {
	gen := *g.gen
	gen.MaxLength, gen.MaxNewTokens, gen.MinLength = e.cfg.AnswerLen, 0, 0
	gen.NumBeams, gen.NumReturnSequences = 1, 1
	n := e.cfg.SourceLen
	if g.rag != nil && g.rag.MaxCombinedLength > 0 {
		n = min(n, g.rag.MaxCombinedLength) // RAG cuts its sources there
	}
	ng := neural.NewGenerator(g.m, g.tok, &gen, neural.Options{Device: e.dev, MaxLength: n, BatchSize: 48})
	ng.Format = g.format
	return ng
}

// labels tokenizes answers with the generator's tokenizer (its template
// adds <s> … </s>, as transformers' labels), padded with -100 [B, T].
func (e *env) labels(ctx context.Context, s *torch.Scope, tok *tokenizer.Tokenizer, answers []string, maxPos int64) (*torch.Tensor, error) {
	in := make([]tokenizer.Input, len(answers))
	for i, a := range answers {
		in[i] = tokenizer.Input{A: a}
	}
	encs, err := tok.EncodeBatch(ctx, in, tokenizer.Options{MaxLength: min(e.cfg.AnswerLen, int(maxPos))})
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

// answerOf picks the reference answer a question trains on: the first.
func answerOf(q Question) (string, error) {
	if len(q.Answers) == 0 {
		return "", fmt.Errorf("example %s has no answer", q.ID)
	}
	return q.Answers[0], nil
}

// ragLoss is the marginal negative log-likelihood of each question's
// answer over its K passages: docScores [B, K] weight the passages
// (retrieval or reranker scores, with gradients).
func (e *env) ragLoss(ctx context.Context, s *torch.Scope, g *generatorModel, qs []Question, passages [][]pipeline.Candidate, docScores *torch.Tensor, objective string) (*torch.Tensor, error) {
	b, k := len(qs), len(passages[0])
	srcs := make([]string, 0, b*k)
	answers := make([]string, b)
	for i, q := range qs {
		a, err := answerOf(q)
		if err != nil {
			return nil, err
		}
		answers[i] = a
		if len(passages[i]) != k {
			return nil, fmt.Errorf("example %s: %d passages, the batch has %d", q.ID, len(passages[i]), k)
		}
		for _, p := range passages[i] {
			srcs = append(srcs, g.source(q.Text, p.Title, p.Text))
		}
	}
	ids, mask, err := e.generator(g).Tokenize(ctx, s, srcs)
	if err != nil {
		return nil, err
	}
	lab, err := e.labels(ctx, s, g.tok, answers, g.m.Cfg.MaxPositionEmbeddings)
	if err != nil {
		return nil, err
	}
	labK := s.RepeatInterleave(lab, int64(k), 0)
	dec := bart.ShiftRight(s, labK, g.m.Cfg.PadTokenID, g.m.Cfg.DecoderStartTokenID)
	enc := g.m.Encode(s, ids, mask, true)
	logits := g.m.Decode(s, dec, enc, mask, nil, true)
	if objective == "token" {
		return RAGTokenLoss(s, docScores, logits, lab), s.Err()
	}
	ll := s.View(SequenceLogLik(s, logits, labK), int64(b), int64(k))
	return RAGSequenceLoss(s, docScores, ll), s.Err()
}

// answers generates greedily from each question's passages and
// marginalises as RAG-Sequence, weighting passages by softmax(scores).
func (e *env) answers(ctx context.Context, g *generatorModel, qs []Question, passages [][]pipeline.Candidate, scores [][]float64) ([]string, error) {
	gen := e.generator(g)
	var srcs []string
	for i, q := range qs {
		for _, p := range passages[i] {
			srcs = append(srcs, g.source(q.Text, p.Title, p.Text))
		}
	}
	outs, err := gen.Generate(ctx, srcs, nil)
	if err != nil {
		return nil, err
	}
	res := make([]string, len(qs))
	at := 0
	for i := range qs {
		if len(passages[i]) == 0 {
			continue
		}
		probs, err := pipeline.Softmax(scores[i])
		if err != nil {
			return nil, err
		}
		var gens []pipeline.Generation
		for z := range passages[i] {
			for _, o := range outs[at] {
				gens = append(gens, pipeline.Generation{Passage: z, Text: strings.TrimSpace(o.Text), Score: o.Score, Length: len(o.IDs)})
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

// answerMetrics are KILT's EM and F1 (best over the reference answers;
// for a label task EM is the accuracy).
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
	n := float64(max(1, len(qs)))
	return map[string]float64{"em": em / n, "f1": f1 / n}
}

// retrieve returns each question's top k passages in the index, with
// their stored vectors as a [B, k, D] tensor in s (k is the smallest hit
// count of the batch: of every rank's questions under data parallelism).
func (e *env) retrieve(ctx context.Context, s *torch.Scope, qv [][]float32, k int) ([][]pipeline.Candidate, *torch.Tensor, error) {
	hs, err := e.ix.DenseSearch(ctx, qv, k, 0)
	if err != nil {
		return nil, nil, err
	}
	for _, h := range hs {
		k = min(k, len(h))
	}
	if k, err = e.minOverRanks(ctx, k); err != nil {
		return nil, nil, err
	}
	if k == 0 {
		return nil, nil, fmt.Errorf("train: dense search in %s returned no passage", e.ix.Dir)
	}
	out := make([][]pipeline.Candidate, len(hs))
	ids := make([]string, 0, len(hs)*k)
	for i, h := range hs {
		for _, x := range h[:k] {
			out[i] = append(out[i], pipeline.Candidate{ID: x.ID, Title: x.Title, Text: x.Text, DenseScore: x.Score, FromDense: true})
			ids = append(ids, x.ID)
		}
	}
	vecs, found, err := e.ix.Vectors(ids)
	if err != nil {
		return nil, nil, err
	}
	for i, f := range found {
		if !f {
			return nil, nil, fmt.Errorf("train: passage %q has no stored vector in %s", ids[i], e.ix.Dir)
		}
	}
	d := int64(e.ix.Dim())
	t := s.To(s.FromFloat32(vecs, int64(len(hs)), int64(k), d), e.dev)
	return out, t, s.Err()
}

// denseScores are q [B, D] · docs [B, K, D] → [B, K] (gradients flow to q).
func denseScores(s *torch.Scope, q, docs *torch.Tensor) *torch.Tensor {
	return s.Squeeze(s.BMM(docs, s.Unsqueeze(s.To(q, docs.Device()), 2)), 2)
}

// toFloat32 makes a tensor float32 (autocast leaves bf16 outputs).
func toFloat32(s *torch.Scope, t *torch.Tensor) *torch.Tensor {
	if t.DType() == torch.Float32 {
		return t
	}
	return s.ToDType(t, torch.Float32)
}

// evalRAG answers the dev questions from their top K passages of the index.
func (e *env) evalRAG(ctx context.Context, q *biEncoder, g *generatorModel, qs []Question, k int) (map[string]float64, error) {
	hs, err := e.dense(ctx, q, qs, max(k, 20))
	if err != nil {
		return nil, err
	}
	ranked := make([][]string, len(hs))
	top := make([][]pipeline.Candidate, len(hs))
	sc := make([][]float64, len(hs))
	for i, h := range hs {
		ranked[i] = hitIDs(h)
		for _, x := range h[:min(k, len(h))] {
			top[i] = append(top[i], pipeline.Candidate{ID: x.ID, Title: x.Title, Text: x.Text})
			sc[i] = append(sc[i], x.Score)
		}
	}
	met := retrievalMetrics(qs, ranked, k, 20)
	preds, err := e.answers(ctx, g, qs, top, sc)
	if err != nil {
		return nil, err
	}
	for k, v := range answerMetrics(qs, preds) {
		met[k] = v
	}
	return met, nil
}

// ragTask trains the generator and the question encoder with RAG's
// marginal likelihood over the index's top K passages.
func (e *env) ragTask(q *biEncoder, g *generatorModel, trainQ, devQ []Question, save func(dir string) error) (*Task, error) {
	qp, err := q.m.Parameters()
	if err != nil {
		return nil, err
	}
	gp, err := g.m.Parameters()
	if err != nil {
		return nil, err
	}
	k := e.cfg.Generator.K
	t := &Task{
		Name: "generator", N: len(trainQ), Metric: "f1", NewScope: e.scope,
		Params: map[string][]torch.Param{"generator": gp},
		Loss: func(ctx context.Context, s *torch.Scope, b Batch) (*torch.Tensor, int, error) {
			idx := b.Idx
			qs := make([]Question, len(idx))
			texts := make([]string, len(idx))
			for i, j := range idx {
				qs[i], texts[i] = trainQ[j], trainQ[j].Text
			}
			qv, err := e.encodeQuestions(ctx, s, q, texts, true)
			if err != nil {
				return nil, 0, err
			}
			qf := toFloat32(s, qv)
			flat, err := s.Detach(qf).Float32s()
			if err != nil {
				return nil, 0, err
			}
			d := int(q.m.Dim())
			rows := make([][]float32, len(idx))
			for i := range rows {
				rows[i] = flat[i*d : (i+1)*d]
			}
			ps, docs, err := e.retrieve(ctx, s, rows, k)
			if err != nil {
				return nil, 0, err
			}
			loss, err := e.ragLoss(ctx, s, g, qs, ps, denseScores(s, qf, docs), e.cfg.Generator.Objective)
			return loss, len(qs), err
		},
		Eval: func(ctx context.Context) (map[string]float64, error) { return e.evalRAG(ctx, q, g, devQ, k) },
		Save: save,
	}
	e.trainable(t, "question_encoder", qp)
	if sc := e.cfg.Generator.QueryLRScale; sc > 0 && sc != 1 {
		t.LRScale = map[string]float64{"question_encoder": sc}
	}
	return t, nil
}

// TrainGenerator is phase 2, as RAG: the generator and the question
// encoder learn the marginal likelihood of the answer over the top K
// passages retrieved from in.Index (FAISS HNSW over its stored vectors,
// which stay fixed, as the context encoder does); the question encoder's
// gradient flows through the inner products with those vectors.
func TrainGenerator(ctx context.Context, cfg *Config, ds *Dataset, in GeneratorInput, out string, ro RunOptions) (GeneratorOutput, PhaseReport, error) {
	e, err := newEnv(cfg, ds, in.Index)
	if err != nil {
		return GeneratorOutput{}, PhaseReport{}, err
	}
	defer e.close()
	e.g = ro.Group
	logData("generator", e)
	trainQ, devQ := withAnswers(e.trainQ), withAnswers(e.devQ)
	if len(trainQ) == 0 || len(devQ) == 0 {
		return GeneratorOutput{}, PhaseReport{}, fmt.Errorf("train generator: no training or dev examples with an answer")
	}
	q, err := e.loadBiEncoder(in.QueryEncoder, true, nil)
	if err != nil {
		return GeneratorOutput{}, PhaseReport{}, err
	}
	defer q.Close()
	if q.src.dir == "" {
		return GeneratorOutput{}, PhaseReport{}, fmt.Errorf("train generator: the question encoder must match the index's passage vectors: give --query-encoder DIR (the DPR phase's)")
	}
	torch.ManualSeed(cfg.Seed + 2) // initialisation of a generator made from scratch
	g, err := e.loadGenerator(in.Generator)
	if err != nil {
		return GeneratorOutput{}, PhaseReport{}, err
	}
	defer g.Close()
	model := filepath.Join(out, "model")
	res := GeneratorOutput{QueryEncoder: filepath.Join(model, "question_encoder"), Generator: filepath.Join(model, "generator")}
	ragDir := ""
	if g.rag != nil {
		ragDir = filepath.Join(model, "rag")
		res.RAG = ragDir
	}
	save := func(dir string) error {
		if err := e.saveGenerator(filepath.Join(dir, "generator"), g, q, rebase(ragDir, model, dir)); err != nil {
			return err
		}
		return e.saveDPR(filepath.Join(dir, "question_encoder"), q)
	}
	t, err := e.ragTask(q, g, trainQ, devQ, save)
	if err != nil {
		return GeneratorOutput{}, PhaseReport{}, err
	}
	r, err := Run(ctx, t, cfg.Generator.Opt, cfg.Seed+2, out, ro)
	if err != nil {
		return GeneratorOutput{}, PhaseReport{}, err
	}
	return res, report("generator", out, r), nil
}

// rebase moves path from under old to under dir ("" stays "").
func rebase(path, old, dir string) string {
	if path == "" {
		return ""
	}
	rel, err := filepath.Rel(old, path)
	if err != nil {
		return path
	}
	return filepath.Join(dir, rel)
}
