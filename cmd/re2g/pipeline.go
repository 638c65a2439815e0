package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/re2g/re2g/bm25"
	"github.com/re2g/re2g/dense"
	"github.com/re2g/re2g/faiss"
	"github.com/re2g/re2g/indexdir"
	"github.com/re2g/re2g/internal/procstat"
	"github.com/re2g/re2g/kilt"
	"github.com/re2g/re2g/neural"
	"github.com/re2g/re2g/pipeline"
	"github.com/re2g/re2g/torch/dist"
	"github.com/urfave/cli/v2"
)

// pipelineFlags configure retrieval, reranking and generation.
func pipelineFlags() []cli.Flag {
	return append(deviceFlags(),
		&cli.StringFlag{Name: "index", Required: true, Usage: "index directory (re2g index)"},
		&cli.StringFlag{Name: "query-encoder", Usage: "DPR question encoder directory, or a RAG directory (its question encoder) (none: no dense retrieval)"},
		&cli.StringFlag{Name: "reranker", Usage: "cross-encoder directory (none: merged order, uniform weights)"},
		&cli.StringFlag{Name: "generator", Usage: "BART directory, or a RAG directory (its generator, RAG's source layout) (none: retrieval only)"},
		&cli.BoolFlag{Name: "no-bm25", Usage: "skip BM25 retrieval"},
		&cli.IntFlag{Name: "dense-k", Value: 12, Usage: "DPR hits"},
		&cli.IntFlag{Name: "bm25-k", Value: 12, Usage: "BM25 hits"},
		&cli.IntFlag{Name: "rerank-k", Value: 5, Usage: "passages kept after reranking"},
		&cli.IntFlag{Name: "ef-search", Usage: "HNSW search breadth (0: the index's)"},
		&cli.Float64Flag{Name: "k1", Value: 0.9, Usage: "BM25 k1"},
		&cli.Float64Flag{Name: "b", Value: 0.4, Usage: "BM25 b"},
		&cli.IntFlag{Name: "num-beams", Value: 4, Usage: "beams per passage"},
		&cli.IntFlag{Name: "num-return-sequences", Value: 4, Usage: "sequences per passage"},
		&cli.IntFlag{Name: "max-new-tokens", Value: 32, Usage: "answer length limit"},
		&cli.IntFlag{Name: "batch-size", Value: 16, Usage: "model batch size"},
		&cli.DurationFlag{Name: "lock-timeout", Value: 5 * time.Second, Usage: "longest wait for a process that has the index open for writing"},
		&cli.StringFlag{Name: "verify", Value: "quick", Usage: "what opening the index checks: quick (sizes; checksums of the files read whole) or full (every byte)"},
	)
}

func pipelineConfig(c *cli.Context) (pipeline.Config, error) {
	opt, err := neuralOptions(c)
	if err != nil {
		return pipeline.Config{}, err
	}
	opt.MaxLength = 0
	verify, err := indexdir.ParseVerify(c.String("verify"))
	if err != nil {
		return pipeline.Config{}, fmt.Errorf("--verify: %w", err)
	}
	return pipeline.Config{
		Index: c.String("index"), Verify: verify, QueryEncoder: c.String("query-encoder"), Reranker: c.String("reranker"),
		Generator: c.String("generator"), Models: opt, NoSparse: c.Bool("no-bm25"),
		DenseK: c.Int("dense-k"), SparseK: c.Int("bm25-k"), RerankK: c.Int("rerank-k"), EfSearch: c.Int("ef-search"),
		BM25: bm25.Params{K1: c.Float64("k1"), B: c.Float64("b")}, NumBeams: c.Int("num-beams"),
		NumReturnSequences: c.Int("num-return-sequences"), MaxNewTokens: c.Int("max-new-tokens"),
		LockTimeout: c.Duration("lock-timeout"),
	}, nil
}

// processPeakMemory is ", peak memory N MiB" (the process's VmHWM), or "" where
// /proc does not say.
func processPeakMemory() string {
	m, err := procstat.Read(0)
	if err != nil {
		return ""
	}
	return fmt.Sprintf(", peak memory %d MiB", m.Peak>>10)
}

func parseShard(s string) (int, int, error) {
	if s == "" {
		return 0, 1, nil
	}
	var i, n int
	if _, err := fmt.Sscanf(s, "%d/%d", &i, &n); err != nil || n < 1 || i < 0 || i >= n {
		return 0, 0, fmt.Errorf("--shard %q: want I/N with 0 <= I < N", s)
	}
	return i, n, nil
}

func indexOptions(c *cli.Context) (indexdir.Options, error) {
	fields := bm25.Flat
	if c.Bool("multifield") {
		fields = bm25.MultiField
	}
	for _, name := range []string{"corpus", "out"} {
		if !c.IsSet(name) {
			return indexdir.Options{}, fmt.Errorf("--%s is required", name)
		}
	}
	train, err := sq8Train(c)
	if err != nil {
		return indexdir.Options{}, err
	}
	return indexdir.Options{
		Out: c.String("out"), Chunk: c.Int("chunk"), BM25: bm25.Options{Fields: fields}, LockTimeout: c.Duration("lock-timeout"),
		HNSW:     faiss.HNSWConfig{M: c.Int("hnsw-m"), EfConstruction: c.Int("ef-construction"), EfSearch: c.Int("ef-search"), SQ8: c.Bool("sq8")},
		SQ8Train: train,
	}, nil
}

// sq8Flags are the flags of an HNSW index over 8-bit scalar quantisation.
func sq8Flags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "sq8", Usage: "HNSW over 8-bit scalar-quantised vectors (FAISS IndexHNSWSQ, QT_8bit): a quarter of the vector memory"},
		&cli.IntFlag{Name: "sq8-train", Value: dense.DefaultSQ8Sample, Usage: "with --sq8: vectors the quantiser trains on (all when the corpus has fewer)"},
		&cli.Uint64Flag{Name: "sq8-seed", Value: 1, Usage: "with --sq8: seed of the training sample"},
	}
}

// sq8Train reads sq8Flags.
func sq8Train(c *cli.Context) (dense.SQ8Train, error) {
	if !c.Bool("sq8") {
		for _, name := range []string{"sq8-train", "sq8-seed"} {
			if c.IsSet(name) {
				return dense.SQ8Train{}, fmt.Errorf("--%s needs --sq8", name)
			}
		}
		return dense.SQ8Train{}, nil
	}
	return dense.SQ8Train{Sample: c.Int("sq8-train"), Seed: c.Uint64("sq8-seed")}, nil
}

func init() {
	// indexFlags are index's and index merge's flags. --corpus and --out are
	// checked by the actions: urfave/cli checks a command's required flags
	// before it runs a subcommand, so `index merge --corpus ... --out ...`
	// failed on index's own.
	indexFlags := func() []cli.Flag {
		flags := append(deviceFlags(),
			&cli.StringFlag{Name: "corpus", Usage: "KILT passages, BEIR corpus (jsonl[.gz]) or SQuAD JSON (required)"},
			&cli.StringFlag{Name: "out", Usage: "index directory (required)"},
			&cli.IntFlag{Name: "chunk", Value: 2048, Usage: "passages per encoded chunk (the unit of checkpointing)"},
			&cli.IntFlag{Name: "hnsw-m", Value: 32, Usage: "HNSW links per node"},
			&cli.IntFlag{Name: "ef-construction", Value: 80, Usage: "HNSW build breadth"},
			&cli.IntFlag{Name: "ef-search", Value: 128, Usage: "HNSW default search breadth"},
		)
		flags = append(flags, sq8Flags()...)
		return append(flags,
			&cli.BoolFlag{Name: "multifield", Usage: "BM25 over title and text as separate fields (default: one field)"},
			&cli.IntFlag{Name: "batch-size", Value: 64, Usage: "passages per encoder forward pass"},
			&cli.IntFlag{Name: "max-length", Value: 256, Usage: "tokens per passage"},
			&cli.DurationFlag{Name: "lock-timeout", Value: 5 * time.Second, Usage: "longest wait while another build or merge holds --out"},
		)
	}
	commands = append(commands, &cli.Command{
		Name:  "index",
		Usage: "index a corpus: passages, BM25, and DPR vectors in FAISS HNSW",
		Flags: append(append(indexFlags(), vectorFlags()...),
			&cli.StringFlag{Name: "ctx-encoder", Usage: "DPR context encoder directory (none: BM25 only)"},
			&cli.StringFlag{Name: "shard", Usage: "I/N: encode only this shard of the corpus (merge with re2g index merge)"},
			&cli.BoolFlag{Name: "resume", Usage: "continue an interrupted build in --out"},
			&cli.DurationFlag{Name: "dist-timeout", Value: 5 * time.Minute, Usage: "under a launcher (torchrun, srun): bound on the rendezvous, and how long a rank that hangs holds up the others (one that dies stops them at once); default RE2G_DIST_TIMEOUT when set"}),
		Action: func(c *cli.Context) error {
			o, err := indexOptions(c)
			if err != nil {
				return err
			}
			if o.Shard, o.NumShards, err = parseShard(c.String("shard")); err != nil {
				return err
			}
			o.Resume = c.Bool("resume")
			if err := vectorOptions(c, &o); err != nil {
				return err
			}
			env, err := dist.LookupEnv()
			if err != nil {
				return err
			}
			if !env.Alone() {
				switch {
				case c.String("shard") != "":
					return fmt.Errorf("--shard: under a launcher (WORLD_SIZE=%d) the ranks split the encoding: drop --shard", env.WorldSize)
				case c.String("ctx-encoder") == "":
					return fmt.Errorf("under a launcher (WORLD_SIZE=%d) the ranks split the encoding: give --ctx-encoder (build a BM25-only index, or one from --vectors, in one process)", env.WorldSize)
				}
			}
			if dir := c.String("ctx-encoder"); dir != "" {
				opt, err := neuralOptions(c)
				if err != nil {
					return err
				}
				if c.String("device") == "cuda" && !env.Alone() {
					opt.Device.Index = env.LocalRank // this rank's GPU
				}
				enc, err := neural.LoadEncoder(dir, opt)
				if err != nil {
					return err
				}
				defer enc.Close()
				o.Encoder, o.EncoderDir = enc, dir
			}
			if !env.Alone() {
				g, err := indexGroup(c, env)
				if err != nil {
					return err
				}
				defer g.Close()
				o.Dist = g
			}
			start := time.Now()
			man, err := indexdir.Build(c.Context, c.String("corpus"), o)
			if err != nil {
				return err
			}
			if !o.Dist.IsMain() {
				return nil
			}
			secs := time.Since(start).Seconds()
			ranks := ""
			if o.Dist.Size() > 1 {
				ranks = fmt.Sprintf(" on %d ranks", o.Dist.Size())
			}
			fmt.Fprintf(os.Stderr, "indexed %d passages in %.1f s (%.1f passages/s)%s into %s%s\n", man.Passages, secs, float64(man.Passages)/secs, ranks, o.Out, processPeakMemory())
			return nil
		},
		Subcommands: append([]*cli.Command{{
			Name:      "merge",
			Usage:     "combine encoding shards (re2g index --shard I/N) into one index",
			ArgsUsage: "SHARD_DIR...",
			Flags:     indexFlags(),
			Action: func(c *cli.Context) error {
				o, err := indexOptions(c)
				if err != nil {
					return err
				}
				if c.NArg() == 0 {
					return fmt.Errorf("index merge: no shard directories given (re2g index merge --corpus C --out DIR SHARD_DIR...)")
				}
				man, err := indexdir.Merge(c.Context, c.String("corpus"), o.Out, c.Args().Slice(), o)
				if err != nil {
					return err
				}
				fmt.Fprintf(os.Stderr, "merged %d shards (%d passages) into %s\n", c.NArg(), man.Passages, o.Out)
				return nil
			},
		}}, indexUpdateCommands()...),
	})

	commands = append(commands, &cli.Command{
		Name:      "ask",
		Usage:     "answer one question from an index, with provenance",
		ArgsUsage: "QUESTION",
		Flags:     append(pipelineFlags(), &cli.BoolFlag{Name: "json", Usage: "print the result as JSON"}),
		Action: func(c *cli.Context) error {
			q := strings.TrimSpace(strings.Join(c.Args().Slice(), " "))
			if q == "" {
				return fmt.Errorf("ask: no question given")
			}
			cfg, err := pipelineConfig(c)
			if err != nil {
				return err
			}
			p, err := pipeline.NewContext(c.Context, cfg)
			if err != nil {
				return err
			}
			defer p.Close()
			res, err := p.Answer(c.Context, q)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			printResult(res)
			return nil
		},
	})

	commands = append(commands, &cli.Command{
		Name:  "run",
		Usage: "answer a KILT task file, writing KILT predictions",
		Flags: append(pipelineFlags(),
			&cli.StringFlag{Name: "in", Required: true, Usage: "KILT task file ({id, input, ...} lines)"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "predictions (written atomically)"},
			&cli.StringFlag{Name: "provenance", Value: "page", Usage: "what goes into wikipedia_id: page or passage"}),
		Action: func(c *cli.Context) error {
			cfg, err := pipelineConfig(c)
			if err != nil {
				return err
			}
			byPassage := false
			switch c.String("provenance") {
			case "page":
			case "passage":
				byPassage = true
			default:
				return fmt.Errorf("--provenance %q: want page or passage", c.String("provenance"))
			}
			recs, err := kilt.ReadFile(c.String("in"))
			if err != nil {
				return err
			}
			p, err := pipeline.NewContext(c.Context, cfg)
			if err != nil {
				return err
			}
			defer p.Close()
			return runTask(c.Context, p, recs, c.String("out"), byPassage, c.Int("batch-size"))
		},
	})
}

// runTask answers every record and writes predictions.
func runTask(ctx context.Context, p *pipeline.Pipeline, recs []kilt.Record, out string, byPassage bool, batch int) error {
	preds, err := p.Predict(ctx, recs, byPassage, batch, true)
	if err != nil {
		return err
	}
	return kilt.WriteFile(out, preds)
}

func printResult(r *pipeline.Result) {
	if r.Answer != "" {
		fmt.Printf("answer: %s   (p = %.3f)\n", r.Answer, r.Score)
		for i, a := range r.Answers {
			if i == 0 || i >= 4 {
				continue
			}
			fmt.Printf("   also: %s   (p = %.3f)\n", a.Text, a.Prob)
		}
	}
	fmt.Println("provenance:")
	for i, pv := range r.Provenance {
		text := pv.Text
		if len(text) > 160 {
			text = text[:160] + "…"
		}
		src := []string{}
		if pv.FromDense {
			src = append(src, fmt.Sprintf("dpr %.2f", pv.DenseScore))
		}
		if pv.FromSparse {
			src = append(src, fmt.Sprintf("bm25 %.2f", pv.SparseScore))
		}
		fmt.Printf("%2d. [%s] %s  (p = %.3f, rerank %.2f; %s)\n    %s\n", i+1, pv.ID, pv.Title, pv.Prob, pv.RerankScore, strings.Join(src, ", "), text)
	}
}
