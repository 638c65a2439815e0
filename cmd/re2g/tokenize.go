package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/re2g/re2g/internal/jsonl"
	"github.com/re2g/re2g/tokenizer"
	"github.com/urfave/cli/v2"
)

func init() {
	commands = append(commands, &cli.Command{
		Name:  "tokenize",
		Usage: "encode texts (or text pairs) to token ids with a Hugging Face tokenizer",
		Description: `IN is JSON lines {"id","text"[,"text_pair"]}; OUT gets {"id","ids","type_ids"} per line,
in input order, with the special tokens of the tokenizer's template. PATH is a tokenizer.json
or a folder holding tokenizer.json, vocab.txt, vocab.json+merges.txt or encoder.json+vocab.bpe.
Without --max-length nothing is truncated and nothing is padded.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "tokenizer", Required: true, Usage: "tokenizer.json or a folder with tokenizer files"},
			&cli.StringFlag{Name: "in", Required: true, Usage: "input JSON lines"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "output JSON lines (written atomically)"},
			&cli.IntFlag{Name: "max-length", Usage: "truncate to this many tokens, special tokens included (0: no truncation)"},
			&cli.StringFlag{Name: "truncation", Value: "longest_first", Usage: "longest_first or only_second"},
		},
		Action: func(c *cli.Context) error {
			return runTokenize(c.Context, c.String("tokenizer"), c.String("in"), c.String("out"),
				c.Int("max-length"), c.String("truncation"))
		},
	})
}

type tokenizeIn struct {
	ID       json.RawMessage `json:"id"`
	Text     *string         `json:"text"`
	TextPair *string         `json:"text_pair"`
}

func (r *tokenizeIn) Check() error {
	if r.Text == nil {
		return errors.New(`missing "text"`)
	}
	if len(r.ID) == 0 {
		return errors.New(`missing "id"`)
	}
	return nil
}

type tokenizeOut struct {
	ID      json.RawMessage `json:"id"`
	IDs     []int           `json:"ids"`
	TypeIDs []int           `json:"type_ids"`
}

func runTokenize(ctx context.Context, tokPath, inPath, outPath string, maxLen int, strategy string) error {
	if maxLen < 0 {
		return fmt.Errorf("--max-length %d: must be >= 0", maxLen)
	}
	opts := tokenizer.Options{MaxLength: maxLen}
	switch strategy {
	case "longest_first":
		opts.Truncation = tokenizer.LongestFirst
	case "only_second":
		opts.Truncation = tokenizer.OnlySecond
	default:
		return fmt.Errorf("--truncation %q: want longest_first or only_second", strategy)
	}
	tok, err := tokenizer.Load(tokPath)
	if err != nil {
		return err
	}
	start := time.Now()
	lines, err := jsonl.Map(ctx, inPath, outPath, 4096, "tokenize", func(ctx context.Context, in []tokenizeIn) ([]tokenizeOut, error) {
		inputs := make([]tokenizer.Input, len(in))
		for i, r := range in {
			inputs[i] = tokenizer.Input{A: *r.Text}
			if r.TextPair != nil {
				inputs[i].B, inputs[i].Pair = *r.TextPair, true
			}
		}
		encs, err := tok.EncodeBatch(ctx, inputs, opts)
		if err != nil {
			return nil, err
		}
		out := make([]tokenizeOut, len(in))
		for i, e := range encs {
			out[i] = tokenizeOut{ID: in[i].ID, IDs: e.IDs, TypeIDs: e.TypeIDs}
		}
		return out, nil
	})
	if err != nil {
		return err
	}
	slog.Info("tokenized", "lines", lines, "out", outPath, "seconds", time.Since(start).Seconds())
	return nil
}
