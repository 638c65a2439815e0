package model

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/re2g/re2g/torch"
)

const ptbin = "../testdata/ptbin"

func copyTo(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func open(t *testing.T, dir string) *Checkpoint {
	t.Helper()
	ck, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ck.Close)
	return ck
}

// TestPyTorchBinMatchesSafetensors: testdata/ptbin/bert is the parity BERT
// fixture (model.safetensors) saved by torch.save as pytorch_model.bin
// (scripts/make_ptbin_fixtures.py): both load the same tensors, bit for bit.
func TestPyTorchBinMatchesSafetensors(t *testing.T) {
	st := open(t, "../testdata/parity/bert")
	pt := open(t, filepath.Join(ptbin, "bert"))
	if _, ok := pt.files[pytorchFile].(*torch.PyTorchFile); !ok {
		t.Fatalf("ptbin/bert opened %T", pt.files[pytorchFile])
	}
	if a, b := strings.Join(st.Names(), ","), strings.Join(pt.Names(), ","); a != b || len(st.Names()) < 30 {
		t.Fatalf("names differ:\n%s\n%s", a, b)
	}
	s := torch.NewScope()
	defer s.Close()
	for _, n := range st.Names() {
		si, _ := st.Info(n)
		pi, _ := pt.Info(n)
		if si.DType != pi.DType || !EqualShape(si.Shape, pi.Shape) {
			t.Fatalf("%s: %v %v vs %v %v", n, si.DType, si.Shape, pi.DType, pi.Shape)
		}
		a, err := st.Load(s, n, torch.CPUDevice, -1)
		if err != nil {
			t.Fatal(err)
		}
		b, err := pt.Load(s, n, torch.CPUDevice, -1)
		if err != nil {
			t.Fatal(err)
		}
		ab, _ := a.Bytes()
		bb, _ := b.Bytes()
		if !bytes.Equal(ab, bb) {
			t.Fatalf("%s: tensors differ", n)
		}
	}
}

// tiny is Tiny of scripts/make_ptbin_fixtures.py.
type tiny struct {
	Emb   *torch.Tensor `st:"emb.weight"`
	W     *torch.Tensor `st:"proj.weight"`
	B     *torch.Tensor `st:"proj.bias"`
	NormW *torch.Tensor `st:"norm.weight"`
	NormB *torch.Tensor `st:"norm.bias"`
	Pos   *torch.Tensor `st:"position_ids"`
}

func (tiny) Shapes() map[string][]int64 {
	return map[string][]int64{"emb.weight": {7, 4}, "proj.weight": {3, 4}, "proj.bias": {3}, "norm.weight": {3}, "norm.bias": {3}, "position_ids": {1, 5}}
}

func TestPyTorchShardedLoad(t *testing.T) {
	var m tiny
	s, err := Load(filepath.Join(ptbin, "sharded"), &m, "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if m.Pos.DType() != torch.Int64 || m.W.DType() != torch.Float32 {
		t.Fatalf("position_ids %v, proj %v", m.Pos, m.W)
	}
	pos, _ := m.Pos.Int64s()
	for i, v := range pos {
		if v != int64(i) {
			t.Fatalf("position_ids %v", pos)
		}
	}
	var m2 tiny
	s2, err := Load(t.TempDir(), &m2, "", Options{})
	if err == nil {
		s2.Close()
		t.Fatal("empty directory loaded")
	}
	if !strings.Contains(err.Error(), "pytorch_model.bin.index.json") {
		t.Fatalf("empty directory: %v", err)
	}
	// the single-file module loads into the same struct, in bf16
	dir := t.TempDir()
	copyTo(t, filepath.Join(ptbin, "module.bin"), filepath.Join(dir, pytorchFile))
	s2, err = Load(dir, &m2, "", Options{DType: torch.BFloat16})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if m2.W.DType() != torch.BFloat16 || m2.Pos.DType() != torch.Int64 {
		t.Fatalf("bf16 load: %v %v", m2.W, m2.Pos)
	}
}

func TestCheckpointPreference(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	dir := t.TempDir()
	copyTo(t, filepath.Join(ptbin, "module.bin"), filepath.Join(dir, pytorchFile))
	for _, f := range []string{"pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin", pytorchIndex} {
		copyTo(t, filepath.Join(ptbin, "sharded", f), filepath.Join(dir, f))
	}
	names := func() string {
		ck := open(t, dir)
		return strings.Join(ck.Names(), ",")
	}
	// pytorch_model.bin before its index: one file
	if ck := open(t, dir); len(ck.files) != 1 || ck.files[pytorchFile] == nil {
		t.Fatalf("files %v", ck.files)
	}
	// sharded safetensors before any pickle
	if err := torch.SaveSafetensors(filepath.Join(dir, "model-00001-of-00001.safetensors"), map[string]*torch.Tensor{"from.index": s.Ones(torch.Float32, torch.CPUDevice, 2)}, nil); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, safetensorsIndex), []byte(`{"weight_map": {"from.index": "model-00001-of-00001.safetensors"}}`), 0o644)
	if got := names(); got != "from.index" {
		t.Fatalf("with a safetensors index: %s", got)
	}
	// model.safetensors first of all
	if err := torch.SaveSafetensors(filepath.Join(dir, safetensorsFile), map[string]*torch.Tensor{"from.single": s.Ones(torch.Float32, torch.CPUDevice, 2)}, nil); err != nil {
		t.Fatal(err)
	}
	if got := names(); got != "from.single" {
		t.Fatalf("with model.safetensors: %s", got)
	}
}

// tiedModel names the tensors of testdata/ptbin/tensors.bin that share a
// storage: tied.a and tied.b are one tensor, tied.row a view into it.
type tiedModel struct {
	A   *torch.Tensor `st:"tied.a"`
	B   *torch.Tensor `st:"tied.b"`
	Row *torch.Tensor `st:"tied.row"`
	T   *torch.Tensor `st:"transposed"`
}

func TestPyTorchTiedWeightsShared(t *testing.T) {
	dir := t.TempDir()
	copyTo(t, filepath.Join(ptbin, "tensors.bin"), filepath.Join(dir, pytorchFile))
	var m tiedModel
	// tensors.bin holds more tensors than tiedModel names: an error naming
	// the file and them, unless they are ignored
	_, err := Load(dir, &m, "", Options{DType: -1})
	var le *LoadError
	if !errors.As(err, &le) || len(le.Unexpected) == 0 || len(le.Missing)+len(le.Mismatched) > 0 ||
		!strings.Contains(err.Error(), filepath.Join(dir, pytorchFile)) || !strings.Contains(err.Error(), le.Unexpected[0]) {
		t.Fatalf("unused tensors: %v", err)
	}
	s, err := Load(dir, &m, "", Options{DType: -1, Ignore: le.Unexpected})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if m.A != m.B {
		t.Fatal("tied.a and tied.b (one tensor in the checkpoint) loaded as two tensors")
	}
	if m.Row == m.A || !EqualShape(m.Row.Shape(), []int64{3}) || !EqualShape(m.T.Shape(), []int64{5, 3}) {
		t.Fatalf("row %v transposed %v", m.Row, m.T)
	}
	a, _ := m.A.Float32s()
	r, _ := m.Row.Float32s()
	for i := range r {
		if r[i] != a[6+i] {
			t.Fatalf("tied.row %v is not row 2 of tied.a %v", r, a)
		}
	}
}

func TestPyTorchCheckpointErrors(t *testing.T) {
	good, err := os.ReadFile(filepath.Join(ptbin, "module.bin"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, pytorchFile)
	os.WriteFile(p, good[:len(good)/2], 0o644)
	if _, err := OpenCheckpoint(dir); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("truncated pytorch_model.bin: %v", err)
	}

	// shards: an index naming a tensor its shard lacks, a path, a missing shard
	sh := t.TempDir()
	for _, f := range []string{"pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"} {
		copyTo(t, filepath.Join(ptbin, "sharded", f), filepath.Join(sh, f))
	}
	for index, want := range map[string]string{
		`{"weight_map": {"norm.bias": "pytorch_model-00001-of-00002.bin"}}`: `index says "norm.bias" is in pytorch_model-00001-of-00002.bin, which lacks it`,
		`{"weight_map": {"norm.bias": "../pytorch_model.bin"}}`:             "not a plain file name",
		`{"weight_map": {"norm.bias": "pytorch_model-00003-of-00002.bin"}}`: "pytorch_model-00003-of-00002.bin",
		`{"weight_map": {}}`: "empty weight_map",
		`{"weight_map": `:    "not valid JSON",
	} {
		os.WriteFile(filepath.Join(sh, pytorchIndex), []byte(index), 0o644)
		if _, err := OpenCheckpoint(sh); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("index %s: error %v, want %q", index, err, want)
		}
	}
}
