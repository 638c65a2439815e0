package pipeline

import (
	"context"
	"errors"
)

// Capabilities says what a pipeline can do: what a server reports on its
// readiness probe and which endpoints it can answer.
type Capabilities struct {
	Passages     int  // passages in the index
	Generation   int  // the index's generation (updates committed since it was built)
	QueryEncoder bool // dense retrieval: EncodeQueries works
	QueryDim     int  // dimension of the query vectors (0 without a query encoder)
	BM25         bool // sparse retrieval
	Reranker     bool // RerankBatch scores with a cross-encoder
	Generator    bool // AnswerBatch generates answers
}

// Capabilities reports the pipeline's index size and loaded models.
func (p *Pipeline) Capabilities() Capabilities {
	c := Capabilities{QueryEncoder: p.encoder != nil, BM25: !p.cfg.NoSparse, Reranker: p.reranker != nil, Generator: p.gen != nil}
	if r := p.index.Load(); r != nil {
		c.Passages, c.Generation = r.ix.Manifest.Passages, r.ix.Manifest.Generation
	}
	if p.encoder != nil {
		c.QueryDim = p.encoder.Dim()
	}
	return c
}

// ErrNoQueryEncoder is returned by EncodeQueries when the pipeline has no
// query encoder.
var ErrNoQueryEncoder = errors.New("pipeline: no query encoder")

// EncodeQueries embeds queries with the DPR query encoder, in batches.
func (p *Pipeline) EncodeQueries(ctx context.Context, queries []string) (_ [][]float32, err error) {
	ctx, span := startSpan(ctx, "re2g.encode", attrQueries.Int(len(queries)))
	defer func() { endSpan(span, err) }()
	if p.encoder == nil {
		return nil, ErrNoQueryEncoder
	}
	span.SetAttributes(attrDim.Int(p.encoder.Dim()))
	return p.encoder.EncodeQueries(ctx, queries)
}
