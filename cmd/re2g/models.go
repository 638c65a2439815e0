package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/re2g/re2g/internal/jsonl"
	"github.com/re2g/re2g/neural"
	"github.com/re2g/re2g/torch"
	"github.com/urfave/cli/v2"
)

// deviceFlags are the flags every model command takes.
func deviceFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "device", Value: "cpu", Usage: "cpu, cuda or cuda:N"},
		&cli.StringFlag{Name: "dtype", Value: "float32", Usage: "float32, or bfloat16/float16 on cuda"},
		&cli.IntFlag{Name: "threads", Usage: "libtorch CPU threads (0: one per core)"},
		&cli.StringFlag{Name: "tokenizer", Usage: "tokenizer path when the model directory has none"},
	}
}

func neuralOptions(c *cli.Context) (neural.Options, error) {
	if err := torch.SetNumThreads(c.Int("threads")); err != nil {
		return neural.Options{}, fmt.Errorf("--threads: %w", err)
	}
	dev, err := torch.ParseDevice(c.String("device"))
	if err == nil {
		err = torch.CheckDevice(dev)
	}
	if err != nil {
		return neural.Options{}, fmt.Errorf("--device: %w", err)
	}
	dt, err := torch.ParseDType(c.String("dtype"))
	if err != nil {
		return neural.Options{}, fmt.Errorf("--dtype: %w", err)
	}
	if dev.Type == torch.CPU && dt != torch.Float32 {
		return neural.Options{}, fmt.Errorf("--dtype %s needs --device cuda (CPU runs float32)", dt)
	}
	return neural.Options{Device: dev, DType: dt, Tokenizer: c.String("tokenizer"), BatchSize: c.Int("batch-size"), MaxLength: c.Int("max-length")}, nil
}

type encodeIn struct {
	ID    json.RawMessage `json:"id"`
	Title *string         `json:"title"`
	Text  *string         `json:"text"`
}

func (r *encodeIn) Check() error {
	if len(r.ID) == 0 {
		return errors.New(`missing "id"`)
	}
	if r.Text == nil {
		return errors.New(`missing "text"`)
	}
	return nil
}

type encodeOut struct {
	ID     json.RawMessage `json:"id"`
	Vector []float32       `json:"vector"`
}

type rerankIn struct {
	ID      json.RawMessage `json:"id"`
	Query   *string         `json:"query"`
	Passage *string         `json:"passage"`
}

func (r *rerankIn) Check() error {
	if len(r.ID) == 0 || r.Query == nil || r.Passage == nil {
		return errors.New(`want {"id","query","passage"}`)
	}
	return nil
}

type rerankOut struct {
	ID    json.RawMessage `json:"id"`
	Score float64         `json:"score"`
}

type generateIn struct {
	ID     json.RawMessage `json:"id"`
	Source *string         `json:"source"`
}

func (r *generateIn) Check() error {
	if len(r.ID) == 0 || r.Source == nil {
		return errors.New(`want {"id","source"}`)
	}
	return nil
}

type generateOut struct {
	ID      json.RawMessage `json:"id"`
	Outputs []neural.Output `json:"outputs"`
}

func done(what string, n int, start time.Time) {
	slog.Info(what, "lines", n, "seconds", time.Since(start).Round(time.Millisecond).Seconds(),
		"per_second", float64(n)/time.Since(start).Seconds())
}

func init() {
	io := []cli.Flag{
		&cli.StringFlag{Name: "model", Required: true, Usage: "Hugging Face model directory"},
		&cli.StringFlag{Name: "in", Required: true, Usage: "input JSON lines"},
		&cli.StringFlag{Name: "out", Required: true, Usage: "output JSON lines (written atomically)"},
	}
	commands = append(commands,
		&cli.Command{
			Name:  "encode",
			Usage: "embed questions or passages with a DPR (or BERT) encoder",
			Description: `IN lines are {"id","text"} (questions) or {"id","title","text"} (passages, encoded as the
pair title/text as Hugging Face's DPR context tokenizer does); OUT lines {"id","vector":[...]} in input order.
The kind of encoder comes from the checkpoint (DPRQuestionEncoder, DPRContextEncoder, BertModel: [CLS]).`,
			Flags: append(append(io, deviceFlags()...),
				&cli.IntFlag{Name: "max-length", Usage: "tokens per input (0: the model's limit, at most 512)"},
				&cli.IntFlag{Name: "batch-size", Value: 32, Usage: "inputs per forward pass"}),
			Action: func(c *cli.Context) error {
				opt, err := neuralOptions(c)
				if err != nil {
					return err
				}
				enc, err := neural.LoadEncoder(c.String("model"), opt)
				if err != nil {
					return err
				}
				defer enc.Close()
				start := time.Now()
				n, err := jsonl.Map(c.Context, c.String("in"), c.String("out"), 16*opt.BatchSize, "encode",
					func(ctx context.Context, in []encodeIn) ([]encodeOut, error) {
						ps := make([]neural.Passage, len(in))
						for i, r := range in {
							ps[i].Text = *r.Text
							if r.Title != nil {
								ps[i].Title = *r.Title
							}
						}
						vs, err := enc.EncodePassages(ctx, ps)
						if err != nil {
							return nil, err
						}
						out := make([]encodeOut, len(in))
						for i := range in {
							out[i] = encodeOut{ID: in[i].ID, Vector: vs[i]}
						}
						return out, nil
					})
				if err == nil {
					done("encoded", n, start)
				}
				return err
			},
		},
		&cli.Command{
			Name:  "rerank",
			Usage: "score (query, passage) pairs with a cross-encoder",
			Description: `IN lines are {"id","query","passage"}; OUT lines {"id","score"}, the relevance logit.
Only the passage is truncated to --max-length.`,
			Flags: append(append(io, deviceFlags()...),
				&cli.IntFlag{Name: "max-length", Value: 128, Usage: "tokens per pair"},
				&cli.IntFlag{Name: "batch-size", Value: 32, Usage: "pairs per forward pass"}),
			Action: func(c *cli.Context) error {
				opt, err := neuralOptions(c)
				if err != nil {
					return err
				}
				r, err := neural.LoadReranker(c.String("model"), opt)
				if err != nil {
					return err
				}
				defer r.Close()
				start := time.Now()
				n, err := jsonl.Map(c.Context, c.String("in"), c.String("out"), 16*opt.BatchSize, "rerank",
					func(ctx context.Context, in []rerankIn) ([]rerankOut, error) {
						pairs := make([]neural.Pair, len(in))
						for i, x := range in {
							pairs[i] = neural.Pair{Query: *x.Query, Passage: *x.Passage}
						}
						sc, err := r.Score(ctx, pairs)
						if err != nil {
							return nil, err
						}
						out := make([]rerankOut, len(in))
						for i := range in {
							out[i] = rerankOut{ID: in[i].ID, Score: sc[i]}
						}
						return out, nil
					})
				if err == nil {
					done("reranked", n, start)
				}
				return err
			},
		},
		&cli.Command{
			Name:  "generate",
			Usage: "generate with BART (greedy or beam search, as the model's generation_config.json says)",
			Description: `IN lines are {"id","source"}; OUT lines {"id","outputs":[{"text","ids","score"}]} best first,
score being transformers' sequence score (beam search) or the sum of token log-probabilities (greedy).`,
			Flags: append(append(io, deviceFlags()...),
				&cli.IntFlag{Name: "num-beams", Usage: "beams (0: generation_config.json's)"},
				&cli.IntFlag{Name: "num-return-sequences", Usage: "sequences per input (0: 1, or generation_config.json's)"},
				&cli.IntFlag{Name: "max-new-tokens", Usage: "tokens to generate at most (0: generation_config.json's max_length)"},
				&cli.IntFlag{Name: "max-length", Usage: "source tokens (0: the model's limit)"},
				&cli.IntFlag{Name: "batch-size", Value: 8, Usage: "sources per generate call"}),
			Action: func(c *cli.Context) error {
				opt, err := neuralOptions(c)
				if err != nil {
					return err
				}
				g, err := neural.LoadGenerator(c.String("model"), opt)
				if err != nil {
					return err
				}
				defer g.Close()
				cfg := *g.Config
				if v := c.Int("num-beams"); v > 0 {
					cfg.NumBeams = v
				}
				if v := c.Int("num-return-sequences"); v > 0 {
					cfg.NumReturnSequences = v
				}
				if v := c.Int("max-new-tokens"); v > 0 {
					cfg.MaxNewTokens = v
				}
				if err := cfg.Check(); err != nil {
					return err
				}
				start := time.Now()
				n, err := jsonl.Map(c.Context, c.String("in"), c.String("out"), 4*opt.BatchSize, "generate",
					func(ctx context.Context, in []generateIn) ([]generateOut, error) {
						src := make([]string, len(in))
						for i, x := range in {
							src[i] = *x.Source
						}
						gens, err := g.Generate(ctx, src, &cfg)
						if err != nil {
							return nil, err
						}
						out := make([]generateOut, len(in))
						for i := range in {
							out[i] = generateOut{ID: in[i].ID, Outputs: gens[i]}
						}
						return out, nil
					})
				if err == nil {
					done("generated", n, start)
				}
				return err
			},
		},
	)
}
