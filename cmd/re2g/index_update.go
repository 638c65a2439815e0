package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/re2g/re2g/indexdir"
	"github.com/re2g/re2g/neural"
)

// indexUpdateCommands are index's subcommands that change or check a
// finished index: add, delete, compact, verify, info.
func indexUpdateCommands() []*cli.Command {
	lockTimeout := func() cli.Flag {
		return &cli.DurationFlag{Name: "lock-timeout", Value: 5 * time.Second, Usage: "longest wait while another writer holds --index"}
	}
	indexFlag := &cli.StringFlag{Name: "index", Usage: "index directory (required)"}
	return []*cli.Command{
		{
			Name:  "add",
			Usage: "add the passages of a corpus to an index (a new generation; readers keep theirs until they reload)",
			Flags: append(append(deviceFlags(), vectorFlags()...), indexFlag,
				&cli.StringFlag{Name: "corpus", Usage: "KILT passages, BEIR corpus (jsonl[.gz]) or SQuAD JSON (required)"},
				&cli.StringFlag{Name: "ctx-encoder", Usage: "the index's DPR context encoder (required when the index has vectors)"},
				&cli.BoolFlag{Name: "replace", Usage: "a passage whose id the index holds replaces it (default: an error)"},
				&cli.BoolFlag{Name: "force", Usage: "add with a context encoder other than the one the index records"},
				&cli.IntFlag{Name: "batch-size", Value: 64, Usage: "passages per encoder forward pass"},
				&cli.IntFlag{Name: "max-length", Usage: "tokens per passage (0: the index's)"},
				lockTimeout()),
			Action: indexAdd,
		},
		{
			Name:  "delete",
			Usage: "delete passages from an index by id (hidden from searches at once, removed by compact)",
			Flags: []cli.Flag{indexFlag,
				&cli.StringFlag{Name: "ids", Usage: "passage ids, one a line, or JSON lines with \"_id\", \"pid\" or \"id\" (required)"},
				&cli.BoolFlag{Name: "ignore-missing", Usage: "skip ids the index lacks (default: an error naming the first)"},
				lockTimeout()},
			Action: indexDelete,
		},
		{
			Name:  "compact",
			Usage: "rewrite an index as one segment without its deleted passages, and remove earlier generations",
			Flags: []cli.Flag{indexFlag, lockTimeout()},
			Action: func(c *cli.Context) error {
				dir, err := required(c, "index")
				if err != nil {
					return err
				}
				before, err := indexdir.ReadManifest(dir)
				if err != nil {
					return fmt.Errorf("index compact %s: %w", dir, err)
				}
				start := time.Now()
				m, err := indexdir.Compact(c.Context, dir, indexdir.UpdateOptions{LockTimeout: c.Duration("lock-timeout")})
				if err != nil {
					return err
				}
				if m.Generation == before.Generation {
					fmt.Fprintf(os.Stderr, "index %s is compact already: %s\n", dir, counts(m))
					return nil
				}
				fmt.Fprintf(os.Stderr, "compacted %s in %.1f s: %s%s\n", dir, time.Since(start).Seconds(), counts(m), processPeakMemory())
				return nil
			},
		},
		{
			Name:      "verify",
			Usage:     "check every byte of every file of an index against its manifest (opening checks sizes and the files read whole)",
			ArgsUsage: "DIR",
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return errors.New("index verify: want the index directory (re2g index verify DIR)")
				}
				dir := c.Args().First()
				start := time.Now()
				m, err := indexdir.VerifyIndex(c.Context, dir)
				if err != nil {
					return err
				}
				var bytes int64
				for _, f := range m.Files {
					bytes += f.Size
				}
				fmt.Fprintf(os.Stderr, "index %s: %d files, %.1f MiB, every byte as the manifest records it (%.1f s): %s\n",
					dir, len(m.Files), float64(bytes)/(1<<20), time.Since(start).Seconds(), counts(m))
				return nil
			},
		},
		{
			Name:      "info",
			Usage:     "describe an index: generation, passages, deleted passages, segments, vectors",
			ArgsUsage: "DIR",
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return errors.New("index info: want the index directory (re2g index info DIR)")
				}
				m, err := indexdir.ReadManifest(c.Args().First())
				if err != nil {
					return err
				}
				printManifest(c.Args().First(), m)
				return nil
			},
		},
	}
}

// required is a string flag the command needs.
func required(c *cli.Context, name string) (string, error) {
	if v := c.String(name); v != "" {
		return v, nil
	}
	return "", fmt.Errorf("%s: --%s is required", c.Command.FullName(), name)
}

// counts is a manifest's generation and counts, in one line.
func counts(m *indexdir.Manifest) string {
	s := fmt.Sprintf("generation %d, %d passages, %d deleted, %d segments", m.Generation, m.Passages, m.Deleted, max(1, len(m.Segments)))
	if m.Dense != nil {
		s += fmt.Sprintf(", %d vectors", m.Dense.Vectors)
	}
	return s
}

func printManifest(dir string, m *indexdir.Manifest) {
	fmt.Printf("index %s (manifest version %d)\n", dir, m.Version)
	fmt.Printf("  generation %d (%s)\n", m.Generation, m.Created.Format(time.RFC3339))
	fmt.Printf("  passages %d, deleted %d (stored until compact), pages %v\n", m.Passages, m.Deleted, m.Pages)
	fmt.Printf("  built from %s\n", m.Corpus)
	var bytes int64
	for _, f := range m.Files {
		bytes += f.Size
	}
	fmt.Printf("  files %d, %.1f MiB\n", len(m.Files), float64(bytes)/(1<<20))
	bm := m.BM25Dir
	if bm == "" {
		bm = "bm25"
	}
	fmt.Printf("  BM25 %s\n", bm)
	if d := m.Dense; d != nil {
		kind := "float32"
		if d.HNSW.SQ8 {
			kind = "SQ8"
		}
		fmt.Printf("  vectors %d of dimension %d, HNSW %s M=%d efConstruction=%d efSearch=%d, encoder %s\n",
			d.Vectors, d.Dim, kind, d.HNSW.M, d.HNSW.EfConstruction, d.HNSW.EfSearch, d.Encoder)
	} else {
		fmt.Println("  no vectors (BM25 only)")
	}
	for i, s := range m.Segments {
		where := s.Dir
		if where == "" {
			where = "."
		}
		fmt.Printf("  segment %d: %s, %d rows\n", i, where, s.Rows)
	}
}

func indexAdd(c *cli.Context) error {
	dir, err := required(c, "index")
	if err != nil {
		return err
	}
	corpus, err := required(c, "corpus")
	if err != nil {
		return err
	}
	m, err := indexdir.ReadManifest(dir)
	if err != nil {
		return fmt.Errorf("index add %s: %w", dir, err)
	}
	o := indexdir.UpdateOptions{Replace: c.Bool("replace"), Force: c.Bool("force"), LockTimeout: c.Duration("lock-timeout")}
	var vo indexdir.Options
	if err := vectorOptions(c, &vo); err != nil {
		return fmt.Errorf("index add: %w", err)
	}
	o.Vectors, o.VectorIDs = vo.Vectors, vo.VectorIDs
	if o.Vectors != "" {
		if m.Dense == nil {
			return fmt.Errorf("index add: index %s has no vectors: add its passages without --vectors", dir)
		}
	} else if enc := c.String("ctx-encoder"); enc != "" {
		opt, err := neuralOptions(c)
		if err != nil {
			return err
		}
		if opt.MaxLength == 0 && m.Dense != nil {
			opt.MaxLength = m.Dense.MaxLength // encode as the index was
		}
		e, err := neural.LoadEncoder(enc, opt)
		if err != nil {
			return err
		}
		defer e.Close()
		o.Encoder, o.EncoderDir = e, enc
	} else if m.Dense != nil {
		if m.Dense.Encoder == "" {
			return fmt.Errorf("index add: index %s holds passage vectors made elsewhere: --vectors is required", dir)
		}
		return fmt.Errorf("index add: index %s holds passage vectors: --ctx-encoder is required (the index's: %s), or --vectors", dir, m.Dense.Encoder)
	}
	start := time.Now()
	after, err := indexdir.Add(c.Context, dir, corpus, o)
	if err != nil {
		return err
	}
	added := after.Segments[len(after.Segments)-1].Rows
	fmt.Fprintf(os.Stderr, "added %d passages (%d replaced) to %s in %.1f s: %s%s\n",
		added, after.Deleted-m.Deleted, dir, time.Since(start).Seconds(), counts(after), processPeakMemory())
	return nil
}

func indexDelete(c *cli.Context) error {
	dir, err := required(c, "index")
	if err != nil {
		return err
	}
	file, err := required(c, "ids")
	if err != nil {
		return err
	}
	ids, err := indexdir.ReadIDs(file)
	if err != nil {
		return err
	}
	start := time.Now()
	before, err := indexdir.ReadManifest(dir)
	if err != nil {
		return fmt.Errorf("index delete %s: %w", dir, err)
	}
	m, err := indexdir.Delete(c.Context, dir, ids, indexdir.UpdateOptions{IgnoreMissing: c.Bool("ignore-missing"), LockTimeout: c.Duration("lock-timeout")})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "deleted %d passages of %d ids from %s in %.1f s: %s\n",
		before.Passages-m.Passages, len(ids), dir, time.Since(start).Seconds(), counts(m))
	return nil
}
