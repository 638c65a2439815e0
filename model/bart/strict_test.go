package bart

import (
	"path/filepath"
	"testing"

	"github.com/re2g/re2g/internal/fixturedir"
	"github.com/re2g/re2g/model"
	"github.com/re2g/re2g/torch"
)

// TestConfigLayersMustMatchCheckpoint: a config.json with fewer (or more)
// encoder or decoder layers than the checkpoint is refused, in both formats.
func TestConfigLayersMustMatchCheckpoint(t *testing.T) {
	for _, format := range []string{"safetensors", "bin"} {
		src := filepath.Join("../../testdata/hf/bart", format)
		for _, c := range []struct {
			field string
			n     int
		}{{"encoder_layers", 1}, {"decoder_layers", 1}, {"encoder_layers", 3}} {
			dir := fixturedir.WithConfig(t, src, func(m map[string]any) { m[c.field] = c.n })
			_, err := Load(dir, model.Options{})
			fixturedir.WantErr(t, format+" "+c.field, err, dir, c.field, "2 layers")
		}
	}
}

// TestUnexpectedAndWrongType: an extra tensor, and configs of other models
// (GPT-2, a DPR question encoder), are refused.
func TestUnexpectedAndWrongType(t *testing.T) {
	dir := fixturedir.Copy(t, "../../testdata/hf/bart/safetensors")
	s := torch.NewScope()
	defer s.Close()
	fixturedir.AddTensors(t, filepath.Join(dir, "model.safetensors"), map[string]*torch.Tensor{
		"classification_head.dense.weight": s.Zeros(torch.Float32, torch.CPUDevice, 32, 32),
	})
	_, err := Load(dir, model.Options{})
	fixturedir.WantErr(t, "extra tensor", err, filepath.Join(dir, "model.safetensors"), "unexpected", "classification_head.dense.weight")

	gpt2 := fixturedir.WithConfig(t, "../../testdata/hf/bart/safetensors", func(m map[string]any) {
		m["model_type"] = "gpt2"
		m["architectures"] = []any{"GPT2LMHeadModel"}
	})
	_, err = Load(gpt2, model.Options{})
	fixturedir.WantErr(t, "gpt2", err, gpt2, `"gpt2"`, `"bart"`, "BartForConditionalGeneration")

	q := "../../testdata/hf/dpr-question/safetensors"
	_, err = Load(q, model.Options{})
	fixturedir.WantErr(t, "DPR question encoder", err, q, `"dpr"`, "DPRQuestionEncoder", "BartForConditionalGeneration")

	r := "../../testdata/hf/rag-token/safetensors"
	_, err = Load(r, model.Options{})
	fixturedir.WantErr(t, "RAG directory", err, r, `"rag"`, "BartForConditionalGeneration")
}
