package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/re2g/re2g/torch"
	"github.com/re2g/re2g/torch/dist"
	"github.com/re2g/re2g/train"
	"github.com/urfave/cli/v2"
)

// trainFlags are shared by every `re2g train` subcommand; a flag given on
// the command line overrides the config file, which overrides the preset.
func trainFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "train", Usage: "KILT task file of training examples (jsonl[.gz])", Required: true},
		&cli.StringFlag{Name: "dev", Usage: "KILT task file of dev examples (jsonl[.gz])", Required: true},
		&cli.StringFlag{Name: "index", Usage: "index directory (re2g index) of the passage corpus", Required: true},
		&cli.StringFlag{Name: "query-encoder", Usage: "question encoder to start from: DPR, BertModel or RAG directory"},
		&cli.StringFlag{Name: "ctx-encoder", Usage: "context encoder to start from (dpr): DPR or BertModel directory"},
		&cli.StringFlag{Name: "reranker", Usage: "cross-encoder to start from: BertForSequenceClassification directory (1 or 2 labels)"},
		&cli.StringFlag{Name: "generator", Usage: "generator to start from: BART or RAG directory"},
		&cli.StringFlag{Name: "init", Usage: "checkpoint (default: every model from its directory) or scratch (models without a directory are made from scratch)"},
		&cli.StringFlag{Name: "out", Usage: "output folder (models, checkpoints, plots, run.json)"},
		&cli.StringFlag{Name: "config", Usage: "JSON config file (fields of train.Config) over the preset"},
		&cli.StringFlag{Name: "preset", Value: "finetune", Usage: "finetune (the paper's settings), small (from scratch on 2 CPU cores) or large (from scratch on an H200)"},
		&cli.StringFlag{Name: "tokenizer", Usage: "WordPiece tokenizer of models made from scratch"},
		&cli.StringFlag{Name: "device", Usage: "cpu, cuda or cuda:N"},
		&cli.StringFlag{Name: "dtype", Usage: "float32, or bfloat16 (autocast over float32 master weights)"},
		&cli.IntFlag{Name: "threads", Usage: "libtorch CPU threads (0: one per core)"},
		&cli.Uint64Flag{Name: "seed", Usage: "random seed"},
		&cli.IntFlag{Name: "max-train", Usage: "cap on training examples"},
		&cli.IntFlag{Name: "max-dev", Usage: "dev examples evaluated during training"},
		&cli.IntFlag{Name: "max-steps", Usage: "updates per phase (overrides the epochs of every phase)"},
		&cli.BoolFlag{Name: "resume", Usage: "continue from each phase's checkpoint"},
		&cli.BoolFlag{Name: "quiet", Usage: "no progress bar"},
		&cli.StringFlag{Name: "query-mode", Usage: "e2e: the question encoder's part: combined, frozen or distill"},
		&cli.Float64Flag{Name: "distill-weight", Usage: "e2e: weight of KL(reranker ‖ DPR) (default 0.9)"},
		&cli.Float64Flag{Name: "temperature", Usage: "e2e: distillation temperature (default 10)"},
		&cli.StringFlag{Name: "objective", Usage: "generator: sequence (RAG-Sequence, default) or token (RAG-Token)"},
		&cli.DurationFlag{Name: "dist-timeout", Value: 5 * time.Minute, Usage: "under a launcher (torchrun, srun): how long a rank waits for the others at the rendezvous and in each collective before it exits with an error (a rank that died)"},
		&cli.StringFlag{Name: "trace", Hidden: true, Usage: "write one JSON line per update (examples, loss, gradient norm, parameter hash) to DIR/trace-rank<R>.jsonl"},
	}
}

func trainConfig(c *cli.Context) (*train.Config, error) {
	cfg, err := train.Preset(c.String("preset"))
	if err != nil {
		return nil, fmt.Errorf("--preset: %w", err)
	}
	if p := c.String("config"); p != "" {
		if cfg, err = train.LoadConfig(p, cfg); err != nil {
			return nil, err
		}
	}
	str := func(name string, dst *string) {
		if c.IsSet(name) {
			*dst = c.String(name)
		}
	}
	str("init", &cfg.Init)
	str("tokenizer", &cfg.Tokenizer)
	str("out", &cfg.Out)
	str("device", &cfg.Device)
	str("dtype", &cfg.DType)
	str("query-mode", &cfg.E2E.QueryEncoder)
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
	if c.IsSet("max-steps") {
		n := c.Int("max-steps") // at least 1 (bounds)
		for _, o := range []*train.Opt{&cfg.DPR.Stage1, &cfg.Generator.Opt, &cfg.Reranker.Opt, &cfg.E2E.Opt} {
			o.MaxSteps = n
		}
		if cfg.DPR.Stage2.Epochs > 0 || cfg.DPR.Stage2.MaxSteps > 0 {
			cfg.DPR.Stage2.MaxSteps = n
		}
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
	if cfg.Out == "" {
		return nil, fmt.Errorf("--out: no output folder")
	}
	return cfg, cfg.Check()
}

// printJSON writes v as the last line of stdout.
func printJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Println(string(b))
	return err
}

func printReports(reps ...train.PhaseReport) {
	for _, p := range reps {
		fmt.Printf("%-14s %6d steps %8.1f s %8.1f examples/s  loss %.4f → %.4f  %v\n", p.Phase, p.Steps, p.Seconds, p.Throughput, p.FirstLoss, p.LastLoss, p.Metrics)
	}
}

// trainGroup forms the data-parallel group the launcher's environment
// describes (nil alone): the backend follows the device (Gloo on the CPU,
// NCCL on CUDA), and --device cuda is this rank's GPU, cuda:LOCAL_RANK (of
// the GPUs the process sees: LOCAL_RANK modulo their number).
// Ranks other than 0 then log at warn and above; every record names the
// rank.
func trainGroup(c *cli.Context, cfg *train.Config) (*dist.Group, error) {
	env, err := dist.LookupEnv()
	if err != nil || env.Alone() {
		return nil, err
	}
	dev, err := torch.ParseDevice(cfg.Device)
	if err != nil {
		return nil, fmt.Errorf("--device: %w", err)
	}
	if cfg.Device == "cuda" {
		dev.Index = -1 // this rank's GPU: cuda:LOCAL_RANK
		if n := torch.CUDADeviceCount(); n > 0 && env.LocalRank >= n {
			// one GPU visible to each task (srun --gpus-per-task, a pod a GPU)
			dev.Index = env.LocalRank % n
		}
	}
	g, err := dist.FromEnv(c.Context, dist.Options{Device: dev, Timeout: c.Duration("dist-timeout")})
	if err != nil {
		return nil, err
	}
	if dev.Type == torch.CUDA {
		cfg.Device = g.Device().String()
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		lvl = slog.LevelInfo
	}
	if g.Rank() != 0 {
		lvl = max(lvl, slog.LevelWarn)
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})).With("rank", g.Rank()))
	slog.Info("data-parallel training", "world", g.Size(), "backend", g.Backend(), "device", cfg.Device, "launcher", g.Launcher())
	return g, nil
}

// traceTo writes the loop's records as JSON lines to dir/trace-rank<R>.jsonl.
func traceTo(dir string, rank int) (func(train.TraceRecord), func() error, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("--trace: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("trace-rank%d.jsonl", rank)))
	if err != nil {
		return nil, nil, fmt.Errorf("--trace: %w", err)
	}
	enc := json.NewEncoder(f)
	return func(r train.TraceRecord) { enc.Encode(r) }, f.Close, nil
}

func trainAction(phase string) cli.ActionFunc {
	return func(c *cli.Context) error {
		cfg, err := trainConfig(c)
		if err != nil {
			return err
		}
		g, err := trainGroup(c, cfg)
		if err != nil {
			return err
		}
		defer g.Close()
		main := g.IsMain()
		ds, err := train.OpenDataset(c.Context, c.String("train"), c.String("dev"), c.String("index"))
		if err != nil {
			return err
		}
		for _, s := range ds.Stats {
			if main {
				fmt.Fprintf(os.Stderr, "%s: %d examples, %d used, %d without a positive passage, %d without an answer, %d malformed\n",
					s.File, s.Read, s.Used, s.NoPositive, s.NoAnswer, s.Malformed)
			}
		}
		ro := train.RunOptions{Resume: c.Bool("resume"), Group: g}
		if !cfg.Quiet && main {
			ro.Progress = os.Stderr
		}
		if dir := c.String("trace"); dir != "" {
			trace, closeTrace, err := traceTo(dir, g.Rank())
			if err != nil {
				return err
			}
			defer closeTrace()
			ro.Trace = trace
		}
		// Every rank returns the same outputs and reports; rank 0 prints them.
		printReports := printReports
		printJSON := printJSON
		if !main {
			printReports = func(...train.PhaseReport) {}
			printJSON = func(any) error { return nil }
		}
		ctx, ix := c.Context, c.String("index")
		switch phase {
		case "dpr":
			out, reps, err := train.TrainDPR(ctx, cfg, ds, train.DPRInput{QueryEncoder: c.String("query-encoder"), CtxEncoder: c.String("ctx-encoder"), Index: ix}, cfg.Out, ro)
			if err != nil {
				return err
			}
			printReports(reps...)
			return printJSON(map[string]any{"outputs": out, "reports": reps})
		case "generator":
			out, rep, err := train.TrainGenerator(ctx, cfg, ds, train.GeneratorInput{QueryEncoder: c.String("query-encoder"), Generator: c.String("generator"), Index: ix}, cfg.Out, ro)
			if err != nil {
				return err
			}
			printReports(rep)
			return printJSON(map[string]any{"outputs": out, "reports": []train.PhaseReport{rep}})
		case "reranker":
			out, rep, err := train.TrainReranker(ctx, cfg, ds, train.RerankerInput{QueryEncoder: c.String("query-encoder"), Reranker: c.String("reranker"), Index: ix}, cfg.Out, ro)
			if err != nil {
				return err
			}
			printReports(rep)
			return printJSON(map[string]any{"outputs": out, "reports": []train.PhaseReport{rep}})
		case "e2e":
			out, rep, err := train.TrainE2E(ctx, cfg, ds, train.E2EInput{QueryEncoder: c.String("query-encoder"), Reranker: c.String("reranker"), Generator: c.String("generator"), Index: ix}, cfg.Out, ro)
			if err != nil {
				return err
			}
			printReports(rep)
			return printJSON(map[string]any{"outputs": out, "reports": []train.PhaseReport{rep}})
		}
		m, err := train.TrainAll(ctx, cfg, ds, train.Models{QueryEncoder: c.String("query-encoder"), CtxEncoder: c.String("ctx-encoder"),
			Reranker: c.String("reranker"), Generator: c.String("generator"), Index: ix}, ro)
		if err != nil {
			return err
		}
		for _, p := range m.Phases {
			printReports(p.Reports...)
		}
		if main {
			fmt.Fprintf(os.Stderr, "run manifest: %s/run.json\n", cfg.Out)
		}
		return printJSON(map[string]any{"final": m.Final})
	}
}

func init() {
	sub := func(name, usage string) *cli.Command {
		return &cli.Command{Name: name, Usage: usage, Flags: trainFlags(), Action: trainAction(name)}
	}
	commands = append(commands, &cli.Command{
		Name:  "train",
		Usage: "fine-tune (or train from scratch) the Re2G models on KILT task files over an index (train/README.md)",
		Subcommands: []*cli.Command{
			sub("dpr", "phase 1: DPR from --query-encoder/--ctx-encoder: stage 1 on BM25 hard negatives, stage 2 on HNSW negatives; writes the re-encoded index"),
			sub("generator", "phase 2: RAG training of --generator and --query-encoder over --index's vectors"),
			sub("reranker", "phase 3: --reranker on the merged DPR + BM25 candidates of --query-encoder over --index"),
			sub("e2e", "phase 4: --reranker and --generator (and --query-encoder) end to end, --query-mode combined|frozen|distill"),
			sub("all", "the four phases in the paper's order; writes out/run.json"),
		},
	})
}
