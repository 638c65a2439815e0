package bm25

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/re2g/re2g/data"
)

// TestPrunedEqualsExhaustive: searches that skip postings (MaxScore) return
// the exhaustive search's hits and scores to the bit, on SciFact's and
// ArguAna's test queries (flat and multi-field; both Lucene scorings; top
// 1 to pruneMaxK), and on an index of several segments with deleted passages
// and many tied scores; most of those searches do skip.
func TestPrunedEqualsExhaustive(t *testing.T) {
	check := func(t *testing.T, ix *Index, queries []string, ks []int) {
		t.Helper()
		defer func() { ix.exhaustive = false }()
		before := ix.prunedSearches.Load()
		searches := 0
		for _, sc := range []string{Lucene, LuceneExact} {
			for _, k := range ks {
				for _, q := range queries {
					ix.exhaustive = true
					want, err := ix.Search(ctx, q, k, Params{Scoring: sc})
					if err != nil {
						t.Fatal(err)
					}
					ix.exhaustive = false
					got, err := ix.Search(ctx, q, k, Params{Scoring: sc})
					if err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(got, want) {
						t.Fatalf("%s, top %d, %q:\npruned     %v\nexhaustive %v", sc, k, q, got, want)
					}
					searches++
				}
			}
		}
		pruned := ix.prunedSearches.Load() - before
		t.Logf("%d of %d searches pruned", pruned, searches)
		if pruned < int64(searches)/3 {
			t.Errorf("only %d of %d searches pruned", pruned, searches)
		}
	}
	for _, name := range []string{"scifact", "arguana"} {
		for _, fields := range []string{Flat, MultiField} {
			t.Run(name+"/"+fields, func(t *testing.T) {
				ix, c := collectionIndex(t, name, fields)
				var qs []string
				for i, q := range c.queries {
					if name == "arguana" && i%16 != 0 { // its queries are whole arguments
						continue
					}
					qs = append(qs, q.Text)
				}
				check(t, ix, qs, []int{1, 10, 12, pruneMaxK})
			})
		}
	}
	t.Run("segments-deleted-ties", func(t *testing.T) {
		var ps []data.Passage
		for i := range 3000 {
			ps = append(ps, data.Passage{ID: fmt.Sprintf("p%04d", i),
				Text: fmt.Sprintf("alpha%d beta%d gamma%d shared words here and there %d", i%7, i%13, i%101, i%5)})
		}
		ix, _ := newIndex(t, Flat, ps[:1000])
		for _, part := range [][]data.Passage{ps[1000:2000], ps[2000:]} { // more segments
			if err := ix.Add(ctx, part, nil); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := ix.Delete(ctx, []string{"p0003", "p0010", "p1301", "p2999", "p0012"}); err != nil {
			t.Fatal(err)
		}
		check(t, ix, []string{"alpha3 gamma7", "beta5 alpha1 words gamma17", "alpha3 beta3 gamma3 shared", "gamma100 alpha6 here 4",
			"alpha1 alpha2 alpha3 beta12 gamma50 there"}, []int{1, 3, 10, 50, pruneMaxK})
	})
}
