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
