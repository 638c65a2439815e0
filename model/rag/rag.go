// Package rag reads and writes Hugging Face RAG model directories
// (RagTokenForGeneration / RagSequenceForGeneration, as facebook/rag-token-nq
// and IBM's ibm/re2g-generation-* ship them): a RagConfig config.json with
// question_encoder and generator sub-configs, one checkpoint holding both
// models, and their tokenizers in question_encoder_tokenizer/ and
// generator_tokenizer/. The question encoder is a *bert.DPR, the generator a
// *bart.Model: the same types as in DPR and BART directories.
//
// Checkpoint names (transformers' RagModel is the attribute "rag"):
//
//	rag.question_encoder.question_encoder.bert_model.*  DPRQuestionEncoder
//	rag.question_encoder.question_encoder.encode_proj.* (projection_dim > 0)
//	rag.generator.model.*                               BartForConditionalGeneration
//	rag.generator.final_logits_bias
//	rag.generator.lm_head.weight                        tied; only in pytorch_model.bin
package rag

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"

	"github.com/re2g/re2g/internal/atomicfile"
	"github.com/re2g/re2g/model"
	"github.com/re2g/re2g/model/bart"
	"github.com/re2g/re2g/model/bert"
	"github.com/re2g/re2g/torch"
)

// Checkpoint prefixes of the two models inside a RAG state dict.
const (
	// QuestionEncoderPrefix is the DPRQuestionEncoder's prefix: its tensors
	// are QuestionEncoderPrefix+"bert_model.*" (and "encode_proj.*").
	QuestionEncoderPrefix = "rag.question_encoder.question_encoder."
	// GeneratorPrefix is the BartForConditionalGeneration's prefix: its
	// tensors are GeneratorPrefix+"model.*" and +"final_logits_bias".
	GeneratorPrefix = "rag.generator."
)

// Tokenizer subdirectories of a RAG directory (RagTokenizer.save_pretrained).
const (
	QuestionEncoderTokenizer = "question_encoder_tokenizer"
	GeneratorTokenizer       = "generator_tokenizer"
)

// Architectures of RAG directories.
const (
	RagToken    = "RagTokenForGeneration"
	RagSequence = "RagSequenceForGeneration"
)

// Config is a RagConfig: the RAG fields re2g reads, both sub-configs parsed,
// and Raw, the whole file, so that saving round-trips everything else.
type Config struct {
	Architectures     []string     `json:"architectures,omitempty"`
	ModelType         string       `json:"model_type"`
	QuestionEncoder   *bert.Config `json:"question_encoder"`
	Generator         *bart.Config `json:"generator"`
	TitleSep          string       `json:"title_sep"`
	DocSep            string       `json:"doc_sep"`
	NDocs             int          `json:"n_docs"`
	MaxCombinedLength int          `json:"max_combined_length"`

	Raw map[string]any `json:"-"`
}

// ParseConfig parses and checks a RagConfig (a config.json's contents).
// Missing fields take RagConfig's defaults.
func ParseConfig(b []byte) (*Config, error) {
	var top struct {
		Architectures     []string        `json:"architectures"`
		ModelType         string          `json:"model_type"`
		QuestionEncoder   json.RawMessage `json:"question_encoder"`
		Generator         json.RawMessage `json:"generator"`
		TitleSep          *string         `json:"title_sep"`
		DocSep            *string         `json:"doc_sep"`
		NDocs             *int            `json:"n_docs"`
		MaxCombinedLength *int            `json:"max_combined_length"`
	}
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, err
	}
	if top.ModelType != "rag" {
		return nil, fmt.Errorf("model_type is %q, not \"rag\"", top.ModelType)
	}
	if len(top.QuestionEncoder) == 0 || len(top.Generator) == 0 {
		return nil, errors.New("a RAG config needs question_encoder and generator sub-configs")
	}
	c := &Config{Architectures: top.Architectures, ModelType: top.ModelType, TitleSep: " / ", DocSep: " // ", NDocs: 5, MaxCombinedLength: 300}
	if top.TitleSep != nil {
		c.TitleSep = *top.TitleSep
	}
	if top.DocSep != nil {
		c.DocSep = *top.DocSep
	}
	if top.NDocs != nil {
		c.NDocs = *top.NDocs
	}
	if top.MaxCombinedLength != nil {
		c.MaxCombinedLength = *top.MaxCombinedLength
	}
	var sub model.Kind
	if err := json.Unmarshal(top.QuestionEncoder, &sub); err != nil {
		return nil, fmt.Errorf("question_encoder: %w", err)
	}
	if mt := sub.ModelType; mt != "" && mt != "dpr" {
		return nil, fmt.Errorf("question_encoder model_type %q: re2g reads DPR question encoders (\"dpr\")", mt)
	}
	var err error
	if c.QuestionEncoder, err = bert.ParseConfig(top.QuestionEncoder); err != nil {
		return nil, fmt.Errorf("question_encoder: %w", err)
	}
	if c.Generator, err = bart.ParseConfig(top.Generator); err != nil {
		return nil, fmt.Errorf("generator: %w", err)
	}
	if mt := c.Generator.ModelType; mt != "" && mt != "bart" {
		return nil, fmt.Errorf("generator model_type %q: re2g reads BART generators", mt)
	}
	// Numbers as written, so that saving keeps 0.0 a float: transformers 5
	// rejects an int in a config's float field.
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&c.Raw); err != nil {
		return nil, err
	}
	return c, nil
}

// Role is what the loaders of this package read.
var Role = model.Role{Name: "a RAG model", ModelTypes: []string{"rag"}, Architectures: []string{RagToken, RagSequence}}

// ReadConfig reads and checks dir/config.json as a RagConfig.
func ReadConfig(dir string) (*Config, error) { return model.ReadConfig(dir, Role, ParseConfig) }

// IsDir reports whether dir holds a RAG model (config.json with model_type "rag").
func IsDir(dir string) bool {
	var c struct {
		ModelType string `json:"model_type"`
	}
	return model.ReadJSON(dir, "config.json", &c) == nil && c.ModelType == "rag"
}

// MarshalJSON writes Raw overlaid with the typed fields (the sub-configs as
// their own MarshalJSON writes them).
func (c *Config) MarshalJSON() ([]byte, error) {
	out := map[string]any{}
	for k, v := range c.Raw {
		out[k] = v
	}
	for k, v := range map[string]any{"model_type": c.ModelType, "title_sep": c.TitleSep, "doc_sep": c.DocSep,
		"n_docs": c.NDocs, "max_combined_length": c.MaxCombinedLength} {
		out[k] = v
	}
	if len(c.Architectures) > 0 {
		out["architectures"] = c.Architectures
	}
	for k, sub := range map[string]json.Marshaler{"question_encoder": c.QuestionEncoder, "generator": c.Generator} {
		if reflect.ValueOf(sub).IsNil() {
			continue
		}
		b, err := sub.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		out[k] = json.RawMessage(b)
	}
	return json.Marshal(out)
}

// Model is a RAG model: its question encoder and its generator.
type Model struct {
	Cfg             *Config
	QuestionEncoder *bert.DPR
	Generator       *bart.Model
}

// open reads dir's RagConfig and opens its checkpoint; the caller closes it.
func open(dir string) (*Config, *model.Checkpoint, error) {
	cfg, err := ReadConfig(dir)
	if err != nil {
		return nil, nil, err
	}
	ck, err := model.OpenCheckpoint(dir)
	if err != nil {
		return nil, nil, err
	}
	return cfg, ck, nil
}

// QuestionEncoderFrom loads the question encoder of an open RAG checkpoint.
func QuestionEncoderFrom(ck *model.Checkpoint, cfg *Config, opt model.Options) (*bert.DPR, error) {
	d, err := bert.LoadDPRFrom(ck, QuestionEncoderPrefix, cfg.QuestionEncoder, true, opt)
	if err != nil {
		return nil, fmt.Errorf("RAG question encoder: %w", err)
	}
	return d, nil
}

// GeneratorFrom loads the generator of an open RAG checkpoint.
func GeneratorFrom(ck *model.Checkpoint, cfg *Config, opt model.Options) (*bart.Model, error) {
	g, err := bart.LoadFrom(ck, GeneratorPrefix, cfg.Generator, opt)
	if err != nil {
		return nil, fmt.Errorf("RAG generator: %w", err)
	}
	return g, nil
}

// LoadQuestionEncoder loads only the question encoder of a RAG directory.
// Every tensor outside the generator's prefix must be the question
// encoder's (or one it allows: see bert.LoadDPR).
func LoadQuestionEncoder(dir string, opt model.Options) (*bert.DPR, *Config, error) {
	cfg, ck, err := open(dir)
	if err != nil {
		return nil, nil, err
	}
	defer ck.Close()
	d, err := QuestionEncoderFrom(ck, cfg, opt)
	if err != nil {
		return nil, nil, err
	}
	if err := ck.CheckUnexpected(GeneratorPrefix); err != nil {
		d.Close()
		return nil, nil, err
	}
	return d, cfg, nil
}

// LoadGenerator loads only the generator of a RAG directory. Every tensor
// outside the question encoder's prefix must be the generator's (or one it
// allows: see bart.Load).
func LoadGenerator(dir string, opt model.Options) (*bart.Model, *Config, error) {
	cfg, ck, err := open(dir)
	if err != nil {
		return nil, nil, err
	}
	defer ck.Close()
	g, err := GeneratorFrom(ck, cfg, opt)
	if err != nil {
		return nil, nil, err
	}
	if err := ck.CheckUnexpected(QuestionEncoderPrefix); err != nil {
		g.Close()
		return nil, nil, err
	}
	return g, cfg, nil
}

// Load opens a RAG directory once and loads both models. Every tensor of
// the checkpoint must be one of theirs (or one they allow).
func Load(dir string, opt model.Options) (*Model, error) {
	cfg, ck, err := open(dir)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	q, err := QuestionEncoderFrom(ck, cfg, opt)
	if err != nil {
		return nil, err
	}
	g, err := GeneratorFrom(ck, cfg, opt)
	if err != nil {
		q.Close()
		return nil, err
	}
	if err := ck.CheckUnexpected(); err != nil {
		q.Close()
		g.Close()
		return nil, err
	}
	return &Model{Cfg: cfg, QuestionEncoder: q, Generator: g}, nil
}

// Close frees both models.
func (m *Model) Close() {
	if m.QuestionEncoder != nil {
		m.QuestionEncoder.Close()
	}
	if m.Generator != nil {
		m.Generator.Close()
	}
}

// Parameters lists both models' trainable tensors under their RAG names
// (final_logits_bias, a buffer, excluded), marking them as requiring grad.
func (m *Model) Parameters() ([]torch.Param, error) {
	q, err := model.Parameters(m.QuestionEncoder, QuestionEncoderPrefix)
	if err != nil {
		return nil, err
	}
	g, err := model.Parameters(m.Generator, GeneratorPrefix)
	if err != nil {
		return nil, err
	}
	for _, p := range g {
		if p.Name == GeneratorPrefix+"final_logits_bias" {
			p.Tensor.SetRequiresGrad(false)
			continue
		}
		q = append(q, p)
	}
	return q, nil
}

// Save writes m as a RAG directory (see the package Save).
func (m *Model) Save(dir string, gen *bart.GenerationConfig) error {
	return Save(dir, m.Cfg, m.QuestionEncoder, m.Generator, gen)
}

// Save writes a RAG directory that transformers' RagTokenForGeneration (or
// RagSequenceForGeneration, as cfg's architectures say) from_pretrained
// loads strictly, and Load reads back: config.json (cfg with both
// sub-configs taken from the models), model.safetensors (both models under
// their RAG prefixes, the tied embedding once, as rag.generator.model.shared.weight),
// and generation_config.json when gen is not nil. cfg may be nil: a
// RagTokenForGeneration config with RagConfig's defaults is written.
// Tokenizers are not written: see CopyTokenizers.
func Save(dir string, cfg *Config, q *bert.DPR, g *bart.Model, gen *bart.GenerationConfig) error {
	if q == nil || g == nil {
		return errors.New("rag: save needs a question encoder and a generator")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save %s: %w", dir, err)
	}
	var c Config
	if cfg != nil {
		c = *cfg
	} else {
		c = Config{Architectures: []string{RagToken}, TitleSep: " / ", DocSep: " // ", NDocs: 5, MaxCombinedLength: 300}
	}
	c.ModelType = "rag"
	if len(c.Architectures) == 0 {
		c.Architectures = []string{RagToken}
	}
	qc := *q.Cfg
	qc.ModelType, qc.Architectures = "dpr", []string{"DPRQuestionEncoder"}
	gc := *g.Cfg
	gc.ModelType, gc.Architectures = "bart", []string{"BartForConditionalGeneration"}
	c.QuestionEncoder, c.Generator = &qc, &gc
	ts, err := model.Tensors(q, QuestionEncoderPrefix)
	if err != nil {
		return err
	}
	gts, err := model.Tensors(g, GeneratorPrefix)
	if err != nil {
		return err
	}
	for n, t := range gts {
		ts[n] = t
	}
	if err := torch.SaveSafetensors(filepath.Join(dir, "model.safetensors"), ts, map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("save %s: %w", dir, err)
	}
	files := map[string]any{"config.json": &c}
	if gen != nil {
		files["generation_config.json"] = gen
	}
	for name, v := range files {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return fmt.Errorf("save %s: %s: %w", dir, name, err)
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, name), append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// CopyTokenizers copies a RAG directory's question_encoder_tokenizer/ and
// generator_tokenizer/ into dst (e.g. next to a fine-tuned model written by
// Save).
func CopyTokenizers(src, dst string) error {
	for _, sub := range []string{QuestionEncoderTokenizer, GeneratorTokenizer} {
		if err := copyDir(filepath.Join(src, sub), filepath.Join(dst, sub)); err != nil {
			return fmt.Errorf("rag: copy tokenizers of %s: %w", src, err)
		}
	}
	return nil
}

func copyDir(src, dst string) error {
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		f, err := os.Open(filepath.Join(src, e.Name()))
		if err != nil {
			return err
		}
		err = atomicfile.Write(filepath.Join(dst, e.Name()), 0o644, func(w io.Writer) error {
			_, err := io.Copy(w, f)
			return err
		})
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// TokenizerDirs are the tokenizer directories of a RAG directory: the
// question encoder's and the generator's.
func TokenizerDirs(dir string) (question, generator string) {
	return filepath.Join(dir, QuestionEncoderTokenizer), filepath.Join(dir, GeneratorTokenizer)
}
