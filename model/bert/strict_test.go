package bert

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/re2g/re2g/internal/fixturedir"
	"github.com/re2g/re2g/model"
	"github.com/re2g/re2g/torch"
)

// bertLoaders load each BERT-family fixture of testdata/hf with the loader
// of its role.
var bertLoaders = map[string]func(dir string) (func(), error){
	"bert": func(dir string) (func(), error) {
		m, err := LoadEncoder(dir, model.Options{})
		if err != nil {
			return nil, err
		}
		return m.Close, nil
	},
	"dpr-question": loadDPR,
	"dpr-ctx":      loadDPR,
	"cross-encoder-1": func(dir string) (func(), error) {
		c, err := LoadCrossEncoder(dir, model.Options{})
		if err != nil {
			return nil, err
		}
		return c.Close, nil
	},
}

func loadDPR(dir string) (func(), error) {
	d, err := LoadDPR(dir, model.Options{})
	if err != nil {
		return nil, err
	}
	return d.Close, nil
}

// TestConfigFewerLayersThanCheckpoint: a config.json with fewer layers than
// its checkpoint used to load silently, the last layers left out (DPR
// vectors off by up to 2.3). Every loader refuses it, saying how many layers
// each has, in both formats; the copies with the right count still load.
func TestConfigFewerLayersThanCheckpoint(t *testing.T) {
	for name, load := range bertLoaders {
		for _, format := range []string{"safetensors", "bin"} {
			t.Run(name+"/"+format, func(t *testing.T) {
				src := filepath.Join("../../testdata/hf", name, format)
				closeFn, err := load(fixturedir.Copy(t, src))
				if err != nil {
					t.Fatalf("unmodified copy: %v", err)
				}
				closeFn()
				dir := fixturedir.WithConfig(t, src, func(m map[string]any) { m["num_hidden_layers"] = 1 })
				_, err = load(dir)
				fixturedir.WantErr(t, "1 layer of 2", err, dir, "num_hidden_layers 1", "2 layers")
				// more layers than the checkpoint: the missing ones are named
				dir = fixturedir.WithConfig(t, src, func(m map[string]any) { m["num_hidden_layers"] = 3 })
				_, err = load(dir)
				fixturedir.WantErr(t, "3 layers of 2", err, dir, "num_hidden_layers 3", "2 layers")
			})
		}
	}
}

// TestUnexpectedTensors: a tensor the model has no place for is an error
// naming the weight file and the tensor.
func TestUnexpectedTensors(t *testing.T) {
	for name, load := range bertLoaders {
		t.Run(name, func(t *testing.T) {
			dir := fixturedir.Copy(t, filepath.Join("../../testdata/hf", name, "safetensors"))
			s := torch.NewScope()
			defer s.Close()
			fixturedir.AddTensors(t, filepath.Join(dir, "model.safetensors"), map[string]*torch.Tensor{
				"extra_head.weight": s.Zeros(torch.Float32, torch.CPUDevice, 2, 32),
			})
			_, err := load(dir)
			fixturedir.WantErr(t, "extra tensor", err, filepath.Join(dir, "model.safetensors"), "unexpected", "extra_head.weight")
		})
	}
}

// TestWrongModelType: a config whose model_type or architectures do not fit
// the loader is refused, saying what was expected and what was found.
func TestWrongModelType(t *testing.T) {
	gpt2 := func(m map[string]any) {
		m["model_type"] = "gpt2"
		m["architectures"] = []any{"GPT2LMHeadModel"}
	}
	hf := func(name string) string { return filepath.Join("../../testdata/hf", name, "safetensors") }
	for _, c := range []struct {
		what string
		dir  string
		load func(string) (func(), error)
		want []string
	}{
		{"gpt2 config as DPR", fixturedir.WithConfig(t, hf("dpr-ctx"), gpt2), loadDPR, []string{`"gpt2"`, "GPT2LMHeadModel", `"dpr"`, "DPRContextEncoder"}},
		{"gpt2 config as BertModel", fixturedir.WithConfig(t, hf("bert"), gpt2), bertLoaders["bert"], []string{`"gpt2"`, `"bert"`, "BertModel"}},
		{"gpt2 config as cross-encoder", fixturedir.WithConfig(t, hf("cross-encoder-1"), gpt2), bertLoaders["cross-encoder-1"], []string{`"gpt2"`, "BertForSequenceClassification"}},
		{"cross-encoder as DPR", hf("cross-encoder-1"), loadDPR, []string{"BertForSequenceClassification", "DPRContextEncoder"}},
		{"cross-encoder as BertModel", hf("cross-encoder-1"), bertLoaders["bert"], []string{"BertForSequenceClassification", "BertModel"}},
		{"DPR as cross-encoder", hf("dpr-question"), bertLoaders["cross-encoder-1"], []string{`"dpr"`, "DPRQuestionEncoder", "BertForSequenceClassification"}},
		{"BertModel as cross-encoder", hf("bert"), bertLoaders["cross-encoder-1"], []string{"BertModel", "BertForSequenceClassification"}},
		{"BART as DPR", hf("bart"), loadDPR, []string{`"bart"`, "BartForConditionalGeneration", "DPR"}},
	} {
		_, err := c.load(c.dir)
		fixturedir.WantErr(t, c.what, err, append([]string{c.dir}, c.want...)...)
	}
}

// TestAllowedExtras: the extras real checkpoints carry load: pretraining
// heads (cls.*) under a BertModel, a pooler in a DPR checkpoint (DPR has
// none; transformers ignores it too), old position_ids buffers (the bin
// fixtures hold them).
func TestAllowedExtras(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	z := func(shape ...int64) *torch.Tensor { return s.Zeros(torch.Float32, torch.CPUDevice, shape...) }
	bertDir := fixturedir.Copy(t, filepath.Join("../../testdata/hf/bert/safetensors"))
	fixturedir.AddTensors(t, filepath.Join(bertDir, "model.safetensors"), map[string]*torch.Tensor{
		"cls.predictions.bias": z(332), "cls.predictions.transform.dense.weight": z(32, 32),
	})
	fixturedir.EditJSON(t, filepath.Join(bertDir, "config.json"), func(m map[string]any) { m["architectures"] = []any{"BertForMaskedLM"} })
	if closeFn, err := bertLoaders["bert"](bertDir); err != nil {
		t.Errorf("BertForMaskedLM checkpoint as BertModel: %v", err)
	} else {
		closeFn()
	}
	dprDir := fixturedir.Copy(t, filepath.Join("../../testdata/hf/dpr-question/safetensors"))
	fixturedir.AddTensors(t, filepath.Join(dprDir, "model.safetensors"), map[string]*torch.Tensor{
		"question_encoder.bert_model.pooler.dense.weight": z(32, 32), "question_encoder.bert_model.pooler.dense.bias": z(32),
	})
	if closeFn, err := loadDPR(dprDir); err != nil {
		t.Errorf("DPR checkpoint with a pooler: %v", err)
	} else {
		closeFn()
	}
	// an old config without model_type or architectures: the tensors decide
	old := fixturedir.WithConfig(t, filepath.Join("../../testdata/hf/dpr-ctx/bin"), func(m map[string]any) {
		delete(m, "model_type")
		delete(m, "architectures")
	})
	if closeFn, err := loadDPR(old); err != nil {
		t.Errorf("config without model_type: %v", err)
	} else {
		closeFn()
	}
	var probe struct {
		ModelType string `json:"model_type"`
	}
	if err := model.ReadJSON(old, "config.json", &probe); err != nil || probe.ModelType != "" {
		t.Fatalf("model_type not removed: %v %q", err, probe.ModelType)
	}
}

// TestConfigByteOrderMark: a config.json saved with a UTF-8 byte order mark
// loads (it used to fail with "invalid character 'ï'").
func TestConfigByteOrderMark(t *testing.T) {
	dir := fixturedir.Copy(t, "../../testdata/hf/dpr-ctx/safetensors")
	p := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, append([]byte("\xef\xbb\xbf"), b...), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := LoadDPR(dir, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Dim() != 16 {
		t.Errorf("dim %d, want the fixture's projection 16", d.Dim())
	}
}
