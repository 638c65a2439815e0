package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/re2g/re2g/dense"
	"github.com/re2g/re2g/faiss"
	"github.com/re2g/re2g/internal/progress"
)

func init() {
	commands = append(commands, &cli.Command{
		Name:  "dense",
		Usage: "passage vector stores and their FAISS HNSW indexes",
		Subcommands: []*cli.Command{
			{
				Name:      "info",
				Usage:     "describe a vector store (shards, counts, dtype)",
				ArgsUsage: "STORE_DIR",
				Action:    denseInfo,
			},
			{
				Name:      "index",
				Usage:     "build a FAISS HNSW index over a vector store's shards",
				ArgsUsage: "STORE_DIR",
				Flags: append(sq8Flags(),
					&cli.StringFlag{Name: "out", Required: true, Usage: "index file to write (atomically)"},
					&cli.StringFlag{Name: "metric", Value: "ip", Usage: "ip or l2"},
					&cli.IntFlag{Name: "M", Value: faiss.DefaultM, Usage: "HNSW links per node"},
					&cli.IntFlag{Name: "ef-construction", Value: faiss.DefaultEfConstruction},
					&cli.IntFlag{Name: "ef-search", Value: faiss.DefaultEfSearch, Usage: "default efSearch saved in the index"},
					&cli.StringSliceFlag{Name: "shard", Usage: "only these shards (default all)"},
					&cli.IntFlag{Name: "threads", Usage: "OpenMP threads (default: all cores)"},
				),
				Action: denseIndex,
			},
		},
	})
}

func denseInfo(c *cli.Context) error {
	if c.NArg() != 1 {
		return fmt.Errorf("dense info: want STORE_DIR")
	}
	s, err := dense.Open(c.Args().First())
	if err != nil {
		return err
	}
	fmt.Printf("store %s: dim %d, %s, %d vectors in %d shards, max squared norm %.4g\n",
		s.Dir(), s.Dim(), s.DType(), s.Count(), len(s.Shards()), s.MaxSqNorm())
	for _, si := range s.Shards() {
		fmt.Printf("  shard %d %s (generation %d): %d vectors\n", si.No, si.Name, si.Gen, si.Count)
	}
	return nil
}

func denseIndex(c *cli.Context) error {
	if c.NArg() != 1 {
		return fmt.Errorf("dense index: want STORE_DIR")
	}
	s, err := dense.Open(c.Args().First())
	if err != nil {
		return err
	}
	m, err := faiss.ParseMetric(c.String("metric"))
	if err != nil {
		return err
	}
	train, err := sq8Train(c)
	if err != nil {
		return err
	}
	if err := faiss.SetThreads(c.Int("threads")); err != nil {
		return fmt.Errorf("--threads: %w", err)
	}
	bar := progress.New(s.Count(), "indexing", "vectors")
	defer bar.Finish()
	start := time.Now()
	ix, err := s.BuildIndex(c.Context, dense.BuildOptions{
		HNSW: faiss.HNSWConfig{M: c.Int("M"), EfConstruction: c.Int("ef-construction"),
			EfSearch: c.Int("ef-search"), Metric: m, SQ8: c.Bool("sq8")},
		Shards:   c.StringSlice("shard"),
		SQ8Train: train,
		Progress: func(done, total int) {
			bar.ChangeMax(total)
			bar.Set(done)
		},
	})
	if err != nil {
		return err
	}
	defer ix.Close()
	bar.Finish()
	if err := ix.Save(c.String("out")); err != nil {
		return err
	}
	slog.Info("dense index written", "out", c.String("out"), "index", ix.Description(),
		"vectors", ix.Ntotal(), "threads", faiss.Threads(), "seconds", time.Since(start).Seconds())
	return nil
}
