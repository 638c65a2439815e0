package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/dense"
	"github.com/re2g/re2g/faiss"
	"github.com/re2g/re2g/indexdir"
	"github.com/re2g/re2g/internal/atomicfile"
	"github.com/re2g/re2g/internal/procstat"
	"github.com/re2g/re2g/internal/synthcorpus"
	"github.com/re2g/re2g/internal/tinymodels"
	"github.com/re2g/re2g/internal/vecgen"
	"github.com/re2g/re2g/model/bert"
	"github.com/re2g/re2g/pipeline"
	"github.com/re2g/re2g/torch"
)

func init() {
	subcommand("bench", "benchmarks against a peer, measured in the same run", &cli.Command{
		Name:  "scale",
		Usage: "the cost of every stage against corpus size: builds, encoding, disk, open, queries, a serving process; log-log slopes and a projection",
		Description: `For each size, a synthetic KILT corpus (internal/synthcorpus: sentences of ArguAna and SQuADShifts)
goes through these stages, each of which writes WORK/n<SIZE>/<stage>.json when it is done and is skipped
when that file exists, so an interrupted run resumes where it stopped:

  corpus   write the corpus (gzipped KILT jsonl)
  bm25     re2g index, BM25 only (passage store + bleve), a child process: wall time, peak memory, bytes
  encode   re2g encode of an evenly spaced sample with a small random BERT (128x2, bert-tiny's shape) and one
           of BERT-base's shape (768x12): passages/s (model loading excluded), peak memory
  vectors  --dim-d clustered random vectors (internal/vecgen) for every passage, as .npy + ids: the stand-in
           for a corpus encoded elsewhere (HNSW timings are real; recall is not the point)
  index    re2g index --vectors --sq8: the whole build a 22M-passage corpus needs (BM25 + HNSW over SQ8)
  sq8      re2g dense index --sq8 over the index's vectors: HNSW-SQ8 alone
  open     indexdir.Open of the index, three times (every file's CRC-32C is checked: files in the page cache)
  query    latency of BM25, HNSW, query encoding (BERT-base shape, random weights) and pipeline.Retrieve
           (dense + BM25, merged) over SQuADShifts questions, one at a time
  serve    re2g serve (the same query encoder) as a child: time to ready, resident memory after loading
           and after the queries, /v1/retrieve latency
  flat     re2g dense index (HNSWFlat) alone, and its search latency
  update   live updates while re2g serve answers one request after another: re2g index add of --updates
           new passages with their vectors, SIGHUP, the first of them retrieved by its text; re2g index
           delete of them, SIGHUP, no longer retrieved; re2g index compact (up to --compact-max), SIGHUP:
           each update's time and peak memory, each reload's time, the requests' latency and failures

Every child is this binary (or --bin). Results: WORK/results.json and .csv, a table, the log-log slopes
between the two largest sizes, a projection to --project passages, and a PNG of cost against size.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "data", Value: "../shared/data", Usage: "the shared data folder"},
			&cli.StringFlag{Name: "sizes", Value: "10000,100000,1000000", Usage: "passages per corpus, comma-separated"},
			&cli.Uint64Flag{Name: "seed", Value: 1},
			&cli.StringFlag{Name: "work", Value: "build/scale", Usage: "corpora, indexes, models and results (kept: the run resumes from it)"},
			&cli.StringFlag{Name: "bin", Usage: "the re2g binary the children run (default: this one)"},
			&cli.IntFlag{Name: "queries", Value: 300, Usage: "questions timed per latency"},
			&cli.IntFlag{Name: "encode-sample", Value: 10000, Usage: "passages encoded by the small model per size (at most the corpus)"},
			&cli.IntFlag{Name: "base-sample", Value: 256, Usage: "passages encoded by the BERT-base-shaped model per size (0: none)"},
			&cli.IntFlag{Name: "dim", Value: 768, Usage: "dimension of the precomputed vectors"},
			&cli.IntFlag{Name: "flat-max", Usage: "largest size whose HNSWFlat index is built (0: every size)"},
			&cli.IntFlag{Name: "sq8-max", Usage: "largest size whose HNSW-SQ8 index is also built alone (0: every size; above it the index stage's HNSW phase is the only SQ8 build)"},
			&cli.IntFlag{Name: "updates", Value: 1000, Usage: "passages the update stage adds and deletes (0: no update stage)"},
			&cli.IntFlag{Name: "compact-max", Usage: "largest size whose index the update stage compacts (0: every size)"},
			&cli.Float64Flag{Name: "project", Value: 22e6, Usage: "corpus size to project the costs to"},
			&cli.StringFlag{Name: "plot", Usage: "the PNG of cost against size (default WORK/scale.png)"},
			&cli.BoolFlag{Name: "keep", Usage: "keep the vectors file, the BM25-only index and the standalone HNSW files (default: removed once measured; the index is always kept)"},
		},
		Action: benchScale,
	})
}

// scaleConfig is bench scale's flags.
type scaleConfig struct {
	data, work, bin       string
	seed                  uint64
	queries, dim, flatMax int
	sq8Max                int
	updates, compactMax   int
	encodeSample          int
	baseSample            int
	keep                  bool
	models                scaleModels
	questions             []string
	src                   *synthcorpus.Sentences
}

// scaleModels are the random models bench scale writes once under WORK/models.
type scaleModels struct {
	SmallCtx, BaseCtx, BaseQuery string
}

// scaleResult is every stage's measurements at one corpus size.
type scaleResult struct {
	Passages int          `json:"passages"`
	Corpus   *corpusStage `json:"corpus,omitempty"`
	BM25     *buildStage  `json:"bm25,omitempty"`
	Encode   *encodeStage `json:"encode,omitempty"`
	Vectors  *vectorStage `json:"vectors,omitempty"`
	Index    *buildStage  `json:"index,omitempty"`
	SQ8      *buildStage  `json:"sq8,omitempty"`
	Open     *openStage   `json:"open,omitempty"`
	Query    *queryStage  `json:"query,omitempty"`
	Serve    *serveStage  `json:"serve,omitempty"`
	Flat     *buildStage  `json:"flat,omitempty"`
	Update   *updateStage `json:"update,omitempty"`
	// Load is the machine's 1-minute load average at the start and the end
	// of each stage (the machine is shared).
	Load map[string][2]float64 `json:"loadavg,omitempty"`
}

type corpusStage struct {
	Bytes   int64   `json:"bytes"`    // JSON lines
	GzBytes int64   `json:"gz_bytes"` // the file
	Seconds float64 `json:"seconds"`
}

// buildStage is a build run as a child process.
type buildStage struct {
	childRun
	Bytes   map[string]int64   `json:"bytes,omitempty"`  // on disk, by part
	Phases  map[string]float64 `json:"phases,omitempty"` // seconds, from the child's log
	Search  *latency           `json:"search,omitempty"` // single-query search of the index built
	Skipped string             `json:"skipped,omitempty"`
}

type encodeStage struct {
	Small *encodeRun `json:"small"`
	Base  *encodeRun `json:"base,omitempty"`
}

type encodeRun struct {
	Model  string  `json:"model"`
	Sample int     `json:"sample"`
	Rate   float64 `json:"passages_per_second"` // encoding only, from the child's log
	childRun
}

type vectorStage struct {
	Dim     int     `json:"dim"`
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
}

type openStage struct {
	Seconds []float64 `json:"seconds"` // three opens
	Bytes   int64     `json:"bytes"`   // the index's files, all checked
}

// latency is the distribution of single-operation times, in milliseconds.
type latency struct {
	N    int     `json:"n"`
	P50  float64 `json:"p50_ms"`
	P99  float64 `json:"p99_ms"`
	Mean float64 `json:"mean_ms"`
}

type queryStage struct {
	BM25     latency `json:"bm25"`
	HNSW     latency `json:"hnsw"`
	Encode   latency `json:"encode"`
	Retrieve latency `json:"retrieve"`
}

type serveStage struct {
	ReadySeconds float64         `json:"ready_seconds"`
	Loaded       procstat.Memory `json:"loaded_kib"`
	AfterQueries procstat.Memory `json:"after_queries_kib"`
	HTTP         latency         `json:"http_retrieve"`
}

func benchScale(c *cli.Context) error {
	ctx := c.Context
	var sizes []int
	for _, f := range strings.Split(c.String("sizes"), ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 10 || n > 100_000_000 {
			return fmt.Errorf("--sizes: %q: want passage counts from 10 to 100000000", f)
		}
		sizes = append(sizes, n)
	}
	slices.Sort(sizes)
	sizes = slices.Compact(sizes)
	cfg := scaleConfig{data: c.String("data"), work: c.String("work"), bin: c.String("bin"), seed: c.Uint64("seed"),
		queries: c.Int("queries"), dim: c.Int("dim"), flatMax: c.Int("flat-max"), sq8Max: c.Int("sq8-max"), updates: c.Int("updates"), compactMax: c.Int("compact-max"), encodeSample: c.Int("encode-sample"),
		baseSample: c.Int("base-sample"), keep: c.Bool("keep")}
	if cfg.bin == "" {
		var err error
		if cfg.bin, err = os.Executable(); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(cfg.work, 0o755); err != nil {
		return fmt.Errorf("bench scale: %w", err)
	}
	var err error
	if cfg.models, err = writeScaleModels(cfg); err != nil {
		return err
	}
	if cfg.questions, err = scaleQuestions(cfg); err != nil {
		return err
	}
	var results []*scaleResult
	for _, n := range sizes {
		r, err := scaleSize(ctx, &cfg, n)
		if err != nil {
			return fmt.Errorf("bench scale: %d passages: %w", n, err)
		}
		results = append(results, r)
	}
	plot := c.String("plot")
	if plot == "" {
		plot = filepath.Join(cfg.work, "scale.png")
	}
	return reportScale(os.Stdout, cfg, results, c.Float64("project"), plot)
}

// writeScaleModels writes the random encoders once: a small one (BERT
// 128×2, tinymodels.Small) and DPR context and question encoders of
// BERT-base's shape, all with the real bert-base-uncased tokenizer.
func writeScaleModels(cfg scaleConfig) (scaleModels, error) {
	dir := filepath.Join(cfg.work, "models")
	m := scaleModels{SmallCtx: filepath.Join(dir, "small", "ctx-encoder"), BaseCtx: filepath.Join(dir, "base-ctx"), BaseQuery: filepath.Join(dir, "base-query")}
	tok, err := os.ReadFile(filepath.Join(cfg.data, "tokenizers", "bert-base-uncased", "tokenizer.json"))
	if err != nil {
		return m, fmt.Errorf("bench scale: %w", err)
	}
	if _, err := os.Stat(filepath.Join(m.SmallCtx, "tokenizer.json")); err != nil {
		os.RemoveAll(filepath.Join(dir, "small"))
		if _, err := tinymodels.Write(filepath.Join(dir, "small"), tok, tinymodels.Small, 7); err != nil {
			return m, fmt.Errorf("bench scale: %w", err)
		}
	}
	base := &bert.Config{ModelType: "bert", VocabSize: 30522, HiddenSize: 768, NumHiddenLayers: 12, NumAttentionHeads: 12,
		IntermediateSize: 3072, HiddenAct: "gelu", MaxPositionEmbeddings: 512, TypeVocabSize: 2, LayerNormEps: 1e-12}
	for _, x := range []struct {
		dir      string
		question bool
	}{{m.BaseCtx, false}, {m.BaseQuery, true}} {
		if _, err := os.Stat(filepath.Join(x.dir, "tokenizer.json")); err == nil {
			continue
		}
		slog.Info("writing a random DPR encoder of BERT-base's shape", "dir", x.dir)
		os.RemoveAll(x.dir)
		torch.ManualSeed(7)
		enc, err := bert.NewDPR(base, x.question, torch.CPUDevice)
		if err != nil {
			return m, err
		}
		err = enc.Save(x.dir)
		enc.Close()
		if err == nil {
			err = os.WriteFile(filepath.Join(x.dir, "tokenizer.json"), tok, 0o644)
		}
		if err != nil {
			return m, fmt.Errorf("bench scale: %s: %w", x.dir, err)
		}
	}
	return m, nil
}

// scaleQuestions are --queries SQuADShifts New Wiki questions, evenly
// spaced over the file.
func scaleQuestions(cfg scaleConfig) ([]string, error) {
	sq, err := data.LoadSQuAD(filepath.Join(cfg.data, "squadshifts", "new_wiki_v1.0.json"), &data.Report{})
	if err != nil {
		return nil, fmt.Errorf("bench scale: %w", err)
	}
	if len(sq.Questions) < cfg.queries {
		return nil, fmt.Errorf("bench scale: --queries %d: the file has %d questions", cfg.queries, len(sq.Questions))
	}
	out := make([]string, cfg.queries)
	for i := range out {
		out[i] = sq.Questions[i*len(sq.Questions)/cfg.queries].Question
	}
	return out, nil
}

// stage runs one stage of size dir, unless dir/name.json says it is done,
// and records its result there, and the load average around it in
// dir/name.load.json (and load).
func stage[T any](dir, name string, load map[string][2]float64, dst **T, run func() (*T, error)) error {
	path := filepath.Join(dir, name+".json")
	loadPath := filepath.Join(dir, name+".load.json")
	if b, err := os.ReadFile(path); err == nil {
		var v T
		if err := json.Unmarshal(b, &v); err != nil {
			return fmt.Errorf("%s: %w (remove it to measure again)", path, err)
		}
		*dst = &v
		var l [2]float64
		if b, err := os.ReadFile(loadPath); err == nil && json.Unmarshal(b, &l) == nil {
			load[name] = l
		}
		slog.Info("bench scale: stage done before", "stage", name, "result", path)
		return nil
	}
	slog.Info("bench scale: stage", "stage", name, "dir", dir)
	l := [2]float64{loadAverage(), 0}
	v, err := run()
	if err != nil {
		return fmt.Errorf("stage %s: %w", name, err)
	}
	l[1] = loadAverage()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return err
	}
	*dst = v
	load[name] = l
	b, _ = json.Marshal(l)
	return atomicfile.WriteFile(loadPath, b, 0o644)
}

// loadAverage is the 1-minute load average (0 where /proc does not say).
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// scaleSize runs the stages of one size.
func scaleSize(ctx context.Context, cfg *scaleConfig, n int) (*scaleResult, error) {
	dir := filepath.Join(cfg.work, fmt.Sprintf("n%d", n))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	r := &scaleResult{Passages: n, Load: map[string][2]float64{}}
	corpus := filepath.Join(dir, fmt.Sprintf("kilt-%d-seed%d.jsonl.gz", n, cfg.seed))
	vecs, vecIDs := filepath.Join(dir, "vectors.npy"), filepath.Join(dir, "vectors.ids")
	index := filepath.Join(dir, "index")
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err != nil {
		// the stages before the index need the corpus and the vectors file
		for _, s := range []struct{ result, file string }{{"corpus", corpus}, {"vectors", vecs}} {
			if _, err := os.Stat(s.file); err != nil {
				os.Remove(filepath.Join(dir, s.result+".json"))
			}
		}
	}
	child := func(name string, args ...string) (childRun, error) {
		logPath := filepath.Join(dir, name+".log")
		f, err := os.Create(logPath)
		if err != nil {
			return childRun{}, err
		}
		defer f.Close()
		run, err := runChild(ctx, cfg.bin, args, f)
		if err != nil {
			err = fmt.Errorf("%w (log: %s)", err, logPath)
		}
		return run, err
	}
	steps := []func() error{
		func() error {
			return stage(dir, "corpus", r.Load, &r.Corpus, func() (*corpusStage, error) {
				if cfg.src == nil {
					var err error
					if cfg.src, err = synthcorpus.Load(cfg.data); err != nil {
						return nil, err
					}
				}
				t0 := time.Now()
				size, err := synthcorpus.Write(corpus, n, cfg.seed, cfg.src)
				if err != nil {
					return nil, err
				}
				return &corpusStage{Bytes: size, GzBytes: dirSize(corpus), Seconds: time.Since(t0).Seconds()}, nil
			})
		},
		func() error {
			return stage(dir, "bm25", r.Load, &r.BM25, func() (*buildStage, error) {
				out := filepath.Join(dir, "bm25-index")
				os.RemoveAll(out)
				run, err := child("bm25", "--progress", "log", "index", "--corpus", corpus, "--out", out)
				if err != nil {
					return nil, err
				}
				s := &buildStage{childRun: run, Bytes: indexBytes(out), Phases: logPhases(filepath.Join(dir, "bm25.log"))}
				if !cfg.keep {
					os.RemoveAll(out)
				}
				return s, nil
			})
		},
		func() error {
			return stage(dir, "encode", r.Load, &r.Encode, func() (*encodeStage, error) {
				s := &encodeStage{}
				var err error
				if s.Small, err = encodeRate(ctx, dir, "encode-small", cfg.models.SmallCtx, corpus, n, min(n, cfg.encodeSample), child); err != nil {
					return nil, err
				}
				if cfg.baseSample > 0 {
					if s.Base, err = encodeRate(ctx, dir, "encode-base", cfg.models.BaseCtx, corpus, n, min(n, cfg.baseSample), child); err != nil {
						return nil, err
					}
				}
				return s, nil
			})
		},
		func() error {
			return stage(dir, "vectors", r.Load, &r.Vectors, func() (*vectorStage, error) {
				return writeScaleVectors(ctx, corpus, vecs, vecIDs, n, cfg.dim, 1)
			})
		},
		func() error {
			return stage(dir, "index", r.Load, &r.Index, func() (*buildStage, error) {
				os.RemoveAll(index)
				run, err := child("index", "--progress", "log", "index", "--corpus", corpus, "--out", index,
					"--vectors", vecs, "--vector-ids", vecIDs, "--sq8")
				if err != nil {
					return nil, err
				}
				return &buildStage{childRun: run, Bytes: indexBytes(index), Phases: logPhases(filepath.Join(dir, "index.log"))}, nil
			})
		},
		func() error {
			if !cfg.keep {
				os.Remove(vecs)
				os.Remove(vecIDs)
			}
			return stage(dir, "sq8", r.Load, &r.SQ8, func() (*buildStage, error) {
				if cfg.sq8Max > 0 && n > cfg.sq8Max {
					return &buildStage{Skipped: fmt.Sprintf("--sq8-max %d", cfg.sq8Max)}, nil
				}
				return hnswAlone(ctx, cfg, dir, "sq8", filepath.Join(index, "dense"), child, "--sq8")
			})
		},
		func() error {
			return stage(dir, "open", r.Load, &r.Open, func() (*openStage, error) {
				s := &openStage{Bytes: dirSize(index)}
				for range 3 {
					t0 := time.Now()
					ix, err := indexdir.Open(ctx, index)
					if err != nil {
						return nil, err
					}
					s.Seconds = append(s.Seconds, time.Since(t0).Seconds())
					ix.Close()
				}
				return s, nil
			})
		},
		func() error {
			return stage(dir, "query", r.Load, &r.Query, func() (*queryStage, error) {
				return scaleQueries(ctx, cfg, index)
			})
		},
		func() error {
			return stage(dir, "serve", r.Load, &r.Serve, func() (*serveStage, error) {
				return scaleServe(ctx, cfg, dir, index)
			})
		},
		func() error {
			return stage(dir, "flat", r.Load, &r.Flat, func() (*buildStage, error) {
				if cfg.flatMax > 0 && n > cfg.flatMax {
					return &buildStage{Skipped: fmt.Sprintf("--flat-max %d", cfg.flatMax)}, nil
				}
				return hnswAlone(ctx, cfg, dir, "flat", filepath.Join(index, "dense"), child)
			})
		},
		func() error {
			if cfg.updates <= 0 {
				return nil
			}
			return stage(dir, "update", r.Load, &r.Update, func() (*updateStage, error) {
				return scaleUpdates(ctx, cfg, dir, index, n, child)
			})
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return r, err
		}
	}
	return r, nil
}

// indexBytes is the size on disk of each part of an index directory.
func indexBytes(dir string) map[string]int64 {
	b := map[string]int64{"total": dirSize(dir), "passages": dirSize(filepath.Join(dir, "passages")), "bm25": dirSize(filepath.Join(dir, "bm25"))}
	if hnsw := dirSize(filepath.Join(dir, "dense", "hnsw.faiss")); hnsw > 0 {
		b["hnsw"] = hnsw
		b["vectors"] = dirSize(filepath.Join(dir, "dense")) - hnsw
	}
	return b
}

// logPhases reads the seconds of a build's phases from its log (--progress
// log): the passage store, BM25's batches (its final merge not included),
// the vectors' import and the HNSW build.
func logPhases(path string) map[string]float64 {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		kv := logfmt(sc.Text())
		secs := func(key string) (float64, bool) {
			if d, err := time.ParseDuration(kv[key]); err == nil {
				return d.Seconds(), true
			}
			v, err := strconv.ParseFloat(kv[key], 64)
			return v, err == nil
		}
		var name, key string
		switch {
		case kv["msg"] == "passage store written":
			name, key = "store", "seconds"
		case kv["msg"] == "progress finished" && kv["task"] == "indexing" && kv["unit"] == "docs":
			name, key = "bm25 batches", "elapsed"
		case kv["msg"] == "vectors imported":
			name, key = "import", "seconds"
		case kv["msg"] == "hnsw index built" || kv["msg"] == "dense index written":
			name, key = "hnsw", "seconds"
		default:
			continue
		}
		if v, ok := secs(key); ok {
			out[name] = v
		}
	}
	return out
}

// logfmt splits a log/slog text line into its keys and values.
func logfmt(line string) map[string]string {
	out := map[string]string{}
	for len(line) > 0 {
		line = strings.TrimLeft(line, " ")
		eq := strings.IndexByte(line, '=')
		if eq < 0 {
			break
		}
		key := line[:eq]
		line = line[eq+1:]
		var val string
		if strings.HasPrefix(line, `"`) {
			if s, err := strconv.QuotedPrefix(line); err == nil {
				val, _ = strconv.Unquote(s)
				line = line[len(s):]
			} else {
				break
			}
		} else {
			end := strings.IndexByte(line, ' ')
			if end < 0 {
				end = len(line)
			}
			val, line = line[:end], line[end:]
		}
		out[key] = val
	}
	return out
}

// encodeRate encodes an evenly spaced sample of the corpus with model in a
// child (re2g encode, as re2g index encodes: 256 tokens, batches of 64) and
// reads its rate, model loading excluded, from the child's log.
func encodeRate(ctx context.Context, dir, name, model, corpus string, n, sample int, child func(string, ...string) (childRun, error)) (*encodeRun, error) {
	in := filepath.Join(dir, name+"-in.jsonl")
	out := filepath.Join(dir, name+"-out.jsonl")
	defer os.Remove(in)
	defer os.Remove(out)
	err := atomicfile.Write(in, 0o644, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		enc := json.NewEncoder(bw)
		row, next, k := 0, 0, 0
		_, err := indexdir.ReadCorpus(ctx, corpus, &data.Report{}, func(p indexdir.Passage) error {
			if row == next && k < sample {
				if err := enc.Encode(map[string]string{"id": p.ID, "title": p.Title, "text": p.Text}); err != nil {
					return err
				}
				k++
				next = k * n / sample
			}
			row++
			return nil
		})
		if err != nil {
			return err
		}
		return bw.Flush()
	})
	if err != nil {
		return nil, err
	}
	run, err := child(name, "--progress", "off", "encode", "--model", model, "--in", in, "--out", out, "--max-length", "256", "--batch-size", "64")
	if err != nil {
		return nil, err
	}
	r := &encodeRun{Model: model, Sample: sample, childRun: run}
	f, err := os.Open(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if kv := logfmt(sc.Text()); kv["msg"] == "encoded" {
			r.Rate, _ = strconv.ParseFloat(kv["per_second"], 64)
		}
	}
	if r.Rate == 0 {
		return nil, fmt.Errorf("%s: no encoding rate in %s.log", name, name)
	}
	return r, nil
}

// writeScaleVectors writes a dim-d vecgen vector (of the stream) for every passage of the
// corpus as a .npy file, and the corpus's passage ids as its ids file.
func writeScaleVectors(ctx context.Context, corpus, path, idsPath string, n, dim int, stream uint64) (*vectorStage, error) {
	t0 := time.Now()
	got := 0
	err := atomicfile.Write(idsPath, 0o644, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		_, err := indexdir.ReadCorpus(ctx, corpus, &data.Report{}, func(p indexdir.Passage) error {
			got++
			_, err := bw.WriteString(p.ID + "\n")
			return err
		})
		if err != nil {
			return err
		}
		return bw.Flush()
	})
	if err != nil {
		return nil, err
	}
	if got != n {
		return nil, fmt.Errorf("corpus %s: %d passages, want %d", corpus, got, n)
	}
	g := vecgen.New(vecgen.Default(dim))
	err = atomicfile.Write(path, 0o644, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 4<<20)
		if _, err := bw.Write(dense.NPYHeader(n, dim)); err != nil {
			return err
		}
		const step = 8192
		buf := make([]byte, 0, 4*step*dim)
		for lo := 0; lo < n; lo += step {
			if err := ctx.Err(); err != nil {
				return err
			}
			buf = buf[:0]
			for _, x := range g.Rows(stream, lo, min(n, lo+step)) {
				buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(x))
			}
			if _, err := bw.Write(buf); err != nil {
				return err
			}
		}
		return bw.Flush()
	})
	if err != nil {
		return nil, err
	}
	return &vectorStage{Dim: dim, Bytes: dirSize(path), Seconds: time.Since(t0).Seconds()}, nil
}

// hnswAlone builds an HNSW index of a vector store with re2g dense index in
// a child, and times single-query searches of it.
func hnswAlone(ctx context.Context, cfg *scaleConfig, dir, name, store string, child func(string, ...string) (childRun, error), flags ...string) (*buildStage, error) {
	out := filepath.Join(dir, name+".faiss")
	args := append([]string{"--progress", "log", "dense", "index", "--out", out}, flags...)
	run, err := child(name, append(args, store)...)
	if err != nil {
		return nil, err
	}
	if !cfg.keep {
		defer os.Remove(out)
		defer os.Remove(out + ".json") // faiss.Save's description of it
	}
	s := &buildStage{childRun: run, Bytes: map[string]int64{"hnsw": dirSize(out)}, Phases: logPhases(filepath.Join(dir, name+".log"))}
	ix, err := faiss.Load(out)
	if err != nil {
		return nil, err
	}
	defer ix.Close()
	qs := vecgen.New(vecgen.Default(cfg.dim)).Vectors(2, cfg.queries)
	lat, err := measure(len(cfg.questions), func(i int) error {
		_, err := ix.Search(ctx, qs[i*cfg.dim:(i+1)*cfg.dim], 12, nil)
		return err
	})
	s.Search = &lat
	return s, err
}

// measure times op(i) for i < n, after op(0..9) as a warm-up.
func measure(n int, op func(i int) error) (latency, error) {
	for i := range min(n, 10) {
		if err := op(i); err != nil {
			return latency{}, err
		}
	}
	ms := make([]float64, n)
	for i := range n {
		t0 := time.Now()
		if err := op(i); err != nil {
			return latency{}, err
		}
		ms[i] = float64(time.Since(t0).Nanoseconds()) / 1e6
	}
	return summarize(ms), nil
}

// scaleQueries times BM25, HNSW, query encoding and the pipeline's
// retrieval (dense + BM25, merged) one question at a time.
func scaleQueries(ctx context.Context, cfg *scaleConfig, index string) (*queryStage, error) {
	p, err := pipeline.NewContext(ctx, pipeline.Config{Index: index, QueryEncoder: cfg.models.BaseQuery})
	if err != nil {
		return nil, err
	}
	defer p.Close()
	ix, pc := p.Index(), p.Config()
	qv := vecgen.New(vecgen.Default(cfg.dim)).Vectors(2, len(cfg.questions))
	s := &queryStage{}
	if s.BM25, err = measure(len(cfg.questions), func(i int) error {
		_, err := ix.SparseSearch(ctx, cfg.questions[i], pc.SparseK, pc.BM25)
		return err
	}); err != nil {
		return nil, err
	}
	if s.HNSW, err = measure(len(cfg.questions), func(i int) error {
		_, err := ix.DenseSearch(ctx, [][]float32{qv[i*cfg.dim : (i+1)*cfg.dim]}, pc.DenseK, 0)
		return err
	}); err != nil {
		return nil, err
	}
	if s.Encode, err = measure(len(cfg.questions), func(i int) error {
		_, err := p.EncodeQueries(ctx, cfg.questions[i:i+1])
		return err
	}); err != nil {
		return nil, err
	}
	if s.Retrieve, err = measure(len(cfg.questions), func(i int) error {
		_, err := p.Retrieve(ctx, cfg.questions[i])
		return err
	}); err != nil {
		return nil, err
	}
	return s, nil
}

// scaleServe starts re2g serve on the index with the query encoder, reads
// its memory once it is ready and after the questions (POST /v1/retrieve,
// one at a time), and stops it with SIGTERM.
func scaleServe(ctx context.Context, cfg *scaleConfig, dir, index string) (*serveStage, error) {
	t0 := time.Now()
	srv, err := startScaleServe(ctx, cfg, dir, "serve", index)
	if err != nil {
		return nil, err
	}
	defer srv.kill()
	s := &serveStage{ReadySeconds: time.Since(t0).Seconds()}
	pid := srv.cmd.Process.Pid
	if s.Loaded, err = procstat.Read(pid); err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: time.Minute}
	if s.HTTP, err = measure(len(cfg.questions), func(i int) error {
		_, err := srv.retrieve(ctx, client, cfg.questions[i])
		return err
	}); err != nil {
		return nil, err
	}
	if s.AfterQueries, err = procstat.Read(pid); err != nil {
		return nil, err
	}
	if err := srv.stop(); err != nil {
		return nil, err
	}
	return s, nil
}
