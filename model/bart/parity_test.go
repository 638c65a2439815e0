package bart

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/re2g/re2g/model"
	"github.com/re2g/re2g/torch"
)

const parityDir = "../../testdata/parity/bart"

func loadParity(t *testing.T) (*Model, *model.Reference, *GenerationConfig) {
	t.Helper()
	ref, err := model.ReadReference(filepath.Join(parityDir, "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Load(parityDir, model.Options{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	g, err := ReadGenerationConfig(parityDir, m.Cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m, ref, g
}

func maxDiff(t *testing.T, got *torch.Tensor, want model.RefTensor, keep func(i int) bool) float64 {
	t.Helper()
	v, err := got.Float64s()
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != len(want.Data) {
		t.Fatalf("%d values, want %d (shape %v vs %v)", len(v), len(want.Data), got.Shape(), want.Shape)
	}
	worst := 0.0
	for i := range v {
		if keep(i) {
			worst = math.Max(worst, math.Abs(v[i]-want.Data[i]))
		}
	}
	return worst
}

func TestParityBartForward(t *testing.T) {
	m, ref, _ := loadParity(t)
	defer m.Close()
	if len(m.Report.Unexpected) != 0 {
		t.Fatalf("unexpected tensors %v", m.Report.Unexpected)
	}
	s := torch.NewScope().NoGrad()
	defer s.Close()
	ids, shape := model.Flat(ref.Inputs["input_ids"])
	mask, _ := model.Flat(ref.Inputs["attention_mask"])
	dec, dshape := model.Flat(ref.Inputs["decoder_input_ids"])
	decMask := ref.Inputs["decoder_attention_mask"]
	maskT := s.FromInt64(mask, shape...)
	enc := m.Encode(s, s.FromInt64(ids, shape...), maskT, false)
	logits := m.Decode(s, s.FromInt64(dec, dshape...), enc, maskT, nil, false)
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	d := shape[1]
	encDiff := maxDiff(t, enc, ref.Outputs["encoder_last_hidden_state"], func(i int) bool {
		pos := i / int(m.Cfg.DModel)
		return ref.Inputs["attention_mask"][pos/int(d)][pos%int(d)] == 1
	})
	v := int(m.Cfg.VocabSize)
	logitDiff := maxDiff(t, logits, ref.Outputs["logits"], func(i int) bool {
		pos := i / v
		return decMask[pos/int(dshape[1])][pos%int(dshape[1])] == 1
	})
	t.Logf("encoder max abs difference %.2e, decoder logits %.2e", encDiff, logitDiff)
	if encDiff > 1e-4 || logitDiff > 1e-4 {
		t.Fatalf("differs from transformers: encoder %.2e, logits %.2e", encDiff, logitDiff)
	}
}

func TestParityBartGenerate(t *testing.T) {
	m, ref, base := loadParity(t)
	defer m.Close()
	s := torch.NewScope().NoGrad()
	defer s.Close()
	ids, shape := model.Flat(ref.Inputs["input_ids"])
	mask, _ := model.Flat(ref.Inputs["attention_mask"])
	in, inMask := s.FromInt64(ids, shape...), s.FromInt64(mask, shape...)
	for name, c := range ref.Generate {
		t.Run(name, func(t *testing.T) {
			g := *base
			for k, v := range c.Kwargs {
				switch k {
				case "max_length":
					g.MaxLength = int(v.(float64))
				case "num_beams":
					g.NumBeams = int(v.(float64))
				case "num_return_sequences":
					g.NumReturnSequences = int(v.(float64))
				case "no_repeat_ngram_size":
					g.NoRepeatNgramSize = int(v.(float64))
				case "min_length":
					g.MinLength = int(v.(float64))
				case "length_penalty":
					g.LengthPenalty = v.(float64)
				case "early_stopping":
					switch v {
					case true:
						g.EarlyStopping = EarlyStopTrue
					case false:
						g.EarlyStopping = EarlyStopFalse
					default:
						g.EarlyStopping = EarlyStopNever
					}
				case "do_sample", "output_scores", "return_dict_in_generate":
				default:
					t.Fatalf("kwarg %s not handled by the test", k)
				}
			}
			if _, ok := c.Kwargs["num_return_sequences"]; !ok {
				g.NumReturnSequences = 1
			}
			out, err := m.Generate(context.Background(), in, inMask, &g)
			if err != nil {
				t.Fatal(err)
			}
			k := 0
			for b := range out {
				for _, seq := range out[b] {
					want := c.Sequences[k]
					for len(want) > 1 && want[len(want)-1] == g.PadTokenID {
						want = want[:len(want)-1]
					}
					if !equal(seq.IDs, want) {
						t.Errorf("input %d sequence %d: got %v, transformers %v", b, k, seq.IDs, want)
					}
					if c.SequencesScores != nil {
						if d := math.Abs(seq.Score - c.SequencesScores.Data[k]); d > 1e-4 {
							t.Errorf("input %d sequence %d: score %.6f, transformers %.6f", b, k, seq.Score, c.SequencesScores.Data[k])
						}
					}
					k++
				}
			}
			if k != len(c.Sequences) {
				t.Fatalf("%d sequences, transformers %d", k, len(c.Sequences))
			}
		})
	}
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
