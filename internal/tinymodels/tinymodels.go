// Package tinymodels writes small randomly initialised models (DPR question
// and context encoders, a cross-encoder, BART) with a real tokenizer, for
// tests and load benchmarks that need the real model code paths but not
// trained weights.
package tinymodels

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/re2g/re2g/model/bart"
	"github.com/re2g/re2g/model/bert"
	"github.com/re2g/re2g/torch"
)

// Size is a model size.
type Size struct {
	BertHidden, BertLayers, BertHeads int
	BartDModel, BartLayers, BartHeads int
}

var (
	// Tiny: the sizes of the pipeline's unit tests (BERT 32×2, BART 16×1).
	Tiny = Size{BertHidden: 32, BertLayers: 2, BertHeads: 4, BartDModel: 16, BartLayers: 1, BartHeads: 2}
	// Small: BERT 128×2 (bert-tiny's shape), BART 64×2.
	Small = Size{BertHidden: 128, BertLayers: 2, BertHeads: 2, BartDModel: 64, BartLayers: 2, BartHeads: 4}
)

// ParseSize maps "tiny" or "small" to a Size.
func ParseSize(s string) (Size, error) {
	switch s {
	case "tiny":
		return Tiny, nil
	case "small":
		return Small, nil
	}
	return Size{}, fmt.Errorf("model size %q: want tiny or small", s)
}

// Dirs are the written model directories.
type Dirs struct {
	QueryEncoder, CtxEncoder, Reranker, Generator string
}

// Write writes the four models under dir, each with tokenizerJSON (a
// bert-base-uncased tokenizer.json: the models use its 30,522-token
// vocabulary), from a fixed seed.
func Write(dir string, tokenizerJSON []byte, sz Size, seed uint64) (Dirs, error) {
	var d Dirs
	save := func(name string, f func(string) error) (string, error) {
		p := filepath.Join(dir, name)
		if err := f(p); err != nil {
			return "", fmt.Errorf("tiny model %s: %w", p, err)
		}
		if err := os.WriteFile(filepath.Join(p, "tokenizer.json"), tokenizerJSON, 0o644); err != nil {
			return "", fmt.Errorf("tiny model %s: %w", p, err)
		}
		return p, nil
	}
	bc := func() *bert.Config {
		return &bert.Config{ModelType: "bert", VocabSize: 30522, HiddenSize: int64(sz.BertHidden), NumHiddenLayers: sz.BertLayers,
			NumAttentionHeads: int64(sz.BertHeads), IntermediateSize: int64(2 * sz.BertHidden), HiddenAct: "gelu",
			MaxPositionEmbeddings: 512, TypeVocabSize: 2, LayerNormEps: 1e-12, ID2Label: map[string]string{"0": "LABEL_0"}}
	}
	torch.ManualSeed(seed)
	for _, question := range []bool{true, false} {
		m, err := bert.NewDPR(bc(), question, torch.CPUDevice)
		if err != nil {
			return d, err
		}
		name := map[bool]string{true: "query-encoder", false: "ctx-encoder"}[question]
		p, err := save(name, m.Save)
		m.Close()
		if err != nil {
			return d, err
		}
		if question {
			d.QueryEncoder = p
		} else {
			d.CtxEncoder = p
		}
	}
	ce, err := bert.NewCrossEncoder(bc(), torch.CPUDevice)
	if err != nil {
		return d, err
	}
	d.Reranker, err = save("reranker", ce.Save)
	ce.Close()
	if err != nil {
		return d, err
	}
	cfg := &bart.Config{ModelType: "bart", VocabSize: 30522, DModel: int64(sz.BartDModel), EncoderLayers: sz.BartLayers,
		DecoderLayers: sz.BartLayers, EncoderAttentionHeads: int64(sz.BartHeads), DecoderAttentionHeads: int64(sz.BartHeads),
		EncoderFFNDim: int64(2 * sz.BartDModel), DecoderFFNDim: int64(2 * sz.BartDModel), ActivationFunction: "gelu",
		MaxPositionEmbeddings: 512, PadTokenID: 0, BOSTokenID: 101, EOSTokenID: 102, DecoderStartTokenID: 102, InitStd: 0.5}
	m, err := bart.New(cfg, torch.CPUDevice)
	if err != nil {
		return d, err
	}
	g := bart.DefaultGenerationConfig(cfg)
	d.Generator, err = save("generator", func(p string) error { return m.Save(p, g) })
	m.Close()
	return d, err
}
