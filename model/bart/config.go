// Package bart is BART (BartForConditionalGeneration) in Go on libtorch:
// encoder-decoder with tied embeddings, final_logits_bias, learned positions
// with offset 2 and layernorm_embedding, a KV cache, and greedy and beam
// generation that reproduce transformers' generate() token for token. It
// follows transformers' modeling_bart.py and generation utilities.
package bart

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/re2g/re2g/model"
)

// Config is the part of a BART config.json that re2g reads; Raw keeps the
// whole file so that saving round-trips unknown fields.
type Config struct {
	Architectures         []string `json:"architectures,omitempty"`
	ModelType             string   `json:"model_type"`
	VocabSize             int64    `json:"vocab_size"`
	DModel                int64    `json:"d_model"`
	EncoderLayers         int      `json:"encoder_layers"`
	DecoderLayers         int      `json:"decoder_layers"`
	EncoderAttentionHeads int64    `json:"encoder_attention_heads"`
	DecoderAttentionHeads int64    `json:"decoder_attention_heads"`
	EncoderFFNDim         int64    `json:"encoder_ffn_dim"`
	DecoderFFNDim         int64    `json:"decoder_ffn_dim"`
	ActivationFunction    string   `json:"activation_function"`
	Dropout               float64  `json:"dropout"`
	AttentionDropout      float64  `json:"attention_dropout"`
	ActivationDropout     float64  `json:"activation_dropout"`
	MaxPositionEmbeddings int64    `json:"max_position_embeddings"`
	ScaleEmbedding        bool     `json:"scale_embedding"`
	InitStd               float64  `json:"init_std"`
	PadTokenID            int64    `json:"pad_token_id"`
	BOSTokenID            int64    `json:"bos_token_id"`
	EOSTokenID            int64    `json:"eos_token_id"`
	DecoderStartTokenID   int64    `json:"decoder_start_token_id"`
	ForcedBOSTokenID      *int64   `json:"forced_bos_token_id,omitempty"`
	ForcedEOSTokenID      *int64   `json:"forced_eos_token_id,omitempty"`
	TieWordEmbeddings     *bool    `json:"tie_word_embeddings,omitempty"`
	NormalizeBefore       bool     `json:"normalize_before,omitempty"`

	Raw map[string]any `json:"-"`
}

// defaultConfig holds BartConfig's defaults for the fields re2g reads.
func defaultConfig() *Config {
	return &Config{ActivationFunction: "gelu", PadTokenID: 1, BOSTokenID: 0, EOSTokenID: 2, DecoderStartTokenID: 2, InitStd: 0.02}
}

// ParseConfig parses and checks a BART config (a config.json's contents, or
// the "generator" sub-config of a RAG config.json).
func ParseConfig(b []byte) (*Config, error) {
	c := defaultConfig()
	if err := json.Unmarshal(b, c); err != nil {
		return nil, err
	}
	if c.ModelType != "" && c.ModelType != "bart" {
		return nil, fmt.Errorf("model_type %q is not BART (\"bart\")", c.ModelType)
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

// Role is what Load reads: BartForConditionalGeneration (BartModel is
// what some configs, e.g. facebook/bart-large's, name for the same
// checkpoint layout).
var Role = model.Role{Name: "a BART generator", ModelTypes: []string{"bart"}, Architectures: []string{"BartForConditionalGeneration", "BartModel"}}

// ReadConfig reads and checks dir/config.json, refusing it unless it fits Role.
func ReadConfig(dir string) (*Config, error) { return model.ReadConfig(dir, Role, ParseConfig) }

// Check validates the sizes.
func (c *Config) Check() error {
	switch {
	case c.VocabSize <= 0 || c.DModel <= 0 || c.EncoderLayers <= 0 || c.DecoderLayers <= 0:
		return fmt.Errorf("vocab_size, d_model, encoder_layers and decoder_layers must be positive")
	case c.EncoderAttentionHeads <= 0 || c.DModel%c.EncoderAttentionHeads != 0:
		return fmt.Errorf("d_model %d is not a multiple of encoder_attention_heads %d", c.DModel, c.EncoderAttentionHeads)
	case c.DecoderAttentionHeads <= 0 || c.DModel%c.DecoderAttentionHeads != 0:
		return fmt.Errorf("d_model %d is not a multiple of decoder_attention_heads %d", c.DModel, c.DecoderAttentionHeads)
	case c.EncoderFFNDim <= 0 || c.DecoderFFNDim <= 0 || c.MaxPositionEmbeddings <= 0:
		return fmt.Errorf("encoder_ffn_dim, decoder_ffn_dim and max_position_embeddings must be positive")
	case c.NormalizeBefore:
		return fmt.Errorf("normalize_before (mBART-style pre-LN) is not supported")
	case c.TieWordEmbeddings != nil && !*c.TieWordEmbeddings:
		return fmt.Errorf("tie_word_embeddings=false is not supported")
	}
	return model.CheckActivation(c.ActivationFunction)
}

func (c *Config) embedScale() float64 {
	if c.ScaleEmbedding {
		return math.Sqrt(float64(c.DModel))
	}
	return 1
}

// MarshalJSON writes Raw overlaid with the typed fields.
func (c *Config) MarshalJSON() ([]byte, error) {
	type plain Config
	return model.MarshalConfig((*plain)(c), c.Raw)
}
