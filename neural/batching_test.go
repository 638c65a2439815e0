package neural

import (
	"context"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/tokenizer"
)

// arguana reads the first n ArguAna documents: real passages of widely
// varying length.
func arguana(t *testing.T, n int) []data.Passage {
	t.Helper()
	ps, err := data.LoadCorpus("../../shared/data/arguana/corpus.jsonl.gz", nil)
	if err != nil {
		t.Fatal(err)
	}
	return ps[:min(n, len(ps))]
}

func TestByLength(t *testing.T) {
	lens := []int{3, 9, 1, 9, 5, 2, 7}
	encs := make([]tokenizer.Encoding, len(lens))
	for i, l := range lens {
		encs[i].IDs = make([]int, l)
	}
	bs := byLength(encs, 100, 3, true)
	var pos, got []int
	for _, b := range bs {
		for i, p := range b.pos {
			pos = append(pos, p)
			got = append(got, len(b.encs[i].IDs))
		}
	}
	// longest first, equal lengths in input order, positions offset by lo
	if want := []int{101, 103, 106, 104, 100, 105, 102}; !slices.Equal(pos, want) {
		t.Errorf("positions %v, want %v", pos, want)
	}
	if want := []int{9, 9, 7, 5, 3, 2, 1}; !slices.Equal(got, want) {
		t.Errorf("lengths %v, want %v", got, want)
	}
	if len(bs) != 3 || len(bs[2].pos) != 1 {
		t.Errorf("batches of 3 over 7 inputs: got %d batches", len(bs))
	}
	unsorted := byLength(encs, 0, 3, false)
	if !slices.Equal(unsorted[0].pos, []int{0, 1, 2}) {
		t.Errorf("unsorted batch %v", unsorted[0].pos)
	}
}

// TestSortedEncodingKeepsInputOrder: passage vectors and reranker scores
// computed in length-sorted batches equal those in input order (up to the
// float error of other padding), each at its input's position, and the
// sorted batches pad less.
func TestSortedEncodingKeepsInputOrder(t *testing.T) {
	ps := arguana(t, 90)
	ctx := context.Background()
	load := func(window int) (*Encoder, *Reranker) {
		opt := Options{BatchSize: 8, SortWindow: window, MaxLength: 128}
		e, err := LoadEncoder(filepath.Join(fixtures, "dpr-ctx", "safetensors"), opt)
		if err != nil {
			t.Fatal(err)
		}
		r, err := LoadReranker(filepath.Join(fixtures, "cross-encoder-1", "safetensors"), opt)
		if err != nil {
			t.Fatal(err)
		}
		return e, r
	}
	in := make([]Passage, len(ps))
	pairs := make([]Pair, len(ps))
	for i, p := range ps {
		// real text, cut to lengths from a few words to past the limit
		words := strings.Fields(p.Text)
		p.Text = strings.Join(words[:min(len(words), 3+(i*37)%140)], " ")
		in[i] = Passage{Title: p.Title, Text: p.Text}
		pairs[i] = Pair{Query: ps[(i*7)%len(ps)].Title, Passage: p.Text}
	}
	// one pair whose query alone exceeds the length: cut longest_first,
	// without changing how the other pairs of its batch are cut
	pairs[3].Query = strings.Repeat("argument ", 300)
	var vecs [2][][]float32
	var scores [2][]float64
	for k, window := range []int{1, 0} {
		e, r := load(window)
		v, err := e.EncodePassages(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		sc, err := r.Score(ctx, pairs)
		if err != nil {
			t.Fatal(err)
		}
		vecs[k], scores[k] = v, sc
		e.Close()
		r.Close()
	}
	d := 0.0
	for i := range vecs[0] {
		for j := range vecs[0][i] {
			d = math.Max(d, math.Abs(float64(vecs[0][i][j]-vecs[1][i][j])))
		}
	}
	if d > 1e-5 {
		t.Errorf("sorted passage vectors differ from input order by %g", d)
	}
	for i := range scores[0] {
		if math.Abs(scores[0][i]-scores[1][i]) > 1e-5 {
			t.Errorf("pair %d: score %g sorted, %g in input order", i, scores[1][i], scores[0][i])
		}
	}
	// the same pairs scored alone give the same scores
	_, r := load(1)
	defer r.Close()
	for _, i := range []int{2, 3, 4} {
		alone, err := r.Score(ctx, pairs[i:i+1])
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(alone[0]-scores[0][i]) > 1e-5 {
			t.Errorf("pair %d: %g in a batch, %g alone", i, scores[0][i], alone[0])
		}
	}
	// padding: tokens computed per order
	e, _ := load(0)
	defer e.Close()
	encs, err := e.tok.EncodeBatch(ctx, passageInputs(in), tokenizer.Options{MaxLength: 128, Truncation: tokenizer.LongestFirst})
	if err != nil {
		t.Fatal(err)
	}
	plain, sorted := PaddedTokens(encs, 8, false), PaddedTokens(encs, 8, true)
	t.Logf("%d passages: %d tokens padded in input order, %d sorted", len(in), plain, sorted)
	if sorted >= plain {
		t.Errorf("sorting did not reduce padding: %d vs %d", sorted, plain)
	}
}
