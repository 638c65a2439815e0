// Package ireval computes retrieval metrics as trec_eval defines them (nDCG
// with graded gains, MAP, recall and reciprocal rank with binary relevance,
// relevance meaning a grade ≥ 1) and reads and writes TREC run files.
package ireval

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/internal/bom"
)

// Hit is one retrieved document.
type Hit struct {
	DocID string
	Score float64
}

// Run maps a query id to its hits.
type Run map[string][]Hit

// Sort orders every query's hits as trec_eval ranks them: by score
// descending, ties by document id descending.
func (r Run) Sort() {
	for _, hs := range r {
		SortHits(hs)
	}
}

// SortHits orders hits as trec_eval ranks them.
func SortHits(hs []Hit) {
	slices.SortStableFunc(hs, func(a, b Hit) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return cmp.Compare(b.DocID, a.DocID)
	})
}

// Metric is a measure name: "ndcg@K", "recall@K", "p@K", "mrr@K", "map" or
// "mrr" (no cut).
type Metric string

func (m Metric) parse() (name string, k int, err error) {
	name, ks, ok := strings.Cut(string(m), "@")
	k = math.MaxInt
	if ok {
		k, err = strconv.Atoi(ks)
		if err != nil || k <= 0 {
			return "", 0, fmt.Errorf("metric %q: bad cut-off", m)
		}
	}
	switch name {
	case "ndcg", "recall", "p", "mrr":
	case "map":
		if ok {
			return "", 0, fmt.Errorf("metric %q: map takes no cut-off", m)
		}
	default:
		return "", 0, fmt.Errorf("unknown metric %q", m)
	}
	return name, k, nil
}

// Standard are the measures re2g reports for a retriever.
var Standard = []Metric{"ndcg@10", "recall@100", "recall@1000", "map", "mrr@10"}

// Result holds per-query and mean values.
type Result struct {
	Mean     map[Metric]float64
	PerQuery map[string]map[Metric]float64
	Queries  int // number of queries averaged over
}

// Evaluate scores run against qrels. Queries without judgements are
// skipped. If queries is nil, only queries present in both the run and the
// qrels are evaluated (trec_eval's default); otherwise every listed query that
// has judgements is, and one the run lacks scores zero (trec_eval -c).
// Hits are ranked as trec_eval ranks them (see SortHits); the run is not
// modified.
func Evaluate(run Run, qrels data.Qrels, queries []string, metrics []Metric) (*Result, error) {
	type pm struct {
		name string
		k    int
	}
	parsed := make([]pm, len(metrics))
	for i, m := range metrics {
		n, k, err := m.parse()
		if err != nil {
			return nil, err
		}
		parsed[i] = pm{n, k}
	}
	if queries == nil {
		for q := range run {
			queries = append(queries, q)
		}
	}
	res := &Result{Mean: map[Metric]float64{}, PerQuery: map[string]map[Metric]float64{}}
	done := map[string]bool{}
	for _, q := range queries {
		judged, ok := qrels[q]
		if !ok || done[q] {
			continue
		}
		done[q] = true
		hs := slices.Clone(run[q])
		SortHits(hs)
		pq := map[Metric]float64{}
		for i, m := range metrics {
			pq[m] = score(parsed[i].name, parsed[i].k, hs, judged)
			res.Mean[m] += pq[m]
		}
		res.PerQuery[q] = pq
	}
	res.Queries = len(res.PerQuery)
	if res.Queries > 0 {
		for m := range res.Mean {
			res.Mean[m] /= float64(res.Queries)
		}
	}
	for _, m := range metrics {
		res.Mean[m] += 0 // present even with no queries
	}
	return res, nil
}

func score(name string, k int, hs []Hit, judged map[string]int) float64 {
	numRel := 0
	for _, g := range judged {
		if g >= 1 {
			numRel++
		}
	}
	n := min(k, len(hs))
	switch name {
	case "ndcg":
		dcg := 0.0
		for i := 0; i < n; i++ {
			if g := judged[hs[i].DocID]; g > 0 {
				dcg += float64(g) / math.Log2(float64(i+2))
			}
		}
		gains := make([]int, 0, len(judged))
		for _, g := range judged {
			if g > 0 {
				gains = append(gains, g)
			}
		}
		slices.SortFunc(gains, func(a, b int) int { return b - a })
		idcg := 0.0
		for i := 0; i < min(k, len(gains)); i++ {
			idcg += float64(gains[i]) / math.Log2(float64(i+2))
		}
		if idcg == 0 {
			return 0
		}
		return dcg / idcg
	case "recall":
		if numRel == 0 {
			return 0
		}
		return float64(countRel(hs[:n], judged)) / float64(numRel)
	case "p":
		if k == math.MaxInt {
			k = len(hs)
		}
		if k == 0 {
			return 0
		}
		return float64(countRel(hs[:n], judged)) / float64(k)
	case "mrr":
		for i := 0; i < n; i++ {
			if judged[hs[i].DocID] >= 1 {
				return 1 / float64(i+1)
			}
		}
		return 0
	case "map":
		if numRel == 0 {
			return 0
		}
		sum, rel := 0.0, 0
		for i, h := range hs {
			if judged[h.DocID] >= 1 {
				rel++
				sum += float64(rel) / float64(i+1)
			}
		}
		return sum / float64(numRel)
	}
	panic("unreachable: metric parsed")
}

func countRel(hs []Hit, judged map[string]int) int {
	c := 0
	for _, h := range hs {
		if judged[h.DocID] >= 1 {
			c++
		}
	}
	return c
}

// WriteRun writes run in TREC format (qid Q0 docid rank score tag), queries
// in the given order (all of run's queries, sorted, if order is nil), each
// query's hits ranked as trec_eval ranks them.
func WriteRun(w io.Writer, run Run, order []string, tag string) error {
	if order == nil {
		for q := range run {
			order = append(order, q)
		}
		slices.Sort(order)
	}
	bw := bufio.NewWriter(w)
	for _, q := range order {
		hs := slices.Clone(run[q])
		SortHits(hs)
		for i, h := range hs {
			if _, err := fmt.Fprintf(bw, "%s Q0 %s %d %.6f %s\n", q, h.DocID, i+1, h.Score, tag); err != nil {
				return err
			}
		}
	}
	return bw.Flush()
}

// ReadRun reads a TREC run file (a leading byte order mark dropped); name
// is used in messages.
func ReadRun(r io.Reader, name string) (Run, error) {
	run := Run{}
	sc := bufio.NewScanner(bom.Reader(r))
	sc.Buffer(make([]byte, 0, 1<<16), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 6 {
			return nil, fmt.Errorf("%s:%d: want 6 fields (qid Q0 docid rank score tag), got %d", name, n, len(f))
		}
		s, err := strconv.ParseFloat(f[4], 64)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: score %q: %w", name, n, f[4], err)
		}
		run[f[0]] = append(run[f[0]], Hit{DocID: f[2], Score: s})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: after line %d: %w", name, n, err)
	}
	return run, nil
}
