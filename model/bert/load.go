package bert

import (
	"fmt"

	"github.com/re2g/re2g/model"
	"github.com/re2g/re2g/torch"
)

// weights owns a loaded model's tensors.
type weights struct {
	scope *torch.Scope
}

// Close frees the model's tensors.
func (w *weights) Close() {
	if w.scope != nil {
		w.scope.Close()
		w.scope = nil
	}
}

// open reads dir's config, refused unless it fits role, and opens its
// checkpoint; the caller closes it.
func open(dir string, role model.Role) (*Config, *model.Checkpoint, error) {
	cfg, err := ReadConfig(dir, role)
	if err != nil {
		return nil, nil, err
	}
	ck, err := model.OpenCheckpoint(dir)
	if err != nil {
		return nil, nil, err
	}
	return cfg, ck, nil
}

// loadInto checks that the checkpoint holds as many layers under
// bertPrefix+"encoder.layer." as cfg says, then fills dst.
func loadInto(ck *model.Checkpoint, cfg *Config, bertPrefix string, dst any, prefix string, opt model.Options) (weights, error) {
	if err := ck.CheckLayers(bertPrefix+"encoder.layer.", cfg.NumHiddenLayers, "num_hidden_layers"); err != nil {
		return weights{}, err
	}
	s, err := model.LoadFrom(ck, dst, prefix, opt)
	if err != nil {
		return weights{}, err
	}
	return weights{scope: s}, nil
}

// loadAll is loadInto for a model that is the whole checkpoint: every
// tensor must then be used, or allowed by opt.Ignore.
func loadAll(ck *model.Checkpoint, cfg *Config, bertPrefix string, dst any, prefix string, opt model.Options) (weights, error) {
	w, err := loadInto(ck, cfg, bertPrefix, dst, prefix, opt)
	if err != nil {
		return weights{}, err
	}
	if err := ck.CheckUnexpected(); err != nil {
		w.Close()
		return weights{}, err
	}
	return w, nil
}

// initialised fills dst with fresh weights (std 0.02, as HF) on dev.
func initialised(cfg *Config, dst any, dev torch.Device) (weights, error) {
	if err := cfg.Check(); err != nil {
		return weights{}, err
	}
	s := torch.NewScope()
	if err := model.Init(s, dst, 0.02, dev, torch.Float32); err != nil {
		s.Close()
		return weights{}, err
	}
	return weights{scope: s}, nil
}

// Encoder is a plain BertModel (last hidden states and pooler).
type Encoder struct {
	*Model
	weights
	prefix string
}

// LoadEncoder loads a BertModel directory (EncoderRole); the weights may be
// stored with or without the "bert." prefix (as in a pretraining model's
// checkpoint). Besides the model's tensors the checkpoint may hold only
// embeddings.position_ids (an old buffer) and pretraining heads (cls.*).
func LoadEncoder(dir string, opt model.Options) (*Encoder, error) {
	cfg, ck, err := open(dir, EncoderRole)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	prefix := ""
	if !ck.Has("embeddings.word_embeddings.weight") && ck.Has("bert.embeddings.word_embeddings.weight") {
		prefix = "bert."
	}
	m := newModel(cfg, ck.Has(prefix+"pooler.dense.weight"))
	opt.Ignore = append(append([]string{}, opt.Ignore...), prefix+"embeddings.position_ids", "cls.")
	w, err := loadAll(ck, cfg, prefix, m, prefix, opt)
	if err != nil {
		return nil, err
	}
	return &Encoder{Model: m, weights: w, prefix: prefix}, nil
}

// DPR is a DPR question or context encoder: BERT's [CLS] vector, through an
// optional projection (encode_proj).
type DPR struct {
	Cfg      *Config       `st:"-"`
	Bert     *Model        `st:"bert_model"`
	Proj     *model.Linear `st:"encode_proj,optional"`
	Question bool          `st:"-"`
	weights
}

// dprPrefix is the checkpoint prefix of a question or context encoder.
func dprPrefix(question bool) string {
	if question {
		return "question_encoder."
	}
	return "ctx_encoder."
}

// NewDPR builds a randomly initialised DPR encoder (std 0.02, as HF) on dev.
func NewDPR(cfg *Config, question bool, dev torch.Device) (*DPR, error) {
	d := newDPR(cfg, question)
	w, err := initialised(cfg, d, dev)
	if err != nil {
		return nil, err
	}
	d.weights = w
	return d, nil
}

func newDPR(cfg *Config, question bool) *DPR {
	d := &DPR{Cfg: cfg, Bert: newModel(cfg, false), Question: question}
	if cfg.ProjectionDim > 0 {
		d.Proj = &model.Linear{In: cfg.HiddenSize, Out: cfg.ProjectionDim}
	}
	return d
}

// LoadDPR loads a DPRQuestionEncoder or DPRContextEncoder directory
// (DPRRole); which one comes from the checkpoint's names. Besides the
// model's tensors the checkpoint may hold only position_ids (an old buffer)
// and a pooler, which DPR does not use (transformers ignores it too).
func LoadDPR(dir string, opt model.Options) (*DPR, error) {
	cfg, ck, err := open(dir, DPRRole)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	var question bool
	switch {
	case ck.Has("question_encoder.bert_model.embeddings.word_embeddings.weight"):
		question = true
	case ck.Has("ctx_encoder.bert_model.embeddings.word_embeddings.weight"):
	default:
		return nil, fmt.Errorf("model %s: not a DPR encoder (no question_encoder.bert_model.* or ctx_encoder.bert_model.* tensors; architectures %v)", dir, cfg.Architectures)
	}
	d, err := LoadDPRFrom(ck, dprPrefix(question), cfg, question, opt)
	if err != nil {
		return nil, err
	}
	if err := ck.CheckUnexpected(); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// LoadDPRFrom loads a DPR encoder sized by cfg from an open checkpoint, its
// tensors named prefix+"bert_model.*" and prefix+"encode_proj.*": prefix is
// "question_encoder." or "ctx_encoder." in a DPR directory,
// "rag.question_encoder.question_encoder." in a RAG one. question says
// which encoder it is (what Save writes). The caller checks the checkpoint
// for unexpected tensors once it has loaded everything it holds.
func LoadDPRFrom(ck *model.Checkpoint, prefix string, cfg *Config, question bool, opt model.Options) (*DPR, error) {
	if err := cfg.Check(); err != nil {
		return nil, fmt.Errorf("model %s: %w", ck.Dir, err)
	}
	d := newDPR(cfg, question)
	opt.Ignore = append(append([]string{}, opt.Ignore...), prefix+"bert_model.embeddings.position_ids", prefix+"bert_model.pooler.")
	var err error
	if d.weights, err = loadInto(ck, cfg, prefix+"bert_model.", d, prefix, opt); err != nil {
		return nil, err
	}
	return d, nil
}

// Encode returns the embeddings [B, D] of a batch.
func (d *DPR) Encode(s *torch.Scope, in Inputs, train bool) *torch.Tensor {
	h := d.Bert.Forward(s, in, train)
	cls := s.Select(h, 1, 0)
	if d.Proj != nil {
		cls = d.Proj.Forward(s, cls)
	}
	return cls
}

// Dim is the embedding size.
func (d *DPR) Dim() int64 {
	if d.Proj != nil {
		return d.Cfg.ProjectionDim
	}
	return d.Cfg.HiddenSize
}

// Save writes a Hugging Face DPR directory that transformers and LoadDPR read.
func (d *DPR) Save(dir string) error {
	cfg := *d.Cfg
	cfg.ModelType = "dpr"
	if d.Question {
		cfg.Architectures = []string{"DPRQuestionEncoder"}
	} else {
		cfg.Architectures = []string{"DPRContextEncoder"}
	}
	return model.Save(dir, &cfg, d, dprPrefix(d.Question), nil)
}

// Parameters lists the trainable tensors (marking them as requiring grad).
func (d *DPR) Parameters() ([]torch.Param, error) { return model.Parameters(d, dprPrefix(d.Question)) }

// CrossEncoder is BertForSequenceClassification used as a reranker: the
// score of a (query, passage) pair is its relevance logit — the only logit
// with one label, the second ("relevant") with two.
type CrossEncoder struct {
	Cfg        *Config      `st:"-"`
	Bert       *Model       `st:"bert"`
	Classifier model.Linear `st:"classifier"`
	weights
}

func newCrossEncoder(cfg *Config) *CrossEncoder {
	return &CrossEncoder{Cfg: cfg, Bert: newModel(cfg, true), Classifier: model.Linear{In: cfg.HiddenSize, Out: int64(cfg.NumLabels())}}
}

// NewCrossEncoder builds a randomly initialised cross-encoder on dev.
func NewCrossEncoder(cfg *Config, dev torch.Device) (*CrossEncoder, error) {
	c := newCrossEncoder(cfg)
	w, err := initialised(cfg, c, dev)
	if err != nil {
		return nil, err
	}
	c.weights = w
	return c, nil
}

// LoadCrossEncoder loads a BertForSequenceClassification directory
// (CrossEncoderRole). Besides the model's tensors the checkpoint may hold
// only bert.embeddings.position_ids (an old buffer).
func LoadCrossEncoder(dir string, opt model.Options) (*CrossEncoder, error) {
	cfg, ck, err := open(dir, CrossEncoderRole)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	if n := cfg.NumLabels(); n != 1 && n != 2 {
		return nil, fmt.Errorf("model %s: a cross-encoder needs 1 or 2 labels, config has %d", dir, n)
	}
	c := newCrossEncoder(cfg)
	opt.Ignore = append(append([]string{}, opt.Ignore...), "bert.embeddings.position_ids")
	if c.weights, err = loadAll(ck, cfg, "bert.", c, "", opt); err != nil {
		return nil, err
	}
	return c, nil
}

// Logits returns the classifier's logits [B, num_labels].
func (c *CrossEncoder) Logits(s *torch.Scope, in Inputs, train bool) *torch.Tensor {
	h := c.Bert.Forward(s, in, train)
	p := 0.1
	if c.Cfg.ClassifierDropout != nil {
		p = *c.Cfg.ClassifierDropout
	} else {
		p = c.Cfg.HiddenDropoutProb
	}
	pooled := s.Dropout(c.Bert.Pool(s, h), p, train)
	return c.Classifier.Forward(s, pooled)
}

// Scores returns one relevance logit per pair [B].
func (c *CrossEncoder) Scores(s *torch.Scope, in Inputs, train bool) *torch.Tensor {
	logits := c.Logits(s, in, train)
	return s.Select(logits, 1, int64(c.Cfg.NumLabels()-1))
}

// Save writes a Hugging Face BertForSequenceClassification directory.
func (c *CrossEncoder) Save(dir string) error {
	cfg := *c.Cfg
	cfg.ModelType = "bert"
	cfg.Architectures = []string{"BertForSequenceClassification"}
	return model.Save(dir, &cfg, c, "", nil)
}

// Parameters lists the trainable tensors (marking them as requiring grad).
func (c *CrossEncoder) Parameters() ([]torch.Param, error) { return model.Parameters(c, "") }
