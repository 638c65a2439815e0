package train

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/dense"
	"github.com/re2g/re2g/faiss"
	"github.com/re2g/re2g/indexdir"
	"github.com/re2g/re2g/neural"
	"github.com/re2g/re2g/pipeline"
	"github.com/re2g/re2g/torch"
	"github.com/re2g/re2g/torch/dist"
)

// DPRInput are the DPR phase's inputs: the encoders to start from ("" with
// Init scratch) and the index whose BM25 gives stage 1's negatives and
// whose corpus is re-encoded for stage 2 and for the output index.
type DPRInput struct {
	QueryEncoder, CtxEncoder string
	Index                    string
}

// DPROutput are its outputs: the trained encoders, and an index of the
// corpus encoded by the trained context encoder (BM25 and HNSW), which the
// later phases retrieve from.
type DPROutput struct {
	QueryEncoder, CtxEncoder string
	Index                    string
}

// dprExample is one training question with its positive and hard negative.
type dprExample struct {
	q        Question
	pos, neg data.Passage
	hasNeg   bool
}

// positive is q's example with its first gold passage and no negative.
func (e *env) positive(q Question) (dprExample, error) {
	pos, err := e.passage(q.Gold[0])
	if err != nil {
		return dprExample{}, fmt.Errorf("question %s: gold passage: %w", q.ID, err)
	}
	pos.ID = q.Gold[0]
	return dprExample{q: q, pos: pos}, nil
}

// hardNegatives pairs each training question with its first gold passage
// and a hard negative sampled (seeded by the question) from the first
// NegativeDepth non-positives of ranked (BM25's or the dense index's), as
// IBM's reference samples from BM25's top 5. A question whose ranking has
// no non-positive trains on in-batch negatives alone.
func (e *env) hardNegatives(qs []Question, ranked [][]pipeline.Hit, salt uint64) ([]dprExample, error) {
	out := make([]dprExample, len(qs))
	none := 0
	for i, q := range qs {
		var err error
		if out[i], err = e.positive(q); err != nil {
			return nil, err
		}
		var cands []pipeline.Hit
		for _, h := range ranked[i] {
			if !q.isGold(h.ID) {
				cands = append(cands, h)
				if len(cands) == e.cfg.DPR.NegativeDepth {
					break
				}
			}
		}
		if len(cands) == 0 {
			none++
			continue
		}
		r := rand.New(rand.NewPCG(e.cfg.Seed^salt, uint64(i)))
		h := cands[r.IntN(len(cands))]
		out[i].neg, out[i].hasNeg = data.Passage{ID: h.ID, Title: h.Title, Text: h.Text}, true
	}
	if none > 0 {
		slog.Warn("questions without a hard negative (in-batch negatives only)", "n", none, "of", len(qs))
	}
	return out, nil
}

// sharedNegatives is hardNegatives over the rankings rank makes (BM25's,
// or the stage-1 index's). Under data parallelism rank 0 alone ranks and
// samples, and sends every rank each question's negative as a passage id,
// which every rank (rank 0 too) reads from the index: all train on the
// same examples, whatever the ranks' search would have given.
func (e *env) sharedNegatives(ctx context.Context, qs []Question, rank func() ([][]pipeline.Hit, error), salt uint64) ([]dprExample, error) {
	if e.g.Size() == 1 {
		ranked, err := rank()
		if err != nil {
			return nil, err
		}
		return e.hardNegatives(qs, ranked, salt)
	}
	ids, err := onRoot(ctx, e.g, "mining hard negatives", func() ([]string, error) {
		ranked, err := rank()
		if err != nil {
			return nil, err
		}
		exs, err := e.hardNegatives(qs, ranked, salt)
		if err != nil {
			return nil, err
		}
		ids := make([]string, len(exs))
		for i, x := range exs {
			if x.hasNeg {
				ids[i] = x.neg.ID
			}
		}
		return ids, nil
	})
	if err != nil {
		return nil, err
	}
	if len(ids) != len(qs) {
		return nil, fmt.Errorf("train: rank 0 sent %d hard negatives for %d questions", len(ids), len(qs))
	}
	out := make([]dprExample, len(qs))
	for i, q := range qs {
		if out[i], err = e.positive(q); err != nil {
			return nil, err
		}
		if ids[i] == "" {
			continue
		}
		neg, err := e.passage(ids[i])
		if err != nil {
			return nil, fmt.Errorf("question %s: hard negative: %w", q.ID, err)
		}
		neg.ID = ids[i]
		out[i].neg, out[i].hasNeg = neg, true
	}
	return out, nil
}

// dprTask trains question and context encoders with DPR's in-batch loss
// over every question's positive and hard negative.
func (e *env) dprTask(name string, q, c *biEncoder, exs []dprExample, devLists [][]data.Passage) (*Task, error) {
	qp, err := q.m.Parameters()
	if err != nil {
		return nil, err
	}
	t := &Task{
		Name: name, N: len(exs), Metric: "recall@20", Params: map[string][]torch.Param{}, NewScope: e.scope,
		Loss: func(ctx context.Context, s *torch.Scope, b Batch) (*torch.Tensor, int, error) {
			return e.dprLoss(ctx, s, q, c, exs, b, true)
		},
		Eval: func(ctx context.Context) (map[string]float64, error) { return e.evalDPRLists(ctx, q, c, devLists) },
		Save: func(dir string) error {
			if err := e.saveDPR(filepath.Join(dir, "question_encoder"), q); err != nil {
				return err
			}
			return e.saveDPR(filepath.Join(dir, "ctx_encoder"), c)
		},
	}
	e.trainable(t, "question_encoder", qp)
	if c.m.Bert != q.m.Bert {
		cp, err := c.m.Parameters()
		if err != nil {
			return nil, err
		}
		e.trainable(t, "ctx_encoder", cp)
	}
	return t, nil
}

// dprLoss is DPR's loss over the questions b.Idx: each against every
// positive and hard negative of the whole micro-batch b.Global
// (deduplicated: the positives in order, then the negatives), so that the
// in-batch negatives span every rank. Under data parallelism each rank
// encodes a contiguous share of that list and AllGatherGrad assembles it
// (the gradient of every rank's loss flows back to the rank that encoded a
// passage); each rank scores its own questions, whose mean the loop
// weighs by their number. The list is the same on every rank, being made
// from the same data, so the loss over the ranks is the single process's
// over the concatenated batch.
func (e *env) dprLoss(ctx context.Context, s *torch.Scope, q, c *biEncoder, exs []dprExample, b Batch, train bool) (*torch.Tensor, int, error) {
	var ps []data.Passage
	at := map[string]int{}
	add := func(p data.Passage) int {
		if k, ok := at[p.ID]; ok {
			return k
		}
		at[p.ID] = len(ps)
		ps = append(ps, p)
		return at[p.ID]
	}
	for _, k := range b.Global {
		add(exs[k].pos)
	}
	for _, k := range b.Global {
		if exs[k].hasNeg {
			add(exs[k].neg)
		}
	}
	texts := make([]string, len(b.Idx))
	pos := make([]int64, len(b.Idx))
	for i, k := range b.Idx {
		texts[i] = exs[k].q.Text
		pos[i] = int64(at[exs[k].pos.ID])
	}
	qv, err := e.encodeQuestions(ctx, s, q, texts, train)
	if err != nil {
		return nil, 0, err
	}
	var cv *torch.Tensor
	if w := e.g.Size(); w == 1 {
		if cv, err = e.encodePassages(ctx, s, c, ps, train); err != nil {
			return nil, 0, err
		}
	} else {
		lo, hi := sliceOf(len(ps), e.g.Rank(), w)
		var mine *torch.Tensor
		if hi > lo {
			if mine, err = e.encodePassages(ctx, s, c, ps[lo:hi], train); err != nil {
				return nil, 0, err
			}
			mine = toFloat32(s, mine) // the same type on every rank
		} else {
			// fewer passages than ranks: this rank gives none, but takes
			// part in the gather and in its backward pass
			mine = s.Zeros(torch.Float32, e.dev, 0, c.m.Dim())
			if err := s.Err(); err != nil {
				return nil, 0, err
			}
			if err := mine.SetRequiresGrad(s.GradEnabled()); err != nil {
				return nil, 0, err
			}
		}
		if cv, _, err = e.g.AllGatherGrad(ctx, s, mine); err != nil {
			return nil, 0, err
		}
	}
	return DPRLoss(s, qv, cv, pos), len(b.Idx), s.Err()
}

// devCandidates are the dev questions' BM25 top EvalDepth passages, which
// the evaluation during training ranks with the encoders: a measure that
// does not grow with the corpus (the final metrics use the real index).
func (e *env) devCandidates(ctx context.Context) ([][]data.Passage, error) {
	hs, err := e.bm25(ctx, e.devQ, e.cfg.DPR.EvalDepth)
	if err != nil {
		return nil, err
	}
	out := make([][]data.Passage, len(hs))
	for i, l := range hs {
		for _, h := range l {
			out[i] = append(out[i], data.Passage{ID: h.ID, Title: h.Title, Text: h.Text})
		}
	}
	return out, nil
}

// evalDPRLists ranks each dev question's candidates by inner product; the
// candidates' union is encoded once.
func (e *env) evalDPRLists(ctx context.Context, q, c *biEncoder, lists [][]data.Passage) (map[string]float64, error) {
	at := map[string]int{}
	var ps []neural.Passage
	for _, l := range lists {
		for _, p := range l {
			if _, ok := at[p.ID]; !ok {
				at[p.ID] = len(ps)
				ps = append(ps, neural.Passage{Title: p.Title, Text: p.Text})
			}
		}
	}
	pv, err := e.passageEncoder(c).EncodePassages(ctx, ps)
	if err != nil {
		return nil, err
	}
	qv, err := e.queryVectors(ctx, q, e.devQ[:len(lists)])
	if err != nil {
		return nil, err
	}
	ranked := make([][]string, len(lists))
	for i, l := range lists {
		ids := make([]string, len(l))
		scores := make([]float64, len(l))
		for j, p := range l {
			ids[j] = p.ID
			v := pv[at[p.ID]]
			for d := range v {
				scores[j] += float64(qv[i][d]) * float64(v[d])
			}
		}
		ranked[i] = sortByScore(ids, scores)
	}
	return retrievalMetrics(e.devQ, ranked, 1, 5, 20), nil
}

// sortByScore orders ids by descending score (stable).
func sortByScore(ids []string, scores []float64) []string {
	idx := make([]int, len(ids))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })
	out := make([]string, len(ids))
	for i, j := range idx {
		out[i] = ids[j]
	}
	return out
}

// encodeCorpus encodes the corpus of the index this phase read with
// context encoder c (saved in encDir) into a new index directory out,
// through the same code as `re2g index`; an index already finished there
// for the same encoder weights is kept. Under data parallelism rank 0
// decides what to encode (and writes the corpus of an updated index) while
// the others wait on the store, then every rank takes its share of the
// chunks, as `re2g index` under a launcher does (indexdir.Options.Dist),
// and rank 0 builds BM25 and HNSW: every rank holds the same encoder
// weights here (the saved model, or parameters kept equal by training).
func (e *env) encodeCorpus(ctx context.Context, g *dist.Group, c *biEncoder, encDir, out string, progress bool) error {
	key, err := e.weightsKey(encDir)
	if err != nil {
		return fmt.Errorf("train: context encoder %s: %w", encDir, err)
	}
	corpus, err := onRoot(ctx, g, "preparing the corpus encoding of "+out, func() (string, error) {
		return e.reindexCorpus(ctx, key, out)
	})
	if err != nil || corpus == "" {
		return err
	}
	o := indexdir.Options{Out: out, Encoder: e.passageEncoder(c), EncoderDir: encDir, HNSW: hnswOf(e.ix),
		SQ8Train: sq8TrainOf(e.ix), Extra: map[string]string{"encoder_fingerprint": key}, Dist: g}
	if !progress || g.Rank() != 0 {
		o.Progress = nopWriter{}
	}
	if g.Rank() == 0 {
		slog.Info("encoding the corpus", "passages", e.ix.Manifest.Passages, "encoder", encDir, "index", out, "ranks", g.Size())
	}
	if _, err := indexdir.Build(ctx, corpus, o); err != nil {
		return fmt.Errorf("train: encoding the corpus into %s: %w", out, err)
	}
	return nil
}

// reindexCorpus is the corpus to encode into out for encoder weights key:
// "" when out already holds an index of them; otherwise out is emptied, and
// an index updated since its build has the passages it now holds written
// beside out.
func (e *env) reindexCorpus(ctx context.Context, key, out string) (string, error) {
	if ix, err := indexdir.Open(ctx, out); err == nil {
		same := ix.Manifest.Dense != nil && ix.Manifest.Dense.Extra["encoder_fingerprint"] == key
		ix.Close()
		if same {
			slog.Info("index already built for these encoder weights", "index", out)
			return "", nil
		}
	}
	corpusPath := e.ix.Manifest.Corpus
	if e.ix.Manifest.Generation > 0 {
		// updated since it was built: its corpus is what it holds now
		corpusPath = filepath.Join(filepath.Dir(out), filepath.Base(out)+"-corpus.jsonl")
		if err := e.ix.WriteCorpus(ctx, corpusPath); err != nil {
			return "", fmt.Errorf("train: re-encoding the corpus of index %s: %w", e.ix.Dir, err)
		}
	}
	if _, err := os.Stat(corpusPath); err != nil {
		return "", fmt.Errorf("train: re-encoding the corpus of index %s: its corpus %s: %w", e.ix.Dir, corpusPath, err)
	}
	if err := os.RemoveAll(out); err != nil {
		return "", fmt.Errorf("train: %w", err)
	}
	return corpusPath, nil
}

// sq8TrainOf is how the SQ8 quantiser of ix was trained (sample and seed),
// for an index re-encoded from it; the zero value (the defaults) for one
// without SQ8.
func sq8TrainOf(ix *pipeline.Index) dense.SQ8Train {
	if d := ix.Manifest.Dense; d != nil && d.SQ8Train != nil {
		return dense.SQ8Train{Sample: d.SQ8Train.Sample, Seed: d.SQ8Train.Seed}
	}
	return dense.SQ8Train{}
}

// hnswOf is the HNSW configuration of ix (faiss's defaults without vectors).
func hnswOf(ix *indexdir.Index) faiss.HNSWConfig {
	if ix.Manifest.Dense != nil {
		return ix.Manifest.Dense.HNSW
	}
	return faiss.HNSWConfig{Metric: faiss.InnerProduct}
}

// weightsKey is a short hash of a model directory's weight files, read
// once per directory and phase.
func (e *env) weightsKey(dir string) (string, error) {
	if k, ok := e.keys[dir]; ok {
		return k, nil
	}
	h := sha256.New()
	if err := fingerprint(dir, h); err != nil {
		return "", err
	}
	k := hex.EncodeToString(h.Sum(nil))[:16]
	e.keys[dir] = k
	return k, nil
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

// TrainDPR is phase 1: stage 1 on BM25 hard negatives from in.Index;
// stage 2 (when configured) from the best stage-1 encoders on negatives
// mined from an HNSW index of the corpus they encode; then the corpus
// encoded by the final context encoder (of the stage better on dev) into
// out/index. Models go to out/stage1/model, out/stage2/model.
func TrainDPR(ctx context.Context, cfg *Config, ds *Dataset, in DPRInput, out string, ro RunOptions) (DPROutput, []PhaseReport, error) {
	e, err := newEnv(cfg, ds, in.Index)
	if err != nil {
		return DPROutput{}, nil, err
	}
	defer e.close()
	e.g = ro.Group
	logData("dpr", e)
	torch.ManualSeed(cfg.Seed) // initialisation of models made from scratch
	q, err := e.loadBiEncoder(in.QueryEncoder, true, nil)
	if err != nil {
		return DPROutput{}, nil, err
	}
	defer q.Close()
	var shared *biEncoder
	if cfg.DPR.Shared && in.CtxEncoder == "" && q.src.dir == "" {
		shared = q
	}
	c, err := e.loadBiEncoder(in.CtxEncoder, false, shared)
	if err != nil {
		return DPROutput{}, nil, err
	}
	defer c.Close()
	if q.m.Dim() != c.m.Dim() {
		return DPROutput{}, nil, fmt.Errorf("train: question encoder of dimension %d, context encoder %d", q.m.Dim(), c.m.Dim())
	}
	devLists, err := e.devCandidates(ctx)
	if err != nil {
		return DPROutput{}, nil, err
	}
	exs, err := e.sharedNegatives(ctx, e.trainQ, func() ([][]pipeline.Hit, error) {
		return e.bm25(ctx, e.trainQ, 4*cfg.DPR.NegativeDepth+len(e.trainQ[0].Gold))
	}, 1)
	if err != nil {
		return DPROutput{}, nil, err
	}
	var reps []PhaseReport
	dir1 := filepath.Join(out, "stage1")
	t, err := e.dprTask("dpr-stage1", q, c, exs, devLists)
	if err != nil {
		return DPROutput{}, nil, err
	}
	r, err := Run(ctx, t, cfg.DPR.Stage1, cfg.Seed, dir1, ro)
	if err != nil {
		return DPROutput{}, nil, err
	}
	reps = append(reps, report("dpr-stage1", dir1, r))
	if ro.StopAt > 0 {
		return DPROutput{}, reps, nil
	}
	final := filepath.Join(dir1, "model")
	if steps(cfg.DPR.Stage2) {
		// Stage 2 starts from the best stage-1 encoders.
		q2, c2, err := e.reloadPair(final, c.m.Bert == q.m.Bert)
		if err != nil {
			return DPROutput{}, nil, err
		}
		defer q2.Close()
		defer c2.Close()
		ix1 := filepath.Join(dir1, "index")
		if err := e.encodeCorpus(ctx, e.g, c2, filepath.Join(final, "ctx_encoder"), ix1, ro.Progress != nil); err != nil {
			return DPROutput{}, nil, err
		}
		if exs, err = e.sharedNegatives(ctx, e.trainQ, func() ([][]pipeline.Hit, error) {
			return e.minedNegatives(ctx, q2, ix1)
		}, 2); err != nil {
			return DPROutput{}, nil, err
		}
		slog.Info("stage 2 negatives mined from HNSW", "questions", len(exs), "index", ix1)
		dir2 := filepath.Join(out, "stage2")
		t, err := e.dprTask("dpr-stage2", q2, c2, exs, devLists)
		if err != nil {
			return DPROutput{}, nil, err
		}
		r, err := Run(ctx, t, cfg.DPR.Stage2, cfg.Seed+1, dir2, ro)
		if err != nil {
			return DPROutput{}, nil, err
		}
		reps = append(reps, report("dpr-stage2", dir2, r))
		// The better stage on dev is the phase's output: hard negatives
		// from a weak stage-1 index can make stage 2 worse.
		if m1, m2 := reps[0].Metrics[t.Metric], reps[1].Metrics[t.Metric]; m2 >= m1 {
			final = filepath.Join(dir2, "model")
		} else {
			slog.Warn("dpr stage 2 is worse than stage 1 on dev: keeping stage 1", "metric", t.Metric, "stage1", m1, "stage2", m2)
		}
	}
	res := DPROutput{QueryEncoder: filepath.Join(final, "question_encoder"), CtxEncoder: filepath.Join(final, "ctx_encoder"),
		Index: filepath.Join(out, "index")}
	qf, cf, err := e.reloadPair(final, false)
	if err != nil {
		return DPROutput{}, nil, err
	}
	defer qf.Close()
	defer cf.Close()
	if err := e.encodeCorpus(ctx, e.g, cf, res.CtxEncoder, res.Index, ro.Progress != nil); err != nil {
		return DPROutput{}, nil, err
	}
	// The real measure: dense retrieval over the whole corpus (rank 0's).
	m, err := onRoot(ctx, e.g, "dense retrieval over the index", func() (map[string]float64, error) {
		return e.indexMetrics(ctx, qf, res.Index)
	})
	if err != nil {
		return DPROutput{}, nil, err
	}
	last := &reps[len(reps)-1]
	for k, v := range m {
		last.Metrics["index_"+k] = v
	}
	slog.Info("dpr over the whole corpus", "dev", len(e.devQ), "metrics", m)
	return res, reps, nil
}

// reloadPair loads the question and context encoders saved under dir
// (shared: one model for both, as they were trained).
func (e *env) reloadPair(dir string, shared bool) (*biEncoder, *biEncoder, error) {
	q, err := e.loadBiEncoder(filepath.Join(dir, "question_encoder"), true, nil)
	if err != nil {
		return nil, nil, err
	}
	if shared {
		d := *q.m
		d.Question = false
		return q, &biEncoder{m: &d, tok: q.tok, src: tokSource{filepath.Join(dir, "ctx_encoder")}}, nil
	}
	c, err := e.loadBiEncoder(filepath.Join(dir, "ctx_encoder"), false, nil)
	if err != nil {
		q.Close()
		return nil, nil, err
	}
	return q, c, nil
}

// withIndex runs f with e's index switched to the one at dir.
func (e *env) withIndex(dir string, f func() error) error {
	ix, err := indexdir.Open(context.Background(), dir)
	if err != nil {
		return err
	}
	old := e.ix
	e.ix = ix
	defer func() { e.ix = old; ix.Close() }()
	return f()
}

// minedNegatives are the training questions' rankings in the index at dir.
func (e *env) minedNegatives(ctx context.Context, q *biEncoder, dir string) ([][]pipeline.Hit, error) {
	var out [][]pipeline.Hit
	err := e.withIndex(dir, func() error {
		var err error
		out, err = e.dense(ctx, q, e.trainQ, 4*e.cfg.DPR.NegativeDepth+len(e.trainQ[0].Gold))
		return err
	})
	return out, err
}

// indexMetrics are the dev questions' dense-retrieval metrics in the index at dir.
func (e *env) indexMetrics(ctx context.Context, q *biEncoder, dir string) (map[string]float64, error) {
	var m map[string]float64
	err := e.withIndex(dir, func() error {
		hs, err := e.dense(ctx, q, e.devQ, 100)
		if err != nil {
			return err
		}
		ranked := make([][]string, len(hs))
		for i, h := range hs {
			ranked[i] = hitIDs(h)
		}
		m = retrievalMetrics(e.devQ, ranked, 1, 5, 20, 100)
		return nil
	})
	return m, err
}

// trainable adds ps to t's parameter group. With FreezeWordEmbeddings
// (the from-scratch presets), the embeddings are left out (and out of
// autograd) in every phase:
// AdamW keeps moving a row for many steps after its word was last seen, so
// that every word seen in training drifts along a common direction and
// passages of unseen words sink in every ranking; frozen random embeddings
// keep seen and unseen words alike. Frozen tensors are still checkpointed,
// under group+"#frozen", so that a resumed run gets them back.
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

// PhaseReport is one phase's outcome.
type PhaseReport struct {
	Phase      string             `json:"phase"`
	Dir        string             `json:"dir"`
	Steps      int                `json:"steps"`
	Examples   int                `json:"examples"`
	Seconds    float64            `json:"seconds"`
	Throughput float64            `json:"examples_per_second"`
	FirstLoss  float64            `json:"first_loss"` // mean of the first min(10, steps/4) updates' losses
	LastLoss   float64            `json:"last_loss"`  // and of the last ones
	Metrics    map[string]float64 `json:"metrics"`    // final evaluation (of the best model)
}

func report(name, dir string, r *Result) PhaseReport {
	p := PhaseReport{Phase: name, Dir: dir, Steps: r.Step, Examples: r.Examples, Seconds: r.Seconds, Throughput: r.Throughput, Metrics: r.Final}
	if p.Metrics == nil {
		p.Metrics = map[string]float64{}
	}
	if n := len(r.Loss); n > 0 {
		w := min(10, max(1, n/4))
		mean := func(ps []Point) float64 {
			s := 0.0
			for _, x := range ps {
				s += x.Value
			}
			return s / float64(len(ps))
		}
		p.FirstLoss, p.LastLoss = mean(r.Loss[:w]), mean(r.Loss[n-w:])
	}
	return p
}
