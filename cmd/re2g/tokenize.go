package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/re2g/re2g/internal/atomicfile"
	"github.com/re2g/re2g/tokenizer"
	"github.com/schollz/progressbar/v3"
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
	in, err := os.Open(inPath)
	if err != nil {
		return err
	}
	defer in.Close()
	var size int64 = -1
	if st, err := in.Stat(); err == nil {
		size = st.Size()
	}
	bar := progressbar.DefaultBytes(size, "tokenize")
	defer bar.Close()
	start := time.Now()
	lines := 0
	err = atomicfile.Write(outPath, 0o644, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		sc := bufio.NewScanner(io.TeeReader(in, bar))
		sc.Buffer(make([]byte, 1<<20), 256<<20)
		const batch = 4096
		var inputs []tokenizer.Input
		var ids []json.RawMessage
		flush := func() error {
			if len(inputs) == 0 {
				return nil
			}
			encs, err := tok.EncodeBatch(ctx, inputs, opts)
			if err != nil {
				return fmt.Errorf("%s: lines %d-%d: %w", inPath, lines-len(inputs)+1, lines, err)
			}
			for i, e := range encs {
				b, err := json.Marshal(tokenizeOut{ID: ids[i], IDs: e.IDs, TypeIDs: e.TypeIDs})
				if err != nil {
					return err
				}
				bw.Write(b)
				bw.WriteByte('\n')
			}
			inputs, ids = inputs[:0], ids[:0]
			return nil
		}
		for sc.Scan() {
			lines++
			line := bytes.TrimSpace(sc.Bytes())
			if len(line) == 0 {
				continue
			}
			var r tokenizeIn
			if err := json.Unmarshal(line, &r); err != nil {
				return fmt.Errorf("%s:%d: %w", inPath, lines, err)
			}
			if r.Text == nil {
				return fmt.Errorf("%s:%d: missing \"text\"", inPath, lines)
			}
			if len(r.ID) == 0 {
				return fmt.Errorf("%s:%d: missing \"id\"", inPath, lines)
			}
			in := tokenizer.Input{A: *r.Text}
			if r.TextPair != nil {
				in.B, in.Pair = *r.TextPair, true
			}
			inputs = append(inputs, in)
			ids = append(ids, append(json.RawMessage(nil), r.ID...))
			if len(inputs) == batch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := sc.Err(); err != nil {
			if errors.Is(err, bufio.ErrTooLong) {
				return fmt.Errorf("%s:%d: line longer than 256 MiB", inPath, lines+1)
			}
			return fmt.Errorf("%s: %w", inPath, err)
		}
		if err := flush(); err != nil {
			return err
		}
		return bw.Flush()
	})
	if err != nil {
		return err
	}
	slog.Info("tokenized", "lines", lines, "out", outPath, "seconds", time.Since(start).Seconds())
	return nil
}
