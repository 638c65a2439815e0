package server

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/re2g/re2g/pipeline"
)

// wordService is a small Service of its own, the extension point the server
// documents, so that the handler, batching and shutdown tests run without
// models: it retrieves passages by the words they share with the query,
// reranks by the fraction of the query's words a passage holds, encodes a
// query as a hashed bag of words and answers with the best passage's title.
// Each batch call takes at least delay (or until the batch's context ends),
// a query holding "panic" panics and one holding "fail" fails its batch.
type wordService struct {
	passages []pipeline.Candidate
	caps     pipeline.Capabilities
	delay    time.Duration

	mu      sync.Mutex
	batches map[string][]int // stage → sizes of the batches it ran
	calls   atomic.Int64
}

const wordDim = 16

func newWordService() *wordService {
	ps := []pipeline.Candidate{
		{ID: "senate", Title: "Senate", Text: "Senators are elected by the voters of each state for six years."},
		{ID: "house", Title: "House", Text: "Representatives are elected every two years by the voters of their district."},
		{ID: "delegates", Title: "Convention", Text: "The delegates to the convention are elected by the party members of each state."},
		{ID: "tea", Title: "Tea", Text: "Tea is a beverage made by steeping the leaves of the tea plant in hot water."},
		{ID: "coffee", Title: "Coffee", Text: "Coffee is brewed from roasted coffee beans, the seeds of the coffee plant."},
		{ID: "rivers", Title: "Rivers", Text: "A river flows from its source in the mountains to its mouth at the sea."},
	}
	return &wordService{passages: ps, batches: map[string][]int{},
		caps: pipeline.Capabilities{Passages: len(ps), QueryEncoder: true, QueryDim: wordDim, BM25: true, Reranker: true, Generator: true}}
}

func words(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !('a' <= r && r <= 'z' || '0' <= r && r <= '9') })
}

// work notes a batch, obeys the special queries and waits out the delay.
func (w *wordService) work(ctx context.Context, stage string, queries []string) error {
	w.calls.Add(1)
	w.mu.Lock()
	w.batches[stage] = append(w.batches[stage], len(queries))
	w.mu.Unlock()
	for _, q := range queries {
		if strings.Contains(q, "panic") {
			panic("a query asked for a panic")
		}
		if strings.Contains(q, "fail") {
			return errors.New("a query asked to fail")
		}
	}
	if w.delay > 0 {
		t := time.NewTimer(w.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return ctx.Err()
}

// batchSizes are the sizes of the batches stage ran.
func (w *wordService) batchSizes(stage string) []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.batches[stage])
}

func (w *wordService) Capabilities() pipeline.Capabilities { return w.caps }

func (w *wordService) retrieve(q string) []pipeline.Candidate {
	qw := map[string]bool{}
	for _, x := range words(q) {
		qw[x] = true
	}
	var out []pipeline.Candidate
	for _, p := range w.passages {
		n := 0
		for _, x := range words(p.Title + " " + p.Text) {
			if qw[x] {
				n++
			}
		}
		if n > 0 {
			c := p
			c.SparseScore, c.FromSparse = float64(n), true
			out = append(out, c)
		}
	}
	slices.SortStableFunc(out, func(a, b pipeline.Candidate) int { return int(b.SparseScore - a.SparseScore) })
	return out
}

func (w *wordService) rerank(q string, cands []pipeline.Candidate) []pipeline.Candidate {
	qw := words(q)
	out := slices.Clone(cands)
	for i := range out {
		have := map[string]bool{}
		for _, x := range words(out[i].Title + " " + out[i].Text) {
			have[x] = true
		}
		n := 0
		for _, x := range qw {
			if have[x] {
				n++
			}
		}
		out[i].RerankScore = float64(n) / float64(max(1, len(qw)))
	}
	slices.SortStableFunc(out, func(a, b pipeline.Candidate) int {
		return -cmpFloat(a.RerankScore, b.RerankScore)
	})
	return out
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (w *wordService) RetrieveBatch(ctx context.Context, queries []string) ([][]pipeline.Candidate, error) {
	if err := w.work(ctx, "retrieve", queries); err != nil {
		return nil, err
	}
	out := make([][]pipeline.Candidate, len(queries))
	for i, q := range queries {
		out[i] = w.retrieve(q)
	}
	return out, nil
}

func (w *wordService) RerankBatch(ctx context.Context, queries []string, cands [][]pipeline.Candidate) ([][]pipeline.Candidate, error) {
	if len(queries) != len(cands) {
		return nil, fmt.Errorf("%d queries, %d lists", len(queries), len(cands))
	}
	if err := w.work(ctx, "rerank", queries); err != nil {
		return nil, err
	}
	out := make([][]pipeline.Candidate, len(queries))
	for i, q := range queries {
		out[i] = w.rerank(q, cands[i])
	}
	return out, nil
}

func (w *wordService) EncodeQueries(ctx context.Context, queries []string) ([][]float32, error) {
	if err := w.work(ctx, "encode", queries); err != nil {
		return nil, err
	}
	out := make([][]float32, len(queries))
	for i, q := range queries {
		v := make([]float32, wordDim)
		for _, x := range words(q) {
			h := fnv.New32a()
			h.Write([]byte(x))
			v[h.Sum32()%wordDim]++
		}
		norm := 0.0
		for _, x := range v {
			norm += float64(x * x)
		}
		for j := range v {
			if norm > 0 {
				v[j] /= float32(math.Sqrt(norm))
			}
		}
		out[i] = v
	}
	return out, nil
}

func (w *wordService) AnswerBatch(ctx context.Context, queries []string) ([]*pipeline.Result, error) {
	if err := w.work(ctx, "answer", queries); err != nil {
		return nil, err
	}
	out := make([]*pipeline.Result, len(queries))
	for i, q := range queries {
		ranked := w.rerank(q, w.retrieve(q))
		r := &pipeline.Result{Query: q, Provenance: []pipeline.Provenance{}}
		for j, c := range ranked[:min(2, len(ranked))] {
			if j == 0 {
				r.Answer, r.Score = c.Title, c.RerankScore
			}
			r.Provenance = append(r.Provenance, pipeline.Provenance{Candidate: c, Page: c.Title, Prob: c.RerankScore})
		}
		out[i] = r
	}
	return out, nil
}
