package bm25

import "testing"

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
