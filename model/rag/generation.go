package rag

import (
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/re2g/re2g/model/bart"
)

// generationKeys are the generation settings re2g reads from a model config.
var generationKeys = []string{
	"max_length", "max_new_tokens", "min_length", "num_beams", "num_return_sequences", "length_penalty",
	"early_stopping", "no_repeat_ngram_size", "decoder_start_token_id", "bos_token_id", "eos_token_id",
	"pad_token_id", "forced_bos_token_id", "forced_eos_token_id",
}

// ReadGenerationConfig is the generation settings of a RAG directory: its
// generation_config.json over the generator's defaults when there is one;
// otherwise as transformers derives them from the model config
// (GenerationConfig.from_model_config, transformers 5): each setting from
// the RagConfig's top level where it is not null, else from the generator
// sub-config, else generate()'s default. (transformers 4 took the generator's
// value also where the top level held the default value itself.)
func ReadGenerationConfig(dir string, cfg *Config) (*bart.GenerationConfig, error) {
	if _, err := os.Stat(filepath.Join(dir, "generation_config.json")); err == nil {
		return bart.ReadGenerationConfig(dir, cfg.Generator)
	}
	return GenerationConfigFromModelConfig(cfg)
}

// GenerationConfigFromModelConfig derives the generation settings from the
// RagConfig alone (see ReadGenerationConfig).
func GenerationConfigFromModelConfig(cfg *Config) (*bart.GenerationConfig, error) {
	merged := map[string]json.RawMessage{}
	take := func(raw map[string]any) error {
		for _, k := range generationKeys {
			v := raw[k]
			// eos_token_id may be a list; re2g uses its first entry.
			if l, ok := v.([]any); ok {
				v = nil
				if len(l) > 0 {
					v = l[0]
				}
			}
			if v == nil {
				continue
			}
			b, err := json.Marshal(v)
			if err != nil {
				return err
			}
			merged[k] = b
		}
		return nil
	}
	if err := take(cfg.Generator.Raw); err != nil {
		return nil, err
	}
	if err := take(cfg.Raw); err != nil {
		return nil, err
	}
	g := bart.DefaultGenerationConfig(cfg.Generator)
	b, err := json.Marshal(merged)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, g); err != nil {
		return nil, err
	}
	return g, g.Check()
}
