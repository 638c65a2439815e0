package faiss

import (
	"context"
	"testing"

	"github.com/re2g/re2g/internal/vecgen"
)

// BenchmarkSingleQuery measures one-query searches on HNSW (n=20k, d=768,
// efSearch=64) with re2g's policy (a single query runs on the calling
// thread) against handing every query to an OpenMP team of Threads()
// threads, the configuration behind FAISS issue #2823 (single-query search
// far slower from C++ than from Python). Run with
//
//	go test -run '^$' -bench SingleQuery ./faiss/
func BenchmarkSingleQuery(b *testing.B) {
	const d, n, nq = 768, 20000, 256
	g := vecgen.New(vecgen.Default(d))
	xb, xq := g.Vectors(1, n), g.Vectors(2, nq)
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = int64(i)
	}
	ctx := context.Background()
	ix, err := NewHNSW(d, HNSWConfig{M: 32, EfConstruction: 40})
	if err != nil {
		b.Fatal(err)
	}
	defer ix.Close()
	if err := ix.Add(ctx, xb, ids); err != nil {
		b.Fatal(err)
	}
	opt := &SearchOptions{EfSearch: 64}
	for _, tc := range []struct {
		name string
		omp  bool
	}{{"caller-thread", false}, {"omp-team", true}} {
		b.Run(tc.name, func(b *testing.B) {
			ompForSmallBatches = tc.omp
			defer func() { ompForSmallBatches = false }()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := ix.Search(ctx, xq[(i%nq)*d:(i%nq+1)*d], 10, opt); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
	b.Run("batch", func(b *testing.B) {
		for b.Loop() {
			if _, err := ix.Search(ctx, xq, 10, opt); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*nq)/b.Elapsed().Seconds(), "queries/s")
	})
}
