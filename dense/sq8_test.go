package dense

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/re2g/re2g/faiss"
	"github.com/re2g/re2g/internal/vecgen"
)

func TestSampleRows(t *testing.T) {
	a := sampleRows(1000, 100, 7)
	if len(a) != 100 || !slices.IsSorted(a) || len(slices.Compact(slices.Clone(a))) != 100 || a[0] < 0 || a[99] >= 1000 {
		t.Fatalf("sample of 100 of 1000: %v", a)
	}
	if b := sampleRows(1000, 100, 7); !slices.Equal(a, b) {
		t.Fatal("the same seed gave another sample")
	}
	if c := sampleRows(1000, 100, 8); slices.Equal(a, c) {
		t.Fatal("another seed gave the same sample")
	}
	if all := sampleRows(5, 5, 1); !slices.Equal(all, []int{0, 1, 2, 3, 4}) {
		t.Fatalf("sample of all 5: %v", all)
	}
	// Uniform: each of 10 rows is drawn in about 3/10 of 3000 samples of 3
	// (binomial sd 25).
	count := make([]int, 10)
	for seed := range uint64(3000) {
		for _, r := range sampleRows(10, 3, seed) {
			count[r]++
		}
	}
	for r, c := range count {
		if c < 800 || c > 1000 {
			t.Errorf("row %d drawn %d times in 3000 samples of 3 of 10, want about 900", r, c)
		}
	}
}

// sq8Store is a store of three shards of clustered vectors.
func sq8Store(t *testing.T) (*Store, *vecgen.Generator) {
	t.Helper()
	ctx := context.Background()
	g := vecgen.New(vecgen.Spec{Dim: dim, Clusters: 8, Noise: 0.5, NormSpread: 0.3, Seed: 5})
	s, err := Create(t.TempDir(), dim, F32)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		ids, v := shardData(g, uint64(10+i), 400, fmt.Sprint("s", i))
		if _, err := s.PutShard(ctx, fmt.Sprint("shard", i), ids, v); err != nil {
			t.Fatal(err)
		}
	}
	return s, g
}

// TestSQ8TrainingSample: an SQ8 index is trained on a sample its seed
// fixes: the same seed gives the same index, another seed another one (the
// quantiser's ranges come from the sample), and either finds the exact
// inner-product neighbours.
func TestSQ8TrainingSample(t *testing.T) {
	ctx := context.Background()
	// one thread: FAISS's parallel HNSW insertion may link differently
	// from run to run
	if err := faiss.SetThreads(1); err != nil {
		t.Fatal(err)
	}
	defer faiss.SetThreads(0)
	s, g := sq8Store(t)
	q := g.Vectors(99, 50)
	build := func(train SQ8Train) *faiss.Result {
		t.Helper()
		ix, err := s.BuildIndex(ctx, BuildOptions{HNSW: faiss.HNSWConfig{M: 16, SQ8: true, EfSearch: 200}, SQ8Train: train})
		if err != nil {
			t.Fatal(err)
		}
		defer ix.Close()
		if p, ok, _ := ix.HNSWParams(); !ok || !p.SQ8 {
			t.Fatalf("built %s, want HNSW over SQ8", ix.Description())
		}
		r, err := ix.Search(ctx, q, 10, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	a, b, c := build(SQ8Train{Sample: 300, Seed: 1}), build(SQ8Train{Sample: 300, Seed: 1}), build(SQ8Train{Sample: 300, Seed: 2})
	if !slices.Equal(a.IDs, b.IDs) || !slices.Equal(a.Scores, b.Scores) {
		t.Error("two builds with the same sample and seed differ")
	}
	if slices.Equal(a.Scores, c.Scores) {
		t.Error("builds with seeds 1 and 2 have the same scores: the seed does not choose the sample")
	}
	// exact inner product over the same vectors
	flat, err := faiss.NewFlat(dim, faiss.InnerProduct)
	if err != nil {
		t.Fatal(err)
	}
	defer flat.Close()
	for _, si := range s.Shards() {
		_, _, v, err := s.ReadShard(ctx, si.Name)
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]int64, si.Count)
		for r := range ids {
			ids[r] = FaissID(si.No, r)
		}
		if err := flat.Add(ctx, v, ids); err != nil {
			t.Fatal(err)
		}
	}
	want, err := flat.Search(ctx, q, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]*faiss.Result{"seed 1": a, "seed 2": c, "all": build(SQ8Train{})} {
		hit := 0
		for i := 0; i < want.N; i++ {
			w, _ := want.Row(i)
			g, _ := got.Row(i)
			for _, id := range g {
				if slices.Contains(w, id) {
					hit++
				}
			}
		}
		r := float64(hit) / float64(want.N*want.K)
		t.Logf("SQ8 trained on %s: recall@10 %.3f", name, r)
		if r < 0.9 {
			t.Errorf("SQ8 trained on %s: recall@10 vs exact inner product %.3f, want >= 0.9", name, r)
		}
	}
	if _, err := s.BuildIndex(ctx, BuildOptions{HNSW: faiss.HNSWConfig{SQ8: true}, SQ8Train: SQ8Train{Sample: -1}}); err == nil {
		t.Error("a negative training sample: no error")
	}
	if n := (SQ8Train{}).Size(1200); n != 1200 {
		t.Errorf("default sample of 1200 vectors: %d, want all", n)
	}
	if n := (SQ8Train{}).Size(1 << 30); n != DefaultSQ8Sample {
		t.Errorf("default sample of 2^30 vectors: %d, want %d", n, DefaultSQ8Sample)
	}
}
