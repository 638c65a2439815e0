package bert

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/re2g/re2g/model"
	"github.com/re2g/re2g/torch"
)

const parityDir = "../../testdata/parity"

func inputs(t *testing.T, s *torch.Scope, ref *model.Reference, types bool) Inputs {
	t.Helper()
	ids, shape := model.Flat(ref.Inputs["input_ids"])
	mask, _ := model.Flat(ref.Inputs["attention_mask"])
	in := Inputs{IDs: s.FromInt64(ids, shape...), Mask: s.FromInt64(mask, shape...)}
	if tt, ok := ref.Inputs["token_type_ids"]; ok && types {
		ty, _ := model.Flat(tt)
		in.TypeIDs = s.FromInt64(ty, shape...)
	}
	return in
}

// compare checks got against the reference at the rows/positions the mask keeps.
func compare(t *testing.T, what string, got *torch.Tensor, want model.RefTensor, rowMask [][]int64, tol float64) {
	t.Helper()
	if gs := got.Shape(); len(gs) != len(want.Shape) {
		t.Fatalf("%s: shape %v, want %v", what, gs, want.Shape)
	}
	v, err := got.Float64s()
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != len(want.Data) {
		t.Fatalf("%s: %d values, want %d", what, len(v), len(want.Data))
	}
	inner := 1
	if rowMask != nil {
		inner = len(v) / (len(rowMask) * len(rowMask[0]))
	}
	worst := 0.0
	for i := range v {
		if rowMask != nil {
			pos := i / inner
			if rowMask[pos/len(rowMask[0])][pos%len(rowMask[0])] == 0 {
				continue
			}
		}
		worst = math.Max(worst, math.Abs(v[i]-want.Data[i]))
	}
	t.Logf("%s: max abs difference %.2e", what, worst)
	if worst > tol {
		t.Fatalf("%s differs from transformers %s by %.2e (tolerance %.0e)", what, "", worst, tol)
	}
}

func TestParityBertModel(t *testing.T) {
	for _, dir := range []string{"bert", "bert-sharded", "bert-f16"} {
		t.Run(dir, func(t *testing.T) {
			p := filepath.Join(parityDir, dir)
			ref, err := model.ReadReference(filepath.Join(p, "reference.json"))
			if err != nil {
				t.Fatal(err)
			}
			m, err := LoadEncoder(p, model.Options{DType: torch.Float32, Strict: true})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			s := torch.NewScope().NoGrad()
			defer s.Close()
			h := m.Forward(s, inputs(t, s, ref, true), false)
			pooled := m.Pool(s, h)
			if err := s.Err(); err != nil {
				t.Fatal(err)
			}
			compare(t, "last_hidden_state", h, ref.Outputs["last_hidden_state"], ref.Inputs["attention_mask"], 1e-4)
			compare(t, "pooler_output", pooled, ref.Outputs["pooler_output"], nil, 1e-4)
		})
	}
}

func TestParityDPR(t *testing.T) {
	for _, c := range []struct {
		dir      string
		question bool
		dim      int64
	}{{"dpr-question", true, 32}, {"dpr-ctx", false, 16}} {
		t.Run(c.dir, func(t *testing.T) {
			p := filepath.Join(parityDir, c.dir)
			ref, err := model.ReadReference(filepath.Join(p, "reference.json"))
			if err != nil {
				t.Fatal(err)
			}
			d, err := LoadDPR(p, model.Options{Strict: true})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if d.Question != c.question || d.Dim() != c.dim {
				t.Fatalf("question %v dim %d", d.Question, d.Dim())
			}
			s := torch.NewScope().NoGrad()
			defer s.Close()
			e := d.Encode(s, inputs(t, s, ref, true), false)
			if err := s.Err(); err != nil {
				t.Fatal(err)
			}
			compare(t, "pooler_output", e, ref.Outputs["pooler_output"], nil, 1e-4)
		})
	}
}

func TestParityCrossEncoder(t *testing.T) {
	for _, dir := range []string{"cross-encoder-1", "cross-encoder-2"} {
		t.Run(dir, func(t *testing.T) {
			p := filepath.Join(parityDir, dir)
			ref, err := model.ReadReference(filepath.Join(p, "reference.json"))
			if err != nil {
				t.Fatal(err)
			}
			c, err := LoadCrossEncoder(p, model.Options{Strict: true})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			s := torch.NewScope().NoGrad()
			defer s.Close()
			l := c.Logits(s, inputs(t, s, ref, true), false)
			if err := s.Err(); err != nil {
				t.Fatal(err)
			}
			compare(t, "logits", l, ref.Outputs["logits"], nil, 1e-4)
		})
	}
}
