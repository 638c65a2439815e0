package train

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/re2g/re2g/bm25"
	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/indexdir"
	"github.com/re2g/re2g/kilt"
	"github.com/re2g/re2g/neural"
	"github.com/re2g/re2g/pipeline"
	"github.com/re2g/re2g/tokenizer"
	"github.com/re2g/re2g/torch"
	"github.com/re2g/re2g/torch/dist"
)

// env is what a phase shares: settings, device, data and the open index.
type env struct {
	cfg        *Config
	dev        torch.Device
	amp        torch.DType // autocast dtype of training passes (-1: none)
	ds         *Dataset
	trainQ     []Question // the training examples (MaxTrain)
	devQ       []Question // the dev examples evaluated during training (MaxDev)
	ix         *indexdir.Index
	scratchTok *tokenizer.Tokenizer
	keys       map[string]string // weightsKey's hashes by model directory
	// g is the data-parallel group (RunOptions.Group; nil: one process).
	g *dist.Group
}

// newEnv checks cfg and opens the index (nil index: "").
func newEnv(cfg *Config, ds *Dataset, index string) (*env, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if ds == nil || len(ds.Train) == 0 || len(ds.Dev) == 0 {
		return nil, fmt.Errorf("train: need training and dev examples")
	}
	dev, err := torch.ParseDevice(cfg.Device)
	if err == nil {
		err = torch.CheckDevice(dev)
	}
	if err != nil {
		return nil, fmt.Errorf("train config: device: %w", err)
	}
	if cfg.Threads > 0 {
		if err := torch.SetNumThreads(cfg.Threads); err != nil {
			return nil, fmt.Errorf("train config: threads: %w", err)
		}
	}
	e := &env{cfg: cfg, dev: dev, amp: -1, ds: ds, keys: map[string]string{}}
	if cfg.DType == "bfloat16" {
		e.amp = torch.BFloat16
	}
	e.trainQ = sample(ds.Train, cfg.MaxTrain, cfg.Seed)
	e.devQ = sample(ds.Dev, cfg.MaxDev, cfg.Seed+1)
	if index == "" {
		return nil, fmt.Errorf("train: no index: give --index DIR (built by re2g index from the passage corpus)")
	}
	if e.ix, err = indexdir.Open(context.Background(), index); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	return e, nil
}

func (e *env) close() {
	if e.ix != nil {
		e.ix.Close()
	}
}

// scope is a training pass's scope: gradients recorded, under autocast
// when the run is in bf16.
func (e *env) scope() *torch.Scope {
	s := torch.NewScope()
	if e.amp >= 0 {
		return s.Autocast(e.amp)
	}
	return s
}

// evalScope is an evaluation pass's scope (no gradients).
func (e *env) evalScope() *torch.Scope {
	s := torch.NewScope().NoGrad()
	if e.amp >= 0 {
		return s.Autocast(e.amp)
	}
	return s
}

// passage reads a passage from the index.
func (e *env) passage(id string) (data.Passage, error) {
	p, ok, err := e.ix.Passage(id)
	if err != nil {
		return data.Passage{}, err
	}
	if !ok {
		return data.Passage{}, fmt.Errorf("train: passage %q is not in index %s", id, e.ix.Dir)
	}
	return p, nil
}

// bm25 returns BM25's top k of each question.
func (e *env) bm25(ctx context.Context, qs []Question, k int) ([][]pipeline.Hit, error) {
	out := make([][]pipeline.Hit, len(qs))
	for i, q := range qs {
		hs, err := e.ix.SparseSearch(ctx, q.Text, k, bm25.Params{})
		if err != nil {
			return nil, fmt.Errorf("train: bm25 search for %s: %w", q.ID, err)
		}
		out[i] = hs
	}
	return out, nil
}

// queryVectors embeds question texts without gradients (float32 rows).
func (e *env) queryVectors(ctx context.Context, q *biEncoder, qs []Question) ([][]float32, error) {
	texts := make([]string, len(qs))
	for i, x := range qs {
		texts[i] = x.Text
	}
	return e.queryEncoder(q).EncodeQueries(ctx, texts)
}

// dense returns the index's top k for each question by the question encoder q.
func (e *env) dense(ctx context.Context, q *biEncoder, qs []Question, k int) ([][]pipeline.Hit, error) {
	if !e.ix.HasDense() {
		return nil, fmt.Errorf("train: index %s has no passage vectors: build it with --ctx-encoder", e.ix.Dir)
	}
	if int(q.m.Dim()) != e.ix.Dim() {
		return nil, fmt.Errorf("train: question encoder of dimension %d, index %s holds %d-dimensional vectors", q.m.Dim(), e.ix.Dir, e.ix.Dim())
	}
	out := make([][]pipeline.Hit, 0, len(qs))
	for lo := 0; lo < len(qs); lo += 256 {
		hi := min(len(qs), lo+256)
		vs, err := e.queryVectors(ctx, q, qs[lo:hi])
		if err != nil {
			return nil, err
		}
		hs, err := e.ix.DenseSearch(ctx, vs, k, 0)
		if err != nil {
			return nil, err
		}
		out = append(out, hs...)
	}
	return out, nil
}

// merged is the pipeline's candidate list for each question: DPR's top
// denseK, then BM25's top sparseK not already there (pipeline.Merge).
func (e *env) merged(ctx context.Context, q *biEncoder, qs []Question, denseK, sparseK int) ([][]pipeline.Candidate, error) {
	var dh [][]pipeline.Hit
	if denseK > 0 {
		var err error
		if dh, err = e.dense(ctx, q, qs, denseK); err != nil {
			return nil, err
		}
	}
	var sh [][]pipeline.Hit
	if sparseK > 0 {
		var err error
		if sh, err = e.bm25(ctx, qs, sparseK); err != nil {
			return nil, err
		}
	}
	out := make([][]pipeline.Candidate, len(qs))
	for i := range qs {
		var d, s []pipeline.Hit
		if dh != nil {
			d = dh[i]
		}
		if sh != nil {
			s = sh[i]
		}
		out[i] = pipeline.Merge(d, s)
	}
	return out, nil
}

// Token lengths are capped at what the model's position embeddings allow.
func (e *env) queryEncoder(q *biEncoder) *neural.Encoder {
	n := min(e.cfg.QueryLen, int(q.m.Cfg.MaxPositionEmbeddings))
	return neural.NewEncoder(q.m, q.tok, neural.Options{Device: e.dev, MaxLength: n, BatchSize: 64})
}

func (e *env) passageEncoder(c *biEncoder) *neural.Encoder {
	n := min(e.cfg.PassageLen, int(c.m.Cfg.MaxPositionEmbeddings))
	return neural.NewEncoder(c.m, c.tok, neural.Options{Device: e.dev, MaxLength: n, BatchSize: 64})
}

// passageInput is a passage as the DPR context tokenizer reads it: the
// pair (title, text), or the text alone without a title.
func passageInput(title, text string) tokenizer.Input {
	if title == "" {
		return tokenizer.Input{A: text}
	}
	return tokenizer.Input{A: title, B: text, Pair: true}
}

// encodeQuestions embeds question texts in s (with gradients when s records them).
func (e *env) encodeQuestions(ctx context.Context, s *torch.Scope, q *biEncoder, texts []string, train bool) (*torch.Tensor, error) {
	in := make([]tokenizer.Input, len(texts))
	for i, t := range texts {
		in[i] = tokenizer.Input{A: t}
	}
	b, err := e.queryEncoder(q).Tokenize(ctx, s, in)
	if err != nil {
		return nil, err
	}
	return q.m.Encode(s, b, train), s.Err()
}

// encodePassages embeds passages in s.
func (e *env) encodePassages(ctx context.Context, s *torch.Scope, c *biEncoder, ps []data.Passage, train bool) (*torch.Tensor, error) {
	in := make([]tokenizer.Input, len(ps))
	for i, p := range ps {
		in[i] = passageInput(p.Title, p.Text)
	}
	b, err := e.passageEncoder(c).Tokenize(ctx, s, in)
	if err != nil {
		return nil, err
	}
	return c.m.Encode(s, b, train), s.Err()
}

// retrievalMetrics scores ranked passage ids against gold provenance:
// KILT R-Precision and Recall@k (a gold passage in the first k).
func retrievalMetrics(qs []Question, ranked [][]string, ks ...int) map[string]float64 {
	m := map[string]float64{}
	for i, q := range qs {
		m["r_precision"] += kilt.RPrecision(ranked[i], [][]string{q.Gold})
		for _, k := range ks {
			hit := 0.0
			for _, id := range ranked[i][:min(k, len(ranked[i]))] {
				if q.isGold(id) {
					hit = 1
					break
				}
			}
			m[fmt.Sprintf("recall@%d", k)] += hit
		}
	}
	for k := range m {
		m[k] /= float64(max(1, len(qs)))
	}
	return m
}

func hitIDs(hs []pipeline.Hit) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.ID
	}
	return out
}

func candIDs(cs []pipeline.Candidate) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func logData(phase string, e *env) {
	slog.Info("data", "phase", phase, "train", len(e.trainQ), "dev", len(e.devQ), "index", e.ix.Dir, "passages", e.ix.Manifest.Passages)
}
