// Package bert is BERT in Go on libtorch, with the Hugging Face layouts re2g
// loads: BertModel, DPRQuestionEncoder / DPRContextEncoder and
// BertForSequenceClassification (the cross-encoder reranker). It follows
// transformers' modeling_bert.py and modeling_dpr.py.
package bert

import (
	"encoding/json"
	"fmt"

	"github.com/re2g/re2g/model"
)

// Config is the part of a BERT config.json that re2g reads; Raw keeps the
// whole file so that saving round-trips unknown fields.
type Config struct {
	Architectures             []string          `json:"architectures,omitempty"`
	ModelType                 string            `json:"model_type"`
	VocabSize                 int64             `json:"vocab_size"`
	HiddenSize                int64             `json:"hidden_size"`
	NumHiddenLayers           int               `json:"num_hidden_layers"`
	NumAttentionHeads         int64             `json:"num_attention_heads"`
	IntermediateSize          int64             `json:"intermediate_size"`
	HiddenAct                 string            `json:"hidden_act"`
	HiddenDropoutProb         float64           `json:"hidden_dropout_prob"`
	AttentionProbsDropoutProb float64           `json:"attention_probs_dropout_prob"`
	MaxPositionEmbeddings     int64             `json:"max_position_embeddings"`
	TypeVocabSize             int64             `json:"type_vocab_size"`
	LayerNormEps              float64           `json:"layer_norm_eps"`
	PadTokenID                int64             `json:"pad_token_id"`
	PositionEmbeddingType     string            `json:"position_embedding_type,omitempty"`
	ProjectionDim             int64             `json:"projection_dim,omitempty"`
	ID2Label                  map[string]string `json:"id2label,omitempty"`
	ClassifierDropout         *float64          `json:"classifier_dropout,omitempty"`

	Raw map[string]any `json:"-"`
}

// defaultConfig holds BertConfig's defaults for the fields re2g reads.
func defaultConfig() *Config {
	return &Config{LayerNormEps: 1e-12, HiddenAct: "gelu", TypeVocabSize: 2}
}

// ParseConfig parses and checks a BERT or DPR config (a config.json's
// contents, or the "question_encoder" sub-config of a RAG config.json).
func ParseConfig(b []byte) (*Config, error) {
	c := defaultConfig()
	if err := json.Unmarshal(b, c); err != nil {
		return nil, err
	}
	if c.ModelType != "" && c.ModelType != "bert" && c.ModelType != "dpr" {
		return nil, fmt.Errorf("model_type %q is not a BERT-family model (\"bert\" or \"dpr\")", c.ModelType)
	}
	var err error
	if c.Raw, err = model.DecodeConfig(b); err != nil {
		return nil, err
	}
	if err := c.Check(); err != nil {
		return nil, err
	}
	return c, nil
}

// The roles of BERT-family directories: what each loader reads.
var (
	// DPRRole is LoadDPR's: a DPRQuestionEncoder or DPRContextEncoder.
	DPRRole = model.Role{Name: "a DPR encoder", ModelTypes: []string{"dpr"}, Architectures: []string{"DPRQuestionEncoder", "DPRContextEncoder"}}
	// EncoderRole is LoadEncoder's: a BertModel, alone or under the
	// pretraining heads that LoadEncoder leaves out (cls.*).
	EncoderRole = model.Role{Name: "a BertModel encoder", ModelTypes: []string{"bert"},
		Architectures: []string{"BertModel", "BertForPreTraining", "BertForMaskedLM", "BertLMHeadModel"}}
	// CrossEncoderRole is LoadCrossEncoder's: BertForSequenceClassification.
	CrossEncoderRole = model.Role{Name: "a cross-encoder reranker", ModelTypes: []string{"bert"}, Architectures: []string{"BertForSequenceClassification"}}
)

// ReadConfig reads and checks dir/config.json, refusing it unless it fits
// role (DPRRole, EncoderRole or CrossEncoderRole).
func ReadConfig(dir string, role model.Role) (*Config, error) {
	return model.ReadConfig(dir, role, ParseConfig)
}

// Check validates the sizes.
func (c *Config) Check() error {
	switch {
	case c.VocabSize <= 0 || c.HiddenSize <= 0 || c.NumHiddenLayers <= 0 || c.NumAttentionHeads <= 0 || c.IntermediateSize <= 0:
		return fmt.Errorf("vocab_size, hidden_size, num_hidden_layers, num_attention_heads and intermediate_size must be positive")
	case c.HiddenSize%c.NumAttentionHeads != 0:
		return fmt.Errorf("hidden_size %d is not a multiple of num_attention_heads %d", c.HiddenSize, c.NumAttentionHeads)
	case c.MaxPositionEmbeddings <= 0:
		return fmt.Errorf("max_position_embeddings must be positive")
	case c.PositionEmbeddingType != "" && c.PositionEmbeddingType != "absolute":
		return fmt.Errorf("position_embedding_type %q is not supported (only absolute)", c.PositionEmbeddingType)
	}
	return model.CheckActivation(c.HiddenAct)
}

// NumLabels is the classifier's output size (from id2label; 2 by default, as HF).
func (c *Config) NumLabels() int {
	if len(c.ID2Label) > 0 {
		return len(c.ID2Label)
	}
	switch v := c.Raw["num_labels"].(type) {
	case float64:
		return int(v)
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return int(n)
		}
	}
	return 2
}

// MarshalJSON writes Raw overlaid with the typed fields.
func (c *Config) MarshalJSON() ([]byte, error) {
	type plain Config
	return model.MarshalConfig((*plain)(c), c.Raw)
}
