package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/re2g/re2g/bm25"
	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/indexdir"
	"github.com/re2g/re2g/indexdir/pstore"
	"github.com/re2g/re2g/internal/synthcorpus"
)

func init() {
	subcommand("bench", "benchmarks against a peer, measured in the same run", &cli.Command{
		Name: "ingest",
		Usage: "peak memory of BM25-only `re2g index` builds of synthetic KILT corpora of growing size (gzipped jsonl, " +
			"sentences of ArguAna and SQuADShifts), its growth per corpus byte, and the passage store's lookups against bleve's stored fields",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "data", Value: "../shared/data", Usage: "the shared data folder"},
			&cli.StringFlag{Name: "sizes", Value: "20000,200000", Usage: "passages per corpus, comma-separated"},
			&cli.Uint64Flag{Name: "seed", Value: 1},
			&cli.StringFlag{Name: "work", Usage: "where the corpora and indexes go (default: a temporary directory, removed after)"},
			&cli.StringFlag{Name: "bin", Usage: "the re2g binary that builds (default: this one)"},
			&cli.IntFlag{Name: "lookups", Value: 20000, Usage: "random lookups timed per index"},
		},
		Action: benchIngest,
	})
}

type ingestRow struct {
	passages   int
	corpus     int64 // bytes of JSON lines
	rssKB      int64 // peak resident set (VmHWM, its last reading)
	anonKB     int64 // peak anonymous resident memory (RssAnon, sampled every 20 ms)
	seconds    float64
	storeBytes int64
	bm25Bytes  int64
	openAll    time.Duration // indexdir.OpenWith VerifyFull: every byte checked, as every open did before VerifyQuick
	openStore  time.Duration // pstore.Open
	byID       time.Duration // per lookup
	byRow      time.Duration
	measured   bool
	// bleve with stored text, built from the same passages (the first size
	// only): its bytes and lookups by id
	bleveBytes int64
	bleveByID  time.Duration
}

func benchIngest(c *cli.Context) error {
	var sizes []int
	for _, f := range strings.Split(c.String("sizes"), ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 100_000_000 {
			return fmt.Errorf("--sizes: %q: want passage counts from 1 to 100000000", f)
		}
		sizes = append(sizes, n)
	}
	bin := c.String("bin")
	if bin == "" {
		var err error
		if bin, err = os.Executable(); err != nil {
			return err
		}
	}
	work := c.String("work")
	if work == "" {
		tmp, err := os.MkdirTemp("", "re2g-bench-ingest-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		work = tmp
	}
	src, err := synthcorpus.Load(c.String("data"))
	if err != nil {
		return err
	}
	var rows []ingestRow
	for i, n := range sizes {
		r, err := ingestOne(c.Context, bin, work, n, c.Uint64("seed"), c.Int("lookups"), src, i == 0)
		if err != nil {
			return err
		}
		rows = append(rows, r)
		printIngest(rows)
	}
	return nil
}

func ingestOne(ctx context.Context, bin, work string, n int, seed uint64, lookups int, src *synthcorpus.Sentences, compare bool) (ingestRow, error) {
	r := ingestRow{passages: n}
	corpus := filepath.Join(work, fmt.Sprintf("kilt-%d-seed%d.jsonl.gz", n, seed))
	var err error
	if r.corpus, err = synthcorpus.Write(corpus, n, seed, src); err != nil {
		return r, err
	}
	out := filepath.Join(work, fmt.Sprintf("index-%d", n))
	os.RemoveAll(out)
	run, err := runChild(ctx, bin, []string{"--progress", "off", "index", "--corpus", corpus, "--out", out}, nil)
	r.rssKB, r.anonKB, r.seconds = run.PeakKB, run.AnonKB, run.Seconds
	if err != nil {
		return r, fmt.Errorf("bench ingest: %w", err)
	}
	r.storeBytes = dirSize(filepath.Join(out, "passages"))
	r.bm25Bytes = dirSize(filepath.Join(out, "bm25"))
	if r.storeBytes == 0 {
		return r, nil // an index of another layout (an older --bin)
	}
	t0 := time.Now()
	ix, err := indexdir.OpenWith(ctx, out, indexdir.OpenOptions{Verify: indexdir.VerifyFull})
	if err != nil {
		return r, err
	}
	r.openAll = time.Since(t0)
	ix.Close()
	t0 = time.Now()
	st, err := pstore.Open(filepath.Join(out, "passages"))
	if err != nil {
		return r, err
	}
	r.openStore = time.Since(t0)
	defer st.Close()
	rng := rand.New(rand.NewPCG(seed, 1))
	rowsAt := make([]int, lookups)
	ids := make([]string, lookups)
	for i := range rowsAt {
		rowsAt[i] = rng.IntN(n)
		if ids[i], err = st.ID(rowsAt[i]); err != nil {
			return r, err
		}
	}
	t0 = time.Now()
	for _, row := range rowsAt {
		if _, err := st.Row(row); err != nil {
			return r, err
		}
	}
	r.byRow = time.Since(t0) / time.Duration(lookups)
	t0 = time.Now()
	for _, id := range ids {
		if _, err := st.Get(id); err != nil {
			return r, err
		}
	}
	r.byID = time.Since(t0) / time.Duration(lookups)
	r.measured = true
	if compare {
		err = bleveStored(ctx, st, filepath.Join(work, fmt.Sprintf("bleve-stored-%d", n)), ids, &r)
	}
	return r, err
}

// bleveStored builds a BM25 index that stores the text, as re2g's did
// before the passage store, from st's passages, and times its lookups of
// ids (bleve's stored fields, by id).
func bleveStored(ctx context.Context, st *pstore.Store, dir string, ids []string, r *ingestRow) error {
	os.RemoveAll(dir)
	defer os.RemoveAll(dir)
	ix, err := bm25.Create(dir, bm25.Options{})
	if err != nil {
		return err
	}
	defer ix.Close()
	var batch []data.Passage
	err = st.Scan(ctx, 0, st.Len(), func(p pstore.Passage) error {
		batch = append(batch, p.DataPassage())
		if len(batch) == bm25.BatchSize {
			err := ix.Add(ctx, batch, nil)
			batch = batch[:0]
			return err
		}
		return nil
	})
	if err == nil {
		err = ix.Add(ctx, batch, nil)
	}
	if err == nil {
		err = ix.Optimize(ctx)
	}
	if err != nil {
		return err
	}
	r.bleveBytes = dirSize(dir)
	t0 := time.Now()
	for _, id := range ids {
		if _, ok, err := ix.Passage(id); err != nil || !ok {
			return fmt.Errorf("bleve passage %s: %v %v", id, ok, err)
		}
	}
	r.bleveByID = time.Since(t0) / time.Duration(len(ids))
	return nil
}

func printIngest(rows []ingestRow) {
	fmt.Println("| passages | corpus MiB | peak RSS MiB | peak anon MiB | build s | store B/passage | bm25 B/passage | open ms (checksums) | store open ms | store by id µs | store by row µs | bleve+text B/passage | bleve by id µs |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	us := func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d.Nanoseconds())/1e3) }
	for _, r := range rows {
		perP := func(b int64) string { return fmt.Sprintf("%.0f", float64(b)/float64(r.passages)) }
		line := fmt.Sprintf("| %d | %.1f | %.0f | %.0f | %.1f | %s | %s |", r.passages, float64(r.corpus)/(1<<20), float64(r.rssKB)/1024, float64(r.anonKB)/1024, r.seconds,
			perP(r.storeBytes), perP(r.bm25Bytes))
		if r.measured {
			line += fmt.Sprintf(" %.1f | %.2f | %s | %s |", float64(r.openAll.Microseconds())/1e3, float64(r.openStore.Microseconds())/1e3, us(r.byID), us(r.byRow))
		} else {
			line += " - | - | - | - |"
		}
		if r.bleveBytes > 0 {
			line += fmt.Sprintf(" %s | %s |", perP(r.bleveBytes), us(r.bleveByID))
		} else {
			line += " - | - |"
		}
		fmt.Println(line)
	}
	if len(rows) >= 2 {
		a, b := rows[0], rows[len(rows)-1]
		more := float64(b.corpus - a.corpus)
		fmt.Printf("from %d to %d passages (%.1f MiB more corpus): peak RSS +%.0f MiB = %.3f bytes per corpus byte; peak anonymous memory +%.0f MiB = %.3f bytes per corpus byte\n",
			a.passages, b.passages, more/(1<<20), float64(b.rssKB-a.rssKB)/1024, float64(b.rssKB-a.rssKB)*1024/more,
			float64(b.anonKB-a.anonKB)/1024, float64(b.anonKB-a.anonKB)*1024/more)
	}
}
