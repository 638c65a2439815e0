package train

import (
	"encoding/json"
	"fmt"
	"os"
)

// Shape is the size of a transformer trained from scratch.
type Shape struct {
	Hidden int64 `json:"hidden"`
	Layers int   `json:"layers"`
	Heads  int64 `json:"heads"`
	FFN    int64 `json:"ffn"`
	MaxPos int64 `json:"max_positions"`
}

// Opt are one phase's optimisation settings.
type Opt struct {
	Epochs          float64 `json:"epochs"`
	MaxSteps        int     `json:"max_steps"`  // > 0: stop after this many updates (overrides epochs)
	BatchSize       int     `json:"batch_size"` // examples per micro-batch
	Accum           int     `json:"grad_accum"` // micro-batches per update
	LR              float64 `json:"lr"`
	Warmup          float64 `json:"warmup"` // fraction of the updates spent warming up
	WeightDecay     float64 `json:"weight_decay"`
	ClipNorm        float64 `json:"clip_norm"`        // <= 0: no clipping
	CheckpointEvery int     `json:"checkpoint_every"` // updates between checkpoints (0: only at the end)
	EvalEvery       int     `json:"eval_every"`       // updates between dev evaluations (0: only at the end)
	Patience        int     `json:"patience"`         // evaluations without improvement before stopping (0: never)
}

// Config is a whole training run: data, shapes and the four phases.
type Config struct {
	Data        string `json:"data"`         // SQuAD v1.1 JSON (SQuADShifts New Wiki)
	Tokenizer   string `json:"tokenizer"`    // bert-base-uncased tokenizer.json (or its folder)
	Out         string `json:"out"`          // output folder
	Device      string `json:"device"`       // cpu, cuda, cuda:N
	Threads     int    `json:"threads"`      // libtorch threads (0: one per core)
	Seed        uint64 `json:"seed"`         // every random choice derives from it
	DevArticles int    `json:"dev_articles"` // articles held out for dev
	MaxTrain    int    `json:"max_train"`    // cap on training questions (0: all)
	MaxDev      int    `json:"max_dev"`      // dev questions evaluated during training (0: all)
	MaxDevFinal int    `json:"max_dev_final"`
	Quiet       bool   `json:"quiet"` // no progress bar
	// FreezeWordEmbeddings keeps the BERT encoders' (DPR, reranker) word,
	// position and token-type embeddings at their initialisation (see
	// env.trainable and env.zeroCLS).
	FreezeWordEmbeddings bool `json:"freeze_embeddings"`
	// Dropout is every model's dropout probability.
	Dropout float64 `json:"dropout"`

	BERT Shape `json:"bert"`
	BART Shape `json:"bart"`

	QueryLen   int `json:"query_len"`   // tokens of a question
	PassageLen int `json:"passage_len"` // tokens of a (title, text) passage
	PairLen    int `json:"pair_len"`    // tokens of a reranker (question, passage) pair
	SourceLen  int `json:"source_len"`  // tokens of a generator source
	AnswerLen  int `json:"answer_len"`  // tokens of an answer (labels)

	DPR       DPRConfig       `json:"dpr"`
	Generator GeneratorConfig `json:"generator"`
	Reranker  RerankerConfig  `json:"reranker"`
	E2E       E2EConfig       `json:"e2e"`
}

// DPRConfig is phase 1: two stages of DPR.
type DPRConfig struct {
	Stage1 Opt `json:"stage1"`
	Stage2 Opt `json:"stage2"`
	// NegativeDepth is how deep in BM25's (stage 1) or HNSW's (stage 2)
	// ranking the hard negative is drawn from (the first non-positive
	// within it, as DPR).
	NegativeDepth int `json:"negative_depth"`
	// Shared trains one BERT as both question and context encoder (a
	// Siamese DPR; saved as the two Hugging Face DPR directories, equal
	// weights), which a from-scratch model needs: with two randomly
	// initialised encoders the same word starts with unrelated embeddings
	// on each side and the in-batch loss collapses to uniform.
	Shared bool `json:"shared_encoder"`
}

// GeneratorConfig is phase 2: RAG training of generator and query encoder.
type GeneratorConfig struct {
	Opt
	K         int    `json:"k"`         // passages marginalised per question
	Objective string `json:"objective"` // "sequence" (default) or "token"
	// QueryLRScale scales the question encoder's learning rate (0 means
	// 1). A from-scratch generator gives the retrieval scores noisy
	// gradients at first, which at the full rate undo DPR's training.
	QueryLRScale float64 `json:"query_lr_scale"`
}

// RerankerConfig is phase 3.
type RerankerConfig struct {
	Opt
	DenseK  int `json:"dense_k"`  // DPR hits per query
	SparseK int `json:"sparse_k"` // BM25 hits per query
}

// E2EConfig is phase 4.
type E2EConfig struct {
	Opt
	K             int     `json:"k"`             // reranked passages marginalised per question
	QueryEncoder  string  `json:"query_encoder"` // combined, frozen or distill
	DistillWeight float64 `json:"distill_weight"`
	Temperature   float64 `json:"temperature"`
}

// Query-encoder options of the end-to-end phase.
const (
	Combined = "combined"
	Frozen   = "frozen"
	Distill  = "distill"
)

// SmallConfig trains all four phases from scratch on 2 CPU cores in about
// half an hour: a 2-layer, 128-wide BERT and a 2+2-layer BART sharing the
// bert-base-uncased WordPiece vocabulary.
func SmallConfig() *Config {
	o := func(epochs float64, batch int, lr float64) Opt {
		return Opt{Epochs: epochs, BatchSize: batch, Accum: 1, LR: lr, Warmup: 0.05, WeightDecay: 0.01, ClipNorm: 1,
			CheckpointEvery: 200, EvalEvery: 0, Patience: 3}
	}
	every := func(o Opt, n int) Opt { o.EvalEvery = n; return o }
	return &Config{
		Data: "../shared/data/squadshifts/new_wiki_v1.0.json", Tokenizer: "../shared/data/tokenizers/bert-base-uncased",
		Out: "build/train", Device: "cpu", Seed: 1, FreezeWordEmbeddings: true, Dropout: 0, DevArticles: 8, MaxDev: 300, MaxDevFinal: 600,
		BERT:     Shape{Hidden: 128, Layers: 2, Heads: 2, FFN: 512, MaxPos: 256},
		BART:     Shape{Hidden: 128, Layers: 2, Heads: 2, FFN: 512, MaxPos: 256},
		QueryLen: 32, PassageLen: 128, PairLen: 160, SourceLen: 128, AnswerLen: 16,
		DPR:       DPRConfig{Stage1: every(o(2, 32, 5e-4), 100), Stage2: every(o(1, 32, 2e-4), 100), NegativeDepth: 10, Shared: true},
		Generator: GeneratorConfig{Opt: o(2.5, 8, 1e-3), K: 2, Objective: "sequence", QueryLRScale: 0.1},
		Reranker:  RerankerConfig{Opt: every(o(0.3, 4, 5e-4), 200), DenseK: 4, SparseK: 4},
		E2E:       E2EConfig{Opt: o(0.15, 4, 1e-4), K: 3, QueryEncoder: Distill, DistillWeight: 0.9, Temperature: 10},
	}
}

// LargeConfig is a BERT-base / BART-base-sized run for one H200 (not run on CPU).
func LargeConfig() *Config {
	c := SmallConfig()
	c.Device = "cuda"
	c.Out = "build/train-large"
	c.BERT = Shape{Hidden: 768, Layers: 12, Heads: 12, FFN: 3072, MaxPos: 512}
	c.BART = Shape{Hidden: 768, Layers: 6, Heads: 12, FFN: 3072, MaxPos: 512}
	c.QueryLen, c.PassageLen, c.PairLen, c.SourceLen, c.AnswerLen = 32, 256, 256, 384, 32
	c.MaxDev = 0
	c.Dropout = 0.1
	c.DPR.Stage1 = Opt{Epochs: 40, BatchSize: 128, Accum: 1, LR: 1e-4, Warmup: 0.05, WeightDecay: 0.01, ClipNorm: 2, CheckpointEvery: 500, EvalEvery: 200, Patience: 5}
	c.DPR.Stage2 = c.DPR.Stage1
	c.DPR.Stage2.Epochs = 20
	c.Generator.Opt = Opt{Epochs: 20, BatchSize: 32, Accum: 4, LR: 1e-4, Warmup: 0.05, WeightDecay: 0.01, ClipNorm: 1, CheckpointEvery: 500, EvalEvery: 200, Patience: 5}
	c.Generator.K = 5
	c.Generator.QueryLRScale = 1
	c.Reranker.Opt = Opt{Epochs: 10, BatchSize: 32, Accum: 1, LR: 5e-5, Warmup: 0.1, WeightDecay: 0.01, ClipNorm: 1, CheckpointEvery: 500, EvalEvery: 200, Patience: 5}
	c.Reranker.DenseK, c.Reranker.SparseK = 12, 12
	c.E2E.Opt = Opt{Epochs: 3, BatchSize: 16, Accum: 8, LR: 3e-5, Warmup: 0.1, WeightDecay: 0.01, ClipNorm: 1, CheckpointEvery: 500, EvalEvery: 200, Patience: 5}
	c.E2E.K = 5
	return c
}

// LoadConfig reads a JSON config file over base (nil: SmallConfig()).
func LoadConfig(path string, base *Config) (*Config, error) {
	if base == nil {
		base = SmallConfig()
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("train config: %w", err)
	}
	if err := json.Unmarshal(b, base); err != nil {
		return nil, fmt.Errorf("train config %s: %w", path, err)
	}
	return base, base.Check()
}

// Check validates the settings.
func (c *Config) Check() error {
	for _, s := range []struct {
		name string
		s    Shape
	}{{"bert", c.BERT}, {"bart", c.BART}} {
		if s.s.Hidden <= 0 || s.s.Layers <= 0 || s.s.Heads <= 0 || s.s.FFN <= 0 || s.s.MaxPos <= 0 || s.s.Hidden%s.s.Heads != 0 {
			return fmt.Errorf("train config: %s shape %+v: sizes must be positive and hidden a multiple of heads", s.name, s.s)
		}
	}
	for name, o := range map[string]Opt{"dpr.stage1": c.DPR.Stage1, "dpr.stage2": c.DPR.Stage2, "generator": c.Generator.Opt,
		"reranker": c.Reranker.Opt, "e2e": c.E2E.Opt} {
		if o.BatchSize <= 0 || o.LR <= 0 || (o.Epochs <= 0 && o.MaxSteps <= 0) {
			return fmt.Errorf("train config: %s: batch_size, lr and epochs (or max_steps) must be positive", name)
		}
	}
	if c.Generator.K <= 0 || c.E2E.K <= 0 || c.Reranker.DenseK < 0 || c.Reranker.SparseK < 0 || c.Reranker.DenseK+c.Reranker.SparseK == 0 {
		return fmt.Errorf("train config: generator.k and e2e.k must be positive, reranker lists non-empty")
	}
	switch c.Generator.Objective {
	case "sequence", "token":
	default:
		return fmt.Errorf("train config: generator.objective %q: want sequence or token", c.Generator.Objective)
	}
	switch c.E2E.QueryEncoder {
	case Combined, Frozen, Distill:
	default:
		return fmt.Errorf("train config: e2e.query_encoder %q: want combined, frozen or distill", c.E2E.QueryEncoder)
	}
	if c.E2E.Temperature <= 0 {
		return fmt.Errorf("train config: e2e.temperature must be positive")
	}
	if c.QueryLen < 4 || c.PassageLen < 8 || c.PairLen < 8 || c.SourceLen < 8 || c.AnswerLen < 3 {
		return fmt.Errorf("train config: token lengths too small")
	}
	for _, l := range []int{c.QueryLen, c.PassageLen, c.PairLen} {
		if int64(l) > c.BERT.MaxPos {
			return fmt.Errorf("train config: length %d exceeds bert max_positions %d", l, c.BERT.MaxPos)
		}
	}
	if int64(c.SourceLen) > c.BART.MaxPos || int64(c.AnswerLen) > c.BART.MaxPos {
		return fmt.Errorf("train config: source/answer length exceeds bart max_positions %d", c.BART.MaxPos)
	}
	return nil
}
