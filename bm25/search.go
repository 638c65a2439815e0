package bm25

import (
	"context"
	"fmt"
	"math"
	"math/bits"
	"sort"
	"sync"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/index/scorch"
	"github.com/blevesearch/bleve/v2/search"
	"github.com/blevesearch/bleve/v2/search/query"
	index "github.com/blevesearch/bleve_index_api"
	segment "github.com/blevesearch/scorch_segment_api/v2"
)

// Params are per-search BM25 parameters; zero values take the defaults
// (k1 0.9, b 0.4, Lucene scoring).
type Params struct {
	K1, B   float64
	Scoring string // Lucene (default), LuceneExact or Bleve
}

func (p Params) withDefaults() (Params, error) {
	if p.K1 == 0 {
		p.K1 = DefaultK1
	}
	if p.B == 0 {
		p.B = DefaultB
	}
	if p.Scoring == "" {
		p.Scoring = Lucene
	}
	switch {
	case p.K1 < 0 || math.IsNaN(p.K1) || math.IsInf(p.K1, 0):
		return p, fmt.Errorf("bm25: k1 %v: want a finite value ≥ 0", p.K1)
	case p.B < 0 || p.B > 1 || math.IsNaN(p.B):
		return p, fmt.Errorf("bm25: b %v: want a value in [0, 1]", p.B)
	}
	switch p.Scoring {
	case Lucene, LuceneExact, Bleve:
	default:
		return p, fmt.Errorf("bm25: scoring %q: want %q, %q or %q", p.Scoring, Lucene, LuceneExact, Bleve)
	}
	return p, nil
}

// Hit is one retrieved passage.
type Hit struct {
	ID    string
	Score float64
}

// MaxK bounds the number of hits one search may ask for.
const MaxK = 100_000

// Search returns the k best passages for the query text, best first, equal
// scores by passage id (so that two indexes of the same passages, however
// built, give the same list).
func (ix *Index) Search(ctx context.Context, text string, k int, p Params) (_ []Hit, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s: %v", ErrDamaged, ix.dir, r)
		}
	}()
	p, err = p.withDefaults()
	if err != nil {
		return nil, err
	}
	if k <= 0 || k > MaxK {
		return nil, fmt.Errorf("bm25: k %d: want 1..%d", k, MaxK)
	}
	if p.Scoring == Bleve {
		return ix.searchBleve(ctx, text, k, p)
	}
	return ix.searchLucene(ctx, text, k, p)
}

// lengthTable[i] is the document length Lucene's one-byte norm i decodes to
// (SmallFloat.byte4ToInt).
var lengthTable = func() (t [256]float64) {
	for i := range t {
		t[i] = float64(byte4ToInt(byte(i)))
	}
	return
}()

const numFreeValues = 255 - 231 // 255 − longToInt4(MaxInt32)

func longToInt4(i uint64) int {
	nb := bits.Len64(i)
	if nb < 4 {
		return int(i)
	}
	shift := nb - 4
	enc := int(i>>shift) & 0x07
	return enc | (shift+1)<<3
}

func int4ToLong(i int) uint64 {
	bits := uint64(i & 0x07)
	shift := i>>3 - 1
	if shift == -1 {
		return bits
	}
	return (bits | 0x08) << shift
}

// intToByte4 is Lucene's SmallFloat.intToByte4: lengths below 24 exactly,
// larger ones with a 3-bit mantissa, rounding down.
func intToByte4(i int) byte {
	if i < numFreeValues {
		return byte(i)
	}
	return byte(numFreeValues + longToInt4(uint64(i-numFreeValues)))
}

func byte4ToInt(b byte) int {
	i := int(b)
	if i < numFreeValues {
		return i
	}
	return numFreeValues + int(int4ToLong(i-numFreeValues))
}

type scratch struct {
	acc     []float64
	touched []uint64
	mark    []uint64 // a bit a document: the candidates of a pruned search
}

// reset zeroes what a search accumulated.
func (sc *scratch) reset() {
	for _, d := range sc.touched {
		sc.acc[d] = 0
	}
	sc.touched = sc.touched[:0]
}

// grow makes room in acc for document num.
func (sc *scratch) grow(num uint64) {
	if num >= uint64(len(sc.acc)) {
		grown := make([]float64, max(num+1, uint64(2*len(sc.acc))))
		copy(grown, sc.acc)
		sc.acc = grown
	}
}

// fieldScore is what scoring a field needs: its statistics and BM25's
// parameters.
type fieldScore struct {
	field    string
	n, avgdl float64
	k1, b    float64
	lucene   bool         // lengths as Lucene's one-byte norms
	norms    [256]float64 // Lucene: k1·(1−b+b·dl/avgdl) by norm byte
}

func (f *fieldScore) idf(df float64) float64 { return math.Log(1 + (f.n-df+0.5)/(df+0.5)) }

// contrib is one posting's share of a document's score: w·tf/(tf+k1·(1−b+b·dl/avgdl)),
// below w whatever tf and dl are.
func (f *fieldScore) contrib(w, tf, norm float64) float64 {
	dl := math.Round(1 / (norm * norm))
	var denom float64
	if f.lucene {
		denom = tf + f.norms[intToByte4(int(dl))]
	} else {
		denom = tf + f.k1*(1-f.b+f.b*dl/f.avgdl)
	}
	return w * tf / denom
}

// searchLucene scores term at a time over bleve's postings.
func (ix *Index) searchLucene(ctx context.Context, text string, k int, p Params) ([]Hit, error) {
	qterms := terms(ix.analyzer, text)
	if len(qterms) == 0 {
		return nil, nil
	}
	r, err := ix.adv.Reader()
	if err != nil {
		return nil, fmt.Errorf("bm25: %w", err)
	}
	defer r.Close()
	ix.smu.RLock()
	stats := ix.stats
	ix.smu.RUnlock()

	sc, _ := ix.scratch.Get().(*scratch)
	if sc == nil {
		sc = &scratch{}
	}
	defer func() {
		sc.reset()
		ix.scratch.Put(sc)
	}()

	// Visit terms in a fixed order so that float sums do not depend on map
	// iteration order.
	keys := make([]string, 0, len(qterms))
	for t := range qterms {
		keys = append(keys, t)
	}
	sort.Strings(keys)
	var fields []*fieldScore
	for _, field := range ix.fields {
		st := stats[field]
		if st.Docs == 0 {
			continue
		}
		f := &fieldScore{field: field, n: float64(st.Docs), avgdl: float64(st.SumLen) / float64(st.Docs), k1: p.K1, b: p.B, lucene: p.Scoring == Lucene}
		if f.lucene {
			for i := range f.norms {
				f.norms[i] = p.K1 * (1 - p.B + p.B*lengthTable[i]/f.avgdl)
			}
		}
		fields = append(fields, f)
	}
	snap, direct := r.(*scorch.IndexSnapshot)
	direct = direct && !ix.genericPostings
	if direct && !ix.exhaustive && (k <= pruneMaxK || ix.pruneAnyK) {
		pruned, err := scorePruned(ctx, snap, fields, keys, qterms, k, sc)
		if err != nil {
			return nil, err
		}
		if pruned {
			ix.prunedSearches.Add(1)
			return ix.best(r, sc, k)
		}
		sc.reset()
	}
	for _, f := range fields {
		// add accumulates one posting.
		add := func(num uint64, w, tf, norm float64) {
			sc.grow(num)
			if sc.acc[num] == 0 {
				sc.touched = append(sc.touched, num)
			}
			sc.acc[num] += f.contrib(w, tf, norm)
		}
		var err error
		if direct {
			err = scoreSegments(ctx, snap, f.field, keys, qterms, f.idf, add)
		} else {
			err = scoreGeneric(ctx, r, f.field, keys, qterms, f.idf, add)
		}
		if err != nil {
			return nil, err
		}
	}
	return ix.best(r, sc, k)
}

// best returns the k best scored documents of sc, by score, equal scores by
// passage id, so that the order does not depend on the order in which the
// passages were indexed. Only the documents tied with the k-th score need
// their ids before the final sort.
func (ix *Index) best(r index.IndexReader, sc *scratch, k int) ([]Hit, error) {
	h := topK(make([]cand, 0, min(k, len(sc.touched))))
	for _, d := range sc.touched {
		c := cand{d, sc.acc[d]}
		if len(h) < k {
			h = append(h, c)
			h.up(len(h) - 1)
		} else if worse(h[0], c) {
			h[0] = c
			h.down(0, len(h))
		}
	}
	chosen := []cand(h)
	if len(h) == k && len(sc.touched) > k {
		// Every document above the k-th score is in; of those at it, the
		// smallest ids are.
		kth := h[0].score
		chosen = chosen[:0:0]
		for _, c := range h {
			if c.score > kth {
				chosen = append(chosen, c)
			}
		}
		var tied []cand
		for _, d := range sc.touched {
			if sc.acc[d] == kth {
				tied = append(tied, cand{d, kth})
			}
		}
		if len(chosen)+len(tied) > k {
			ids, err := externalIDs(r, tied)
			if err != nil {
				return nil, err
			}
			sort.Sort(byID{tied, ids})
			tied = tied[:k-len(chosen)]
		}
		chosen = append(chosen, tied...)
	}
	ids, err := externalIDs(r, chosen)
	if err != nil {
		return nil, err
	}
	out := make([]Hit, len(chosen))
	for i, c := range chosen {
		out[i] = Hit{ID: ids[i], Score: c.score}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Score != out[j].Score {
			return out[i].Score > out[j].Score
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

func externalIDs(r index.IndexReader, cs []cand) ([]string, error) {
	ids := make([]string, len(cs))
	for i, c := range cs {
		id, err := r.ExternalID(index.NewIndexInternalID(nil, c.doc))
		if err != nil {
			return nil, fmt.Errorf("bm25: document %d: %w", c.doc, err)
		}
		ids[i] = id
	}
	return ids, nil
}

// byID sorts candidates by their passage ids.
type byID struct {
	cs  []cand
	ids []string
}

func (b byID) Len() int           { return len(b.cs) }
func (b byID) Less(i, j int) bool { return b.ids[i] < b.ids[j] }
func (b byID) Swap(i, j int) {
	b.cs[i], b.cs[j] = b.cs[j], b.cs[i]
	b.ids[i], b.ids[j] = b.ids[j], b.ids[i]
}

// scoreGeneric feeds add from bleve's term field readers (any index type).
func scoreGeneric(ctx context.Context, r index.IndexReader, field string, keys []string, qterms map[string]int,
	idf func(float64) float64, add func(num uint64, w, tf, norm float64)) error {
	var tfd index.TermFieldDoc
	for _, t := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		tfr, err := r.TermFieldReader(ctx, []byte(t), field, true, true, false)
		if err != nil {
			return fmt.Errorf("bm25: term %q: %w", t, err)
		}
		df := float64(tfr.Count())
		if df == 0 {
			tfr.Close()
			continue
		}
		w := float64(qterms[t]) * idf(df)
		for {
			d, err := tfr.Next(&tfd)
			if err != nil {
				tfr.Close()
				return fmt.Errorf("bm25: term %q: %w", t, err)
			}
			if d == nil {
				break
			}
			add(d.ID.Value(), w, float64(d.Freq), d.Norm)
		}
		tfr.Close()
	}
	return nil
}

// scoreSegments feeds add straight from the postings of each segment of a
// scorch snapshot, skipping deleted documents as bleve's readers do; global
// document numbers are the segment's offset plus its local number, as in
// scorch.
func scoreSegments(ctx context.Context, snap *scorch.IndexSnapshot, field string, keys []string, qterms map[string]int,
	idf func(float64) float64, add func(num uint64, w, tf, norm float64)) error {
	segs, offsets := snapshotSegments(snap)
	dicts, err := dictionaries(segs, field)
	if err != nil {
		return err
	}
	lists := make([]segment.PostingsList, len(segs))
	var it segment.PostingsIterator
	for _, t := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		df := 0.0
		for i, ss := range segs {
			pl, err := dicts[i].PostingsList([]byte(t), ss.Deleted(), lists[i])
			if err != nil {
				return fmt.Errorf("bm25: term %q: %w", t, err)
			}
			lists[i] = pl
			df += float64(pl.Count())
		}
		if df == 0 {
			continue
		}
		w := float64(qterms[t]) * idf(df)
		for i := range segs {
			if lists[i].Count() == 0 {
				continue
			}
			it = lists[i].Iterator(true, true, false, it)
			err := eachPosting(it, func(p segment.Posting) {
				add(offsets[i]+p.Number(), w, float64(p.Frequency()), p.Norm())
			})
			if err != nil {
				return fmt.Errorf("bm25: term %q: %w", t, err)
			}
		}
	}
	return nil
}

// snapshotSegments are a snapshot's segments and the global number of each
// one's first document (offsets[i]; offsets[len(segs)] is the total), as
// scorch numbers them.
func snapshotSegments(snap *scorch.IndexSnapshot) ([]*scorch.SegmentSnapshot, []uint64) {
	segs := snap.Segments()
	offsets := make([]uint64, len(segs)+1)
	for i, ss := range segs {
		offsets[i+1] = offsets[i] + ss.Segment().Count()
	}
	return segs, offsets
}

// dictionaries are each segment's term dictionary of field.
func dictionaries(segs []*scorch.SegmentSnapshot, field string) ([]segment.TermDictionary, error) {
	dicts := make([]segment.TermDictionary, len(segs))
	for i, ss := range segs {
		d, err := ss.Segment().Dictionary(field)
		if err != nil {
			return nil, fmt.Errorf("bm25: field %s: %w", field, err)
		}
		dicts[i] = d
	}
	return dicts, nil
}

type cand struct {
	doc   uint64
	score float64
}

// worse orders candidates for the heap: lower score, then later in index
// order (best resolves ties at the k-th score by passage id).
func worse(a, b cand) bool {
	if a.score != b.score {
		return a.score < b.score
	}
	return a.doc > b.doc
}

// topK is a binary min-heap under worse: the worst candidate on top.
type topK []cand

func (h topK) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !worse(h[i], h[p]) {
			return
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (h topK) down(i, n int) {
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && worse(h[r], h[l]) {
			m = r
		}
		if !worse(h[m], h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// bleveMu guards bleve's package-level BM25 parameters during a search.
var bleveMu sync.Mutex

// searchBleve runs bleve's own BM25 scoring model (a match query, OR of the
// analysed terms, over each indexed field). bleve reads k1 and b from package
// variables, so these searches run one at a time.
func (ix *Index) searchBleve(ctx context.Context, text string, k int, p Params) ([]Hit, error) {
	var qs []query.Query
	for _, f := range ix.fields {
		mq := query.NewMatchQuery(text)
		mq.SetField(f)
		mq.Analyzer = AnalyzerName
		qs = append(qs, mq)
	}
	req := bleve.NewSearchRequestOptions(query.NewDisjunctionQuery(qs), k, 0, false)
	req.SortBy([]string{"-_score", "_id"})
	bleveMu.Lock()
	defer bleveMu.Unlock()
	search.BM25_k1, search.BM25_b = p.K1, p.B
	res, err := ix.bi.SearchInContext(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("bm25: bleve search: %w", err)
	}
	out := make([]Hit, len(res.Hits))
	for i, h := range res.Hits {
		out[i] = Hit{ID: h.ID, Score: h.Score}
	}
	return out, nil
}
