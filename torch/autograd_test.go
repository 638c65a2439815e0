package torch

import (
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// checkGrad compares autograd's gradient of sum(f(x)·r) with central finite
// differences, in float64.
func checkGrad(t *testing.T, name string, shape []int64, f func(s *Scope, x *Tensor) *Tensor) {
	t.Helper()
	rng := rand.New(rand.NewSource(7))
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	x0 := make([]float64, n)
	for i := range x0 {
		x0[i] = rng.Float64()*2 - 1
	}
	s := NewScope()
	defer s.Close()
	var rw []float64
	loss := func(sc *Scope, xs []float64) (*Tensor, *Tensor) {
		x := sc.FromFloat64(xs, shape...)
		if sc.GradEnabled() {
			if err := x.SetRequiresGrad(true); err != nil {
				t.Fatal(err)
			}
		}
		y := f(sc, x)
		if rw == nil {
			rw = make([]float64, y.Numel())
			for i := range rw {
				rw[i] = rng.Float64()*2 - 1
			}
		}
		r := sc.FromFloat64(rw, y.Shape()...)
		return x, sc.Sum(sc.Mul(y, r), false)
	}
	x, l := loss(s, x0)
	s.Backward(l)
	g := s.Grad(x)
	if err := s.Err(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	got, _ := g.Float64s()
	const h = 1e-6
	for i := range x0 {
		xp := append([]float64(nil), x0...)
		xm := append([]float64(nil), x0...)
		xp[i] += h
		xm[i] -= h
		ng := s.NoGrad()
		_, lp := loss(ng, xp)
		_, lm := loss(ng, xm)
		vp, _ := lp.Item()
		vm, _ := lm.Item()
		ng.Close()
		num := (vp - vm) / (2 * h)
		if math.Abs(num-got[i]) > 1e-5*math.Max(1, math.Abs(num)) {
			t.Fatalf("%s: d/dx[%d] autograd %.8f, finite difference %.8f", name, i, got[i], num)
		}
	}
}

func TestGradientsMatchFiniteDifferences(t *testing.T) {
	checkGrad(t, "tanh", []int64{2, 3}, func(s *Scope, x *Tensor) *Tensor { return s.Tanh(x) })
	checkGrad(t, "gelu", []int64{5}, func(s *Scope, x *Tensor) *Tensor { return s.Gelu(x) })
	checkGrad(t, "softmax", []int64{2, 4}, func(s *Scope, x *Tensor) *Tensor { return s.Softmax(x, -1) })
	checkGrad(t, "layer_norm", []int64{2, 5}, func(s *Scope, x *Tensor) *Tensor { return s.LayerNorm(x, nil, nil, 1e-5) })
	checkGrad(t, "matmul", []int64{3, 4}, func(s *Scope, x *Tensor) *Tensor { return s.Matmul(x, s.Transpose(x, 0, 1)) })
	checkGrad(t, "cross_entropy", []int64{3, 4}, func(s *Scope, x *Tensor) *Tensor {
		return s.CrossEntropy(x, s.FromInt64([]int64{1, -100, 3}, 3), -100, ReduceMean, 0.1)
	})
	checkGrad(t, "attention", []int64{1, 1, 3, 2}, func(s *Scope, x *Tensor) *Tensor {
		return s.Attention(x, s.MulScalar(x, 0.5), x, nil, 0, true, 0)
	})
	checkGrad(t, "kl_div", []int64{2, 3}, func(s *Scope, x *Tensor) *Tensor {
		target := s.Softmax(s.FromFloat64([]float64{1, 2, 3, 0, 0, 1}, 2, 3), -1)
		return s.KLDiv(s.LogSoftmax(x, -1), target, ReduceBatchMean, false)
	})
}

func TestNoGradScopeRecordsNothing(t *testing.T) {
	s := NewScope()
	defer s.Close()
	w := s.FromFloat32([]float32{1, 2}, 2)
	w.SetRequiresGrad(true)
	ng := s.NoGrad()
	y := ng.MulScalar(w, 3)
	if y.RequiresGrad() {
		t.Fatal("no-grad scope recorded an operation")
	}
	ng.Close()
	y2 := s.MulScalar(w, 3)
	if !y2.RequiresGrad() {
		t.Fatal("grad scope did not record")
	}
	s.Backward(y2)
	if s.Err() == nil {
		t.Fatal("backward of a non-scalar without a gradient succeeded")
	}
}

// adamwRef is torch.optim.AdamW's update, by hand.
func adamwRef(p, g, m, v []float64, step int, lr, b1, b2, eps, wd float64) {
	bc1 := 1 - math.Pow(b1, float64(step))
	bc2 := 1 - math.Pow(b2, float64(step))
	for i := range p {
		p[i] *= 1 - lr*wd
		m[i] = b1*m[i] + (1-b1)*g[i]
		v[i] = b2*v[i] + (1-b2)*g[i]*g[i]
		denom := math.Sqrt(v[i])/math.Sqrt(bc2) + eps
		p[i] -= lr / bc1 * m[i] / denom
	}
}

func TestAdamWMatchesHandComputedSteps(t *testing.T) {
	s := NewScope()
	defer s.Close()
	p0 := []float64{1, -2, 0.5}
	c := []float64{0.5, 3, -1}
	w := s.FromFloat64(p0, 3)
	w.SetRequiresGrad(true)
	b := s.FromFloat64([]float64{0.25}, 1) // no decay
	b.SetRequiresGrad(true)
	cfg := AdamWConfig{LR: 0.1, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01}
	opt, err := NewAdamW([]Param{{Name: "w", Tensor: w, Decay: true}, {Name: "b", Tensor: b}}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer opt.Close()
	ref := append([]float64(nil), p0...)
	refB := []float64{0.25}
	m, v := make([]float64, 3), make([]float64, 3)
	mb, vb := make([]float64, 1), make([]float64, 1)
	for step := 1; step <= 3; step++ {
		st := s.Child()
		// loss = sum(c * w^2) + 2b  → grad 2cw, 2
		loss := st.Add(st.Sum(st.Mul(st.FromFloat64(c, 3), st.Mul(w, w)), false), st.Sum(st.MulScalar(b, 2), false))
		st.Backward(loss)
		if err := st.Err(); err != nil {
			t.Fatal(err)
		}
		g := make([]float64, 3)
		for i := range g {
			g[i] = 2 * c[i] * ref[i]
		}
		adamwRef(ref, g, m, v, step, cfg.LR, cfg.Beta1, cfg.Beta2, cfg.Eps, cfg.WeightDecay)
		adamwRef(refB, []float64{2}, mb, vb, step, cfg.LR, cfg.Beta1, cfg.Beta2, cfg.Eps, 0)
		if err := opt.Step(cfg.LR); err != nil {
			t.Fatal(err)
		}
		opt.ZeroGrad()
		st.Close()
		got, _ := w.Float64s()
		gotB, _ := b.Float64s()
		for i := range got {
			if math.Abs(got[i]-ref[i]) > 1e-12 {
				t.Fatalf("step %d: w[%d] = %.15f, want %.15f", step, i, got[i], ref[i])
			}
		}
		if math.Abs(gotB[0]-refB[0]) > 1e-12 {
			t.Fatalf("step %d: b = %.15f, want %.15f (no weight decay)", step, gotB[0], refB[0])
		}
	}
}

func TestAdamWStateResume(t *testing.T) {
	train := func(opt *AdamW, w *Tensor, steps int) {
		for i := 0; i < steps; i++ {
			s := NewScope()
			s.Backward(s.Sum(s.Mul(s.Mul(w, w), s.FromFloat32([]float32{1, 2, 3}, 3)), false))
			if err := s.Err(); err != nil {
				t.Fatal(err)
			}
			opt.Step(0.05)
			opt.ZeroGrad()
			s.Close()
		}
	}
	root := NewScope()
	defer root.Close()
	mk := func() *Tensor {
		w := root.FromFloat32([]float32{1, -1, 2}, 3)
		w.SetRequiresGrad(true)
		return w
	}
	wa := mk()
	a, _ := NewAdamW([]Param{{Name: "w", Tensor: wa, Decay: true}}, DefaultAdamW(0.05))
	defer a.Close()
	train(a, wa, 4)

	wb := mk()
	b, _ := NewAdamW([]Param{{Name: "w", Tensor: wb, Decay: true}}, DefaultAdamW(0.05))
	train(b, wb, 2)
	// checkpoint: weights and optimiser state through safetensors
	dir := t.TempDir()
	st, steps, err := b.State(root)
	if err != nil || steps["w"] != 2 {
		t.Fatalf("state %v %v", steps, err)
	}
	st["param.w"] = wb
	if err := SaveSafetensors(filepath.Join(dir, "ckpt.safetensors"), st, map[string]string{"step.w": strconv.Itoa(int(steps["w"]))}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	f, err := OpenSafetensors(filepath.Join(dir, "ckpt.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	loaded := map[string]*Tensor{}
	for _, n := range f.Names() {
		loaded[n], _ = f.Load(root, n, CPUDevice, -1)
	}
	wc := loaded["param.w"]
	wc.SetRequiresGrad(true)
	c, _ := NewAdamW([]Param{{Name: "w", Tensor: wc, Decay: true}}, DefaultAdamW(0.05))
	defer c.Close()
	n, _ := strconv.Atoi(f.Metadata["step.w"])
	if err := c.LoadState(loaded, map[string]int64{"w": int64(n)}); err != nil {
		t.Fatal(err)
	}
	train(c, wc, 2)
	ga, _ := wa.Float32s()
	gc, _ := wc.Float32s()
	for i := range ga {
		if ga[i] != gc[i] {
			t.Fatalf("resumed training differs: %v vs %v", gc, ga)
		}
	}
}

func TestClipGradNormAndSchedule(t *testing.T) {
	s := NewScope()
	defer s.Close()
	w := s.FromFloat32([]float32{0, 0}, 2)
	w.SetRequiresGrad(true)
	s.Backward(s.Sum(s.Mul(w, s.FromFloat32([]float32{3, 4}, 2)), false)) // grad (3,4), norm 5
	norm, err := ClipGradNorm([]*Tensor{w}, 1)
	if err != nil || math.Abs(norm-5) > 1e-6 {
		t.Fatalf("norm %v %v", norm, err)
	}
	near(t, "clipped", vals(t, s.Grad(w)), []float32{0.6, 0.8}, 1e-5)
	l := LinearSchedule{Base: 1, Warmup: 10, Total: 110}
	for step, want := range map[int]float64{0: 0, 5: 0.5, 10: 1, 60: 0.5, 110: 0, 200: 0} {
		if got := l.LR(step); math.Abs(got-want) > 1e-12 {
			t.Fatalf("LR(%d) = %v, want %v", step, got, want)
		}
	}
}

func rss(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skip("no /proc/self/statm")
	}
	f := strings.Fields(string(b))
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// TestMemoryFlatOverManyForwardPasses runs 10,000 forward passes of a small
// BERT-shaped block (self-attention + feed-forward + layer norms), each in
// its own scope, and checks that resident memory does not grow.
func TestMemoryFlatOverManyForwardPasses(t *testing.T) {
	const (
		batch, seq, hidden, heads, inter = 4, 32, 64, 4, 256
		passes                           = 10000
	)
	params := NewScope()
	defer params.Close()
	p := func(shape ...int64) *Tensor {
		return params.MulScalar(params.Randn(Float32, CPUDevice, shape...), 0.05)
	}
	wq, wk, wv, wo := p(hidden, hidden), p(hidden, hidden), p(hidden, hidden), p(hidden, hidden)
	w1, w2 := p(inter, hidden), p(hidden, inter)
	ln1w, ln2w := params.Ones(Float32, CPUDevice, hidden), params.Ones(Float32, CPUDevice, hidden)
	bias := params.Zeros(Float32, CPUDevice, hidden)
	x0 := params.Randn(Float32, CPUDevice, batch, seq, hidden)
	mask := params.Zeros(Float32, CPUDevice, batch, 1, 1, seq)
	heads3 := func(s *Scope, x *Tensor) *Tensor {
		return s.Transpose(s.View(x, batch, seq, heads, hidden/heads), 1, 2)
	}
	forward := func() error {
		s := params.NoGrad()
		defer s.Close()
		q, k, v := heads3(s, s.Linear(x0, wq, bias)), heads3(s, s.Linear(x0, wk, bias)), heads3(s, s.Linear(x0, wv, bias))
		a := s.Reshape(s.Transpose(s.Attention(q, k, v, mask, 0, false, 0), 1, 2), batch, seq, hidden)
		h := s.LayerNorm(s.Add(x0, s.Linear(a, wo, bias)), ln1w, bias, 1e-12)
		f := s.Linear(s.Gelu(s.Linear(h, w1, nil)), w2, bias)
		out := s.LayerNorm(s.Add(h, f), ln2w, bias, 1e-12)
		_ = s.Sum(out, false)
		return s.Err()
	}
	for i := 0; i < 500; i++ { // warm-up: allocator pools, thread pools
		if err := forward(); err != nil {
			t.Fatal(err)
		}
	}
	live0, rss0 := LiveTensors(), rss(t)
	for i := 0; i < passes; i++ {
		if err := forward(); err != nil {
			t.Fatal(err)
		}
	}
	live1, rss1 := LiveTensors(), rss(t)
	t.Logf("%d forward passes: RSS start %.1f MiB, end %.1f MiB (%+.1f MiB); live tensors %d -> %d",
		passes, float64(rss0)/(1<<20), float64(rss1)/(1<<20), float64(rss1-rss0)/(1<<20), live0, live1)
	if live1 != live0 {
		t.Fatalf("leaked %d tensor handles", live1-live0)
	}
	if rss1-rss0 > 16<<20 {
		t.Fatalf("resident memory grew by %.1f MiB over %d passes", float64(rss1-rss0)/(1<<20), passes)
	}
}
