package pipeline

import (
	"context"
	"io"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/re2g/re2g/bm25"
	"github.com/re2g/re2g/indexdir"
	"github.com/re2g/re2g/kilt"
	"github.com/re2g/re2g/neural"
)

// TestNewRejectsNumbersOutOfRange: a negative, huge or NaN setting is an
// error naming it, before the index is opened; before, a negative k or
// beam count silently meant the default.
func TestNewRejectsNumbersOutOfRange(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-index")
	for _, tc := range []struct {
		mut  func(c *Config)
		want string
	}{
		{func(c *Config) { c.DenseK = -1 }, "dense_k -1"},
		{func(c *Config) { c.SparseK = MaxK + 1 }, "sparse_k"},
		{func(c *Config) { c.RerankK = -3 }, "rerank_k -3"},
		{func(c *Config) { c.EfSearch = -1 }, "ef_search -1"},
		{func(c *Config) { c.NumBeams = -1 }, "num_beams -1"},
		{func(c *Config) { c.NumReturnSequences = -2 }, "num_return_sequences -2"},
		{func(c *Config) { c.NumBeams, c.NumReturnSequences = 2, 3 }, "num_return_sequences 3"},
		{func(c *Config) { c.NumReturnSequences = 5 }, "at most num_beams 4"},
		{func(c *Config) { c.MaxNewTokens = -1 }, "max_new_tokens -1"},
		{func(c *Config) { c.RerankMaxLength = -1 }, "rerank_max_length -1"},
		{func(c *Config) { c.BM25.K1 = math.NaN() }, "k1 NaN"},
		{func(c *Config) { c.BM25.B = 1.5 }, "b 1.5"},
		{func(c *Config) { c.Weight.LengthPenalty = math.Inf(1) }, "length penalty"},
		{func(c *Config) { c.Models.BatchSize = -1 }, "batch size -1"},
	} {
		c := Config{Index: missing}
		tc.mut(&c)
		_, err := New(c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error with %q", c, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "no-index") {
			t.Errorf("the index was opened before the config was checked: %v", err)
		}
	}
	// in range: the config passes, and the missing index is the error
	c := Config{Index: missing, DenseK: MaxK, NumBeams: 1, NumReturnSequences: 4, BM25: bm25.Params{K1: 1.2, B: 0.75},
		Models: neural.Options{BatchSize: neural.MaxBatchSize}}
	if err := c.Check(); err != nil {
		t.Fatalf("greedy search with 4 return sequences, the most hits: %v", err)
	}
}

// TestPredictRejectsNegativeBatch: Predict's batch size is checked, where a
// negative one silently meant 16.
func TestPredictRejectsNegativeBatch(t *testing.T) {
	corpusPath, _ := tinyCorpus(t, 5)
	out := filepath.Join(t.TempDir(), "index")
	if _, err := indexdir.Build(context.Background(), corpusPath, indexdir.Options{Out: out, Progress: io.Discard}); err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{Index: out})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	recs := []kilt.Record{{ID: "q1", Input: "what is it"}}
	for _, b := range []int{-1, MaxBatch + 1} {
		if _, err := p.Predict(context.Background(), recs, false, b, false); err == nil || !strings.Contains(err.Error(), "batch") {
			t.Errorf("Predict batch %d: %v, want an error naming the batch", b, err)
		}
	}
	preds, err := p.Predict(context.Background(), recs, false, 0, false)
	if err != nil || len(preds) != 1 {
		t.Fatalf("Predict batch 0 (default): %v, %d predictions", err, len(preds))
	}
}
