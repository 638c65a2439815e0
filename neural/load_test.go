package neural

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/re2g/re2g/internal/fixturedir"
	"github.com/re2g/re2g/torch"
)

// loaders are the three entry points, each closing what it loaded.
var loaders = map[string]func(dir string, opt Options) error{
	"encoder": func(dir string, opt Options) error {
		e, err := LoadEncoder(dir, opt)
		if err == nil {
			e.Close()
		}
		return err
	},
	"reranker": func(dir string, opt Options) error {
		r, err := LoadReranker(dir, opt)
		if err == nil {
			r.Close()
		}
		return err
	},
	"generator": func(dir string, opt Options) error {
		g, err := LoadGenerator(dir, opt)
		if err == nil {
			g.Close()
		}
		return err
	},
}

func hfDir(name string) string { return filepath.Join(fixtures, name, "safetensors") }

// TestModelOfWrongRole: a model directory given in another model's place
// (a reranker as the context encoder, a DPR question encoder as the
// generator, a GPT-2 config anywhere) is refused with what was expected and
// what was found; each fixture loads in its own role.
func TestModelOfWrongRole(t *testing.T) {
	roles := map[string]string{
		"dpr-question": "encoder", "dpr-ctx": "encoder", "bert": "encoder", "rag-token": "encoder+generator",
		"cross-encoder-1": "reranker", "bart": "generator",
	}
	found := map[string][]string{
		"dpr-question": {`"dpr"`, "DPRQuestionEncoder"}, "dpr-ctx": {`"dpr"`, "DPRContextEncoder"}, "bert": {`"bert"`, "BertModel"},
		"rag-token": {`"rag"`, "RagTokenForGeneration"}, "cross-encoder-1": {`"bert"`, "BertForSequenceClassification"},
		"bart": {`"bart"`, "BartForConditionalGeneration"},
	}
	expected := map[string][]string{
		"encoder":   {"an encoder needs", "DPRContextEncoder", "BertModel", "RagTokenForGeneration"},
		"reranker":  {"a cross-encoder reranker needs", "BertForSequenceClassification"},
		"generator": {"a generator needs", "BartForConditionalGeneration", "RagTokenForGeneration"},
	}
	for name, role := range roles {
		for what, load := range loaders {
			err := load(hfDir(name), Options{})
			if strings.Contains(role, what) {
				if err != nil {
					t.Errorf("%s as %s: %v", name, what, err)
				}
				continue
			}
			fixturedir.WantErr(t, fmt.Sprintf("%s as %s", name, what), err, append(append([]string{hfDir(name)}, found[name]...), expected[what]...)...)
		}
	}
	gpt2 := fixturedir.WithConfig(t, hfDir("bert"), func(m map[string]any) {
		m["model_type"] = "gpt2"
		m["architectures"] = []any{"GPT2LMHeadModel"}
	})
	for what, load := range loaders {
		fixturedir.WantErr(t, "gpt2 as "+what, load(gpt2, Options{}), append([]string{gpt2, `"gpt2"`, "GPT2LMHeadModel"}, expected[what]...)...)
	}
}

// TestFewerLayersThroughWrappers: the probe's case, through the API it used:
// a context encoder whose config.json has fewer layers than its weights.
func TestFewerLayersThroughWrappers(t *testing.T) {
	for name, what := range map[string]string{"dpr-ctx": "encoder", "cross-encoder-2": "reranker", "bart": "generator"} {
		field := map[string]string{"encoder": "num_hidden_layers", "reranker": "num_hidden_layers", "generator": "encoder_layers"}[what]
		dir := fixturedir.WithConfig(t, hfDir(name), func(m map[string]any) { m[field] = 1 })
		fixturedir.WantErr(t, name+" with "+field+" 1", loaders[what](dir, Options{}), dir, field+" 1", "2 layers")
	}
}

// TestMissingModelDirectory: a directory that does not exist is named as
// such (it used to be "has no tokenizer files"), as is a file.
func TestMissingModelDirectory(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-model")
	file := filepath.Join(hfDir("bert"), "config.json")
	for what, load := range loaders {
		fixturedir.WantErr(t, what+", missing", load(missing, Options{}), missing, "does not exist")
		fixturedir.WantErr(t, what+", a file", load(file, Options{}), file, "not a model directory")
	}
}

// TestUnavailableDevice: a CUDA device libtorch does not see is refused up
// front, naming the device (a CPU-only shim used to report missing tensors).
func TestUnavailableDevice(t *testing.T) {
	n := 0
	if torch.CUDAAvailable() {
		n = torch.CUDADeviceCount()
	}
	dev := torch.Device{Type: torch.CUDA, Index: n} // one past the last device
	for what, load := range loaders {
		dir := hfDir(map[string]string{"encoder": "dpr-ctx", "reranker": "cross-encoder-1", "generator": "bart"}[what])
		fixturedir.WantErr(t, what+" on "+dev.String(), load(dir, Options{Device: dev}), dir, dev.String(), "CUDA")
	}
}
