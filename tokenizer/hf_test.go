package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// hfCases is testdata/hf/tokenizers/*/cases.json (scripts/make_hf_fixtures.py):
// ids that transformers' AutoTokenizer gives for real strings, per
// tokenizer_config.json variant of one set of vocabulary files.
type hfCases struct {
	TransformersVersion string      `json:"transformers_version"`
	TokenizersVersion   string      `json:"tokenizers_version"`
	Texts               []string    `json:"texts"`
	Pairs               [][2]string `json:"pairs"`
	PairMaxLength       int         `json:"pair_max_length"`
	Variants            map[string]struct {
		TokenizerConfig  map[string]any `json:"tokenizer_config"`
		SpecialTokensMap map[string]any `json:"special_tokens_map"`
		Config           map[string]any `json:"config"`
		Class            string         `json:"class"`
		IDs              [][]int        `json:"ids"`
		PairIDs          [][]int        `json:"pair_ids"`
		PairTypeIDs      [][]int        `json:"pair_type_ids"`
		Decoded          []string       `json:"decoded"`
		ModelMaxLength   int            `json:"model_max_length"`
	} `json:"variants"`
}

// variantDir lays out one variant as transformers read it: the vocabulary
// files, tokenizer_config.json, and special_tokens_map.json / config.json
// when the variant has them.
func variantDir(t *testing.T, src string, files []string, cfg, special, config map[string]any) string {
	t.Helper()
	d := t.TempDir()
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, v := range map[string]map[string]any{"tokenizer_config.json": cfg, "special_tokens_map.json": special, "config.json": config} {
		if v == nil {
			continue
		}
		b, _ := json.Marshal(v)
		if err := os.WriteFile(filepath.Join(d, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func checkHFCases(t *testing.T, dir string, files []string) {
	b, err := os.ReadFile(filepath.Join(dir, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c hfCases
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if len(c.Variants) == 0 || len(c.Texts) < 250 {
		t.Fatalf("%s: %d variants, %d texts", dir, len(c.Variants), len(c.Texts))
	}
	for name, v := range c.Variants {
		t.Run(name, func(t *testing.T) {
			tok, err := Load(variantDir(t, dir, files, v.TokenizerConfig, v.SpecialTokensMap, v.Config))
			if err != nil {
				t.Fatal(err)
			}
			bad := 0
			for i, text := range c.Texts {
				got := tok.Encode(text).IDs
				if !slices.Equal(got, v.IDs[i]) {
					if bad++; bad <= 5 {
						t.Errorf("text %d %q:\n got  %v\n want %v", i, text, got, v.IDs[i])
					}
				}
				if v.Decoded != nil {
					d, err := tok.Decode(v.IDs[i], true)
					if err != nil || d != v.Decoded[i] {
						if bad++; bad <= 5 {
							t.Errorf("decode text %d: got %q (%v), want %q", i, d, err, v.Decoded[i])
						}
					}
				}
			}
			for i, p := range c.Pairs {
				e, err := tok.EncodeWith(p[0], p[1], true, Options{MaxLength: c.PairMaxLength, Truncation: OnlySecond})
				if err != nil {
					t.Fatalf("pair %d: %v", i, err)
				}
				if !slices.Equal(e.IDs, v.PairIDs[i]) || (v.PairTypeIDs != nil && !slices.Equal(e.TypeIDs, v.PairTypeIDs[i])) {
					if bad++; bad <= 5 {
						t.Errorf("pair %d %q:\n got  %v %v\n want %v %v", i, p, e.IDs, e.TypeIDs, v.PairIDs[i], v.PairTypeIDs[i])
					}
				}
			}
			if tok.ModelMaxLength != v.ModelMaxLength {
				t.Errorf("model_max_length %d, want %d", tok.ModelMaxLength, v.ModelMaxLength)
			}
			t.Logf("%s (%s): %d texts, %d pairs, %d mismatches (transformers %s, tokenizers %s)",
				name, v.Class, len(c.Texts), len(c.Pairs), bad, c.TransformersVersion, c.TokenizersVersion)
		})
	}
}

// TestHFWordPieceVocabTxt: bert-base-uncased's vocab.txt without
// tokenizer.json, under tokenizer_config.json variants (do_lower_case true,
// false and absent; strip_accents; tokenize_chinese_chars; no
// tokenizer_class), against transformers' BertTokenizer.
func TestHFWordPieceVocabTxt(t *testing.T) {
	checkHFCases(t, "../testdata/hf/tokenizers/wordpiece", []string{"vocab.txt"})
}

// TestHFByteLevelBPEFiles: vocab.json + merges.txt (a 5,000-merge subset of
// GPT-2's, BART's special tokens) without tokenizer.json, against
// transformers' BartTokenizer / RobertaTokenizer.
func TestHFByteLevelBPEFiles(t *testing.T) {
	checkHFCases(t, "../testdata/hf/tokenizers/bpe", []string{"vocab.json", "merges.txt"})
}

// TestHFBertClassRebuildsNormalizer: with a tokenizer.json, transformers'
// BERT tokenizer classes rebuild the normalizer from tokenizer_config.json
// (do_lower_case defaulting to true) and PreTrainedTokenizerFast keeps
// tokenizer.json's. Expected tokens as transformers 5.12.1 gives them for
// bert-base-uncased's tokenizer.json with its normalizer's lowercase set.
func TestHFBertClassRebuildsNormalizer(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(dataDir, "tokenizers/bert-base-uncased/tokenizer.json"))
	if err != nil {
		t.Skipf("shared data not available: %v", err)
	}
	for _, c := range []struct {
		jsonLower bool
		cfg       string // tokenizer_config.json ("": none)
		config    string // config.json ("": none)
		want      []string
	}{
		{true, `{"tokenizer_class": "BertTokenizer", "do_lower_case": false}`, "", []string{"[UNK]", "[UNK]"}},
		{false, `{"tokenizer_class": "BertTokenizer"}`, "", []string{"hello", "world"}},
		{false, `{"tokenizer_class": "DPRQuestionEncoderTokenizerFast"}`, "", []string{"hello", "world"}},
		{false, `{"tokenizer_class": "PreTrainedTokenizerFast"}`, "", []string{"[UNK]", "[UNK]"}},
		{false, "", `{"model_type": "bert"}`, []string{"hello", "world"}},
		{true, `{"tokenizer_class": "BertTokenizer", "do_lower_case": true, "strip_accents": false}`, "", []string{"[UNK]", "world"}},
	} {
		var j map[string]any
		if err := json.Unmarshal(b, &j); err != nil {
			t.Fatal(err)
		}
		n := j["normalizer"].(map[string]any)
		n["lowercase"], n["strip_accents"] = c.jsonLower, nil
		d := t.TempDir()
		jb, _ := json.Marshal(j)
		os.WriteFile(filepath.Join(d, "tokenizer.json"), jb, 0o644)
		if c.cfg != "" {
			os.WriteFile(filepath.Join(d, "tokenizer_config.json"), []byte(c.cfg), 0o644)
		}
		if c.config != "" {
			os.WriteFile(filepath.Join(d, "config.json"), []byte(c.config), 0o644)
		}
		tok, err := Load(d)
		if err != nil {
			t.Fatal(err)
		}
		e := tok.Encode("Héllo World")
		var got []string
		for _, id := range e.IDs[1 : len(e.IDs)-1] {
			s, _ := tok.IDToToken(id)
			got = append(got, s)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("tokenizer.json lowercase %v, %s %s: %v, transformers %v", c.jsonLower, c.cfg, c.config, got, c.want)
		}
	}
}
