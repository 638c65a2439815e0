package bm25

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// BenchmarkSearchSciFact times one SciFact test query (all 300 in turn) for
// the top 100, with the Lucene scorer.
func BenchmarkSearchSciFact(b *testing.B) {
	ix, c := collectionIndex(b, "scifact", Flat)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := ix.Search(ctx, c.queries[i%len(c.queries)].Text, 100, Params{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSearchSciFact1000 is the same for the top 1,000 (evaluation depth).
func BenchmarkSearchSciFact1000(b *testing.B) {
	ix, c := collectionIndex(b, "scifact", Flat)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := ix.Search(ctx, c.queries[i%len(c.queries)].Text, 1000, Params{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIndexSciFact builds a SciFact index (5,183 passages) and merges it
// into one segment; see docs/s.
func BenchmarkIndexSciFact(b *testing.B) {
	c := loadCollection(b, "scifact")
	for b.Loop() {
		ix, err := Create(b.TempDir()+"/ix", Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := ix.Add(ctx, c.corpus, nil); err != nil {
			b.Fatal(err)
		}
		if err := ix.Optimize(ctx); err != nil {
			b.Fatal(err)
		}
		ix.Close()
	}
	b.ReportMetric(float64(len(c.corpus)*b.N)/b.Elapsed().Seconds(), "docs/s")
}

// BenchmarkPruning times top-k pruning against the exhaustive search on
// the same index in the same run, alternating query by query: SQuADShifts
// New Wiki questions against a BM25 index directory named by
// RE2G_BM25_INDEX (e.g. a bench scale index's bm25 directory), or
// SQuADShifts' own paragraphs when unset. It reports both times, the
// speed-up, and the share of searches that pruned.
//
//	RE2G_BM25_INDEX=build/scale/n1000000/index/g000002/bm25 go test ./bm25 -run '^$' -bench Pruning -benchtime 300x
func BenchmarkPruning(b *testing.B) {
	for _, k := range []int{12, 100, 1000} { // searches prune above pruneMaxK only here
		b.Run(fmt.Sprintf("top%d", k), func(b *testing.B) {
			var ix *Index
			if dir := os.Getenv("RE2G_BM25_INDEX"); dir != "" {
				var err error
				if ix, err = OpenReadOnly(ctx, dir); err != nil {
					b.Fatal(err)
				}
				defer ix.Close()
			} else {
				ix, _ = collectionIndex(b, "squadshifts", Flat)
			}
			ix.pruneAnyK = true
			defer func() { ix.exhaustive, ix.pruneAnyK = false, false }()
			c := loadCollection(b, "squadshifts")
			var pruned, exhaustive time.Duration
			before := ix.prunedSearches.Load()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				q := c.queries[(i*7919)%len(c.queries)].Text
				for _, ex := range []bool{i%2 == 0, i%2 != 0} {
					ix.exhaustive = ex
					t0 := time.Now()
					if _, err := ix.Search(ctx, q, k, Params{}); err != nil {
						b.Fatal(err)
					}
					if ex {
						exhaustive += time.Since(t0)
					} else {
						pruned += time.Since(t0)
					}
				}
			}
			n := float64(b.N)
			b.ReportMetric(float64(pruned.Microseconds())/n/1000, "pruned-ms/op")
			b.ReportMetric(float64(exhaustive.Microseconds())/n/1000, "exhaustive-ms/op")
			b.ReportMetric(exhaustive.Seconds()/pruned.Seconds(), "speedup")
			b.ReportMetric(float64(ix.prunedSearches.Load()-before)/n, "pruned-share")
		})
	}
}
