package train

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/re2g/re2g/internal/bom"
	"github.com/re2g/re2g/internal/limits"
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

// Initialisations.
const (
	// InitCheckpoint (the default) starts every model from the directory
	// given for it; a missing directory is an error.
	InitCheckpoint = "checkpoint"
	// InitScratch creates the models no directory was given for, randomly
	// initialised with the BERT and BART shapes (and Tokenizer).
	InitScratch = "scratch"
)

// Config is a training run's settings: devices, lengths, the four phases,
// and for from-scratch models their shapes.
type Config struct {
	Out     string `json:"out"`     // output folder
	Device  string `json:"device"`  // cpu, cuda, cuda:N
	DType   string `json:"dtype"`   // float32, or bfloat16: autocast with float32 master weights
	Threads int    `json:"threads"` // libtorch threads (0: one per core)
	Seed    uint64 `json:"seed"`    // every random choice derives from it
	// MaxTrain caps the training examples (0: all), MaxDev the dev
	// examples evaluated during training (0: all).
	MaxTrain int  `json:"max_train"`
	MaxDev   int  `json:"max_dev"`
	Quiet    bool `json:"quiet"` // no progress bar

	// Init is InitCheckpoint or InitScratch.
	Init string `json:"init"`
	// Tokenizer is the WordPiece tokenizer (tokenizer.json, vocab.txt or
	// their folder) of the models made from scratch; a from-scratch BART
	// shares it ([CLS] as <s>, [SEP] as </s>).
	Tokenizer string `json:"tokenizer"`
	// FreezeWordEmbeddings keeps the BERT models' word, position and
	// token-type embeddings at their initialisation (see trainable).
	FreezeWordEmbeddings bool `json:"freeze_embeddings"`
	// Dropout is a from-scratch model's dropout probability (loaded models
	// keep their config's).
	Dropout float64 `json:"dropout"`
	BERT    Shape   `json:"bert"`
	BART    Shape   `json:"bart"`

	QueryLen   int `json:"query_len"`   // tokens of a question
	PassageLen int `json:"passage_len"` // tokens of a (title, text) passage
	PairLen    int `json:"pair_len"`    // tokens of a reranker (question, passage) pair
	SourceLen  int `json:"source_len"`  // tokens of a generator source
	AnswerLen  int `json:"answer_len"`  // tokens of an answer (labels), and the generation limit

	DPR       DPRConfig       `json:"dpr"`
	Generator GeneratorConfig `json:"generator"`
	Reranker  RerankerConfig  `json:"reranker"`
	E2E       E2EConfig       `json:"e2e"`
}

// DPRConfig is phase 1: two stages of DPR.
type DPRConfig struct {
	Stage1 Opt `json:"stage1"`
	// Stage2 trains on from the best stage-1 model with negatives mined
	// from an HNSW index of the corpus encoded by it; 0 epochs and 0
	// max_steps skip it.
	Stage2 Opt `json:"stage2"`
	// NegativeDepth: each question's hard negative is sampled (seeded)
	// from the first NegativeDepth non-positive passages of BM25's (stage
	// 1) or the index's (stage 2) ranking, as IBM's reference (5).
	NegativeDepth int `json:"negative_depth"`
	// EvalDepth is how many BM25 candidates of each dev question the
	// encoders rank in the dev evaluation during training (corpus-size
	// independent); the phase's final metrics come from the real index.
	EvalDepth int `json:"eval_depth"`
	// Shared trains one from-scratch BERT as both question and context
	// encoder (a Siamese DPR saved as the two DPR directories): two
	// randomly initialised encoders collapse to the uniform in-batch loss.
	Shared bool `json:"shared_encoder"`
}

// GeneratorConfig is phase 2: RAG training of generator and query encoder.
type GeneratorConfig struct {
	Opt
	K         int    `json:"k"`         // passages marginalised per question
	Objective string `json:"objective"` // "sequence" (default) or "token"
	// QueryLRScale scales the question encoder's learning rate (0 means 1).
	QueryLRScale float64 `json:"query_lr_scale"`
}

// RerankerConfig is phase 3.
type RerankerConfig struct {
	Opt
	DenseK  int `json:"dense_k"`  // DPR hits per query in the training lists
	SparseK int `json:"sparse_k"` // BM25 hits per query
}

// E2EConfig is phase 4.
type E2EConfig struct {
	Opt
	K             int     `json:"k"`        // reranked passages marginalised per question
	DenseK        int     `json:"dense_k"`  // DPR hits per query
	SparseK       int     `json:"sparse_k"` // BM25 hits per query
	QueryEncoder  string  `json:"query_encoder"`
	DistillWeight float64 `json:"distill_weight"`
	Temperature   float64 `json:"temperature"`
}

// Query-encoder options of the end-to-end phase.
const (
	Combined = "combined"
	Frozen   = "frozen"
	Distill  = "distill"
)

// FinetuneConfig is the paper's fine-tuning procedure (RE2G.md, IBM's
// reference settings) for pretrained checkpoints: DPR 2 epochs, batch 128,
// lr 5e-5, clip 1, BM25 negatives from the top 5; RAG 2 epochs, lr 3e-5,
// 128 questions an update, 5% warm-up; the reranker 2 epochs, lr 3e-5,
// 32 questions, pairs of 128 tokens, on DPR top 20 + BM25 top 20; end to
// end 1 epoch, lr 3e-5, 128 questions, 10% warm-up, DPR top 12 + BM25 top
// 12 → top 5.
func FinetuneConfig() *Config {
	o := func(epochs float64, batch, accum int, lr, warmup float64) Opt {
		return Opt{Epochs: epochs, BatchSize: batch, Accum: accum, LR: lr, Warmup: warmup, WeightDecay: 0, ClipNorm: 1,
			CheckpointEvery: 200, EvalEvery: 500, Patience: 0}
	}
	return &Config{
		Out: "build/finetune", Device: "cpu", DType: "float32", Seed: 1, Init: InitCheckpoint, MaxDev: 1000,
		QueryLen: 64, PassageLen: 256, PairLen: 128, SourceLen: 300, AnswerLen: 64,
		BERT:      Shape{Hidden: 768, Layers: 12, Heads: 12, FFN: 3072, MaxPos: 512},
		BART:      Shape{Hidden: 1024, Layers: 12, Heads: 16, FFN: 4096, MaxPos: 1024},
		DPR:       DPRConfig{Stage1: o(2, 128, 1, 5e-5, 0), Stage2: Opt{}, NegativeDepth: 5, EvalDepth: 100},
		Generator: GeneratorConfig{Opt: o(2, 2, 64, 3e-5, 0.05), K: 5, Objective: "sequence", QueryLRScale: 1},
		Reranker:  RerankerConfig{Opt: o(2, 32, 1, 3e-5, 0.1), DenseK: 20, SparseK: 20},
		E2E: E2EConfig{Opt: o(1, 2, 64, 3e-5, 0.1), K: 5, DenseK: 12, SparseK: 12, QueryEncoder: Distill,
			DistillWeight: 0.9, Temperature: 10},
	}
}

// SmallConfig trains all four phases from scratch on 2 CPU cores: a
// 2-layer, 128-wide BERT and a 2+2-layer BART sharing the
// bert-base-uncased WordPiece vocabulary.
func SmallConfig() *Config {
	o := func(epochs float64, batch int, lr float64) Opt {
		return Opt{Epochs: epochs, BatchSize: batch, Accum: 1, LR: lr, Warmup: 0.05, WeightDecay: 0.01, ClipNorm: 1,
			CheckpointEvery: 200, EvalEvery: 0, Patience: 3}
	}
	every := func(o Opt, n int) Opt { o.EvalEvery = n; return o }
	return &Config{
		Tokenizer: "../shared/data/tokenizers/bert-base-uncased", Init: InitScratch,
		Out: "build/train", Device: "cpu", DType: "float32", Seed: 1, FreezeWordEmbeddings: true, Dropout: 0, MaxDev: 300,
		BERT:     Shape{Hidden: 128, Layers: 2, Heads: 2, FFN: 512, MaxPos: 256},
		BART:     Shape{Hidden: 128, Layers: 2, Heads: 2, FFN: 512, MaxPos: 256},
		QueryLen: 32, PassageLen: 128, PairLen: 160, SourceLen: 128, AnswerLen: 16,
		DPR: DPRConfig{Stage1: every(o(2, 32, 5e-4), 100), Stage2: every(o(1, 32, 2e-4), 100), NegativeDepth: 5,
			EvalDepth: 100, Shared: true},
		Generator: GeneratorConfig{Opt: o(2.5, 8, 1e-3), K: 2, Objective: "sequence", QueryLRScale: 0.1},
		Reranker:  RerankerConfig{Opt: every(o(0.3, 4, 5e-4), 200), DenseK: 4, SparseK: 4},
		E2E: E2EConfig{Opt: o(0.15, 4, 1e-4), K: 3, DenseK: 4, SparseK: 4, QueryEncoder: Distill, DistillWeight: 0.9,
			Temperature: 10},
	}
}

// LargeConfig is a BERT-base / BART-base-sized from-scratch run for one H200.
func LargeConfig() *Config {
	c := SmallConfig()
	c.Device = "cuda"
	c.DType = "bfloat16"
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
	c.E2E.K, c.E2E.DenseK, c.E2E.SparseK = 5, 12, 12
	return c
}

// Preset returns a named configuration: finetune, small or large.
func Preset(name string) (*Config, error) {
	switch name {
	case "finetune":
		return FinetuneConfig(), nil
	case "small":
		return SmallConfig(), nil
	case "large":
		return LargeConfig(), nil
	}
	return nil, fmt.Errorf("preset %q: want finetune, small or large", name)
}

// LoadConfig reads a JSON config file over base (nil: FinetuneConfig()).
func LoadConfig(path string, base *Config) (*Config, error) {
	if base == nil {
		base = FinetuneConfig()
	}
	b, err := os.ReadFile(path)
	if err == nil {
		b, err = bom.Bytes(b)
	}
	if err != nil {
		return nil, fmt.Errorf("train config: %w", err)
	}
	if err := json.Unmarshal(b, base); err != nil {
		return nil, fmt.Errorf("train config %s: %w", path, err)
	}
	return base, base.Check()
}

func steps(o Opt) bool { return o.Epochs > 0 || o.MaxSteps > 0 }

// Check validates the settings.
func (c *Config) Check() error {
	switch c.Init {
	case "", InitCheckpoint, InitScratch:
	default:
		return fmt.Errorf("train config: init %q: want %s or %s", c.Init, InitCheckpoint, InitScratch)
	}
	switch c.DType {
	case "", "float32", "bfloat16":
	default:
		return fmt.Errorf("train config: dtype %q: want float32 or bfloat16", c.DType)
	}
	if c.Init == InitScratch {
		for _, s := range []struct {
			name string
			s    Shape
		}{{"bert", c.BERT}, {"bart", c.BART}} {
			if s.s.Hidden <= 0 || s.s.Layers <= 0 || s.s.Heads <= 0 || s.s.FFN <= 0 || s.s.MaxPos <= 0 || s.s.Hidden%s.s.Heads != 0 {
				return fmt.Errorf("train config: %s shape %+v: sizes must be positive and hidden a multiple of heads", s.name, s.s)
			}
		}
		for _, l := range []int{c.QueryLen, c.PassageLen, c.PairLen} {
			if int64(l) > c.BERT.MaxPos {
				return fmt.Errorf("train config: length %d exceeds bert max_positions %d", l, c.BERT.MaxPos)
			}
		}
		if int64(c.SourceLen) > c.BART.MaxPos || int64(c.AnswerLen) > c.BART.MaxPos {
			return fmt.Errorf("train config: source/answer length exceeds bart max_positions %d", c.BART.MaxPos)
		}
	}
	if !(c.Dropout >= 0 && c.Dropout < 1) {
		return fmt.Errorf("train config: dropout %g: want [0, 1)", c.Dropout)
	}
	if err := limits.CheckThreads(c.Threads); err != nil {
		return fmt.Errorf("train config: threads: %w", err)
	}
	const maxExamples = 1 << 30
	for _, r := range []ranged{
		{"max_train", float64(c.MaxTrain), 0, maxExamples}, {"max_dev", float64(c.MaxDev), 0, maxExamples},
		{"query_len", float64(c.QueryLen), 4, maxTokens}, {"passage_len", float64(c.PassageLen), 8, maxTokens},
		{"pair_len", float64(c.PairLen), 8, maxTokens}, {"source_len", float64(c.SourceLen), 8, maxTokens},
		{"answer_len", float64(c.AnswerLen), 3, maxTokens},
		{"dpr.negative_depth", float64(c.DPR.NegativeDepth), 1, maxK}, {"dpr.eval_depth", float64(c.DPR.EvalDepth), 1, maxK},
		{"generator.k", float64(c.Generator.K), 1, maxK}, {"e2e.k", float64(c.E2E.K), 1, maxK},
		{"generator.query_lr_scale", c.Generator.QueryLRScale, 0, 1e6},
		{"e2e.distill_weight", c.E2E.DistillWeight, 0, 1},
	} {
		if err := r.check(); err != nil {
			return err
		}
	}
	check := func(name string, o Opt, optional bool) error {
		if optional && !steps(o) {
			return nil
		}
		for _, r := range []ranged{
			{name + ".epochs", o.Epochs, 0, 1e6}, {name + ".max_steps", float64(o.MaxSteps), 0, 1 << 40},
			{name + ".batch_size", float64(o.BatchSize), 1, 1 << 20}, {name + ".grad_accum", float64(o.Accum), 0, 1 << 20},
			{name + ".warmup", o.Warmup, 0, 1}, {name + ".weight_decay", o.WeightDecay, 0, 1e6},
			{name + ".clip_norm", o.ClipNorm, -1e12, 1e12}, {name + ".checkpoint_every", float64(o.CheckpointEvery), 0, 1 << 40},
			{name + ".eval_every", float64(o.EvalEvery), 0, 1 << 40}, {name + ".patience", float64(o.Patience), 0, 1 << 40},
		} {
			if err := r.check(); err != nil {
				return err
			}
		}
		if !(o.LR > 0 && o.LR < 1e6) {
			return fmt.Errorf("train config: %s.lr %g: want a positive learning rate", name, o.LR)
		}
		if !steps(o) {
			return fmt.Errorf("train config: %s: epochs or max_steps must be positive", name)
		}
		return nil
	}
	for _, x := range []struct {
		name     string
		o        Opt
		optional bool
	}{{"dpr.stage1", c.DPR.Stage1, false}, {"dpr.stage2", c.DPR.Stage2, true}, {"generator", c.Generator.Opt, false},
		{"reranker", c.Reranker.Opt, false}, {"e2e", c.E2E.Opt, false}} {
		if err := check(x.name, x.o, x.optional); err != nil {
			return err
		}
	}
	for name, k := range map[string][2]int{"reranker": {c.Reranker.DenseK, c.Reranker.SparseK}, "e2e": {c.E2E.DenseK, c.E2E.SparseK}} {
		if k[0] < 0 || k[1] < 0 || k[0]+k[1] == 0 || k[0] > maxK || k[1] > maxK {
			return fmt.Errorf("train config: %s: dense_k and sparse_k must be non-negative, not both 0, at most %d", name, maxK)
		}
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
	if !(c.E2E.Temperature > 0 && c.E2E.Temperature <= 1e6) {
		return fmt.Errorf("train config: e2e.temperature %g: want a positive number, at most 1e6", c.E2E.Temperature)
	}
	return nil
}

// Bounds of Check.
const (
	maxTokens = 1 << 16 // token lengths
	maxK      = 10000   // passages per question
)

// ranged is a setting and its allowed range, both ends included.
type ranged struct {
	name   string
	v      float64
	lo, hi float64
}

func (r ranged) check() error {
	if !(r.v >= r.lo && r.v <= r.hi) { // NaN fails too
		return fmt.Errorf("train config: %s %g: want %g to %g", r.name, r.v, r.lo, r.hi)
	}
	return nil
}
