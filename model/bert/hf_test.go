package bert

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/re2g/re2g/model"
	"github.com/re2g/re2g/torch"
)

// hfRef is a reference.json of testdata/hf (scripts/make_hf_fixtures.py):
// the inputs transformers' tokenizer made from the fixture's texts and the
// outputs transformers computed from them.
type hfRef struct {
	ModelClass          string                     `json:"model_class"`
	TransformersVersion string                     `json:"transformers_version"`
	Inputs              map[string][][]int64       `json:"inputs"`
	Outputs             map[string]model.RefTensor `json:"outputs"`
}

// hfDir is the fixture directory in one format and its reference.
func hfDir(t *testing.T, name, format string) (string, *hfRef) {
	t.Helper()
	base := filepath.Join("../../testdata/hf", name)
	b, err := os.ReadFile(filepath.Join(base, "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r hfRef
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(base, format), &r
}

func hfInputs(s *torch.Scope, r *hfRef) Inputs {
	ids, shape := model.Flat(r.Inputs["input_ids"])
	mask, _ := model.Flat(r.Inputs["attention_mask"])
	in := Inputs{IDs: s.FromInt64(ids, shape...), Mask: s.FromInt64(mask, shape...)}
	if tt, ok := r.Inputs["token_type_ids"]; ok {
		ty, _ := model.Flat(tt)
		in.TypeIDs = s.FromInt64(ty, shape...)
	}
	return in
}

// maxDiff is the largest |got - want| over the rows keep allows (keep nil:
// all; else keep[b][l] != 0 for the [b, l, ...] entries to compare).
func maxDiff(t *testing.T, got *torch.Tensor, want model.RefTensor, keep [][]int64) float64 {
	t.Helper()
	v, err := got.Float64s()
	if err != nil {
		t.Fatal(err)
	}
	if !model.EqualShape(got.Shape(), want.Shape) {
		t.Fatalf("shape %v, reference %v", got.Shape(), want.Shape)
	}
	inner := 1
	if keep != nil {
		inner = len(v) / (len(keep) * len(keep[0]))
	}
	d := 0.0
	for i := range v {
		if keep != nil {
			pos := i / inner
			if keep[pos/len(keep[0])][pos%len(keep[0])] == 0 {
				continue
			}
		}
		d = math.Max(d, math.Abs(v[i]-want.Data[i]))
	}
	return d
}

// TestHFFixtures loads every BERT-family fixture of testdata/hf in both
// formats (model.safetensors and pytorch_model.bin with tied copies and
// position_ids buffers) strictly and checks the outputs against
// transformers' within 1e-5.
func TestHFFixtures(t *testing.T) {
	const tol = 1e-5
	for _, name := range []string{"bert", "dpr-question", "dpr-ctx", "cross-encoder-1", "cross-encoder-2"} {
		for _, format := range []string{"safetensors", "bin"} {
			t.Run(name+"/"+format, func(t *testing.T) {
				dir, r := hfDir(t, name, format)
				opt := model.Options{}
				s := torch.NewScope().NoGrad()
				defer s.Close()
				in := hfInputs(s, r)
				check := func(out string, got *torch.Tensor, keep [][]int64) {
					if err := s.Err(); err != nil {
						t.Fatal(err)
					}
					d := maxDiff(t, got, r.Outputs[out], keep)
					t.Logf("%s: max |diff| %.3g (transformers %s)", out, d, r.TransformersVersion)
					if d > tol {
						t.Errorf("%s differs from transformers by %g", out, d)
					}
				}
				switch r.ModelClass {
				case "BertModel":
					m, err := LoadEncoder(dir, opt)
					if err != nil {
						t.Fatal(err)
					}
					defer m.Close()
					h := m.Forward(s, in, false)
					check("last_hidden_state", h, r.Inputs["attention_mask"])
					check("pooler_output", m.Pool(s, h), nil)
				case "DPRQuestionEncoder", "DPRContextEncoder":
					d, err := LoadDPR(dir, opt)
					if err != nil {
						t.Fatal(err)
					}
					defer d.Close()
					if d.Question != (r.ModelClass == "DPRQuestionEncoder") {
						t.Errorf("Question = %v for a %s", d.Question, r.ModelClass)
					}
					check("pooler_output", d.Encode(s, in, false), nil)
				case "BertForSequenceClassification":
					c, err := LoadCrossEncoder(dir, opt)
					if err != nil {
						t.Fatal(err)
					}
					defer c.Close()
					check("logits", c.Logits(s, in, false), nil)
				default:
					t.Fatalf("model class %s", r.ModelClass)
				}
			})
		}
	}
}
