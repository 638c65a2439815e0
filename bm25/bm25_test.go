package bm25

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/re2g/re2g/data"
)

var ctx = context.Background()

func newIndex(t *testing.T, fields string, ps []data.Passage) (*Index, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ix")
	ix, err := Create(dir, Options{Fields: fields})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	if err := ix.Add(ctx, ps, nil); err != nil {
		t.Fatal(err)
	}
	return ix, dir
}

func TestAnalyzer(t *testing.T) {
	ix, _ := newIndex(t, Flat, []data.Passage{{ID: "x", Text: "x"}})
	got := terms(ix.analyzer, "The Runner's shoes are running QUICKLY, and it is not such a 2020 thing!")
	want := map[string]int{"runner": 1, "shoe": 1, "run": 1, "quickli": 1, "2020": 1, "thing": 1}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("terms = %v, want %v", got, want)
	}
}

func TestLuceneNorms(t *testing.T) {
	for i := 0; i < 24; i++ {
		if byte4ToInt(intToByte4(i)) != i {
			t.Errorf("length %d not exact", i)
		}
	}
	// 100 − 24 = 76 = 0b1001100: shift 3, mantissa 001 → (8+1)<<3 + 24 = 96.
	if got := byte4ToInt(intToByte4(100)); got != 96 {
		t.Errorf("length 100 → %d, want 96", got)
	}
	prev := -1
	for i := 0; i < 1<<20; i += 7 {
		d := byte4ToInt(intToByte4(i))
		if d > i || d < prev {
			t.Fatalf("length %d decodes to %d (previous %d)", i, d, prev)
		}
		prev = d
	}
}

var tiny = []data.Passage{
	{ID: "d1", Text: "apple banana"},
	{ID: "d2", Text: "apple apple cherry"},
	{ID: "d3", Title: "banana", Text: "cherry date egg"},
}

// bm25 is the textbook formula, written out for the tests.
func bm25(tf, dl, avgdl, df, n, k1, b float64) float64 {
	return math.Log(1+(n-df+0.5)/(df+0.5)) * tf / (tf + k1*(1-b+b*dl/avgdl))
}

func TestScoresHandComputed(t *testing.T) {
	ix, _ := newIndex(t, Flat, tiny)
	if avg := ix.AvgLen()[fieldContents]; avg != 3 {
		t.Fatalf("avgdl = %v, want 3", avg)
	}
	for _, sc := range []string{Lucene, LuceneExact} {
		hits, err := ix.Search(ctx, "apples and a banana", 10, Params{Scoring: sc})
		if err != nil {
			t.Fatal(err)
		}
		// apple: df 2; banana: df 2 (d3 through its title). N = 3, avgdl = 3.
		want := map[string]float64{
			"d1": bm25(1, 2, 3, 2, 3, 0.9, 0.4) + bm25(1, 2, 3, 2, 3, 0.9, 0.4),
			"d2": bm25(2, 3, 3, 2, 3, 0.9, 0.4),
			"d3": bm25(1, 4, 3, 2, 3, 0.9, 0.4),
		}
		if len(hits) != 3 || hits[0].ID != "d1" {
			t.Fatalf("%s: hits %v", sc, hits)
		}
		for _, h := range hits {
			if math.Abs(h.Score-want[h.ID]) > 1e-12 {
				t.Errorf("%s: %s score %.9f, want %.9f", sc, h.ID, h.Score, want[h.ID])
			}
		}
		// k1, b change the scores as the formula says.
		hits, _ = ix.Search(ctx, "cherry", 1, Params{K1: 1.2, B: 0.75, Scoring: sc})
		if w := bm25(2-1, 3, 3, 2, 3, 1.2, 0.75); len(hits) != 1 || hits[0].ID != "d2" || math.Abs(hits[0].Score-w) > 1e-12 {
			t.Errorf("%s: k1 1.2 b 0.75: %v, want d2 %.9f", sc, hits, w)
		}
	}
	if hits, err := ix.Search(ctx, "the and of", 10, Params{}); err != nil || len(hits) != 0 {
		t.Errorf("stop words only: %v %v", hits, err)
	}
	if hits, err := ix.Search(ctx, "zebra", 10, Params{}); err != nil || len(hits) != 0 {
		t.Errorf("unknown term: %v %v", hits, err)
	}
	hits, err := ix.Search(ctx, "apple banana", 10, Params{Scoring: Bleve})
	if err != nil || len(hits) != 3 || hits[0].ID != "d1" {
		t.Errorf("bleve scoring: %v %v", hits, err)
	}
}

func TestMultiField(t *testing.T) {
	ix, _ := newIndex(t, MultiField, tiny)
	avg := ix.AvgLen()
	// title: only d3 has one (length 1); text: lengths 2, 3, 3.
	if avg[fieldTitle] != 1 || avg[fieldText] != 8.0/3 {
		t.Fatalf("avg lengths %v", avg)
	}
	hits, err := ix.Search(ctx, "banana", 10, Params{Scoring: LuceneExact})
	if err != nil {
		t.Fatal(err)
	}
	w3 := bm25(1, 1, 1, 1, 1, 0.9, 0.4)
	w1 := bm25(1, 2, 8.0/3, 1, 3, 0.9, 0.4)
	if len(hits) != 2 || hits[0].ID != "d3" && hits[1].ID != "d3" {
		t.Fatalf("hits %v", hits)
	}
	for _, h := range hits {
		w := map[string]float64{"d1": w1, "d3": w3}[h.ID]
		if math.Abs(h.Score-w) > 1e-12 {
			t.Errorf("%s score %.9f, want %.9f", h.ID, h.Score, w)
		}
	}
}

func TestPersistAddReplaceDelete(t *testing.T) {
	ix, dir := newIndex(t, Flat, tiny)
	before, _ := ix.Search(ctx, "banana cherry", 10, Params{})
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	ix, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	after, _ := ix.Search(ctx, "banana cherry", 10, Params{})
	if !reflect.DeepEqual(before, after) {
		t.Errorf("after reopen %v, before %v", after, before)
	}
	if p, ok, err := ix.Passage("d3"); err != nil || !ok || p != tiny[2] {
		t.Errorf("stored passage %v %v %v", p, ok, err)
	}
	// Add one, replace one: statistics as if built from scratch.
	err = ix.Add(ctx, []data.Passage{{ID: "d4", Text: "fig grape"}, {ID: "d2", Text: "kiwi"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := ix.Count(); n != 4 {
		t.Errorf("count %d, want 4", n)
	}
	if avg := ix.AvgLen()[fieldContents]; avg != (2+1+4+2)/4.0 {
		t.Errorf("avgdl after add/replace %v", avg)
	}
	hits, _ := ix.Search(ctx, "apple", 10, Params{})
	if len(hits) != 1 || hits[0].ID != "d1" {
		t.Errorf("replaced d2 still matches old text: %v", hits)
	}
	hits, _ = ix.Search(ctx, "kiwi", 10, Params{})
	if len(hits) != 1 || hits[0].ID != "d2" {
		t.Errorf("replaced d2 not found by new text: %v", hits)
	}
	n, err := ix.Delete(ctx, []string{"d1", "nosuch", "d1"})
	if err != nil || n != 1 {
		t.Fatalf("delete: %d %v", n, err)
	}
	if avg := ix.AvgLen()[fieldContents]; avg != (1+4+2)/3.0 {
		t.Errorf("avgdl after delete %v", avg)
	}
	hits, _ = ix.Search(ctx, "apple banana", 10, Params{})
	if len(hits) != 1 || hits[0].ID != "d3" {
		t.Errorf("after delete: %v", hits)
	}
	// The same index from scratch scores the same.
	fresh, _ := newIndex(t, Flat, []data.Passage{{ID: "d2", Text: "kiwi"}, tiny[2], {ID: "d4", Text: "fig grape"}})
	a, _ := ix.Search(ctx, "banana grape kiwi", 10, Params{})
	b, _ := fresh.Search(ctx, "banana grape kiwi", 10, Params{})
	if !reflect.DeepEqual(a, b) {
		t.Errorf("incremental %v, fresh %v", a, b)
	}
	ix.Close()
	ix, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if avg := ix.AvgLen()[fieldContents]; avg != (1+4+2)/3.0 {
		t.Errorf("avgdl after reopen %v", avg)
	}
}

func TestBadInput(t *testing.T) {
	ix, _ := newIndex(t, Flat, tiny)
	for _, p := range []data.Passage{{ID: "", Text: "x"}, {ID: "a b", Text: "x"}, {ID: "e"}, {ID: "big", Text: strings.Repeat("x", maxText+1)}} {
		if err := ix.Add(ctx, []data.Passage{p}, nil); err == nil {
			t.Errorf("passage %.20q: no error", p.ID)
		}
	}
	for _, c := range []struct {
		k int
		p Params
	}{{0, Params{}}, {MaxK + 1, Params{}}, {10, Params{K1: -1}}, {10, Params{B: 1.5}}, {10, Params{Scoring: "tfidf"}}} {
		if _, err := ix.Search(ctx, "apple", c.k, c.p); err == nil {
			t.Errorf("k %d params %+v: no error", c.k, c.p)
		}
	}
	if _, err := Create(filepath.Join(t.TempDir(), "x"), Options{Fields: "three"}); err == nil {
		t.Error("bad fields: no error")
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("open missing: no error")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := ix.Search(cancelled, "apple", 10, Params{}); err == nil {
		t.Error("cancelled search: no error")
	}
}

func TestConcurrentSearchAndAdd(t *testing.T) {
	var ps []data.Passage
	for i := range 3000 {
		ps = append(ps, data.Passage{ID: fmt.Sprintf("p%d", i), Text: fmt.Sprintf("word%d common text number %d", i%50, i)})
	}
	ix, _ := newIndex(t, Flat, ps[:1000])
	want, _ := ix.Search(ctx, "word7 common", 5, Params{})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				hits, err := ix.Search(ctx, fmt.Sprintf("word%d common", (g*50+i)%50), 10, Params{})
				if err != nil || len(hits) != 10 {
					errs <- fmt.Errorf("search: %d hits, %v", len(hits), err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := ix.Add(ctx, ps[1000:], nil); err != nil {
			errs <- err
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n, _ := ix.Count(); n != 3000 {
		t.Errorf("count %d", n)
	}
	if err := ix.Optimize(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := ix.Search(ctx, "word7 common", 5, Params{})
	if len(got) != 5 || len(want) != 5 {
		t.Fatalf("hits %v / %v", got, want)
	}
	for _, h := range got {
		var n int
		fmt.Sscanf(h.ID, "p%d", &n)
		if n%50 != 7 {
			t.Errorf("hit %s does not contain word7", h.ID)
		}
	}
}

// TestDirectPostingsMatchReaders checks the fast path (segment postings of a
// scorch snapshot) against bleve's term field readers, with several segments
// and deleted documents.
func TestDirectPostingsMatchReaders(t *testing.T) {
	var ps []data.Passage
	for i := range 500 {
		ps = append(ps, data.Passage{ID: fmt.Sprintf("p%d", i), Text: fmt.Sprintf("alpha%d beta%d gamma shared words %d", i%7, i%13, i)})
	}
	ix, _ := newIndex(t, Flat, ps[:300])
	if err := ix.Add(ctx, ps[300:], nil); err != nil { // a second segment
		t.Fatal(err)
	}
	if _, err := ix.Delete(ctx, []string{"p3", "p10", "p301", "p499"}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"alpha3 gamma", "beta5 alpha1 words", "shared", "p3 alpha3"} {
		for _, sc := range []string{Lucene, LuceneExact} {
			ix.genericPostings = false
			a, err := ix.Search(ctx, q, 50, Params{Scoring: sc})
			if err != nil {
				t.Fatal(err)
			}
			ix.genericPostings = true
			b, err := ix.Search(ctx, q, 50, Params{Scoring: sc})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a, b) {
				t.Errorf("%q %s: direct %v\nreaders %v", q, sc, a, b)
			}
			for _, h := range a {
				if h.ID == "p3" || h.ID == "p10" || h.ID == "p301" || h.ID == "p499" {
					t.Errorf("%q: deleted %s returned", q, h.ID)
				}
			}
		}
	}
	ix.genericPostings = false
}

// TestRecountAfterCrash simulates a crash between a batch and its statistics:
// Open notices and counts again.
func TestRecountAfterCrash(t *testing.T) {
	ix, dir := newIndex(t, MultiField, tiny)
	want := ix.AvgLen()
	if err := ix.bi.SetInternal([]byte(keyStats), []byte(`{"title": {"docs": 9, "sum_len": 1}, "_passages": {"docs": 2}}`)); err != nil {
		t.Fatal(err)
	}
	ix.Close()
	ix, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if got := ix.AvgLen(); !reflect.DeepEqual(got, want) {
		t.Errorf("after recount %v, want %v", got, want)
	}
}

func TestTopKOrder(t *testing.T) {
	var ps []data.Passage
	for i := range 200 {
		ps = append(ps, data.Passage{ID: fmt.Sprintf("p%03d", i), Text: strings.Repeat("common ", 1+i%17) + fmt.Sprintf("filler%d filler x%d", i%5, i)})
	}
	ix, _ := newIndex(t, Flat, ps)
	all, err := ix.Search(ctx, "common filler3", 200, Params{})
	if err != nil || len(all) != 200 {
		t.Fatalf("%d hits, %v", len(all), err)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Score > all[i-1].Score {
			t.Fatalf("hit %d score %v above hit %d's %v", i, all[i].Score, i-1, all[i-1].Score)
		}
	}
	for _, k := range []int{1, 7, 50, 199} {
		top, _ := ix.Search(ctx, "common filler3", k, Params{})
		if !reflect.DeepEqual(top, all[:k]) {
			t.Errorf("top %d is not the first %d of the full ranking", k, k)
		}
	}
}
