package rag

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/re2g/re2g/internal/fixturedir"
	"github.com/re2g/re2g/model"
	"github.com/re2g/re2g/torch"
)

// TestSubConfigLayersMustMatchCheckpoint: a RagConfig whose question
// encoder or generator has fewer layers than the checkpoint is refused by
// every loader that reads that part; a loader of the other part alone
// still loads it.
func TestSubConfigLayersMustMatchCheckpoint(t *testing.T) {
	for _, format := range []string{"safetensors", "bin"} {
		src := filepath.Join(fixtures, "rag-sequence", format)
		q := fixturedir.WithConfig(t, src, func(m map[string]any) {
			m["question_encoder"].(map[string]any)["num_hidden_layers"] = 1
		})
		_, err := Load(q, model.Options{})
		fixturedir.WantErr(t, format+" question encoder, Load", err, q, "num_hidden_layers 1", "2 layers")
		_, _, err = LoadQuestionEncoder(q, model.Options{})
		fixturedir.WantErr(t, format+" question encoder, LoadQuestionEncoder", err, q, "num_hidden_layers 1", "2 layers")
		g, _, err := LoadGenerator(q, model.Options{})
		if err != nil {
			t.Fatalf("%s: the generator alone: %v", format, err)
		}
		g.Close()

		gen := fixturedir.WithConfig(t, src, func(m map[string]any) {
			m["generator"].(map[string]any)["encoder_layers"] = 1
		})
		_, err = Load(gen, model.Options{})
		fixturedir.WantErr(t, format+" generator, Load", err, gen, "encoder_layers 1", "2 layers")
		_, _, err = LoadGenerator(gen, model.Options{})
		fixturedir.WantErr(t, format+" generator, LoadGenerator", err, gen, "encoder_layers 1", "2 layers")
	}
}

// TestUnexpectedTensorsAndTypes: a tensor under neither model, or under one
// model's prefix but none of its fields, is an error of every loader that
// reads that part; a question encoder sub-config of another type is refused.
func TestUnexpectedTensorsAndTypes(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	for _, extra := range []string{"rag.ctx_encoder.weight", QuestionEncoderPrefix + "bert_model.encoder.layer.0.extra", GeneratorPrefix + "model.extra"} {
		dir := fixturedir.Copy(t, filepath.Join(fixtures, "rag-token", "safetensors"))
		fixturedir.AddTensors(t, filepath.Join(dir, "model.safetensors"), map[string]*torch.Tensor{extra: s.Zeros(torch.Float32, torch.CPUDevice, 2)})
		_, err := Load(dir, model.Options{})
		fixturedir.WantErr(t, extra+", Load", err, filepath.Join(dir, "model.safetensors"), "unexpected", extra)
		q, _, qerr := LoadQuestionEncoder(dir, model.Options{})
		g, _, gerr := LoadGenerator(dir, model.Options{})
		if strings.HasPrefix(extra, GeneratorPrefix) {
			fixturedir.WantErr(t, extra+", LoadGenerator", gerr, extra)
			if qerr != nil {
				t.Errorf("%s: question encoder alone: %v", extra, qerr)
			} else {
				q.Close()
			}
		} else {
			fixturedir.WantErr(t, extra+", LoadQuestionEncoder", qerr, extra)
			if strings.HasPrefix(extra, QuestionEncoderPrefix) {
				if gerr != nil {
					t.Errorf("%s: generator alone: %v", extra, gerr)
				} else {
					g.Close()
				}
			} else {
				fixturedir.WantErr(t, extra+", LoadGenerator", gerr, extra)
			}
		}
	}
	bad := fixturedir.WithConfig(t, filepath.Join(fixtures, "rag-token", "safetensors"), func(m map[string]any) {
		m["question_encoder"].(map[string]any)["model_type"] = "roberta"
	})
	_, err := Load(bad, model.Options{})
	fixturedir.WantErr(t, "roberta question encoder", err, bad, `"roberta"`, "DPR")
	_, err = Load(filepath.Join(fixtures, "bart", "safetensors"), model.Options{})
	fixturedir.WantErr(t, "BART directory", err, `"bart"`, "RagTokenForGeneration")
}
