// Command bench_bm25 compares re2g's BM25 (bleve index, Lucene scoring) with
// Xapian's BM25 on the same corpus, queries, k1 and b, in one run: indexing
// docs/s, queries/s on one core and on all cores, and nDCG@10 of each. It
// prints a table and, last, the line "re2g/xapian qps ratio: X" (the smaller
// of the one-core and all-core ratios). Run it with `make bench-bm25`.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/re2g/re2g/bm25"
	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/internal/atomicfile"
	"github.com/re2g/re2g/ireval"
)

func main() {
	dataDir := flag.String("data", "../shared/data", "the shared test collections")
	set := flag.String("set", "scifact", "scifact or arguana")
	k := flag.Int("k", 100, "hits per query")
	k1 := flag.Float64("k1", bm25.DefaultK1, "BM25 k1")
	b := flag.Float64("b", bm25.DefaultB, "BM25 b")
	passes := flag.Int("passes", 10, "times each query is run in the timed loops")
	python := flag.String("python", "/usr/bin/python3", "Python with Debian's python3-xapian")
	flag.Parse()
	if err := run(*dataDir, *set, *k, *k1, *b, *passes, *python); err != nil {
		fmt.Fprintln(os.Stderr, "bench_bm25:", err)
		os.Exit(1)
	}
}

func load(dir, set string) ([]data.Passage, []data.Query, data.Qrels, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, nil, nil, fmt.Errorf("test data: %w (run from the repository root, with ../shared/data beside it)", err)
	}
	switch set {
	case "scifact":
		sf, err := data.OpenSciFact(filepath.Join(dir, "scifact/scifact_hf_csv.zip"))
		if err != nil {
			return nil, nil, nil, err
		}
		defer sf.Close()
		ps, err := sf.Corpus(nil)
		if err != nil {
			return nil, nil, nil, err
		}
		qs, qrels, err := sf.Claims("validation", nil)
		return ps, qs, qrels, err
	case "arguana":
		ps, err := data.LoadCorpus(filepath.Join(dir, "arguana/corpus.jsonl.gz"), &data.Report{})
		if err != nil {
			return nil, nil, nil, err
		}
		qs, err := data.LoadQueries(filepath.Join(dir, "arguana/topics.beir-v1.0.0-arguana.test.tsv.gz"), nil)
		if err != nil {
			return nil, nil, nil, err
		}
		qrels, err := data.LoadQrels(filepath.Join(dir, "arguana/qrels.beir-v1.0.0-arguana.test.txt"), nil)
		return ps, qs, qrels, err
	}
	return nil, nil, nil, fmt.Errorf("-set %q: want scifact or arguana", set)
}

type side struct {
	name          string
	docsPerS      float64
	qps1, qpsN    float64
	ndcg10        float64
	indexS, oneS  float64
	multiS        float64
	queries, docs int
}

func run(dataDir, set string, k int, k1, b float64, passes int, python string) error {
	ctx := context.Background()
	ps, qs, qrels, err := load(dataDir, set)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "re2g-bench-bm25-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	ncpu := runtime.NumCPU()
	ids := make([]string, len(qs))
	for i, q := range qs {
		ids[i] = q.ID
	}

	// re2g.
	t0 := time.Now()
	ix, err := bm25.Create(filepath.Join(tmp, "re2g"), bm25.Options{})
	if err != nil {
		return err
	}
	defer ix.Close()
	if err := ix.Add(ctx, ps, nil); err != nil {
		return err
	}
	if err := ix.Optimize(ctx); err != nil {
		return err
	}
	r := side{name: "re2g (bleve+Lucene BM25)", indexS: time.Since(t0).Seconds(), docs: len(ps), queries: len(qs) * passes}
	params := bm25.Params{K1: k1, B: b}
	runRe2g := ireval.Run{}
	for _, q := range qs { // warm-up, and the run scored below
		hits, err := ix.Search(ctx, q.Text, k, params)
		if err != nil {
			return err
		}
		for _, h := range hits {
			runRe2g[q.ID] = append(runRe2g[q.ID], ireval.Hit{DocID: h.ID, Score: h.Score})
		}
	}
	timed := func(workers int) (float64, error) {
		prev := runtime.GOMAXPROCS(workers)
		defer runtime.GOMAXPROCS(prev)
		var wg sync.WaitGroup
		errc := make(chan error, workers)
		start := time.Now()
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range passes {
					for i := w; i < len(qs); i += workers {
						if _, err := ix.Search(ctx, qs[i].Text, k, params); err != nil {
							errc <- err
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		close(errc)
		return time.Since(start).Seconds(), <-errc
	}
	if r.oneS, err = timed(1); err != nil {
		return err
	}
	if r.multiS, err = timed(ncpu); err != nil {
		return err
	}

	// Xapian, on the same corpus and queries written as BEIR jsonl.
	corpus, queries := filepath.Join(tmp, "corpus.jsonl"), filepath.Join(tmp, "queries.jsonl")
	if err := atomicfile.Write(corpus, 0o644, func(w io.Writer) error { return data.WriteCorpus(w, ps) }); err != nil {
		return err
	}
	if err := atomicfile.Write(queries, 0o644, func(w io.Writer) error { return data.WriteQueries(w, qs) }); err != nil {
		return err
	}
	script := filepath.Join("scripts", "bench_bm25", "xapian_bench.py")
	cmd := exec.CommandContext(ctx, python, script, corpus, queries, fmt.Sprint(k), fmt.Sprint(k1), fmt.Sprint(b), fmt.Sprint(passes), fmt.Sprint(ncpu))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s (needs Debian's python3-xapian: make deps): %w", python, script, err)
	}
	var xr struct {
		Version string              `json:"version"`
		Docs    int                 `json:"docs"`
		IndexS  float64             `json:"index_s"`
		Queries int                 `json:"queries"`
		OneS    float64             `json:"one_s"`
		MultiS  float64             `json:"multi_s"`
		Run     map[string][][2]any `json:"run"`
	}
	if err := json.Unmarshal(out.Bytes(), &xr); err != nil {
		return fmt.Errorf("xapian output: %w", err)
	}
	x := side{name: "Xapian " + xr.Version + " BM25", indexS: xr.IndexS, oneS: xr.OneS, multiS: xr.MultiS, docs: xr.Docs, queries: xr.Queries}
	runX := ireval.Run{}
	for q, hs := range xr.Run {
		for _, h := range hs {
			id, _ := h[0].(string)
			s, _ := h[1].(float64)
			runX[q] = append(runX[q], ireval.Hit{DocID: id, Score: s})
		}
	}
	if set == "arguana" { // the query is itself a corpus document: drop it, as Anserini does
		for _, run := range []ireval.Run{runRe2g, runX} {
			for q, hs := range run {
				kept := hs[:0]
				for _, h := range hs {
					if h.DocID != q {
						kept = append(kept, h)
					}
				}
				run[q] = kept
			}
		}
	}
	for _, sd := range []struct {
		s   *side
		run ireval.Run
	}{{&r, runRe2g}, {&x, runX}} {
		res, err := ireval.Evaluate(sd.run, qrels, ids, []ireval.Metric{"ndcg@10"})
		if err != nil {
			return err
		}
		sd.s.ndcg10 = res.Mean["ndcg@10"]
		sd.s.docsPerS = float64(sd.s.docs) / sd.s.indexS
		sd.s.qps1 = float64(sd.s.queries) / sd.s.oneS
		sd.s.qpsN = float64(sd.s.queries) / sd.s.multiS
	}

	fmt.Printf("BM25 benchmark: %s, %d docs, %d queries × %d passes, k=%d, k1=%g b=%g, %d cores\n\n",
		set, len(ps), len(qs), passes, k, k1, b, ncpu)
	fmt.Printf("| engine | index docs/s | qps 1 core | qps %d cores | nDCG@10 |\n|---|---:|---:|---:|---:|\n", ncpu)
	for _, s := range []side{r, x} {
		fmt.Printf("| %s | %.0f | %.0f | %.0f | %.4f |\n", s.name, s.docsPerS, s.qps1, s.qpsN, s.ndcg10)
	}
	ratio1, ratioN := r.qps1/x.qps1, r.qpsN/x.qpsN
	fmt.Printf("\nre2g/xapian: indexing %.2f, qps 1 core %.2f, qps %d cores %.2f\n", r.docsPerS/x.docsPerS, ratio1, ncpu, ratioN)
	fmt.Printf("re2g/xapian qps ratio: %.2f\n", min(ratio1, ratioN))
	return nil
}
