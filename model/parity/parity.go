// Package parity checks re2g's models against the reference outputs that
// Hugging Face transformers computed for the checkpoints in testdata/parity,
// on any device and dtype: the tests run it on the CPU, `re2g device
// --parity` on a GPU.
package parity

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sort"

	"github.com/re2g/re2g/model"
	"github.com/re2g/re2g/model/bart"
	"github.com/re2g/re2g/model/bert"
	"github.com/re2g/re2g/torch"
)

// Check is one comparison: the largest absolute difference of a tensor
// output, or the count of generated sequences that differ.
type Check struct {
	Fixture, Output string
	MaxDiff         float64 // tensor outputs and sequence scores
	Mismatched      int     // generated sequences whose ids differ
	Total           int
}

// OK reports whether the check is within tol.
func (c Check) OK(tol float64) bool { return c.MaxDiff <= tol && c.Mismatched == 0 }

func (c Check) String() string {
	if c.Total > 0 {
		return fmt.Sprintf("%-16s %-28s ids %d/%d equal, max score difference %.2e", c.Fixture, c.Output, c.Total-c.Mismatched, c.Total, c.MaxDiff)
	}
	return fmt.Sprintf("%-16s %-28s max abs difference %.2e", c.Fixture, c.Output, c.MaxDiff)
}

// Run checks every fixture under dir on dev in dt.
func Run(ctx context.Context, dir string, dev torch.Device, dt torch.DType) ([]Check, error) {
	var out []Check
	for _, f := range []string{"bert", "bert-sharded", "bert-f16"} {
		c, err := Bert(filepath.Join(dir, f), dev, dt)
		if err != nil {
			return nil, err
		}
		out = append(out, c...)
	}
	for _, f := range []string{"dpr-question", "dpr-ctx"} {
		c, err := DPR(filepath.Join(dir, f), dev, dt)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	for _, f := range []string{"cross-encoder-1", "cross-encoder-2"} {
		c, err := CrossEncoder(filepath.Join(dir, f), dev, dt)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	c, err := Bart(ctx, filepath.Join(dir, "bart"), dev, dt)
	if err != nil {
		return nil, err
	}
	return append(out, c...), nil
}

func inputs(s *torch.Scope, ref *model.Reference, dev torch.Device) bert.Inputs {
	ids, shape := model.Flat(ref.Inputs["input_ids"])
	mask, _ := model.Flat(ref.Inputs["attention_mask"])
	in := bert.Inputs{IDs: s.To(s.FromInt64(ids, shape...), dev), Mask: s.To(s.FromInt64(mask, shape...), dev)}
	if tt, ok := ref.Inputs["token_type_ids"]; ok {
		ty, _ := model.Flat(tt)
		in.TypeIDs = s.To(s.FromInt64(ty, shape...), dev)
	}
	return in
}

// diff is the largest absolute difference between got and want at the
// positions keep allows (keep nil: all); inner is the size of one position.
func diff(got *torch.Tensor, want model.RefTensor, keep [][]int64) (float64, error) {
	v, err := got.Float64s()
	if err != nil {
		return 0, err
	}
	if len(v) != len(want.Data) {
		return 0, fmt.Errorf("%d values, reference has %d (shape %v vs %v)", len(v), len(want.Data), got.Shape(), want.Shape)
	}
	inner := 1
	if keep != nil {
		inner = len(v) / (len(keep) * len(keep[0]))
	}
	worst := 0.0
	for i := range v {
		if keep != nil {
			pos := i / inner
			if keep[pos/len(keep[0])][pos%len(keep[0])] == 0 {
				continue
			}
		}
		worst = math.Max(worst, math.Abs(v[i]-want.Data[i]))
	}
	return worst, nil
}

func load(dir string) (*model.Reference, error) {
	return model.ReadReference(filepath.Join(dir, "reference.json"))
}

// Bert checks a BertModel fixture: hidden states (attended positions) and pooler.
func Bert(dir string, dev torch.Device, dt torch.DType) ([]Check, error) {
	ref, err := load(dir)
	if err != nil {
		return nil, err
	}
	m, err := bert.LoadEncoder(dir, model.Options{Device: dev, DType: dt, Strict: true})
	if err != nil {
		return nil, err
	}
	defer m.Close()
	s := torch.NewScope().NoGrad()
	defer s.Close()
	h := m.Forward(s, inputs(s, ref, dev), false)
	p := m.Pool(s, h)
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	name := filepath.Base(dir)
	d1, err := diff(h, ref.Outputs["last_hidden_state"], ref.Inputs["attention_mask"])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	d2, err := diff(p, ref.Outputs["pooler_output"], nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return []Check{{Fixture: name, Output: "last_hidden_state", MaxDiff: d1}, {Fixture: name, Output: "pooler_output", MaxDiff: d2}}, nil
}

// DPR checks a DPR encoder fixture.
func DPR(dir string, dev torch.Device, dt torch.DType) (Check, error) {
	ref, err := load(dir)
	if err != nil {
		return Check{}, err
	}
	d, err := bert.LoadDPR(dir, model.Options{Device: dev, DType: dt, Strict: true})
	if err != nil {
		return Check{}, err
	}
	defer d.Close()
	s := torch.NewScope().NoGrad()
	defer s.Close()
	e := d.Encode(s, inputs(s, ref, dev), false)
	if err := s.Err(); err != nil {
		return Check{}, fmt.Errorf("%s: %w", dir, err)
	}
	md, err := diff(e, ref.Outputs["pooler_output"], nil)
	return Check{Fixture: filepath.Base(dir), Output: "pooler_output", MaxDiff: md}, err
}

// CrossEncoder checks a BertForSequenceClassification fixture.
func CrossEncoder(dir string, dev torch.Device, dt torch.DType) (Check, error) {
	ref, err := load(dir)
	if err != nil {
		return Check{}, err
	}
	c, err := bert.LoadCrossEncoder(dir, model.Options{Device: dev, DType: dt, Strict: true})
	if err != nil {
		return Check{}, err
	}
	defer c.Close()
	s := torch.NewScope().NoGrad()
	defer s.Close()
	l := c.Logits(s, inputs(s, ref, dev), false)
	if err := s.Err(); err != nil {
		return Check{}, fmt.Errorf("%s: %w", dir, err)
	}
	md, err := diff(l, ref.Outputs["logits"], nil)
	return Check{Fixture: filepath.Base(dir), Output: "logits", MaxDiff: md}, err
}

// Bart checks the BART fixture: encoder states, teacher-forced logits and
// every recorded generate() call.
func Bart(ctx context.Context, dir string, dev torch.Device, dt torch.DType) ([]Check, error) {
	ref, err := load(dir)
	if err != nil {
		return nil, err
	}
	m, err := bart.Load(dir, model.Options{Device: dev, DType: dt, Strict: true})
	if err != nil {
		return nil, err
	}
	defer m.Close()
	base, err := bart.ReadGenerationConfig(dir, m.Cfg)
	if err != nil {
		return nil, err
	}
	s := torch.NewScope().NoGrad()
	defer s.Close()
	ids, shape := model.Flat(ref.Inputs["input_ids"])
	mask, _ := model.Flat(ref.Inputs["attention_mask"])
	dec, dshape := model.Flat(ref.Inputs["decoder_input_ids"])
	in, inMask := s.To(s.FromInt64(ids, shape...), dev), s.To(s.FromInt64(mask, shape...), dev)
	enc := m.Encode(s, in, inMask, false)
	logits := m.Decode(s, s.To(s.FromInt64(dec, dshape...), dev), enc, inMask, nil, false)
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	d1, err := diff(enc, ref.Outputs["encoder_last_hidden_state"], ref.Inputs["attention_mask"])
	if err != nil {
		return nil, err
	}
	d2, err := diff(logits, ref.Outputs["logits"], ref.Inputs["decoder_attention_mask"])
	if err != nil {
		return nil, err
	}
	out := []Check{{Fixture: "bart", Output: "encoder_last_hidden_state", MaxDiff: d1}, {Fixture: "bart", Output: "logits", MaxDiff: d2}}
	names := make([]string, 0, len(ref.Generate))
	for n := range ref.Generate {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		c := ref.Generate[name]
		g, err := applyKwargs(*base, c.Kwargs)
		if err != nil {
			return nil, fmt.Errorf("%s: generate %s: %w", dir, name, err)
		}
		seqs, err := m.Generate(ctx, in, inMask, &g)
		if err != nil {
			return nil, fmt.Errorf("%s: generate %s: %w", dir, name, err)
		}
		ck := Check{Fixture: "bart", Output: "generate " + name}
		k := 0
		for _, per := range seqs {
			for _, sq := range per {
				if k >= len(c.Sequences) {
					ck.Mismatched++
					continue
				}
				want := c.Sequences[k]
				for len(want) > 1 && want[len(want)-1] == g.PadTokenID {
					want = want[:len(want)-1]
				}
				if !slices.Equal(sq.IDs, want) {
					ck.Mismatched++
				}
				if c.SequencesScores != nil {
					ck.MaxDiff = math.Max(ck.MaxDiff, math.Abs(sq.Score-c.SequencesScores.Data[k]))
				}
				k++
			}
		}
		ck.Total = len(c.Sequences)
		if k != len(c.Sequences) {
			ck.Mismatched += abs(len(c.Sequences) - k)
		}
		out = append(out, ck)
	}
	return out, nil
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// applyKwargs sets the generate() arguments a fixture recorded.
func applyKwargs(g bart.GenerationConfig, kw map[string]any) (bart.GenerationConfig, error) {
	g.NumReturnSequences = 1
	for k, v := range kw {
		f, _ := v.(float64)
		switch k {
		case "max_length":
			g.MaxLength = int(f)
		case "num_beams":
			g.NumBeams = int(f)
		case "num_return_sequences":
			g.NumReturnSequences = int(f)
		case "no_repeat_ngram_size":
			g.NoRepeatNgramSize = int(f)
		case "min_length":
			g.MinLength = int(f)
		case "length_penalty":
			g.LengthPenalty = f
		case "early_stopping":
			switch v {
			case true:
				g.EarlyStopping = bart.EarlyStopTrue
			case false:
				g.EarlyStopping = bart.EarlyStopFalse
			default:
				g.EarlyStopping = bart.EarlyStopNever
			}
		case "do_sample", "output_scores", "return_dict_in_generate":
		default:
			return g, fmt.Errorf("generate argument %s is not supported by the check", k)
		}
	}
	return g, nil
}
