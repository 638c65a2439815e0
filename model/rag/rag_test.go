package rag

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"testing"

	"github.com/re2g/re2g/model"
	"github.com/re2g/re2g/model/bart"
	"github.com/re2g/re2g/model/bert"
	"github.com/re2g/re2g/torch"
)

const fixtures = "../../testdata/hf"

// ref is the reference.json of a RAG fixture (scripts/make_hf_fixtures.py).
type ref struct {
	ModelClass          string `json:"model_class"`
	TransformersVersion string `json:"transformers_version"`
	RAG                 struct {
		TitleSep          string `json:"title_sep"`
		DocSep            string `json:"doc_sep"`
		NDocs             int    `json:"n_docs"`
		MaxCombinedLength int    `json:"max_combined_length"`
		ProjectionDim     int64  `json:"projection_dim"`
	} `json:"rag"`
	Inputs struct {
		QuestionInputIDs      [][]int64 `json:"question_input_ids"`
		QuestionAttentionMask [][]int64 `json:"question_attention_mask"`
		QuestionTokenTypeIDs  [][]int64 `json:"question_token_type_ids"`
		ContextInputIDs       [][]int64 `json:"context_input_ids"`
		ContextAttentionMask  [][]int64 `json:"context_attention_mask"`
		DecoderInputIDs       [][]int64 `json:"decoder_input_ids"`
	} `json:"inputs"`
	Outputs          map[string]model.RefTensor `json:"outputs"`
	Logits           logitsRef                  `json:"logits"`
	Generate         map[string]generateCase    `json:"generate"`
	GenerationConfig map[string]any             `json:"generation_config"`
}

type logitsRef struct {
	Shape     []int64         `json:"shape"`
	IDs       []int64         `json:"ids"`
	AtIDs     model.RefTensor `json:"at_ids"`
	LogSumExp model.RefTensor `json:"logsumexp"`
	Argmax    [][]int64       `json:"argmax"`
	Targets   [][]int64       `json:"targets"`
	AtTargets model.RefTensor `json:"at_targets"`
}

type generateCase struct {
	Kwargs          map[string]any   `json:"kwargs"`
	Sequences       [][]int64        `json:"sequences"`
	SequencesScores *model.RefTensor `json:"sequences_scores"`
}

func readRef(t *testing.T, name string) *ref {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, name, "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r ref
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

// outputs computes what the references record: the question encoder's
// vectors and the generator's logits [B·n_docs, T, V].
func outputs(t *testing.T, s *torch.Scope, m *Model, r *ref) (q, logits *torch.Tensor) {
	t.Helper()
	ids, shape := model.Flat(r.Inputs.QuestionInputIDs)
	mask, _ := model.Flat(r.Inputs.QuestionAttentionMask)
	types, _ := model.Flat(r.Inputs.QuestionTokenTypeIDs)
	q = m.QuestionEncoder.Encode(s, bert.Inputs{IDs: s.FromInt64(ids, shape...), TypeIDs: s.FromInt64(types, shape...),
		Mask: s.FromInt64(mask, shape...)}, false)
	cids, cshape := model.Flat(r.Inputs.ContextInputIDs)
	cmask, _ := model.Flat(r.Inputs.ContextAttentionMask)
	dec, dshape := model.Flat(r.Inputs.DecoderInputIDs)
	cm := s.FromInt64(cmask, cshape...)
	enc := m.Generator.Encode(s, s.FromInt64(cids, cshape...), cm, false)
	logits = m.Generator.Decode(s, s.FromInt64(dec, dshape...), enc, cm, nil, false)
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return q, logits
}

func maxAbsDiff(t *testing.T, got *torch.Tensor, want []float64) float64 {
	t.Helper()
	v, err := got.Float64s()
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != len(want) {
		t.Fatalf("%d values, reference %d", len(v), len(want))
	}
	d := 0.0
	for i := range v {
		d = math.Max(d, math.Abs(v[i]-want[i]))
	}
	return d
}

// logitsDiff compares logits with the compact reference (row log-sum-exp,
// argmax, logits at fixed ids and at the targets).
func logitsDiff(t *testing.T, logits *torch.Tensor, want *logitsRef) (float64, int) {
	t.Helper()
	if !model.EqualShape(logits.Shape(), want.Shape) {
		t.Fatalf("logits shape %v, reference %v", logits.Shape(), want.Shape)
	}
	v, err := logits.Float64s()
	if err != nil {
		t.Fatal(err)
	}
	b, tt, n := int(want.Shape[0]), int(want.Shape[1]), int(want.Shape[2])
	d, am := 0.0, 0
	for i := 0; i < b*tt; i++ {
		row := v[i*n : (i+1)*n]
		best, m := 0, math.Inf(-1)
		for k, x := range row {
			if x > row[best] {
				best = k
			}
			m = math.Max(m, x)
		}
		sum := 0.0
		for _, x := range row {
			sum += math.Exp(x - m)
		}
		d = math.Max(d, math.Abs(m+math.Log(sum)-want.LogSumExp.Data[i]))
		if int64(best) != want.Argmax[i/tt][i%tt] {
			am++
		}
		for k, id := range want.IDs {
			d = math.Max(d, math.Abs(row[id]-want.AtIDs.Data[i*len(want.IDs)+k]))
		}
		d = math.Max(d, math.Abs(row[want.Targets[i/tt][i%tt]]-want.AtTargets.Data[i]))
	}
	return d, am
}

func applyKwargs(g bart.GenerationConfig, kw map[string]any) (bart.GenerationConfig, error) {
	for k, v := range kw {
		f, _ := v.(float64)
		switch k {
		case "max_length":
			g.MaxLength = int(f)
		case "min_length":
			g.MinLength = int(f)
		case "num_beams":
			g.NumBeams = int(f)
		case "num_return_sequences":
			g.NumReturnSequences = int(f)
		case "no_repeat_ngram_size":
			g.NoRepeatNgramSize = int(f)
		case "length_penalty":
			g.LengthPenalty = f
		case "early_stopping":
			g.EarlyStopping = bart.EarlyStopFalse
			if v == true {
				g.EarlyStopping = bart.EarlyStopTrue
			}
		case "do_sample":
		default:
			return g, fmt.Errorf("generate argument %s not supported", k)
		}
	}
	return g, nil
}

// checkGenerate runs every recorded generate() call of the generator on the
// recorded sources (kwargs over the directory's generation settings; the
// "dir_config" case is the settings alone) and reports differences.
func checkGenerate(t *testing.T, m *bart.Model, r *ref, base *bart.GenerationConfig) {
	t.Helper()
	s := torch.NewScope().NoGrad()
	defer s.Close()
	cids, cshape := model.Flat(r.Inputs.ContextInputIDs)
	cmask, _ := model.Flat(r.Inputs.ContextAttentionMask)
	ids, mask := s.FromInt64(cids, cshape...), s.FromInt64(cmask, cshape...)
	names := make([]string, 0, len(r.Generate))
	for n := range r.Generate {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		c := r.Generate[name]
		g, err := applyKwargs(*base, c.Kwargs)
		if err != nil {
			t.Fatal(err)
		}
		seqs, err := m.Generate(context.Background(), ids, mask, &g)
		if err != nil {
			t.Fatalf("generate %s: %v", name, err)
		}
		var got [][]int64
		var scores []float64
		for _, per := range seqs {
			for _, sq := range per {
				got = append(got, sq.IDs)
				scores = append(scores, sq.Score)
			}
		}
		bad, d := 0, 0.0
		if len(got) != len(c.Sequences) {
			t.Fatalf("generate %s: %d sequences, transformers %d", name, len(got), len(c.Sequences))
		}
		for i, want := range c.Sequences {
			for len(want) > 1 && want[len(want)-1] == g.PadTokenID {
				want = want[:len(want)-1]
			}
			if !slices.Equal(got[i], want) {
				bad++
				t.Logf("generate %s sequence %d: %v, transformers %v", name, i, got[i], want)
			}
			if c.SequencesScores != nil {
				d = math.Max(d, math.Abs(scores[i]-c.SequencesScores.Data[i]))
			}
		}
		t.Logf("generate %s: %d of %d sequences differ, scores max |diff| %.3g", name, bad, len(got), d)
		if bad > 0 || d > 1e-5 {
			t.Errorf("generate %s differs from transformers", name)
		}
	}
}

// checkGenerationConfig compares the settings re2g reads from the directory
// with those transformers' from_pretrained made of it (unset ones aside).
func checkGenerationConfig(t *testing.T, g *bart.GenerationConfig, want map[string]any) {
	t.Helper()
	b, _ := json.Marshal(g)
	var got map[string]any
	_ = json.Unmarshal(b, &got)
	for k, w := range want {
		if w == nil {
			continue
		}
		if fmt.Sprint(got[k]) != fmt.Sprint(w) {
			t.Errorf("generation setting %s = %v, transformers %v", k, got[k], w)
		}
	}
}

// TestHFFixtures loads the RAG fixtures (RagTokenForGeneration and
// RagSequenceForGeneration, as model.safetensors and as pytorch_model.bin)
// strictly and checks both models against transformers: question vectors and
// generator logits within 1e-5, generated ids identical, and the generation
// settings transformers reads from the directory.
func TestHFFixtures(t *testing.T) {
	for _, name := range []string{"rag-token", "rag-sequence"} {
		r := readRef(t, name)
		for _, format := range []string{"safetensors", "bin"} {
			t.Run(name+"/"+format, func(t *testing.T) {
				dir := filepath.Join(fixtures, name, format)
				if !IsDir(dir) {
					t.Fatal("not recognised as a RAG directory")
				}
				m, err := Load(dir, model.Options{})
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close()
				c := m.Cfg
				if c.TitleSep != r.RAG.TitleSep || c.DocSep != r.RAG.DocSep || c.NDocs != r.RAG.NDocs ||
					c.MaxCombinedLength != r.RAG.MaxCombinedLength || c.Architectures[0] != r.ModelClass {
					t.Errorf("config %+v, reference %+v", c, r.RAG)
				}
				dim := c.QuestionEncoder.HiddenSize
				if r.RAG.ProjectionDim > 0 {
					dim = r.RAG.ProjectionDim
				}
				if !m.QuestionEncoder.Question || m.QuestionEncoder.Dim() != dim {
					t.Errorf("question encoder: question %v, dim %d", m.QuestionEncoder.Question, m.QuestionEncoder.Dim())
				}
				if g := m.Generator; g.LMHead != g.Shared.Weight || g.Encoder.EmbedTokens != g.Shared.Weight {
					t.Error("generator embedding not tied")
				}
				s := torch.NewScope().NoGrad()
				defer s.Close()
				q, logits := outputs(t, s, m, r)
				dq := maxAbsDiff(t, q, r.Outputs["question_encoder_pooler_output"].Data)
				dl, am := logitsDiff(t, logits, &r.Logits)
				t.Logf("question encoder max |diff| %.3g, generator logits max |diff| %.3g (transformers %s)", dq, dl, r.TransformersVersion)
				if dq > 1e-5 || dl > 1e-5 || am > 0 {
					t.Errorf("differs from transformers: question %g, logits %g, %d argmax rows", dq, dl, am)
				}
				gen, err := ReadGenerationConfig(dir, c)
				if err != nil {
					t.Fatal(err)
				}
				checkGenerationConfig(t, gen, r.GenerationConfig)
				checkGenerate(t, m.Generator, r, gen)
			})
		}
	}
}

// TestLoadParts loads each model alone, as neural does.
func TestLoadParts(t *testing.T) {
	dir := filepath.Join(fixtures, "rag-token", "bin")
	q, cfg, err := LoadQuestionEncoder(dir, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	q.Close()
	g, _, err := LoadGenerator(dir, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	g.Close()
	if cfg.QuestionEncoder.HiddenSize != 32 || cfg.Generator.DModel != 32 {
		t.Errorf("sub-configs %+v %+v", cfg.QuestionEncoder, cfg.Generator)
	}
	if IsDir(filepath.Join(fixtures, "bart", "safetensors")) {
		t.Error("a BART directory taken for a RAG one")
	}
	if _, _, err := LoadGenerator(filepath.Join(fixtures, "bart", "safetensors"), model.Options{}); err == nil {
		t.Error("a BART directory loaded as RAG")
	}
}

// TestSaveRoundTrip: Save writes exactly the tensor names and the config
// transformers' save_pretrained wrote, and Load reads back the same models.
func TestSaveRoundTrip(t *testing.T) {
	for _, name := range []string{"rag-token", "rag-sequence"} {
		t.Run(name, func(t *testing.T) {
			r := readRef(t, name)
			src := filepath.Join(fixtures, name, "safetensors")
			m, err := Load(src, model.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			gen, err := ReadGenerationConfig(src, m.Cfg)
			if err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(t.TempDir(), name)
			if err := m.Save(dst, gen); err != nil {
				t.Fatal(err)
			}
			if err := CopyTokenizers(src, dst); err != nil {
				t.Fatal(err)
			}
			a, err := model.OpenCheckpoint(src)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			b, err := model.OpenCheckpoint(dst)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if !slices.Equal(a.Names(), b.Names()) {
				t.Errorf("saved names differ from transformers':\n%v\n%v", a.Names(), b.Names())
			}
			for _, n := range a.Names() {
				ia, _ := a.Info(n)
				ib, _ := b.Info(n)
				if !model.EqualShape(ia.Shape, ib.Shape) || ia.DType != ib.DType {
					t.Errorf("%s: %v %v saved as %v %v", n, ia.DType, ia.Shape, ib.DType, ib.Shape)
				}
			}
			var ca, cb map[string]any
			if err := model.ReadJSON(src, "config.json", &ca); err != nil {
				t.Fatal(err)
			}
			if err := model.ReadJSON(dst, "config.json", &cb); err != nil {
				t.Fatal(err)
			}
			for k, v := range ca {
				if k == "generator" || k == "question_encoder" {
					for kk, vv := range v.(map[string]any) {
						if fmt.Sprint(cb[k].(map[string]any)[kk]) != fmt.Sprint(vv) {
							t.Errorf("config %s.%s: %v, saved %v", k, kk, vv, cb[k].(map[string]any)[kk])
						}
					}
				} else if fmt.Sprint(cb[k]) != fmt.Sprint(v) {
					t.Errorf("config %s: %v, saved %v", k, v, cb[k])
				}
			}
			m2, err := Load(dst, model.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer m2.Close()
			s := torch.NewScope().NoGrad()
			defer s.Close()
			q1, l1 := outputs(t, s, m, r)
			q2, l2 := outputs(t, s, m2, r)
			v1, _ := q1.Float32s()
			v2, _ := q2.Float32s()
			w1, _ := l1.Float32s()
			w2, _ := l2.Float32s()
			if !slices.Equal(v1, v2) || !slices.Equal(w1, w2) {
				t.Error("saved model computes other outputs")
			}
			if g2, err := ReadGenerationConfig(dst, m2.Cfg); err != nil || !reflect.DeepEqual(g2, gen) {
				t.Errorf("generation settings %+v, saved %+v (%v)", gen, g2, err)
			}
			for _, sub := range []string{QuestionEncoderTokenizer, GeneratorTokenizer} {
				if _, err := os.Stat(filepath.Join(dst, sub)); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// TestSaveForTransformers writes the RAG fixtures as re2g saves them into
// $RE2G_RAG_SAVED, for scripts/make_hf_fixtures.py --check-rag to load with
// transformers (skipped without the variable).
func TestSaveForTransformers(t *testing.T) {
	out := os.Getenv("RE2G_RAG_SAVED")
	if out == "" {
		t.Skip("RE2G_RAG_SAVED not set")
	}
	for _, name := range []string{"rag-token", "rag-sequence"} {
		src := filepath.Join(fixtures, name, "bin")
		m, err := Load(src, model.Options{})
		if err != nil {
			t.Fatal(err)
		}
		gen, err := ReadGenerationConfig(src, m.Cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Save(filepath.Join(out, name), gen); err != nil {
			t.Fatal(err)
		}
		if err := CopyTokenizers(src, filepath.Join(out, name)); err != nil {
			t.Fatal(err)
		}
		m.Close()
	}
}

// TestNewSave builds a RAG model from fresh parts and saves it with the
// default RagConfig.
func TestNewSave(t *testing.T) {
	qc := &bert.Config{VocabSize: 50, HiddenSize: 16, NumHiddenLayers: 1, NumAttentionHeads: 2, IntermediateSize: 32,
		HiddenAct: "gelu", MaxPositionEmbeddings: 32, TypeVocabSize: 2, LayerNormEps: 1e-12}
	q, err := bert.NewDPR(qc, true, torch.CPUDevice)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	gc := &bart.Config{VocabSize: 40, DModel: 16, EncoderLayers: 1, DecoderLayers: 1, EncoderAttentionHeads: 2,
		DecoderAttentionHeads: 2, EncoderFFNDim: 32, DecoderFFNDim: 32, ActivationFunction: "gelu",
		MaxPositionEmbeddings: 32, PadTokenID: 1, EOSTokenID: 2, DecoderStartTokenID: 2}
	g, err := bart.New(gc, torch.CPUDevice)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	dir := t.TempDir()
	if err := Save(dir, nil, q, g, nil); err != nil {
		t.Fatal(err)
	}
	m, err := Load(dir, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Cfg.Architectures[0] != RagToken || m.Cfg.TitleSep != " / " || m.Cfg.DocSep != " // " || m.Cfg.NDocs != 5 {
		t.Errorf("config %+v", m.Cfg)
	}
	ps, err := m.Parameters()
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) == 0 || ps[0].Name[:len(QuestionEncoderPrefix)] != QuestionEncoderPrefix {
		t.Errorf("parameters %d, first %s", len(ps), ps[0].Name)
	}
}
