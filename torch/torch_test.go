package torch

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/re2g/re2g/internal/limits"
)

func TestMain(m *testing.M) {
	SetNumThreads(2)
	os.Exit(m.Run())
}

// TestSetNumThreadsBounds: a negative count or more than 4 per CPU is an
// error naming the limit, and leaves the pool as it was.
func TestSetNumThreadsBounds(t *testing.T) {
	before := NumThreads()
	for _, n := range []int{-1, limits.MaxThreads() + 1, 100000} {
		if err := SetNumThreads(n); err == nil || !strings.Contains(err.Error(), fmt.Sprint(limits.MaxThreads())) {
			t.Errorf("SetNumThreads(%d): %v, want an error naming the limit %d", n, err, limits.MaxThreads())
		}
		if NumThreads() != before {
			t.Errorf("SetNumThreads(%d) changed the pool to %d", n, NumThreads())
		}
	}
	if err := SetNumThreads(limits.MaxThreads()); err != nil {
		t.Fatal(err)
	}
	if err := SetNumThreads(2); err != nil || NumThreads() != 2 {
		t.Fatalf("SetNumThreads(2): %v, %d threads", err, NumThreads())
	}
}

func vals(t *testing.T, x *Tensor) []float32 {
	t.Helper()
	v, err := x.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func near(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d values %v, want %d %v", what, len(got), got, len(want), want)
	}
	for i := range got {
		if math.Abs(float64(got[i]-want[i])) > tol || math.IsNaN(float64(got[i])) {
			t.Fatalf("%s[%d] = %v, want %v (all: %v)", what, i, got[i], want[i], got)
		}
	}
}

func sameShape(t *testing.T, x *Tensor, want ...int64) {
	t.Helper()
	got := x.Shape()
	if len(got) != len(want) {
		t.Fatalf("shape %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("shape %v, want %v", got, want)
		}
	}
}

func TestCreateAndReadBack(t *testing.T) {
	s := NewScope()
	defer s.Close()
	a := s.FromFloat32([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	sameShape(t, a, 2, 3)
	if a.DType() != Float32 || a.Device() != CPUDevice {
		t.Fatalf("dtype %v device %v", a.DType(), a.Device())
	}
	near(t, "a", vals(t, a), []float32{1, 2, 3, 4, 5, 6}, 0)
	i := s.FromInt64([]int64{7, -8}, 2)
	iv, _ := i.Int64s()
	if iv[0] != 7 || iv[1] != -8 {
		t.Fatal(iv)
	}
	b := s.FromBool([]bool{true, false, true}, 3)
	bv, _ := b.Bools()
	if !bv[0] || bv[1] || !bv[2] {
		t.Fatal(bv)
	}
	z := s.Zeros(Float32, CPUDevice, 2, 2)
	o := s.Ones(Int64, CPUDevice, 3)
	r := s.Arange(0, 5, 2, Int64, CPUDevice)
	rv, _ := r.Int64s()
	if len(rv) != 3 || rv[2] != 4 {
		t.Fatal(rv)
	}
	near(t, "zeros", vals(t, z), []float32{0, 0, 0, 0}, 0)
	near(t, "ones", vals(t, o), []float32{1, 1, 1}, 0)
	// f16 and bf16 conversions keep representable values exactly.
	h := s.ToDType(a, Float16)
	bf := s.ToDType(a, BFloat16)
	near(t, "f16", vals(t, h), []float32{1, 2, 3, 4, 5, 6}, 0)
	near(t, "bf16", vals(t, bf), []float32{1, 2, 3, 4, 5, 6}, 0)
	raw, _ := h.Bytes()
	back := s.FromBytes(Float16, raw, 2, 3)
	near(t, "f16 bytes", vals(t, back), []float32{1, 2, 3, 4, 5, 6}, 0)
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	// a scalar
	sc := s.Sum(a, false)
	v, err := sc.Item()
	if err != nil || v != 21 {
		t.Fatalf("item %v %v", v, err)
	}
}

func TestWrongLengthIsError(t *testing.T) {
	s := NewScope()
	defer s.Close()
	x := s.FromFloat32([]float32{1, 2, 3}, 2, 2)
	if x.Valid() || s.Err() == nil || !strings.Contains(s.Err().Error(), "do not fill shape [2 2]") {
		t.Fatalf("want a shape error, got %v", s.Err())
	}
}

func TestShapeOps(t *testing.T) {
	s := NewScope()
	defer s.Close()
	a := s.FromFloat32([]float32{0, 1, 2, 3, 4, 5}, 2, 3)
	sameShape(t, s.View(a, 3, 2), 3, 2)
	sameShape(t, s.Reshape(s.Transpose(a, 0, 1), 6), 6)
	near(t, "transpose", vals(t, s.Contiguous(s.Transpose(a, 0, 1))), []float32{0, 3, 1, 4, 2, 5}, 0)
	near(t, "permute", vals(t, s.Contiguous(s.Permute(a, 1, 0))), []float32{0, 3, 1, 4, 2, 5}, 0)
	sameShape(t, s.Unsqueeze(a, 0), 1, 2, 3)
	sameShape(t, s.Squeeze(s.Unsqueeze(a, 1), 1), 2, 3)
	sameShape(t, s.Expand(s.Unsqueeze(a, 0), 4, 2, 3), 4, 2, 3)
	near(t, "cat0", vals(t, s.Cat(0, a, a)), []float32{0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5}, 0)
	near(t, "cat1", vals(t, s.Cat(1, a, a)), []float32{0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5}, 0)
	sameShape(t, s.Stack(0, a, a, a), 3, 2, 3)
	near(t, "slice", vals(t, s.Slice(a, 1, 1, 3, 1)), []float32{1, 2, 4, 5}, 0)
	near(t, "slice step", vals(t, s.Slice(a, 1, 0, 3, 2)), []float32{0, 2, 3, 5}, 0)
	near(t, "select", vals(t, s.Select(a, 0, 1)), []float32{3, 4, 5}, 0)
	idx := s.FromInt64([]int64{2, 0}, 2)
	near(t, "index_select", vals(t, s.IndexSelect(a, 1, idx)), []float32{2, 0, 5, 3}, 0)
	gi := s.FromInt64([]int64{2, 2, 0, 1}, 2, 2)
	near(t, "gather", vals(t, s.Gather(a, 1, gi)), []float32{2, 2, 3, 4}, 0)
	mask := s.FromBool([]bool{true, false, false, false, false, true}, 2, 3)
	near(t, "masked_fill", vals(t, s.MaskedFill(a, mask, -1)), []float32{-1, 1, 2, 3, 4, -1}, 0)
	near(t, "where", vals(t, s.Where(mask, a, s.Neg(a))), []float32{0, -1, -2, -3, -4, 5}, 0)
	near(t, "index_fill", vals(t, s.IndexFill(s.View(a, 6), 0, s.FromInt64([]int64{1, 4}, 2), 9)), []float32{0, 9, 2, 3, 9, 5}, 0)
	sq := s.FromFloat32([]float32{1, 2, 3, 4}, 2, 2)
	near(t, "tril", vals(t, s.Tril(sq, 0)), []float32{1, 0, 3, 4}, 0)
	near(t, "triu", vals(t, s.Triu(sq, 1)), []float32{0, 2, 0, 0}, 0)
	near(t, "repeat_interleave", vals(t, s.RepeatInterleave(sq, 2, 0)), []float32{1, 2, 1, 2, 3, 4, 3, 4}, 0)
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestMath(t *testing.T) {
	s := NewScope()
	defer s.Close()
	a := s.FromFloat32([]float32{1, 2, 3, 4}, 2, 2)
	b := s.FromFloat32([]float32{5, 6, 7, 8}, 2, 2)
	near(t, "matmul", vals(t, s.Matmul(a, b)), []float32{19, 22, 43, 50}, 1e-5)
	near(t, "bmm", vals(t, s.BMM(s.Unsqueeze(a, 0), s.Unsqueeze(b, 0))), []float32{19, 22, 43, 50}, 1e-5)
	row := s.FromFloat32([]float32{10, 20}, 2)
	near(t, "add broadcast", vals(t, s.Add(a, row)), []float32{11, 22, 13, 24}, 0)
	near(t, "sub", vals(t, s.Sub(b, a)), []float32{4, 4, 4, 4}, 0)
	near(t, "mul", vals(t, s.Mul(a, row)), []float32{10, 40, 30, 80}, 0)
	near(t, "div", vals(t, s.Div(b, a)), []float32{5, 3, 7.0 / 3, 2}, 1e-6)
	near(t, "scalar", vals(t, s.AddScalar(s.MulScalar(a, 2), 1)), []float32{3, 5, 7, 9}, 0)
	near(t, "rsub", vals(t, s.RSubScalar(a, 1)), []float32{0, -1, -2, -3}, 0)
	near(t, "exp/log", vals(t, s.Log(s.Exp(a))), []float32{1, 2, 3, 4}, 1e-5)
	near(t, "tanh", vals(t, s.Tanh(s.FromFloat32([]float32{0.5}, 1))), []float32{float32(math.Tanh(0.5))}, 1e-6)
	x := s.FromFloat32([]float32{-1, 0, 1.5}, 3)
	gelu := func(v float64) float32 { return float32(0.5 * v * (1 + math.Erf(v/math.Sqrt2))) }
	near(t, "gelu", vals(t, s.Gelu(x)), []float32{gelu(-1), 0, gelu(1.5)}, 1e-6)
	near(t, "relu", vals(t, s.Relu(x)), []float32{0, 0, 1.5}, 0)
	e1, e2, e3 := math.Exp(1), math.Exp(2), math.Exp(3)
	z := e1 + e2 + e3
	sm := s.Softmax(s.FromFloat32([]float32{1, 2, 3}, 1, 3), -1)
	near(t, "softmax", vals(t, sm), []float32{float32(e1 / z), float32(e2 / z), float32(e3 / z)}, 1e-6)
	lsm := s.LogSoftmax(s.FromFloat32([]float32{1, 2, 3}, 1, 3), -1)
	near(t, "log_softmax", vals(t, lsm), []float32{float32(1 - math.Log(z)), float32(2 - math.Log(z)), float32(3 - math.Log(z))}, 1e-6)
	// layer norm: mean 2.5, var 1.25 per row of [1,2,3,4]
	ln := s.LayerNorm(s.FromFloat32([]float32{1, 2, 3, 4}, 1, 4), s.Full(2, Float32, CPUDevice, 4), s.Full(1, Float32, CPUDevice, 4), 0)
	sd := math.Sqrt(1.25)
	near(t, "layer_norm", vals(t, ln), []float32{float32(2*(-1.5)/sd + 1), float32(2*(-0.5)/sd + 1), float32(2*0.5/sd + 1), float32(2*1.5/sd + 1)}, 1e-5)
	w := s.FromFloat32([]float32{1, 0, 0, 1, 1, 1}, 3, 2)
	bias := s.FromFloat32([]float32{0, 1, 2}, 3)
	near(t, "linear", vals(t, s.Linear(a, w, bias)), []float32{1, 3, 5, 3, 5, 9}, 1e-6)
	near(t, "linear nobias", vals(t, s.Linear(a, w, nil)), []float32{1, 2, 3, 3, 4, 7}, 1e-6)
	emb := s.Embedding(w, s.FromInt64([]int64{2, 0}, 2), -1)
	near(t, "embedding", vals(t, emb), []float32{1, 1, 1, 0}, 0)
	near(t, "dropout eval", vals(t, s.Dropout(a, 0.5, false)), []float32{1, 2, 3, 4}, 0)
	ManualSeed(1)
	d := vals(t, s.Dropout(s.Ones(Float32, CPUDevice, 1000), 0.5, true))
	zeros := 0
	for _, v := range d {
		if v == 0 {
			zeros++
		} else if v != 2 {
			t.Fatalf("dropout kept value %v, want 2", v)
		}
	}
	if zeros < 400 || zeros > 600 {
		t.Fatalf("dropout zeroed %d of 1000", zeros)
	}
	vs, is := s.TopK(s.FromFloat32([]float32{3, 1, 4, 1, 5}, 5), 2, 0)
	near(t, "topk values", vals(t, vs), []float32{5, 4}, 0)
	iv, _ := is.Int64s()
	if iv[0] != 4 || iv[1] != 2 {
		t.Fatalf("topk indices %v", iv)
	}
	am, _ := s.Argmax(a, 1, false).Int64s()
	if am[0] != 1 || am[1] != 1 {
		t.Fatal(am)
	}
	near(t, "sum dim", vals(t, s.Sum(a, false, 1)), []float32{3, 7}, 0)
	near(t, "mean", vals(t, s.Mean(a, false)), []float32{2.5}, 0)
	near(t, "max dim", vals(t, s.Max(a, true, 0)), []float32{3, 4}, 0)
	near(t, "logsumexp", vals(t, s.LogSumExp(s.FromFloat32([]float32{1, 2, 3}, 3), false, 0)), []float32{float32(math.Log(z))}, 1e-6)
	// attention with a mask that hides the second key equals attending to the first value alone
	q := s.Rand(Float32, CPUDevice, 1, 1, 2, 4)
	k := s.Rand(Float32, CPUDevice, 1, 1, 2, 4)
	v := s.FromFloat32([]float32{1, 2, 3, 4, 9, 9, 9, 9}, 1, 1, 2, 4)
	mask := s.FromFloat32([]float32{0, float32(math.Inf(-1))}, 1, 1, 1, 2)
	near(t, "attention", vals(t, s.Attention(q, k, v, mask, 0, false, 0)), []float32{1, 2, 3, 4, 1, 2, 3, 4}, 1e-6)
	c := vals(t, s.Attention(q, k, v, nil, 0, true, 0))
	near(t, "causal attention row 0", c[:4], []float32{1, 2, 3, 4}, 1e-6)
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestLosses(t *testing.T) {
	s := NewScope()
	defer s.Close()
	logits := s.FromFloat32([]float32{1, 2, 3, 1, 1, 1, 0, 0, 5}, 3, 3)
	target := s.FromInt64([]int64{2, 0, -100}, 3)
	ce := s.CrossEntropy(logits, target, -100, ReduceMean, 0)
	l1 := math.Log(math.Exp(1)+math.Exp(2)+math.Exp(3)) - 3
	l2 := math.Log(3)
	near(t, "cross_entropy ignore", vals(t, ce), []float32{float32((l1 + l2) / 2)}, 1e-6)
	none := s.CrossEntropy(logits, target, -100, ReduceNone, 0)
	near(t, "cross_entropy none", vals(t, none), []float32{float32(l1), float32(l2), 0}, 1e-6)
	// KL(p || q) with q given as log-probabilities
	p := []float64{0.2, 0.8}
	q := []float64{0.5, 0.5}
	want := p[0]*math.Log(p[0]/q[0]) + p[1]*math.Log(p[1]/q[1])
	kl := s.KLDiv(s.Log(s.FromFloat32([]float32{0.5, 0.5}, 1, 2)), s.FromFloat32([]float32{0.2, 0.8}, 1, 2), ReduceBatchMean, false)
	near(t, "kl_div", vals(t, kl), []float32{float32(want)}, 1e-6)
	klLog := s.KLDiv(s.Log(s.FromFloat32([]float32{0.5, 0.5}, 1, 2)), s.Log(s.FromFloat32([]float32{0.2, 0.8}, 1, 2)), ReduceSum, true)
	near(t, "kl_div log target", vals(t, klLog), []float32{float32(want)}, 1e-6)
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestErrorsNameOperationAndShapes(t *testing.T) {
	s := NewScope()
	defer s.Close()
	a := s.FromFloat32(make([]float32, 6), 2, 3)
	b := s.FromFloat32(make([]float32, 8), 4, 2)
	c := s.Matmul(a, b)
	if c.Valid() {
		t.Fatal("matmul of [2 3] x [4 2] succeeded")
	}
	err := s.Err()
	var te *Error
	if !errors.As(err, &te) || te.Op != "matmul" || !strings.Contains(err.Error(), "[2 3]f32, [4 2]f32") {
		t.Fatalf("error does not name op and shapes: %v", err)
	}
	// later operations are skipped and keep the first error
	d := s.Add(c, a)
	if d.Valid() || s.Err() != err {
		t.Fatalf("sticky error lost: %v", s.Err())
	}

	s2 := NewScope()
	defer s2.Close()
	i := s2.FromInt64([]int64{1, 2}, 2)
	f := s2.FromFloat32([]float32{1, 2}, 2)
	s2.Matmul(s2.Unsqueeze(i, 0), s2.Unsqueeze(f, 1))
	if s2.Err() == nil || !strings.Contains(s2.Err().Error(), "i64") {
		t.Fatalf("dtype mismatch: %v", s2.Err())
	}

	s3 := NewScope()
	defer s3.Close()
	w := s3.Zeros(Float32, CPUDevice, 4, 2)
	s3.Embedding(w, s3.FromInt64([]int64{4}, 1), -1)
	if s3.Err() == nil || !strings.Contains(s3.Err().Error(), "outside a table of 4 rows") {
		t.Fatalf("embedding out of range: %v", s3.Err())
	}

	s4 := NewScope()
	defer s4.Close()
	x := s4.FromFloat32([]float32{1}, 1)
	if !CUDAAvailable() {
		y := s4.To(x, Device{Type: CUDA})
		if y.Valid() || s4.Err() == nil {
			t.Fatal("moving to cuda without a device succeeded")
		}
		t.Logf("no CUDA: %v", s4.Err())
	}

	s5 := NewScope()
	x5 := s5.FromFloat32([]float32{1}, 1)
	s5.Close()
	s6 := NewScope()
	defer s6.Close()
	s6.Exp(x5)
	if !errors.Is(s6.Err(), s6.Err()) || s6.Err() == nil || !strings.Contains(s6.Err().Error(), "freed") {
		t.Fatalf("use after close: %v", s6.Err())
	}
	if _, err := x5.Float32s(); err == nil {
		t.Fatal("reading a freed tensor succeeded")
	}
}

func TestScopeOwnership(t *testing.T) {
	base := LiveTensors()
	root := NewScope()
	var kept, disowned *Tensor
	func() {
		s := root.Child()
		defer s.Close()
		a := s.Ones(Float32, CPUDevice, 3)
		kept = s.MulScalar(a, 2)
		disowned = s.Disown(s.AddScalar(a, 1))
		s.Keep(kept)
	}()
	if got := LiveTensors() - base; got != 2 {
		t.Fatalf("live tensors after child close = %d, want 2", got)
	}
	near(t, "kept", vals(t, kept), []float32{2, 2, 2}, 0)
	root.Close()
	if kept.Valid() {
		t.Fatal("kept tensor survived its new owner")
	}
	near(t, "disowned", vals(t, disowned), []float32{2, 2, 2}, 0)
	disowned.Free()
	disowned.Free()
	if got := LiveTensors() - base; got != 0 {
		t.Fatalf("leaked %d tensors", got)
	}
}

func TestSafetensorsRoundTrip(t *testing.T) {
	s := NewScope()
	defer s.Close()
	dir := t.TempDir()
	p := filepath.Join(dir, "m.safetensors")
	src := s.FromFloat32([]float32{1.5, -2, 3.25, 0, 7, 8}, 2, 3)
	ts := map[string]*Tensor{
		"a.f32":  src,
		"b.f16":  s.ToDType(src, Float16),
		"c.bf16": s.ToDType(src, BFloat16),
		"d.i64":  s.FromInt64([]int64{1, -2, 1 << 40}, 3),
		"e.bool": s.FromBool([]bool{true, false}, 2),
		"f.zero": s.Zeros(Float32, CPUDevice, 0, 4),
	}
	if err := SaveSafetensors(p, ts, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	f, err := OpenSafetensors(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Metadata["format"] != "pt" || len(f.Names()) != 6 {
		t.Fatalf("metadata %v names %v", f.Metadata, f.Names())
	}
	for name, want := range ts {
		got, err := f.Load(s, name, CPUDevice, -1)
		if err != nil {
			t.Fatal(err)
		}
		if got.DType() != want.DType() {
			t.Fatalf("%s: dtype %v want %v", name, got.DType(), want.DType())
		}
		sameShape(t, got, want.Shape()...)
		gb, _ := got.Bytes()
		wb, _ := want.Bytes()
		if string(gb) != string(wb) {
			t.Fatalf("%s: bytes differ", name)
		}
	}
	// load with conversion
	conv, err := f.Load(s, "b.f16", CPUDevice, Float32)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "f16->f32", vals(t, conv), []float32{1.5, -2, 3.25, 0, 7, 8}, 0)
	if _, err := f.Load(s, "nope", CPUDevice, -1); err == nil || !strings.Contains(err.Error(), `no tensor "nope"`) {
		t.Fatalf("missing tensor: %v", err)
	}
}

func TestSafetensorsCorrupt(t *testing.T) {
	s := NewScope()
	defer s.Close()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.safetensors")
	if err := SaveSafetensors(good, map[string]*Tensor{"w": s.Ones(Float32, CPUDevice, 16, 16)}, nil); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(good)
	cases := map[string][]byte{
		"truncated":  data[:len(data)-10],
		"short":      data[:5],
		"bad length": append([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, data[8:]...),
		"not json":   append(append([]byte{}, data[:8]...), []byte(strings.Repeat("x", len(data)-8))...),
		"empty":      {},
		"bad dtype":  []byte(string(data[:8]) + strings.Replace(string(data[8:]), `"F32"`, `"Q32"`, 1)),
	}
	for name, b := range cases {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		os.WriteFile(p, b, 0o644)
		if _, err := OpenSafetensors(p); err == nil {
			t.Errorf("%s: opened without error", name)
		} else if !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error does not name the file: %v", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	if _, err := OpenSafetensors(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file opened")
	}
}
