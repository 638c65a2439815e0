package main

import (
	"fmt"
	"os"

	"github.com/re2g/re2g/train"
	"github.com/urfave/cli/v2"
)

// trainFlags are shared by every `re2g train` subcommand; a flag given on
// the command line overrides the config file.
func trainFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Usage: "JSON config file (fields of train.Config) over the chosen preset"},
		&cli.StringFlag{Name: "preset", Value: "small", Usage: "small (2 CPU cores, ~30 min for all phases) or large (H200)"},
		&cli.StringFlag{Name: "data", Usage: "SQuAD v1.1 JSON (default ../shared/data/squadshifts/new_wiki_v1.0.json)"},
		&cli.StringFlag{Name: "tokenizer", Usage: "BERT WordPiece tokenizer.json or its folder"},
		&cli.StringFlag{Name: "out", Usage: "output folder (models, checkpoints, plots)"},
		&cli.StringFlag{Name: "device", Usage: "cpu, cuda or cuda:N"},
		&cli.IntFlag{Name: "threads", Usage: "libtorch CPU threads (0: one per core)"},
		&cli.Uint64Flag{Name: "seed", Usage: "random seed"},
		&cli.IntFlag{Name: "max-train", Usage: "cap on training questions"},
		&cli.IntFlag{Name: "max-dev", Usage: "dev questions evaluated during training"},
		&cli.BoolFlag{Name: "resume", Usage: "continue from the phase's checkpoint"},
		&cli.BoolFlag{Name: "quiet", Usage: "no progress bar"},
		&cli.StringFlag{Name: "query-encoder", Usage: "e2e: combined, frozen or distill"},
		&cli.Float64Flag{Name: "distill-weight", Usage: "e2e: weight of KL(reranker ‖ DPR) (default 0.9)"},
		&cli.Float64Flag{Name: "temperature", Usage: "e2e: distillation temperature (default 10)"},
		&cli.StringFlag{Name: "objective", Usage: "generator: sequence (RAG-Sequence, default) or token (RAG-Token)"},
	}
}

func trainConfig(c *cli.Context) (*train.Config, error) {
	var cfg *train.Config
	switch c.String("preset") {
	case "small":
		cfg = train.SmallConfig()
	case "large":
		cfg = train.LargeConfig()
	default:
		return nil, fmt.Errorf("--preset %q: want small or large", c.String("preset"))
	}
	if p := c.String("config"); p != "" {
		var err error
		if cfg, err = train.LoadConfig(p, cfg); err != nil {
			return nil, err
		}
	}
	str := func(name string, dst *string) {
		if c.IsSet(name) {
			*dst = c.String(name)
		}
	}
	str("data", &cfg.Data)
	str("tokenizer", &cfg.Tokenizer)
	str("out", &cfg.Out)
	str("device", &cfg.Device)
	str("query-encoder", &cfg.E2E.QueryEncoder)
	str("objective", &cfg.Generator.Objective)
	if c.IsSet("threads") {
		cfg.Threads = c.Int("threads")
	}
	if c.IsSet("seed") {
		cfg.Seed = c.Uint64("seed")
	}
	if c.IsSet("max-train") {
		cfg.MaxTrain = c.Int("max-train")
	}
	if c.IsSet("max-dev") {
		cfg.MaxDev = c.Int("max-dev")
	}
	if c.IsSet("quiet") {
		cfg.Quiet = c.Bool("quiet")
	}
	if c.IsSet("distill-weight") {
		cfg.E2E.DistillWeight = c.Float64("distill-weight")
	}
	if c.IsSet("temperature") {
		cfg.E2E.Temperature = c.Float64("temperature")
	}
	return cfg, cfg.Check()
}

func trainAction(phases ...string) cli.ActionFunc {
	return func(c *cli.Context) error {
		cfg, err := trainConfig(c)
		if err != nil {
			return err
		}
		d, err := train.LoadData(cfg)
		if err != nil {
			return err
		}
		ro := train.RunOptions{Resume: c.Bool("resume")}
		if !cfg.Quiet {
			ro.Progress = os.Stderr
		}
		var rep *train.Report
		switch {
		case len(phases) == 0:
			tab, err := train.Evaluate(c.Context, cfg, d)
			if err != nil {
				return err
			}
			fmt.Print(train.FormatTable(tab))
			return nil
		case len(phases) == len(train.Phases):
			rep, err = train.RunAll(c.Context, cfg, d, ro)
		default:
			rep, err = train.RunPhases(c.Context, cfg, d, phases, ro)
		}
		if err != nil {
			return err
		}
		for _, p := range rep.Phases {
			fmt.Printf("%-14s %6d steps %8.1f s %8.1f examples/s  %v\n", p.Phase, p.Steps, p.Seconds, p.Throughput, p.Metrics)
		}
		if rep.Table != nil {
			fmt.Print(train.FormatTable(rep.Table))
		}
		return nil
	}
}

func init() {
	sub := func(name, usage string, phases ...string) *cli.Command {
		return &cli.Command{Name: name, Usage: usage, Flags: trainFlags(), Action: trainAction(phases...)}
	}
	commands = append(commands, &cli.Command{
		Name:  "train",
		Usage: "train the Re2G models from scratch (four phases; see train/README.md)",
		Subcommands: []*cli.Command{
			sub("dpr", "phase 1: DPR stage 1 (BM25 hard negatives) and stage 2 (HNSW hard negatives)", "dpr"),
			sub("generator", "phase 2: RAG training of the generator and the question encoder", "generator"),
			sub("reranker", "phase 3: the cross-encoder on merged DPR + BM25 candidates", "reranker"),
			sub("e2e", "phase 4: end-to-end with --query-encoder combined|frozen|distill", "e2e"),
			sub("all", "all four phases, then the held-out table", train.Phases...),
			sub("eval", "the held-out table of the models under --out"),
		},
	})
}
