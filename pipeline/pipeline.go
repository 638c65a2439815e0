package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/re2g/re2g/bm25"
	"github.com/re2g/re2g/indexdir"
	"github.com/re2g/re2g/model/bart"
	"github.com/re2g/re2g/neural"
	"github.com/re2g/re2g/torch"
	"go.opentelemetry.io/otel/attribute"
)

// Config is what a Pipeline is built from. Every model is optional, so that
// ablations are one setting away: without a query encoder there is no dense
// retrieval, without a reranker the merged list keeps its order (and
// passages are weighted uniformly), without a generator only retrieval runs.
type Config struct {
	Index string // index directory (re2g index)
	// Verify is how much of the index's files opening it checks
	// (indexdir.VerifyQuick by default; VerifyFull reads every byte).
	Verify indexdir.Verify
	// LockTimeout bounds the wait for a process that has the index open for
	// writing (0: as long as the context allows).
	LockTimeout  time.Duration
	QueryEncoder string // DPR question encoder directory ("": no dense retrieval)
	Reranker     string // cross-encoder directory ("": no reranking)
	Generator    string // BART directory ("": retrieval only)
	Models       neural.Options

	NoSparse bool        // skip BM25
	DenseK   int         // DPR hits (default 12)
	SparseK  int         // BM25 hits (default 12)
	RerankK  int         // passages kept for generation and provenance (default 5)
	EfSearch int         // HNSW search breadth (0: the index's)
	BM25     bm25.Params // k1, b (defaults 0.9, 0.4)

	RerankMaxLength int // tokens per (query, passage) pair (default 128)
	// Separator and TitleSeparator, when set, override the separators of
	// the generator's source format (Generator.Format: the directory's
	// re2g_source.json, RAG's title_sep/doc_sep, else " // " and " / "):
	// Separator between query and passage in the generator's input,
	// TitleSeparator between title and text there and in the reranker's
	// passages.
	Separator      string
	TitleSeparator string

	NumBeams           int // default 4
	NumReturnSequences int // default 4
	MaxNewTokens       int // default 32
	Weight             WeightConfig
}

func (c *Config) defaults() {
	if c.DenseK <= 0 {
		c.DenseK = 12
	}
	if c.SparseK <= 0 {
		c.SparseK = 12
	}
	if c.RerankK <= 0 {
		c.RerankK = 5
	}
	if c.RerankMaxLength <= 0 {
		c.RerankMaxLength = 128
	}
	if c.NumBeams <= 0 {
		c.NumBeams = 4
	}
	if c.NumReturnSequences <= 0 {
		c.NumReturnSequences = min(4, c.NumBeams)
	}
	if c.MaxNewTokens <= 0 {
		c.MaxNewTokens = 32
	}
	if c.Weight.Mode == 0 && c.Weight.LengthPenalty == 0 {
		c.Weight = DefaultWeightConfig()
	}
}

// Pipeline answers queries: retrieve (DPR and BM25) → merge → rerank →
// generate → weight. It is safe for concurrent use, ReloadIndex included.
type Pipeline struct {
	cfg      Config
	format   neural.SourceFormat // generator sources and reranker passages
	index    atomic.Pointer[indexRef]
	reload   sync.Mutex // one ReloadIndex at a time
	encoder  *neural.Encoder
	reranker *neural.Reranker
	gen      *neural.Generator
}

// indexRef is an open index with its users counted: the pipeline holds
// one reference while the index is its current one, each call that uses it
// one more; the last to let go closes it.
type indexRef struct {
	ix   *indexdir.Index
	refs atomic.Int64
}

func newIndexRef(ix *indexdir.Index) *indexRef {
	r := &indexRef{ix: ix}
	r.refs.Store(1)
	return r
}

// ErrClosed is returned by the pipeline's methods after Close.
var ErrClosed = errors.New("pipeline: closed")

// acquire takes a reference to the current index (nil after Close); the
// caller releases it.
func (p *Pipeline) acquire() *indexRef {
	for {
		r := p.index.Load()
		if r == nil {
			return nil
		}
		n := r.refs.Load()
		if n > 0 && r.refs.CompareAndSwap(n, n+1) {
			return r
		}
		// r was swapped out and closed meanwhile: the next load finds its
		// successor
	}
}

// release lets go of a reference; the last one closes the index.
func (p *Pipeline) release(r *indexRef) {
	if r != nil && r.refs.Add(-1) == 0 {
		if err := r.ix.Close(); err != nil {
			slog.Warn("pipeline: closing an index", "dir", r.ix.Dir, "generation", r.ix.Manifest.Generation, "err", err)
		}
	}
}

// New checks the config, opens the index and loads the models the config names; see
// NewContext.
func New(cfg Config) (*Pipeline, error) {
	return NewContext(context.Background(), cfg)
}

// NewContext opens the index (read-only: any number of pipelines, in any
// number of processes, may share it) and loads the models the config names.
// ctx, and LockTimeout, bound the wait for a process that has the index open
// for writing.
func NewContext(ctx context.Context, cfg Config) (_ *Pipeline, err error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	cfg.defaults()
	ctx, span := startSpan(ctx, "re2g.open", attrIndex.String(cfg.Index))
	defer func() { endSpan(span, err) }()
	octx := ctx
	if cfg.LockTimeout > 0 {
		var cancel context.CancelFunc
		octx, cancel = context.WithTimeout(ctx, cfg.LockTimeout)
		defer cancel()
	}
	ix, err := indexdir.OpenWith(octx, cfg.Index, indexdir.OpenOptions{Verify: cfg.Verify})
	if err != nil {
		return nil, err
	}
	p := &Pipeline{cfg: cfg}
	p.index.Store(newIndexRef(ix))
	ok := false
	defer func() {
		if !ok {
			p.Close()
		}
	}()
	if cfg.QueryEncoder != "" {
		if !ix.HasDense() {
			return nil, fmt.Errorf("pipeline: a query encoder was given but index %s has no dense vectors", cfg.Index)
		}
		if p.encoder, err = neural.LoadEncoder(cfg.QueryEncoder, cfg.Models); err != nil {
			return nil, err
		}
		if err := p.fits(ix); err != nil {
			return nil, err
		}
	}
	if cfg.NoSparse && p.encoder == nil {
		return nil, errors.New("pipeline: no retriever: BM25 is off and no query encoder was given")
	}
	if cfg.Reranker != "" {
		ro := cfg.Models
		ro.MaxLength = cfg.RerankMaxLength
		if p.reranker, err = neural.LoadReranker(cfg.Reranker, ro); err != nil {
			return nil, err
		}
	}
	if cfg.Generator != "" {
		if p.gen, err = neural.LoadGenerator(cfg.Generator, cfg.Models); err != nil {
			return nil, err
		}
	}
	p.format = neural.DefaultSourceFormat()
	if p.gen != nil {
		p.format = p.gen.Format
	}
	if cfg.Separator != "" {
		p.format.DocSep = cfg.Separator
	}
	if cfg.TitleSeparator != "" {
		p.format.TitleSep = cfg.TitleSeparator
	}
	ok = true
	span.SetAttributes(attribute.Int("re2g.index.passages", ix.Manifest.Passages), attribute.Bool("re2g.query_encoder", p.encoder != nil),
		attrReranker.Bool(p.reranker != nil), attrGenerator.Bool(p.gen != nil))
	return p, nil
}

// fits checks that the pipeline's query encoder can search ix.
func (p *Pipeline) fits(ix *indexdir.Index) error {
	if p.encoder == nil {
		return nil
	}
	if !ix.HasDense() {
		return fmt.Errorf("pipeline: a query encoder was given but index %s has no dense vectors", ix.Dir)
	}
	if p.encoder.Dim() != ix.Manifest.Dense.Dim {
		return fmt.Errorf("pipeline: query encoder %s has dimension %d, the vectors of index %s %d", p.cfg.QueryEncoder, p.encoder.Dim(), ix.Dir, ix.Manifest.Dense.Dim)
	}
	return nil
}

// Close frees the models and closes the index (once the calls using it
// have finished). The pipeline's methods must not be running or called
// after it.
func (p *Pipeline) Close() error {
	if p.encoder != nil {
		p.encoder.Close()
	}
	if p.reranker != nil {
		p.reranker.Close()
	}
	if p.gen != nil {
		p.gen.Close()
	}
	p.release(p.index.Swap(nil))
	return nil
}

// Index is the pipeline's current index. After ReloadIndex swaps in
// another, the one returned here is closed once the calls that were using
// it finish: hold it only where nothing reloads the index.
func (p *Pipeline) Index() *indexdir.Index {
	if r := p.index.Load(); r != nil {
		return r.ix
	}
	return nil
}

// ReloadIndex opens the index directory again and, if its manifest has
// changed (an update was committed: re2g index add, delete, compact), swaps
// the new generation in: calls that start afterwards use it, calls running
// finish with the one they started with, which is closed after the last
// of them. It is safe to call while queries run, from any goroutine (one
// reload runs at a time). changed is false when the manifest is the one
// already open. On an error (an index that does not open, or that the
// query encoder cannot search) the pipeline keeps its index.
func (p *Pipeline) ReloadIndex(ctx context.Context) (changed bool, err error) {
	p.reload.Lock()
	defer p.reload.Unlock()
	cur := p.acquire()
	if cur == nil {
		return false, ErrClosed
	}
	defer p.release(cur)
	ctx, span := startSpan(ctx, "re2g.reload", attrIndex.String(p.cfg.Index))
	defer func() { endSpan(span, err) }()
	if m, err := indexdir.ReadManifest(p.cfg.Index); err == nil && m.ManifestSHA256 == cur.ix.Manifest.ManifestSHA256 {
		return false, nil
	}
	octx := ctx
	if p.cfg.LockTimeout > 0 {
		var cancel context.CancelFunc
		octx, cancel = context.WithTimeout(ctx, p.cfg.LockTimeout)
		defer cancel()
	}
	// the segments the update left alone are shared with the index served
	ix, err := indexdir.OpenWith(octx, p.cfg.Index, indexdir.OpenOptions{Verify: p.cfg.Verify, Reuse: cur.ix})
	if err != nil {
		return false, err
	}
	if ix.Manifest.ManifestSHA256 == cur.ix.Manifest.ManifestSHA256 {
		ix.Close()
		return false, nil
	}
	if err := p.fits(ix); err != nil {
		ix.Close()
		return false, err
	}
	old := p.index.Swap(newIndexRef(ix))
	p.release(old)
	span.SetAttributes(attribute.Int("re2g.index.generation", ix.Manifest.Generation), attribute.Int("re2g.index.passages", ix.Manifest.Passages))
	return true, nil
}

// Config is the pipeline's configuration, defaults filled in.
func (p *Pipeline) Config() Config { return p.cfg }

// Encoder is the query encoder, or nil.
func (p *Pipeline) Encoder() *neural.Encoder { return p.encoder }

// Retrieve returns the merged DPR and BM25 candidates of one query.
func (p *Pipeline) Retrieve(ctx context.Context, query string) ([]Candidate, error) {
	r, err := p.RetrieveBatch(ctx, []string{query})
	if err != nil {
		return nil, err
	}
	return r[0], nil
}

// RetrieveBatch retrieves for many queries, encoding them in one batch.
func (p *Pipeline) RetrieveBatch(ctx context.Context, queries []string) ([][]Candidate, error) {
	r := p.acquire()
	if r == nil {
		return nil, ErrClosed
	}
	defer p.release(r)
	return p.retrieve(ctx, r.ix, queries)
}

// retrieve is RetrieveBatch over the index ix.
func (p *Pipeline) retrieve(ctx context.Context, ix *indexdir.Index, queries []string) (_ [][]Candidate, err error) {
	ctx, span := startSpan(ctx, "re2g.retrieve", attrQueries.Int(len(queries)), attribute.Int("re2g.index.generation", ix.Manifest.Generation))
	defer func() { endSpan(span, err) }()
	for i, q := range queries {
		if strings.TrimSpace(q) == "" {
			return nil, fmt.Errorf("query %d is empty", i)
		}
	}
	dense := make([][]Hit, len(queries))
	if p.encoder != nil {
		if dense, err = p.denseSearch(ctx, ix, queries); err != nil {
			return nil, err
		}
	}
	sparse := make([][]Hit, len(queries))
	if !p.cfg.NoSparse {
		if sparse, err = p.sparseSearch(ctx, ix, queries); err != nil {
			return nil, err
		}
	}
	_, ms := startSpan(ctx, "re2g.merge", attrQueries.Int(len(queries)))
	out := make([][]Candidate, len(queries))
	n := 0
	for i := range queries {
		out[i] = Merge(dense[i], sparse[i])
		n += len(out[i])
	}
	ms.SetAttributes(attrCandidates.Int(n))
	ms.End()
	span.SetAttributes(attrCandidates.Int(n))
	return out, nil
}

// denseSearch encodes the queries and searches the HNSW index.
func (p *Pipeline) denseSearch(ctx context.Context, ix *indexdir.Index, queries []string) (_ [][]Hit, err error) {
	ctx, span := startSpan(ctx, "re2g.retrieve.dense", attrQueries.Int(len(queries)), attrK.Int(p.cfg.DenseK), attrEfSearch.Int(p.cfg.EfSearch))
	defer func() { endSpan(span, err) }()
	vecs, err := p.EncodeQueries(ctx, queries)
	if err != nil {
		return nil, err
	}
	hits, err := ix.DenseSearch(ctx, vecs, p.cfg.DenseK, p.cfg.EfSearch)
	if err != nil {
		return nil, err
	}
	span.SetAttributes(attrHits.Int(countHits(hits)))
	return hits, nil
}

// sparseSearch runs BM25 for each query.
func (p *Pipeline) sparseSearch(ctx context.Context, ix *indexdir.Index, queries []string) (_ [][]Hit, err error) {
	ctx, span := startSpan(ctx, "re2g.retrieve.bm25", attrQueries.Int(len(queries)), attrK.Int(p.cfg.SparseK),
		attrBM25K1.Float64(p.cfg.BM25.K1), attrBM25B.Float64(p.cfg.BM25.B))
	defer func() { endSpan(span, err) }()
	out := make([][]Hit, len(queries))
	for i, q := range queries {
		if out[i], err = ix.SparseSearch(ctx, q, p.cfg.SparseK, p.cfg.BM25); err != nil {
			return nil, err
		}
	}
	span.SetAttributes(attrHits.Int(countHits(out)))
	return out, nil
}

func countHits(hs [][]Hit) int {
	n := 0
	for _, h := range hs {
		n += len(h)
	}
	return n
}

// Rerank scores every candidate with the cross-encoder and returns them
// best first. Without a reranker the order is kept and each candidate's
// RerankScore is 0 (a uniform weighting).
func (p *Pipeline) Rerank(ctx context.Context, query string, cands []Candidate) ([]Candidate, error) {
	r, err := p.RerankBatch(ctx, []string{query}, [][]Candidate{cands})
	if err != nil {
		return nil, err
	}
	return r[0], nil
}

// RerankBatch reranks many queries' candidates in shared forward passes.
func (p *Pipeline) RerankBatch(ctx context.Context, queries []string, cands [][]Candidate) (_ [][]Candidate, err error) {
	ctx, span := startSpan(ctx, "re2g.rerank", attrQueries.Int(len(queries)), attrReranker.Bool(p.reranker != nil))
	defer func() { endSpan(span, err) }()
	if len(queries) != len(cands) {
		return nil, fmt.Errorf("rerank: %d queries, %d candidate lists", len(queries), len(cands))
	}
	n := 0
	for _, c := range cands {
		n += len(c)
	}
	span.SetAttributes(attrCandidates.Int(n))
	out := make([][]Candidate, len(cands))
	if p.reranker == nil {
		for i, c := range cands {
			out[i] = append([]Candidate(nil), c...)
		}
		return out, nil
	}
	var pairs []neural.Pair
	for i, cs := range cands {
		for _, c := range cs {
			pairs = append(pairs, neural.Pair{Query: queries[i], Passage: p.format.Passage(c.Title, c.Text)})
		}
	}
	span.SetAttributes(attrPairs.Int(len(pairs)))
	scores, err := p.reranker.Score(ctx, pairs)
	if err != nil {
		return nil, err
	}
	k := 0
	for i, cs := range cands {
		c := append([]Candidate(nil), cs...)
		for j := range c {
			c[j].RerankScore = scores[k]
			k++
		}
		out[i] = TopByRerank(c, 0)
	}
	return out, nil
}

// Provenance is one passage of a result with its probability p(z|x).
type Provenance struct {
	Candidate
	Page string  `json:"page"`
	Prob float64 `json:"prob"`
}

// Result is the pipeline's output for one query.
type Result struct {
	Query string `json:"query"`
	// Answer is the best answer ("" without a generator).
	Answer string `json:"answer"`
	// Score is the answer's marginal probability p(y|x).
	Score float64 `json:"score"`
	// Answers are every distinct answer, best first.
	Answers []Answer `json:"answers,omitempty"`
	// Provenance are the kept passages, best first.
	Provenance []Provenance `json:"provenance"`
}

// Answer runs the whole pipeline for one query.
func (p *Pipeline) Answer(ctx context.Context, query string) (*Result, error) {
	r, err := p.AnswerBatch(ctx, []string{query})
	if err != nil {
		return nil, err
	}
	return r[0], nil
}

// AnswerBatch runs the pipeline for many queries, batching every model call
// across them.
func (p *Pipeline) AnswerBatch(ctx context.Context, queries []string) (_ []*Result, err error) {
	ctx, span := startSpan(ctx, "re2g.answer", attrQueries.Int(len(queries)), attrRerankK.Int(p.cfg.RerankK), attrGenerator.Bool(p.gen != nil))
	defer func() { endSpan(span, err) }()
	r := p.acquire()
	if r == nil {
		return nil, ErrClosed
	}
	defer p.release(r)
	cands, err := p.retrieve(ctx, r.ix, queries)
	if err != nil {
		return nil, err
	}
	ranked, err := p.RerankBatch(ctx, queries, cands)
	if err != nil {
		return nil, err
	}
	keeps := make([][]Candidate, len(queries))
	probs := make([][]float64, len(queries))
	var sources []string
	spans := make([]sourceSpan, len(queries))
	for i, q := range queries {
		keep := ranked[i]
		if len(keep) > p.cfg.RerankK {
			keep = keep[:p.cfg.RerankK]
		}
		keeps[i] = keep
		logits := make([]float64, len(keep))
		for j, c := range keep {
			logits[j] = c.RerankScore
		}
		// p(z|x) now, so that a bad score fails before generation
		if probs[i], err = Softmax(logits); err != nil {
			return nil, fmt.Errorf("query %d: %w", i, err)
		}
		spans[i].lo = len(sources)
		if p.gen != nil {
			for _, c := range keep {
				sources = append(sources, p.Source(q, c.Title, c.Text))
			}
		}
		spans[i].hi = len(sources)
	}
	var gens [][]neural.Output
	var g bart.GenerationConfig
	if p.gen != nil && len(sources) > 0 {
		g = *p.gen.Config
		g.NumBeams, g.NumReturnSequences = p.cfg.NumBeams, p.cfg.NumReturnSequences
		g.MaxNewTokens, g.MaxLength = p.cfg.MaxNewTokens, 0
		if g.NumBeams == 1 {
			g.NumReturnSequences = 1
		}
		if err := g.Check(); err != nil {
			return nil, fmt.Errorf("generation settings: %w", err)
		}
		if gens, err = p.generate(ctx, sources, &g); err != nil {
			return nil, err
		}
	}
	return p.weight(ctx, r.ix, queries, keeps, probs, spans, gens, &g)
}

// sourceSpan is where one query's generator inputs lie among a batch's.
type sourceSpan struct{ lo, hi int }

// generate runs the generator over every source of a batch.
func (p *Pipeline) generate(ctx context.Context, sources []string, g *bart.GenerationConfig) (_ [][]neural.Output, err error) {
	ctx, span := startSpan(ctx, "re2g.generate", attrSources.Int(len(sources)), attrBeams.Int(g.NumBeams),
		attrReturnSeqs.Int(g.NumReturnSequences), attrMaxNewTokens.Int(g.MaxNewTokens))
	defer func() { endSpan(span, err) }()
	gens, err := p.gen.Generate(ctx, sources, g)
	if err != nil {
		return nil, err
	}
	n := 0
	for _, o := range gens {
		n += len(o)
	}
	span.SetAttributes(attrSequences.Int(n))
	return gens, nil
}

// weight makes the results: each query's kept passages with their
// probabilities p(z|x) and, with generations, its answers marginalised over
// them.
func (p *Pipeline) weight(ctx context.Context, ix *indexdir.Index, queries []string, keeps [][]Candidate, probs [][]float64, spans []sourceSpan,
	gens [][]neural.Output, g *bart.GenerationConfig) (_ []*Result, err error) {
	_, span := startSpan(ctx, "re2g.weight", attrQueries.Int(len(queries)))
	defer func() { endSpan(span, err) }()
	out := make([]*Result, len(queries))
	passages, answers := 0, 0
	for i, q := range queries {
		res := &Result{Query: q}
		for j, c := range keeps[i] {
			res.Provenance = append(res.Provenance, Provenance{Candidate: c, Page: ix.Page(c.ID), Prob: probs[i][j]})
		}
		passages += len(keeps[i])
		out[i] = res
		if gens == nil {
			continue
		}
		var seqs []Generation
		for z := spans[i].lo; z < spans[i].hi; z++ {
			for _, o := range gens[z] {
				seqs = append(seqs, Generation{Passage: z - spans[i].lo, Text: strings.TrimSpace(o.Text), Score: o.Score, Length: o.Length})
			}
		}
		wc := p.cfg.Weight
		if g.NumBeams == 1 {
			wc.Mode = ScoreAsLogProb // greedy scores are plain sums already
		} else if wc.Mode == ScoreLengthNormalised {
			wc.LengthPenalty = g.LengthPenalty
		}
		as, err := Marginalize(probs[i], seqs, wc)
		if err != nil {
			return nil, fmt.Errorf("query %d: %w", i, err)
		}
		answers += len(as)
		res.Answers = as
		if len(as) > 0 {
			res.Answer, res.Score = as[0].Text, as[0].Prob
			if math.IsNaN(res.Score) {
				res.Score = 0
			}
		}
	}
	span.SetAttributes(attrPassages.Int(passages), attrAnswers.Int(answers))
	return out, nil
}

// Source is the generator's input for a query and a passage, laid out by
// Format (the query as the generator's sources hold it: see
// neural.Generator.SourceQuery).
func (p *Pipeline) Source(query, title, text string) string {
	if p.gen != nil {
		query = p.gen.SourceQuery(query)
	}
	return p.format.Source(query, title, text)
}

// Format is how the pipeline lays out generator sources and reranker
// passages: the generator's Format (DefaultSourceFormat without a
// generator), with Config's separators where set.
func (p *Pipeline) Format() neural.SourceFormat { return p.format }

// GenerationConfig is the generator's settings, or nil without a generator.
func (p *Pipeline) GenerationConfig() *bart.GenerationConfig {
	if p.gen == nil {
		return nil
	}
	return p.gen.Config
}

// Device is where the models run.
func (p *Pipeline) Device() torch.Device { return p.cfg.Models.Device }
