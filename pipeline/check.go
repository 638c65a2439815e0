package pipeline

import (
	"fmt"
	"math"
)

// Bounds of Config.Check, shared with re2g's flags.
const (
	MaxK            = 10000   // DPR and BM25 hits per query
	MaxRerankK      = 1000    // passages kept after reranking
	MaxEfSearch     = 1 << 16 // HNSW search breadth
	MaxBeams        = 64      // beams (and sequences returned) per passage
	MaxNewTokens    = 4096    // answer tokens
	MaxRerankLength = 1 << 16 // tokens per reranker pair
	MaxBM25K1       = 100     // BM25 k1
	MaxBatch        = 1 << 16 // queries per Predict batch
)

// Check reports a numeric setting out of range, naming it: negative, over
// its bound, or NaN. Zero is each setting's default.
func (c *Config) Check() error {
	for _, r := range []struct {
		name  string
		v, hi int
	}{
		{"dense_k", c.DenseK, MaxK}, {"sparse_k", c.SparseK, MaxK}, {"rerank_k", c.RerankK, MaxRerankK},
		{"ef_search", c.EfSearch, MaxEfSearch}, {"rerank_max_length", c.RerankMaxLength, MaxRerankLength},
		{"num_beams", c.NumBeams, MaxBeams}, {"num_return_sequences", c.NumReturnSequences, MaxBeams},
		{"max_new_tokens", c.MaxNewTokens, MaxNewTokens},
	} {
		if r.v < 0 || r.v > r.hi {
			return fmt.Errorf("pipeline config: %s %d: want 0 (the default) to %d", r.name, r.v, r.hi)
		}
	}
	beams := c.NumBeams
	if beams == 0 {
		beams = 4 // defaults
	}
	if beams > 1 && c.NumReturnSequences > beams { // greedy search (1 beam) returns 1
		return fmt.Errorf("pipeline config: num_return_sequences %d: want at most num_beams %d", c.NumReturnSequences, beams)
	}
	if !(c.BM25.K1 >= 0 && c.BM25.K1 <= MaxBM25K1) {
		return fmt.Errorf("pipeline config: bm25 k1 %g: want 0 to %d", c.BM25.K1, MaxBM25K1)
	}
	if !(c.BM25.B >= 0 && c.BM25.B <= 1) {
		return fmt.Errorf("pipeline config: bm25 b %g: want 0 to 1", c.BM25.B)
	}
	if lp := c.Weight.LengthPenalty; math.IsNaN(lp) || math.IsInf(lp, 0) {
		return fmt.Errorf("pipeline config: weight length penalty %g: want a finite number", lp)
	}
	if err := c.Models.Check(); err != nil {
		return fmt.Errorf("pipeline config: %w", err)
	}
	return nil
}
