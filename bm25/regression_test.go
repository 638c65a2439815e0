package bm25

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/ireval"
)

// sharedData is the read-only test collections folder beside the repository.
func sharedData(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join("..", "..", "shared", "data", rel)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("test data %s is missing (%v): the regression tests need ../shared/data beside the repository root, as CI has it", p, err)
	}
	return p
}

type collection struct {
	corpus  []data.Passage
	queries []data.Query
	qrels   data.Qrels
	removeQ bool
}

var (
	colOnce = map[string]*sync.Once{"scifact": {}, "arguana": {}, "cacm": {}}
	cols    = map[string]*collection{}
	colErr  = map[string]error{}
	ixs     sync.Map // name+fields → *Index
	ixMu    sync.Mutex
)

func loadCollection(t testing.TB, name string) *collection {
	t.Helper()
	colOnce[name].Do(func() {
		c := &collection{}
		var err error
		switch name {
		case "scifact":
			var sf *data.SciFact
			if sf, err = data.OpenSciFact(sharedData(t, "scifact/scifact_hf_csv.zip")); err != nil {
				break
			}
			defer sf.Close()
			if c.corpus, err = sf.Corpus(nil); err != nil {
				break
			}
			if c.queries, err = data.LoadQueries(sharedData(t, "scifact/topics.beir-v1.0.0-scifact.test.tsv.gz"), nil); err != nil {
				break
			}
			c.qrels, err = data.LoadQrels(sharedData(t, "scifact/qrels.beir-v1.0.0-scifact.test.txt"), nil)
		case "arguana":
			if c.corpus, err = data.LoadCorpus(sharedData(t, "arguana/corpus.jsonl.gz"), &data.Report{}); err != nil {
				break
			}
			if c.queries, err = data.LoadQueries(sharedData(t, "arguana/topics.beir-v1.0.0-arguana.test.tsv.gz"), nil); err != nil {
				break
			}
			c.qrels, err = data.LoadQrels(sharedData(t, "arguana/qrels.beir-v1.0.0-arguana.test.txt"), nil)
			c.removeQ = true
		case "cacm":
			if c.corpus, err = data.LoadCACM(sharedData(t, "cacm/cacm.tar.gz"), nil); err != nil {
				break
			}
			if c.queries, err = data.LoadTopics(sharedData(t, "cacm/topics.cacm.txt"), nil); err != nil {
				break
			}
			c.qrels, err = data.LoadQrels(sharedData(t, "cacm/qrels.cacm.txt"), nil)
		}
		cols[name], colErr[name] = c, err
	})
	if colErr[name] != nil {
		t.Fatalf("load %s: %v", name, colErr[name])
	}
	return cols[name]
}

var tmpRoot string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "re2g-bm25-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tmpRoot = d
	code := m.Run()
	ixs.Range(func(_, v any) bool { v.(*Index).Close(); return true })
	os.RemoveAll(d)
	os.Exit(code)
}

// collectionIndex indexes a collection once per test binary.
func collectionIndex(t testing.TB, name, fields string) (*Index, *collection) {
	t.Helper()
	c := loadCollection(t, name)
	ixMu.Lock()
	defer ixMu.Unlock()
	if v, ok := ixs.Load(name + "/" + fields); ok {
		return v.(*Index), c
	}
	ix, err := Create(filepath.Join(tmpRoot, name+"-"+fields), Options{Fields: fields})
	if err != nil {
		t.Fatal(err)
	}
	if err := ix.Add(context.Background(), c.corpus, nil); err != nil {
		t.Fatal(err)
	}
	if err := ix.Optimize(context.Background()); err != nil {
		t.Fatal(err)
	}
	ixs.Store(name+"/"+fields, ix)
	return ix, c
}

// evaluate runs every query of c and scores the run.
func evaluate(t testing.TB, ix *Index, c *collection, p Params) *ireval.Result {
	t.Helper()
	run := ireval.Run{}
	var ids []string
	for _, q := range c.queries {
		ids = append(ids, q.ID)
		k := 1000
		if c.removeQ {
			k++
		}
		hits, err := ix.Search(context.Background(), q.Text, k, p)
		if err != nil {
			t.Fatal(err)
		}
		var hs []ireval.Hit
		for _, h := range hits {
			if c.removeQ && h.ID == q.ID {
				continue
			}
			hs = append(hs, ireval.Hit{DocID: h.ID, Score: h.Score})
		}
		run[q.ID] = hs[:min(len(hs), 1000)]
	}
	res, err := ireval.Evaluate(run, c.qrels, ids, ireval.Standard)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestRegressionAnserini(t *testing.T) {
	cases := []struct {
		name      string
		metric    ireval.Metric
		anserini  float64
		threshold float64
	}{
		{"scifact", "ndcg@10", 0.6789, 0.675},
		{"arguana", "ndcg@10", 0.3970, 0.395},
		{"cacm", "map", 0.3123, 0.305},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ix, c := collectionIndex(t, tc.name, Flat)
			for _, sc := range []string{Lucene, LuceneExact, Bleve} {
				res := evaluate(t, ix, c, Params{Scoring: sc})
				got := res.Mean[tc.metric]
				t.Logf("%s %s %s=%.4f (Anserini %.4f, gap %+.4f) recall@100=%.4f over %d queries",
					tc.name, sc, tc.metric, got, tc.anserini, got-tc.anserini, res.Mean["recall@100"], res.Queries)
				if sc == Lucene && got < tc.threshold {
					t.Errorf("%s %s = %.4f, want ≥ %.3f", tc.name, tc.metric, got, tc.threshold)
				}
			}
		})
	}
}
