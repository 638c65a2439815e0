package train

import (
	"github.com/re2g/re2g/indexdir"
	"testing"

	"github.com/re2g/re2g/dense"
	"github.com/re2g/re2g/faiss"
	"github.com/re2g/re2g/pipeline"
)

// TestReindexKeepsSQ8Training: the index DPR stage 2 re-encodes takes the
// HNSW configuration and the SQ8 training sample (size and seed) of the
// index it read, not the defaults.
func TestReindexKeepsSQ8Training(t *testing.T) {
	ix := &pipeline.Index{Manifest: indexdir.Manifest{Dense: &indexdir.DenseManifest{
		HNSW:     faiss.HNSWConfig{M: 16, SQ8: true},
		SQ8Train: &dense.SQ8Train{Sample: 500, Seed: 9, Vectors: 300},
	}}}
	if got := hnswOf(ix); got != (faiss.HNSWConfig{M: 16, SQ8: true}) {
		t.Errorf("HNSW configuration %+v", got)
	}
	if got := sq8TrainOf(ix); got != (dense.SQ8Train{Sample: 500, Seed: 9}) {
		t.Errorf("SQ8 training %+v, want sample 500 seed 9", got)
	}
	if got := sq8TrainOf(&pipeline.Index{}); got != (dense.SQ8Train{}) {
		t.Errorf("an index without vectors: SQ8 training %+v, want the defaults", got)
	}
}
