package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/internal/atomicfile"
	"github.com/re2g/re2g/model"
	"github.com/re2g/re2g/model/bert"
	"github.com/re2g/re2g/neural"
	"github.com/re2g/re2g/tokenizer"
	"github.com/re2g/re2g/torch"
	"github.com/urfave/cli/v2"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

func init() {
	subcommand("bench", "benchmarks against a peer, measured in the same run", &cli.Command{
		Name: "batching",
		Usage: "passage encoding in length-sorted batches vs corpus order, on SQuADShifts, SciFact and ArguAna " +
			"(real tokenizer, a randomly initialised BERT of the given shape)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "data", Value: "../shared/data", Usage: "the shared data folder"},
			&cli.StringFlag{Name: "tokenizer-json", Value: "../shared/data/tokenizers/bert-base-uncased/tokenizer.json"},
			&cli.StringFlag{Name: "device", Value: "cpu", Usage: "cpu or cuda"},
			&cli.StringFlag{Name: "dtype", Value: "float32", Usage: "float32, bfloat16 or float16 (cuda)"},
			&cli.IntFlag{Name: "threads", Value: 0, Usage: "libtorch CPU threads (0: one per core)"},
			&cli.IntFlag{Name: "layers", Value: 4}, &cli.Int64Flag{Name: "hidden", Value: 256}, &cli.Int64Flag{Name: "heads", Value: 4},
			&cli.IntFlag{Name: "batch", Value: 32, Usage: "passages per forward pass"},
			&cli.IntFlag{Name: "max-length", Value: 256, Usage: "tokens per passage (DPR: 256)"},
			&cli.IntFlag{Name: "sample", Value: 1024, Usage: "passages timed per corpus (the first, in corpus order); 0: all"},
			&cli.IntFlag{Name: "rounds", Value: 2, Usage: "alternations of the two orders; the best counts"},
			&cli.StringFlag{Name: "python", Usage: "python with torch and transformers: also time DPRContextEncoder on the same weights and tokens, in corpus order"},
			&cli.StringFlag{Name: "script", Value: "scripts/bench_torch.py", Usage: "the Python side"},
			&cli.IntFlag{Name: "iters", Value: 1, Usage: "timed repetitions of the Python side (after one warm-up)"},
			&cli.StringFlag{Name: "plot", Usage: "also write a PNG of passages/s per corpus and order here"},
		},
		Action: benchBatching,
	})
}

func benchBatching(c *cli.Context) error {
	dev, dt, dir, err := benchSetup(c)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tok, err := tokenizer.Load(c.String("tokenizer-json"))
	if err != nil {
		return err
	}
	root := c.String("data")
	corpora := []struct {
		name string
		load func() ([]data.Passage, error)
	}{
		{"SQuADShifts new_wiki", func() ([]data.Passage, error) {
			sq, err := data.LoadSQuAD(filepath.Join(root, "squadshifts/new_wiki_v1.0.json"), nil)
			if err != nil {
				return nil, err
			}
			return sq.Passages, nil
		}},
		{"SciFact", func() ([]data.Passage, error) {
			sf, err := data.OpenSciFact(filepath.Join(root, "scifact/scifact_hf_csv.zip"))
			if err != nil {
				return nil, err
			}
			defer sf.Close()
			return sf.Corpus(nil)
		}},
		{"ArguAna", func() ([]data.Passage, error) {
			return data.LoadCorpus(filepath.Join(root, "arguana/corpus.jsonl.gz"), nil)
		}},
	}
	cfg, err := saveRandomDPR(c, dir, "dpr", int64(tok.VocabSize()), 3)
	if err != nil {
		return err
	}
	h := cfg.HiddenSize
	batch, maxLen := c.Int("batch"), c.Int("max-length")
	encoders := make([]*neural.Encoder, 2)
	for i, window := range []int{1, 0} {
		m, err := bert.LoadDPR(dir, model.Options{Device: dev, DType: dt})
		if err != nil {
			return err
		}
		encoders[i] = neural.NewEncoder(m, tok, neural.Options{Device: dev, DType: dt, BatchSize: batch, MaxLength: maxLen, SortWindow: window})
		defer encoders[i].Close()
	}
	fmt.Printf("DPR passage encoding, corpus order vs length-sorted windows of 32 batches: BERT %d layers, hidden %d, batch %d, "+
		"max length %d, %s %s, %d CPU threads, libtorch %s\n", cfg.NumHiddenLayers, h, batch, maxLen, dev, dt, torch.NumThreads(), torch.Version())
	peer := c.String("python") != ""
	fmt.Printf("%-22s %9s %11s %13s %13s %8s %11s %11s %8s", "corpus", "passages", "tokens", "padded:order", "padded:sorted",
		"ratio", "p/s order", "p/s sorted", "speed-up")
	if peer {
		fmt.Printf(" %11s %8s", "p/s HF", "vs HF")
	}
	fmt.Println()
	ctx := c.Context
	logSum, logPeer, n := 0.0, 0.0, 0
	impl := ""
	var names []string
	rates := map[string][]float64{}
	for _, cp := range corpora {
		ps, err := cp.load()
		if err != nil {
			return fmt.Errorf("bench batching: %s: %w", cp.name, err)
		}
		in := make([]neural.Passage, len(ps))
		tin := make([]tokenizer.Input, len(ps))
		for i, p := range ps {
			in[i] = neural.Passage{Title: p.Title, Text: p.Text}
			tin[i] = tokenizer.Input{A: p.Text}
			if p.Title != "" {
				tin[i] = tokenizer.Input{A: p.Title, B: p.Text, Pair: true}
			}
		}
		encs, err := tok.EncodeBatch(ctx, tin, tokenizer.Options{MaxLength: maxLen, Truncation: tokenizer.LongestFirst})
		if err != nil {
			return err
		}
		real := 0
		for _, e := range encs {
			real += len(e.IDs)
		}
		// padding over the whole corpus, windows as neural sorts them
		var plain, sorted int
		win := 32 * batch
		for lo := 0; lo < len(encs); lo += win {
			w := encs[lo:min(len(encs), lo+win)]
			plain += neural.PaddedTokens(w, batch, false)
			sorted += neural.PaddedTokens(w, batch, true)
		}
		sample, sampleEncs := in, encs
		if k := c.Int("sample"); k > 0 && k < len(in) {
			sample, sampleEncs = in[:k], encs[:k]
		}
		var best [2]time.Duration
		for r := 0; r < c.Int("rounds"); r++ {
			for i, e := range encoders {
				t, err := timeEncode(ctx, e, sample)
				if err != nil {
					return err
				}
				if best[i] == 0 || t < best[i] {
					best[i] = t
				}
			}
		}
		rate := func(t time.Duration) float64 { return float64(len(sample)) / t.Seconds() }
		up := best[0].Seconds() / best[1].Seconds()
		logSum += math.Log(up)
		n++
		names = append(names, cp.name)
		rates["corpus order"] = append(rates["corpus order"], rate(best[0]))
		rates["length-sorted"] = append(rates["length-sorted"], rate(best[1]))
		row := fmt.Sprintf("%-22s %9d %11d %13d %13d %8.3f %11.1f %11.1f %8.3f", cp.name, len(ps), real, plain, sorted,
			float64(plain)/float64(sorted), rate(best[0]), rate(best[1]), up)
		if peer {
			f := filepath.Join(dir, "tokens.jsonl")
			if err := writeTokens(f, sampleEncs); err != nil {
				return err
			}
			t, kv, err := runPython(c, "passages", dir, strconv.Itoa(batch), f, strconv.Itoa(c.Int("iters")),
				strconv.Itoa(torch.NumThreads()), c.String("device"), dt.String())
			if err != nil {
				return err
			}
			impl = kv["impl"]
			logPeer += math.Log(t.Seconds() / best[1].Seconds())
			row += fmt.Sprintf(" %11.1f %8.3f", rate(t), t.Seconds()/best[1].Seconds())
			rates["transformers, corpus order"] = append(rates["transformers, corpus order"], rate(t))
		}
		fmt.Println(row)
	}
	fmt.Printf("sorted/corpus-order encoding throughput ratio (geometric mean): %.3f\n", math.Exp(logSum/float64(n)))
	if p := c.String("plot"); p != "" {
		title := fmt.Sprintf("DPR passage encoding, BERT %d×%d, batch %d, %s %s", cfg.NumHiddenLayers, h, batch, dev, dt)
		if err := plotRates(p, title, names, rates); err != nil {
			return err
		}
	}
	if peer {
		fmt.Printf("peer: %s\n", impl)
		fmt.Printf("re2g sorted/transformers corpus-order throughput ratio (geometric mean): %.3f\n", math.Exp(logPeer/float64(n)))
	}
	return nil
}

// writeTokens writes one JSON line of ids and type ids per encoding, for
// the Python side to run the same inputs.
func writeTokens(path string, encs []tokenizer.Encoding) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, e := range encs {
		if err := enc.Encode(map[string][]int{"ids": e.IDs, "types": e.TypeIDs}); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func timeEncode(ctx context.Context, e *neural.Encoder, ps []neural.Passage) (time.Duration, error) {
	t0 := time.Now()
	_, err := e.EncodePassages(ctx, ps)
	return time.Since(t0), err
}

// plotRates draws passages/s per corpus, one bar per order, as a PNG.
func plotRates(path, title string, corpora []string, rates map[string][]float64) error {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = "passages/s"
	orders := []string{"corpus order", "length-sorted", "transformers, corpus order"}
	w := vg.Points(18)
	shown := 0
	for _, o := range orders {
		if len(rates[o]) > 0 {
			shown++
		}
	}
	i := 0
	for _, o := range orders {
		vs := rates[o]
		if len(vs) == 0 {
			continue
		}
		bars, err := plotter.NewBarChart(plotter.Values(vs), w)
		if err != nil {
			return fmt.Errorf("plot %s: %w", path, err)
		}
		bars.Color = plotutil.Color(i)
		bars.Offset = w * vg.Length(2*i-shown+1) / 2
		p.Add(bars)
		p.Legend.Add(o, bars)
		i++
	}
	p.Legend.Top = true
	p.NominalX(corpora...)
	top := 0.0
	for _, vs := range rates {
		for _, v := range vs {
			top = math.Max(top, v)
		}
	}
	p.Y.Min, p.Y.Max = 0, top*1.3 // room for the legend
	wt, err := p.WriterTo(8*vg.Inch, 4*vg.Inch, "png")
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return atomicfile.Write(path, 0o644, func(w io.Writer) error { _, err := wt.WriteTo(w); return err })
}
