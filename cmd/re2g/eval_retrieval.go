package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/re2g/re2g/bm25"
	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/internal/atomicfile"
	"github.com/re2g/re2g/ireval"
)

func init() {
	subcommand("eval", "evaluate retrievers and the full pipeline", &cli.Command{
		Name:  "retrieval",
		Usage: "score a retriever on a test collection (trec_eval metrics)",
		Description: "Prints a table to stderr and, as the last line of stdout, one JSON object with\n" +
			"ndcg@10, recall@100, recall@1000, map, mrr@10 and queries.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "corpus", Usage: "BEIR corpus.jsonl (optionally gzipped); not needed with an existing --index"},
			&cli.StringFlag{Name: "queries", Required: true, Usage: "BEIR queries.jsonl or id<TAB>text TSV (optionally gzipped)"},
			&cli.StringFlag{Name: "qrels", Required: true, Usage: "TREC or BEIR TSV qrels"},
			&cli.StringFlag{Name: "retriever", Value: "bm25", Usage: "retriever: bm25"},
			&cli.Float64Flag{Name: "k1", Value: bm25.DefaultK1, Usage: "BM25 k1"},
			&cli.Float64Flag{Name: "b", Value: bm25.DefaultB, Usage: "BM25 b"},
			&cli.StringFlag{Name: "scoring", Value: bm25.Lucene, Usage: "BM25 scoring: lucene, lucene-exact or bleve"},
			&cli.StringFlag{Name: "fields", Value: bm25.Flat, Usage: "flat (title and text as one field) or multifield"},
			&cli.StringFlag{Name: "index", Usage: "index directory: reused if it exists, else built there and kept (default: a temporary one)"},
			&cli.IntFlag{Name: "hits", Value: 1000, Usage: "hits retrieved per query"},
			&cli.StringFlag{Name: "run-out", Usage: "write the run here in TREC format"},
			&cli.BoolFlag{Name: "remove-query-id", Usage: "drop a hit whose id is the query's id (ArguAna)"},
			&cli.IntFlag{Name: "threads", Value: runtime.NumCPU(), Usage: "concurrent searches"},
		},
		Action: evalRetrieval,
	})
}

func evalRetrieval(c *cli.Context) error {
	ctx := c.Context
	if c.String("retriever") != "bm25" {
		return fmt.Errorf("--retriever %q: only bm25 is available", c.String("retriever"))
	}
	rep := &data.Report{}
	queries, err := data.LoadQueries(c.String("queries"), rep)
	if err != nil {
		return err
	}
	if len(queries) == 0 {
		return fmt.Errorf("--queries %s: no queries%s", c.String("queries"), skipped(rep))
	}
	qrels, err := data.LoadQrels(c.String("qrels"), rep)
	if err != nil {
		return err
	}
	if qrels.Len() == 0 {
		return fmt.Errorf("--qrels %s: no judgements%s", c.String("qrels"), skipped(rep))
	}
	ix, built, err := openOrBuild(ctx, c.String("index"), c.String("corpus"), c.String("fields"), rep)
	if err != nil {
		return err
	}
	defer ix.Close()
	if n, err := ix.Count(); err != nil {
		return err
	} else if n == 0 {
		return fmt.Errorf("--index %s has no passages: every metric would be 0", c.String("index"))
	}
	if s := rep.Summary(); s != "" {
		fmt.Fprintln(os.Stderr, s)
	}
	params := bm25.Params{K1: c.Float64("k1"), B: c.Float64("b"), Scoring: c.String("scoring")}
	k := c.Int("hits")
	remove := c.Bool("remove-query-id")
	run := ireval.Run{}
	var mu sync.Mutex
	start := time.Now()
	jobs := make(chan data.Query)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range max(1, c.Int("threads")) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for q := range jobs {
				want := k
				if remove {
					want++
				}
				hits, err := ix.Search(ctx, q.Text, want, params)
				if err != nil {
					select {
					case errs <- fmt.Errorf("query %s: %w", q.ID, err):
					default:
					}
					continue
				}
				hs := make([]ireval.Hit, 0, len(hits))
				for _, h := range hits {
					if remove && h.ID == q.ID {
						continue
					}
					hs = append(hs, ireval.Hit{DocID: h.ID, Score: h.Score})
				}
				mu.Lock()
				run[q.ID] = hs[:min(len(hs), k)]
				mu.Unlock()
			}
		}()
	}
	for _, q := range queries {
		if ctx.Err() != nil {
			break
		}
		jobs <- q
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	elapsed := time.Since(start)
	order := make([]string, len(queries))
	for i, q := range queries {
		order[i] = q.ID
	}
	if p := c.String("run-out"); p != "" {
		err := atomicfile.Write(p, 0o644, func(w io.Writer) error {
			return ireval.WriteRun(w, run, order, "re2g-bm25")
		})
		if err != nil {
			return fmt.Errorf("--run-out: %w", err)
		}
	}
	res, err := ireval.Evaluate(run, qrels, order, ireval.Standard)
	if err != nil {
		return err
	}
	if res.Queries == 0 {
		return fmt.Errorf("no query of %s has judgements in %s: are these files from the same collection?", c.String("queries"), c.String("qrels"))
	}
	unjudged := len(queries) - res.Queries
	fmt.Fprintf(os.Stderr, "\nretriever bm25 (%s, %s, k1=%g b=%g), %d queries evaluated (%d without judgements skipped), %.0f queries/s\n",
		params.Scoring, ix.Fields(), c.Float64("k1"), c.Float64("b"), res.Queries, unjudged, float64(len(queries))/elapsed.Seconds())
	fmt.Fprintf(os.Stderr, "%-12s %s\n", "metric", "value")
	out := map[string]any{"queries": res.Queries, "retriever": "bm25", "scoring": params.Scoring,
		"fields": ix.Fields(), "k1": c.Float64("k1"), "b": c.Float64("b"), "index_built": built}
	for _, m := range ireval.Standard {
		fmt.Fprintf(os.Stderr, "%-12s %.4f\n", m, res.Mean[m])
		out[string(m)] = res.Mean[m]
	}
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
	return nil
}

// openOrBuild opens the index in dir if there is one, else builds it from
// corpus (in dir, or a temporary directory removed on Close).
func openOrBuild(ctx context.Context, dir, corpus, fields string, rep *data.Report) (*closingIndex, bool, error) {
	if dir != "" {
		if _, err := os.Stat(dir); err == nil {
			ix, err := bm25.OpenReadOnly(ctx, dir)
			if err != nil {
				return nil, false, err
			}
			if fields != ix.Fields() {
				ix.Close()
				return nil, false, fmt.Errorf("--index %s has %s fields, not %s", dir, ix.Fields(), fields)
			}
			slog.Info("using existing index", "dir", dir)
			if corpus != "" {
				slog.Warn("--index exists, so --corpus is not read; remove the directory to rebuild", "index", dir, "corpus", corpus)
			}
			return &closingIndex{Index: ix}, false, nil
		}
	}
	if corpus == "" {
		return nil, false, fmt.Errorf("--corpus is required to build an index")
	}
	ps, err := data.LoadCorpus(corpus, rep)
	if err != nil {
		return nil, false, err
	}
	if len(ps) == 0 {
		return nil, false, fmt.Errorf("--corpus %s: no passages%s", corpus, skipped(rep))
	}
	tmp := ""
	if dir == "" {
		if tmp, err = os.MkdirTemp("", "re2g-bm25-"); err != nil {
			return nil, false, err
		}
		dir = filepath.Join(tmp, "index")
	}
	ix, err := bm25.Create(dir, bm25.Options{Fields: fields})
	if err != nil {
		os.RemoveAll(tmp)
		return nil, false, err
	}
	ci := &closingIndex{Index: ix, tmp: tmp}
	start := time.Now()
	if err := ix.Add(ctx, ps, os.Stderr); err != nil {
		ci.Close()
		return nil, false, err
	}
	if err := ix.Optimize(ctx); err != nil {
		ci.Close()
		return nil, false, err
	}
	slog.Info("indexed", "passages", len(ps), "seconds", time.Since(start).Seconds(), "dir", dir)
	return ci, true, nil
}

// skipped is rep's summary in parentheses when it skipped records, else "".
func skipped(rep *data.Report) string {
	if s := rep.Summary(); s != "" {
		return " (" + s + ")"
	}
	return ""
}

type closingIndex struct {
	*bm25.Index
	tmp string
}

func (c *closingIndex) Close() error {
	err := c.Index.Close()
	if c.tmp != "" {
		os.RemoveAll(c.tmp)
	}
	return err
}
