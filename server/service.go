package server

import (
	"context"

	"github.com/re2g/re2g/pipeline"
)

// Service is what the server serves: the batch methods behind its
// endpoints and what it can do. *pipeline.Pipeline satisfies it; a service
// that embeds the server may put its own implementation behind it.
//
// The server calls the batch methods from its batchers with the queries of
// many requests at once; each must be safe for concurrent use, stop when
// ctx ends, and return exactly one output per query, in order. An error
// fails the whole batch, after which the server runs each request alone so
// that only the bad one fails.
type Service interface {
	// AnswerBatch answers each query (/v1/answer).
	AnswerBatch(ctx context.Context, queries []string) ([]*pipeline.Result, error)
	// RetrieveBatch returns each query's candidates (/v1/retrieve).
	RetrieveBatch(ctx context.Context, queries []string) ([][]pipeline.Candidate, error)
	// RerankBatch scores cands[i] against queries[i] and returns each list
	// best first, with RerankScore set (/v1/rerank). It is only called when
	// Capabilities().Reranker is set.
	RerankBatch(ctx context.Context, queries []string, cands [][]pipeline.Candidate) ([][]pipeline.Candidate, error)
	// EncodeQueries embeds each query in Capabilities().QueryDim dimensions
	// (/v1/encode). It is only called when Capabilities().QueryEncoder is set.
	EncodeQueries(ctx context.Context, queries []string) ([][]float32, error)
	// Capabilities says which models are loaded and how large the index
	// is; the server reads the models once, in Ready, and the index's size
	// and generation on each /readyz and /metrics.
	Capabilities() pipeline.Capabilities
}

// Reloader is a Service whose index can be swapped while it serves
// (Server.ReloadIndex); *pipeline.Pipeline is one.
type Reloader interface {
	// ReloadIndex opens the index again and swaps it in if it changed,
	// safely with the batch methods running; on an error the service
	// keeps its index.
	ReloadIndex(ctx context.Context) (changed bool, err error)
}

var (
	_ Service  = (*pipeline.Pipeline)(nil)
	_ Reloader = (*pipeline.Pipeline)(nil)
)
