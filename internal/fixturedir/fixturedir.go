// Package fixturedir makes modified copies of model directory fixtures for
// tests: a real checkpoint with its config.json edited, or with tensors
// added, in a temporary directory; and reads a checkpoint's tensors back.
package fixturedir

import (
	"bytes"
	"encoding/json"
	"github.com/re2g/re2g/internal/dirtest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/re2g/re2g/torch"
)

// Copy copies the directory tree src into a new temporary directory of t and
// returns its path (dirtest.Copy).
func Copy(t testing.TB, src string) string {
	t.Helper()
	return dirtest.Copy(t, src)
}

// EditJSON rewrites the JSON object in file path with edit applied (numbers
// kept as written).
func EditJSON(t testing.TB, path string, edit func(m map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	edit(m)
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// WithConfig is Copy(src) with edit applied to its config.json.
func WithConfig(t testing.TB, src string, edit func(m map[string]any)) string {
	t.Helper()
	dir := Copy(t, src)
	EditJSON(t, filepath.Join(dir, "config.json"), edit)
	return dir
}

// AddTensors rewrites the safetensors file path with extra tensors added.
func AddTensors(t testing.TB, path string, extra map[string]*torch.Tensor) {
	t.Helper()
	f, err := torch.OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	s := torch.NewScope()
	defer s.Close()
	all := map[string]*torch.Tensor{}
	for _, n := range f.Names() {
		v, err := f.Load(s, n, torch.CPUDevice, -1)
		if err != nil {
			f.Close()
			t.Fatal(err)
		}
		all[n] = v
	}
	f.Close()
	for n, v := range extra {
		all[n] = v
	}
	if err := torch.SaveSafetensors(path, all, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
}

// Float64s reads every tensor of the safetensors file path as float64
// values, by name.
func Float64s(t testing.TB, path string) map[string][]float64 {
	t.Helper()
	f, err := torch.OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := torch.NewScope()
	defer s.Close()
	out := map[string][]float64{}
	for _, n := range f.Names() {
		x, err := f.Load(s, n, torch.CPUDevice, torch.Float64)
		if err != nil {
			t.Fatal(err)
		}
		if out[n], err = x.Float64s(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// WantErr fails t at once unless err is an error mentioning every one of
// want; what names the case in the message.
func WantErr(t testing.TB, what string, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: loaded without error", what)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("%s: error %q does not mention %q", what, err, w)
		}
	}
	t.Logf("%s: %v", what, err)
}
