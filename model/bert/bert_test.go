package bert

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/re2g/re2g/model"
	"github.com/re2g/re2g/torch"
)

func tinyConfig() *Config {
	return &Config{
		ModelType: "bert", VocabSize: 50, HiddenSize: 16, NumHiddenLayers: 2, NumAttentionHeads: 4,
		IntermediateSize: 32, HiddenAct: "gelu", MaxPositionEmbeddings: 32, TypeVocabSize: 2,
		LayerNormEps: 1e-12, HiddenDropoutProb: 0.1, AttentionProbsDropoutProb: 0.1,
	}
}

func batch(s *torch.Scope) Inputs {
	return Inputs{
		IDs:  s.FromInt64([]int64{1, 5, 7, 9, 2, 1, 4, 2, 0, 0}, 2, 5),
		Mask: s.FromInt64([]int64{1, 1, 1, 1, 1, 1, 1, 1, 0, 0}, 2, 5),
	}
}

func TestDPRSaveLoadRoundTrip(t *testing.T) {
	torch.ManualSeed(3)
	d, err := NewDPR(tinyConfig(), true, torch.CPUDevice)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	dir := t.TempDir()
	if err := d.Save(dir); err != nil {
		t.Fatal(err)
	}
	d2, err := LoadDPR(dir, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if !d2.Question {
		t.Fatal("a saved question encoder loaded as a context encoder")
	}
	s := torch.NewScope().NoGrad()
	defer s.Close()
	in := batch(s)
	a, _ := d.Encode(s, in, false).Float32s()
	b, _ := d2.Encode(s, in, false).Float32s()
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("reloaded encoder differs at %d: %v vs %v", i, a[i], b[i])
		}
	}
	// Padding must not change a row's embedding: row 1 alone, unpadded.
	one := Inputs{IDs: s.FromInt64([]int64{1, 4, 2}, 1, 3), Mask: s.FromInt64([]int64{1, 1, 1}, 1, 3)}
	c, _ := d.Encode(s, one, false).Float32s()
	for i := range c {
		if math.Abs(float64(c[i]-a[16+i])) > 1e-5 {
			t.Fatalf("padding changed the embedding: %v vs %v", c[i], a[16+i])
		}
	}
	// dropout only in training mode
	tr1, _ := d.Encode(s, in, true).Float32s()
	same := true
	for i := range tr1 {
		if tr1[i] != a[i] {
			same = false
		}
	}
	if same {
		t.Fatal("training mode applied no dropout")
	}
}

func TestCrossEncoderScores(t *testing.T) {
	for _, labels := range []int{1, 2} {
		cfg := tinyConfig()
		cfg.ID2Label = map[string]string{}
		for i := 0; i < labels; i++ {
			cfg.ID2Label[string(rune('0'+i))] = "L"
		}
		c, err := NewCrossEncoder(cfg, torch.CPUDevice)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if err := c.Save(dir); err != nil {
			t.Fatal(err)
		}
		c2, err := LoadCrossEncoder(dir, model.Options{})
		if err != nil {
			t.Fatal(err)
		}
		s := torch.NewScope().NoGrad()
		logits := c2.Logits(s, batch(s), false)
		scores := c2.Scores(s, batch(s), false)
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		lv, _ := logits.Float32s()
		sv, _ := scores.Float32s()
		if len(sv) != 2 || sv[0] != lv[labels-1] || sv[1] != lv[2*labels-1] {
			t.Fatalf("%d labels: scores %v from logits %v", labels, sv, lv)
		}
		s.Close()
		c.Close()
		c2.Close()
	}
}

// writeFile rewrites one tensor entry of a checkpoint via a Go-side edit.
func saveTiny(t *testing.T) string {
	t.Helper()
	d, err := NewDPR(tinyConfig(), false, torch.CPUDevice)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	dir := t.TempDir()
	if err := d.Save(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestLoaderErrors(t *testing.T) {
	// missing tensor and wrong shape: rewrite the checkpoint without / with a changed tensor
	dir := saveTiny(t)
	f, err := torch.OpenSafetensors(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	s := torch.NewScope()
	defer s.Close()
	all := map[string]*torch.Tensor{}
	for _, n := range f.Names() {
		all[n], _ = f.Load(s, n, torch.CPUDevice, -1)
	}
	f.Close()

	missing := t.TempDir()
	copyFile(t, filepath.Join(dir, "config.json"), filepath.Join(missing, "config.json"))
	m := map[string]*torch.Tensor{}
	for k, v := range all {
		if k != "ctx_encoder.bert_model.encoder.layer.1.output.dense.weight" {
			m[k] = v
		}
	}
	m["ctx_encoder.bert_model.encoder.layer.0.attention.self.query.weight"] = s.Zeros(torch.Float32, torch.CPUDevice, 16, 15)
	if err := torch.SaveSafetensors(filepath.Join(missing, "model.safetensors"), m, nil); err != nil {
		t.Fatal(err)
	}
	_, err = LoadDPR(missing, model.Options{})
	var le *model.LoadError
	if !errors.As(err, &le) || len(le.Missing) != 1 || len(le.Mismatched) != 1 {
		t.Fatalf("want one missing and one mis-shaped tensor, got %v", err)
	}
	if !strings.Contains(err.Error(), "layer.1.output.dense.weight") || !strings.Contains(err.Error(), "[16 15]") {
		t.Fatalf("error does not name the tensors: %v", err)
	}

	// bad dtype: an int64 tensor where a float weight belongs loads, but the forward fails cleanly
	// (unsupported dtypes in the file are rejected at open).
	bad := t.TempDir()
	copyFile(t, filepath.Join(dir, "config.json"), filepath.Join(bad, "config.json"))
	raw, _ := os.ReadFile(filepath.Join(dir, "model.safetensors"))
	n := binary.LittleEndian.Uint64(raw[:8])
	hdr := strings.Replace(string(raw[8:8+n]), `"F32"`, `"U16"`, 1)
	os.WriteFile(filepath.Join(bad, "model.safetensors"), append(append(raw[:8:8], hdr...), raw[8+n:]...), 0o644)
	if _, err := LoadDPR(bad, model.Options{}); err == nil || !strings.Contains(err.Error(), "unsupported dtype") {
		t.Fatalf("bad dtype: %v", err)
	}

	// truncated file
	trunc := t.TempDir()
	copyFile(t, filepath.Join(dir, "config.json"), filepath.Join(trunc, "config.json"))
	os.WriteFile(filepath.Join(trunc, "model.safetensors"), raw[:len(raw)/2], 0o644)
	if _, err := LoadDPR(trunc, model.Options{}); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("truncated: %v", err)
	}

	// missing config
	nocfg := t.TempDir()
	copyFile(t, filepath.Join(dir, "model.safetensors"), filepath.Join(nocfg, "model.safetensors"))
	if _, err := LoadDPR(nocfg, model.Options{}); !errors.Is(err, model.ErrNoConfig) {
		t.Fatalf("missing config: %v", err)
	}

	// not a DPR checkpoint
	if _, err := LoadDPR(t.TempDir(), model.Options{}); err == nil {
		t.Fatal("empty directory loaded")
	}
}

func copyFile(t *testing.T, from, to string) {
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
