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
	Scale           float64 // largest absolute reference value compared
	Mismatched      int     // generated sequences whose ids differ
	Total           int
}

// OK reports whether the check is within tol.
func (c Check) OK(tol float64) bool { return c.MaxDiff <= tol && c.Mismatched == 0 }

// Tolerance is the largest absolute difference from transformers allowed
// in float32 (generated ids must be identical).
const Tolerance = 1e-4

// HalfTolerance bounds the difference, relative to the reference's scale, of
// a 16-bit run from transformers' float32 outputs: bf16 keeps 8 significant
// bits (relative step 2^-8 = 0.4%), and the layers compound it (the fixtures'
// spread random weights reach 4.5% on the CPU). A wrong mask or a lost bias
// is off by the whole scale. Generated ids are reported, not required equal:
// rounding reorders near-tied beams.
const HalfTolerance = 0.1

// Pass applies the rule for dt: Tolerance absolute and identical ids in
// float32, HalfTolerance relative in bfloat16 and float16.
func (c Check) Pass(dt torch.DType) bool {
	if half(dt) {
		return c.Relative() <= HalfTolerance
	}
	return c.OK(Tolerance)
}

// Rule says in words what Pass requires for dt.
func Rule(dt torch.DType) string {
	if half(dt) {
		return fmt.Sprintf("%v against float32 references: difference within %.0f%% of the output's scale, ids reported", dt, 100*HalfTolerance)
	}
	return fmt.Sprintf("max abs difference within %.0e, generated ids equal", Tolerance)
}

func half(dt torch.DType) bool { return dt == torch.BFloat16 || dt == torch.Float16 }

// Relative is MaxDiff over the reference's scale: the measure for 16-bit
// runs, whose error grows with the size of the values.
func (c Check) Relative() float64 {
	if c.Scale == 0 {
		return c.MaxDiff
	}
	return c.MaxDiff / c.Scale
}

func (c Check) String() string {
	if c.Total > 0 {
		return fmt.Sprintf("%-16s %-28s ids %d/%d equal, max score difference %.2e (relative %.1e)", c.Fixture, c.Output, c.Total-c.Mismatched, c.Total, c.MaxDiff, c.Relative())
	}
	return fmt.Sprintf("%-16s %-28s max abs difference %.2e (relative %.1e)", c.Fixture, c.Output, c.MaxDiff, c.Relative())
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

// diff compares got with want at the positions keep allows (keep nil: all)
// and returns a Check holding the largest absolute difference and the
// largest absolute reference value.
func diff(got *torch.Tensor, want model.RefTensor, keep [][]int64) (Check, error) {
	v, err := got.Float64s()
	if err != nil {
		return Check{}, err
	}
	if len(v) != len(want.Data) {
		return Check{}, fmt.Errorf("%d values, reference has %d (shape %v vs %v)", len(v), len(want.Data), got.Shape(), want.Shape)
	}
	inner := 1
	if keep != nil {
		inner = len(v) / (len(keep) * len(keep[0]))
	}
	var c Check
	for i := range v {
		if keep != nil {
			pos := i / inner
			if keep[pos/len(keep[0])][pos%len(keep[0])] == 0 {
				continue
			}
		}
		c.MaxDiff = math.Max(c.MaxDiff, math.Abs(v[i]-want.Data[i]))
		c.Scale = math.Max(c.Scale, math.Abs(want.Data[i]))
	}
	return c, nil
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
	m, err := bert.LoadEncoder(dir, model.Options{Device: dev, DType: dt})
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
	d1.Fixture, d1.Output = name, "last_hidden_state"
	d2.Fixture, d2.Output = name, "pooler_output"
	return []Check{d1, d2}, nil
}

// DPR checks a DPR encoder fixture.
func DPR(dir string, dev torch.Device, dt torch.DType) (Check, error) {
	ref, err := load(dir)
	if err != nil {
		return Check{}, err
	}
	d, err := bert.LoadDPR(dir, model.Options{Device: dev, DType: dt})
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
	c, err := diff(e, ref.Outputs["pooler_output"], nil)
	c.Fixture, c.Output = filepath.Base(dir), "pooler_output"
	return c, err
}

// CrossEncoder checks a BertForSequenceClassification fixture.
func CrossEncoder(dir string, dev torch.Device, dt torch.DType) (Check, error) {
	ref, err := load(dir)
	if err != nil {
		return Check{}, err
	}
	c, err := bert.LoadCrossEncoder(dir, model.Options{Device: dev, DType: dt})
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
	ck, err := diff(l, ref.Outputs["logits"], nil)
	ck.Fixture, ck.Output = filepath.Base(dir), "logits"
	return ck, err
}

// Bart checks the BART fixture: encoder states, teacher-forced logits and
// every recorded generate() call.
func Bart(ctx context.Context, dir string, dev torch.Device, dt torch.DType) ([]Check, error) {
	ref, err := load(dir)
	if err != nil {
		return nil, err
	}
	m, err := bart.Load(dir, model.Options{Device: dev, DType: dt})
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
	d1.Fixture, d1.Output = "bart", "encoder_last_hidden_state"
	d2.Fixture, d2.Output = "bart", "logits"
	out := []Check{d1, d2}
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
					ck.Scale = math.Max(ck.Scale, math.Abs(c.SequencesScores.Data[k]))
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
