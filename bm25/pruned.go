package bm25

import (
	"context"
	"fmt"
	"slices"

	"github.com/blevesearch/bleve/v2/index/scorch"
	segment "github.com/blevesearch/scorch_segment_api/v2"
)

// Top-k pruning (MaxScore, Turtle & Flood 1995, term at a time). A term's
// share of a score is below its weight w = qtf·idf whatever tf and dl are,
// so once the documents seen have k partial scores above the summed
// weights of the terms not yet read, no document unseen can reach the top
// k, and only the documents seen whose partial score plus those weights
// reaches the k-th are candidates. The rarest terms (the highest weights,
// the shortest lists) are read first; the common terms' long lists are
// then only looked up at the candidates (PostingsIterator.Advance). The
// candidates' scores are then summed again in the exhaustive order
// (fields, then terms in sorted order), so hits and scores are the
// exhaustive search's to the bit, ties at the k-th score included.

// pruneMaxK is the largest k searches prune for. A term's weight is a loose
// bound on its share (the largest share a list holds would need a pass over
// it, or impacts stored per block as Lucene's block-max WAND has), so the
// deeper the top k, the fewer lists are skipped: on a million synthetic
// KILT passages (BenchmarkPruning, SQuADShifts questions) pruning was 1.37×
// as fast as the exhaustive search for the top 12, 1.09× for the top 100
// and 0.83× for the top 1,000.
const pruneMaxK = 64

// pruneSlack keeps rounding from pruning a document: partial sums taken in
// another order may differ from the final ones in the last bits.
const pruneSlack = 1e-9

// termScorer is one query term in one field: its weight and its postings
// in each segment.
type termScorer struct {
	f     *fieldScore
	w     float64
	count uint64 // postings, all segments
	lists []segment.PostingsList
}

// scorePruned fills sc with the exact scores of the documents that can be
// among the top k, and reports whether it did; false (with sc to reset)
// when pruning cannot skip any list, and the exhaustive loop should run.
func scorePruned(ctx context.Context, snap *scorch.IndexSnapshot, fields []*fieldScore, keys []string, qterms map[string]int,
	k int, sc *scratch) (bool, error) {
	segs, offsets := snapshotSegments(snap)
	// the scorers in the exhaustive order
	var scorers []*termScorer
	for _, f := range fields {
		dicts, err := dictionaries(segs, f.field)
		if err != nil {
			return false, err
		}
		for _, t := range keys {
			ts := &termScorer{f: f, lists: make([]segment.PostingsList, len(segs))}
			for i, ss := range segs {
				pl, err := dicts[i].PostingsList([]byte(t), ss.Deleted(), nil)
				if err != nil {
					return false, fmt.Errorf("bm25: term %q: %w", t, err)
				}
				ts.lists[i] = pl
				ts.count += pl.Count()
			}
			if ts.count == 0 {
				continue
			}
			ts.w = float64(qterms[t]) * f.idf(float64(ts.count))
			scorers = append(scorers, ts)
		}
	}
	if len(scorers) < 2 {
		return false, nil
	}
	// the heaviest first; rest[i] bounds what the scorers from i on add
	order := make([]int, len(scorers))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch wa, wb := scorers[a].w, scorers[b].w; {
		case wa > wb:
			return -1
		case wa < wb:
			return 1
		}
		return 0
	})
	rest := make([]float64, len(order)+1)
	for i := len(order) - 1; i >= 0; i-- {
		rest[i] = rest[i+1] + scorers[order[i]].w
	}
	var it segment.PostingsIterator
	cut := -1
	for pos, si := range order {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		if pos > 0 && len(sc.touched) >= k && aboveCount(sc, rest[pos]*(1+pruneSlack), k) {
			cut = pos
			break
		}
		if pos == len(order)-1 {
			return false, nil // every list read: nothing pruned
		}
		ts := scorers[si]
		for i := range segs {
			if ts.lists[i].Count() == 0 {
				continue
			}
			it = ts.lists[i].Iterator(true, true, false, it)
			err := eachPosting(it, func(p segment.Posting) {
				num := offsets[i] + p.Number()
				sc.grow(num)
				if sc.acc[num] == 0 {
					sc.touched = append(sc.touched, num)
				}
				sc.acc[num] += ts.f.contrib(ts.w, float64(p.Frequency()), p.Norm())
			})
			if err != nil {
				return false, fmt.Errorf("bm25: field %s: %w", ts.f.field, err)
			}
		}
	}
	// the candidates: a partial score that the lists not read could lift
	// to the k-th
	theta := kthLargest(sc, k) * (1 - pruneSlack)
	cands := make([]uint64, 0, k)
	for _, d := range sc.touched {
		if sc.acc[d]+rest[cut] >= theta {
			cands = append(cands, d)
		}
	}
	slices.Sort(cands)
	sc.reset()
	sc.touched = append(sc.touched, cands...)
	words := (offsets[len(segs)] + 63) / 64
	if uint64(len(sc.mark)) < words {
		sc.mark = make([]uint64, words)
	}
	for _, d := range cands {
		sc.mark[d/64] |= 1 << (d % 64)
	}
	defer func() {
		for _, d := range cands {
			sc.mark[d/64] = 0
		}
	}()
	// their exact scores, in the exhaustive order
	for _, ts := range scorers {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		lo := 0
		for i := range segs {
			hi := lo + countBelow(cands[lo:], offsets[i+1])
			seg := cands[lo:hi]
			lo = hi
			if len(seg) == 0 || ts.lists[i].Count() == 0 {
				continue
			}
			it = ts.lists[i].Iterator(true, true, false, it)
			if ts.lists[i].Count() <= 4*uint64(len(seg)) {
				// a short list: read it whole, keep the candidates'
				err := eachPosting(it, func(p segment.Posting) {
					if d := offsets[i] + p.Number(); sc.mark[d/64]&(1<<(d%64)) != 0 {
						sc.acc[d] += ts.f.contrib(ts.w, float64(p.Frequency()), p.Norm())
					}
				})
				if err != nil {
					return false, fmt.Errorf("bm25: field %s: %w", ts.f.field, err)
				}
				continue
			}
			// a long one: skip to each candidate
			var at uint64
			var atTF, atNorm float64
			started := false
			for _, d := range seg {
				local := d - offsets[i]
				if started && local < at {
					continue // not in the list
				}
				if !started || local > at {
					p, err := it.Advance(local)
					if err != nil {
						return false, fmt.Errorf("bm25: field %s: %w", ts.f.field, err)
					}
					if p == nil {
						break
					}
					started, at, atTF, atNorm = true, p.Number(), float64(p.Frequency()), p.Norm()
				}
				if at == local {
					sc.acc[d] += ts.f.contrib(ts.w, atTF, atNorm)
				}
			}
		}
	}
	return true, nil
}

// eachPosting calls fn with every posting of it, in order.
func eachPosting(it segment.PostingsIterator, fn func(segment.Posting)) error {
	for {
		p, err := it.Next()
		if err != nil || p == nil {
			return err
		}
		fn(p)
	}
}

// countBelow is the number of the sorted ds below limit.
func countBelow(ds []uint64, limit uint64) int {
	n, _ := slices.BinarySearch(ds, limit)
	return n
}

// aboveCount reports whether at least k of the documents touched have a
// partial score above bound.
func aboveCount(sc *scratch, bound float64, k int) bool {
	n := 0
	for _, d := range sc.touched {
		if sc.acc[d] > bound {
			if n++; n >= k {
				return true
			}
		}
	}
	return false
}

// kthLargest is the k-th largest partial score of the documents touched
// (at least k of them).
func kthLargest(sc *scratch, k int) float64 {
	h := make([]float64, 0, k) // a min-heap of the k largest
	for _, d := range sc.touched {
		v := sc.acc[d]
		if len(h) < k {
			h = append(h, v)
			for i := len(h) - 1; i > 0; {
				p := (i - 1) / 2
				if h[p] <= h[i] {
					break
				}
				h[p], h[i] = h[i], h[p]
				i = p
			}
			continue
		}
		if v <= h[0] {
			continue
		}
		h[0] = v
		for i := 0; ; {
			l, m := 2*i+1, i
			if l < k && h[l] < h[m] {
				m = l
			}
			if l+1 < k && h[l+1] < h[m] {
				m = l + 1
			}
			if m == i {
				break
			}
			h[i], h[m] = h[m], h[i]
			i = m
		}
	}
	return h[0]
}
