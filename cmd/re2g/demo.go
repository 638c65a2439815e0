package main

import (
	"runtime"

	"github.com/re2g/re2g/demo"
	"github.com/urfave/cli/v2"
)

func init() {
	commands = append(commands, &cli.Command{
		Name:  "demo",
		Usage: "the main job end to end on the Go toolchain's documentation: index, (train), answer, evaluate",
		Description: `Builds a corpus from the documentation of the Go toolchain's packages (present wherever re2g
builds), with questions made from it, held out by package; trains small models on the training questions
(or uses the model directories given); indexes with BM25 and DPR; answers held-out questions with
provenance; and prints the KILT metrics of the held-out set.`,
		Flags: append(deviceFlags(),
			&cli.StringFlag{Name: "work", Value: "out/demo", Usage: "working directory"},
			&cli.StringFlag{Name: "goroot", Value: runtime.GOROOT(), Usage: "Go installation whose documentation is the corpus"},
			&cli.StringFlag{Name: "query-encoder", Usage: "DPR question encoder directory"},
			&cli.StringFlag{Name: "ctx-encoder", Usage: "DPR context encoder directory"},
			&cli.StringFlag{Name: "reranker", Usage: "cross-encoder directory"},
			&cli.StringFlag{Name: "generator", Usage: "BART directory"},
			&cli.IntFlag{Name: "show", Value: 5, Usage: "held-out questions to print"},
			&cli.IntFlag{Name: "batch-size", Value: 32, Usage: "model batch size"},
			&cli.IntFlag{Name: "max-length", Usage: "tokens per input (0: the models' limits)"},
		),
		Action: func(c *cli.Context) error {
			opt, err := neuralOptions(c)
			if err != nil {
				return err
			}
			_, err = demo.Run(c.Context, demo.Options{
				Work: c.String("work"), GoRoot: c.String("goroot"), Neural: opt, Show: c.Int("show"), Train: demo.Train,
				Models: demo.Models{QueryEncoder: c.String("query-encoder"), CtxEncoder: c.String("ctx-encoder"),
					Reranker: c.String("reranker"), Generator: c.String("generator")},
			})
			return err
		},
	})
}
