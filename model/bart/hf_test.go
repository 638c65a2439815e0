package bart

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/re2g/re2g/model"
	"github.com/re2g/re2g/torch"
)

// hfLogits is the compact form in which testdata/hf records LM logits
// [B, T, V] (scripts/make_hf_fixtures.py logits_ref): each row's
// log-sum-exp and argmax, the logits at fixed ids and at the target ids.
type hfLogits struct {
	Shape     []int64         `json:"shape"`
	IDs       []int64         `json:"ids"`
	AtIDs     model.RefTensor `json:"at_ids"`
	LogSumExp model.RefTensor `json:"logsumexp"`
	Argmax    [][]int64       `json:"argmax"`
	Targets   [][]int64       `json:"targets"`
	AtTargets model.RefTensor `json:"at_targets"`
}

// checkHFLogits compares logits [B, T, V] with the reference: the largest
// absolute difference of the recorded values, and how many rows have
// another argmax.
func checkHFLogits(logits *torch.Tensor, want *hfLogits) (maxDiff float64, argmaxDiffs int, err error) {
	if !model.EqualShape(logits.Shape(), want.Shape) {
		return 0, 0, fmt.Errorf("logits shape %v, reference %v", logits.Shape(), want.Shape)
	}
	v, err := logits.Float64s()
	if err != nil {
		return 0, 0, err
	}
	b, t, n := int(want.Shape[0]), int(want.Shape[1]), int(want.Shape[2])
	for i := 0; i < b; i++ {
		for j := 0; j < t; j++ {
			row := v[(i*t+j)*n : (i*t+j+1)*n]
			best, lse := 0, math.Inf(-1)
			for k, x := range row {
				if x > row[best] {
					best = k
				}
				lse = math.Max(lse, x)
			}
			m, sum := lse, 0.0
			for _, x := range row {
				sum += math.Exp(x - m)
			}
			lse = m + math.Log(sum)
			if int64(best) != want.Argmax[i][j] {
				argmaxDiffs++
			}
			maxDiff = math.Max(maxDiff, math.Abs(lse-want.LogSumExp.Data[i*t+j]))
			for k, id := range want.IDs {
				maxDiff = math.Max(maxDiff, math.Abs(row[id]-want.AtIDs.Data[(i*t+j)*len(want.IDs)+k]))
			}
			tg := want.Targets[i][j]
			maxDiff = math.Max(maxDiff, math.Abs(row[tg]-want.AtTargets.Data[i*t+j]))
		}
	}
	return maxDiff, argmaxDiffs, nil
}

// hfGenerateCase is one recorded generate() call.
type hfGenerateCase struct {
	Kwargs          map[string]any   `json:"kwargs"`
	Sequences       [][]int64        `json:"sequences"`
	SequencesScores *model.RefTensor `json:"sequences_scores"`
}

// applyKwargs sets generate()'s arguments on g.
func applyKwargs(g GenerationConfig, kw map[string]any) (GenerationConfig, error) {
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
			g.EarlyStopping = EarlyStopFalse
			if v == true {
				g.EarlyStopping = EarlyStopTrue
			}
		case "do_sample":
		default:
			return g, fmt.Errorf("generate argument %s not supported", k)
		}
	}
	return g, nil
}

// checkHFGenerate runs every recorded generate() call on ids/mask with the
// kwargs over base and returns, per case, the sequences that differ and the
// largest score difference.
func checkHFGenerate(ctx context.Context, m *Model, ids, mask *torch.Tensor, base *GenerationConfig, cases map[string]hfGenerateCase) (map[string][2]float64, error) {
	out := map[string][2]float64{}
	names := make([]string, 0, len(cases))
	for n := range cases {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		c := cases[name]
		g, err := applyKwargs(*base, c.Kwargs)
		if err != nil {
			return nil, err
		}
		if _, ok := c.Kwargs["num_return_sequences"]; !ok && len(c.Kwargs) > 0 {
			g.NumReturnSequences = 1
		}
		seqs, err := m.Generate(ctx, ids, mask, &g)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		bad, maxd, k := 0, 0.0, 0
		for _, per := range seqs {
			for _, sq := range per {
				if k >= len(c.Sequences) {
					bad++
					continue
				}
				want := c.Sequences[k]
				for len(want) > 1 && want[len(want)-1] == g.PadTokenID {
					want = want[:len(want)-1]
				}
				if !slices.Equal(sq.IDs, want) {
					bad++
				}
				if c.SequencesScores != nil {
					maxd = math.Max(maxd, math.Abs(sq.Score-c.SequencesScores.Data[k]))
				}
				k++
			}
		}
		if k != len(c.Sequences) {
			bad += int(math.Abs(float64(len(c.Sequences) - k)))
		}
		out[name] = [2]float64{float64(bad), maxd}
	}
	return out, nil
}

// TestHFFixture loads testdata/hf/bart in both formats strictly (its
// pytorch_model.bin keeps the tied embedding under four names) and checks
// the encoder states, teacher-forced logits and every generate() call of
// transformers: values within 1e-5, ids identical.
func TestHFFixture(t *testing.T) {
	base := "../../testdata/hf/bart"
	b, err := os.ReadFile(filepath.Join(base, "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		TransformersVersion string                     `json:"transformers_version"`
		Inputs              map[string][][]int64       `json:"inputs"`
		Outputs             map[string]model.RefTensor `json:"outputs"`
		Logits              hfLogits                   `json:"logits"`
		Generate            map[string]hfGenerateCase  `json:"generate"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"safetensors", "bin"} {
		t.Run(format, func(t *testing.T) {
			dir := filepath.Join(base, format)
			m, err := Load(dir, model.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if m.LMHead != m.Shared.Weight || m.Encoder.EmbedTokens != m.Shared.Weight || m.Decoder.EmbedTokens != m.Shared.Weight {
				t.Fatal("embedding not tied")
			}
			gen, err := ReadGenerationConfig(dir, m.Cfg)
			if err != nil {
				t.Fatal(err)
			}
			s := torch.NewScope().NoGrad()
			defer s.Close()
			ids, shape := model.Flat(r.Inputs["input_ids"])
			mask, _ := model.Flat(r.Inputs["attention_mask"])
			dec, dshape := model.Flat(r.Inputs["decoder_input_ids"])
			in, inMask := s.FromInt64(ids, shape...), s.FromInt64(mask, shape...)
			enc := m.Encode(s, in, inMask, false)
			logits := m.Decode(s, s.FromInt64(dec, dshape...), enc, inMask, nil, false)
			n := int64(0)
			for _, x := range r.Inputs["attention_mask"][0] {
				n += x
			}
			enc0 := s.Slice(s.Select(enc, 0, 0), 0, 0, n, 1)
			if err := s.Err(); err != nil {
				t.Fatal(err)
			}
			e0, _ := enc0.Float64s()
			want := r.Outputs["encoder_last_hidden_state_0"]
			d := 0.0
			for i := range want.Data {
				d = math.Max(d, math.Abs(e0[i]-want.Data[i]))
			}
			ld, am, err := checkHFLogits(logits, &r.Logits)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("encoder states max |diff| %.3g, logits max |diff| %.3g (transformers %s)", d, ld, r.TransformersVersion)
			if d > 1e-5 || ld > 1e-5 || am > 0 || len(e0) != len(want.Data) {
				t.Errorf("differs from transformers: encoder %g, logits %g, %d argmax rows", d, ld, am)
			}
			res, err := checkHFGenerate(context.Background(), m, in, inMask, gen, r.Generate)
			if err != nil {
				t.Fatal(err)
			}
			for name, v := range res {
				t.Logf("generate %s: %v sequences differ, scores max |diff| %.3g", name, v[0], v[1])
				if v[0] > 0 || v[1] > 1e-5 {
					t.Errorf("generate %s differs from transformers", name)
				}
			}
		})
	}
}
