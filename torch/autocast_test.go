package torch

import (
	"fmt"
	"math"
	"math/rand"
	"runtime"
	"sync"
	"testing"
)

// tinyNet is Linear → GELU → LayerNorm → Linear, with fp32 parameters.
type tinyNet struct {
	w1, b1, g, beta, w2, b2 *Tensor
}

func newTinyNet(t *testing.T, s *Scope, in, hidden, out int64, seed int64) *tinyNet {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	param := func(scale float64, shape ...int64) *Tensor {
		n := int64(1)
		for _, d := range shape {
			n *= d
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * scale)
		}
		p := s.FromFloat32(v, shape...)
		if err := p.SetRequiresGrad(true); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ones := func(n int64) *Tensor {
		v := make([]float32, n)
		for i := range v {
			v[i] = 1 + float32(rng.NormFloat64()*0.1)
		}
		p := s.FromFloat32(v, n)
		if err := p.SetRequiresGrad(true); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return &tinyNet{
		w1: param(1/math.Sqrt(float64(in)), hidden, in), b1: param(0.1, hidden),
		g: ones(hidden), beta: param(0.1, hidden),
		w2: param(1/math.Sqrt(float64(hidden)), out, hidden), b2: param(0.1, out),
	}
}

func (n *tinyNet) params() []Param {
	return []Param{
		{"w1", n.w1, true}, {"b1", n.b1, false}, {"ln.weight", n.g, false}, {"ln.bias", n.beta, false},
		{"w2", n.w2, true}, {"b2", n.b2, false},
	}
}

// netOut holds a forward pass's intermediates.
type netOut struct {
	hidden, normed, logits, probs, loss *Tensor
}

func (n *tinyNet) forward(s *Scope, x, target *Tensor) netOut {
	h := s.Linear(x, n.w1, n.b1)
	normed := s.LayerNorm(s.Gelu(h), n.g, n.beta, 1e-5)
	logits := s.Linear(normed, n.w2, n.b2)
	return netOut{
		hidden: h, normed: normed, logits: logits,
		probs: s.Softmax(logits, -1),
		loss:  s.CrossEntropy(logits, target, -100, ReduceMean, 0),
	}
}

func randData(s *Scope, rows, in, classes int64, seed int64) (*Tensor, *Tensor) {
	rng := rand.New(rand.NewSource(seed))
	x := make([]float32, rows*in)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	y := make([]int64, rows)
	for i := range y {
		y[i] = rng.Int63n(classes)
	}
	return s.FromFloat32(x, rows, in), s.FromInt64(y, rows)
}

func wantDType(t *testing.T, what string, x *Tensor, dt DType) {
	t.Helper()
	if got := x.DType(); got != dt {
		t.Fatalf("%s is %v, want %v", what, got, dt)
	}
}

// nearRel compares within tol relative to the largest magnitude in want.
func nearRel(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	scale := 0.0
	for _, w := range want {
		scale = math.Max(scale, math.Abs(float64(w)))
	}
	near(t, what, got, want, tol*math.Max(scale, 1e-3))
}

func TestAutocastBF16MatchesFloat32(t *testing.T) {
	s := NewScope()
	defer s.Close()
	net := newTinyNet(t, s, 16, 32, 5, 1)
	x, y := randData(s, 8, 16, 5, 2)

	f := s.Child()
	ref := net.forward(f, x, y)
	f.Backward(ref.loss)
	var refGrads [][]float32
	for _, p := range net.params() {
		refGrads = append(refGrads, vals(t, f.Grad(p.Tensor)))
		if err := p.Tensor.ZeroGrad(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Err(); err != nil {
		t.Fatal(err)
	}

	a := s.Autocast(BFloat16)
	if dt, on := a.AutocastDType(); !on || dt != BFloat16 {
		t.Fatalf("AutocastDType = %v, %v", dt, on)
	}
	out := net.forward(a, x, y)
	mm := a.Matmul(x, a.Transpose(net.w1, 0, 1))
	if err := a.Err(); err != nil {
		t.Fatal(err)
	}
	// The products ran in bf16, the normalisation, softmax and loss in f32.
	wantDType(t, "matmul under autocast", mm, BFloat16)
	wantDType(t, "linear under autocast", out.hidden, BFloat16)
	wantDType(t, "logits under autocast", out.logits, BFloat16)
	wantDType(t, "layer_norm under autocast", out.normed, Float32)
	wantDType(t, "softmax under autocast", out.probs, Float32)
	wantDType(t, "loss under autocast", out.loss, Float32)

	// bf16 keeps 8 significant bits (relative rounding 2^-9): a few roundings
	// through two layers stay within a few percent.
	nearRel(t, "hidden", vals(t, a.ToDType(out.hidden, Float32)), vals(t, ref.hidden), 0.02)
	nearRel(t, "logits", vals(t, a.ToDType(out.logits, Float32)), vals(t, ref.logits), 0.03)
	near(t, "probs", vals(t, out.probs), vals(t, ref.probs), 0.02)
	near(t, "loss", vals(t, out.loss), vals(t, ref.loss), 0.02)
	// ... and they did differ: autocast was applied.
	if h, r := vals(t, a.ToDType(out.hidden, Float32)), vals(t, ref.hidden); fmt.Sprint(h) == fmt.Sprint(r) {
		t.Fatal("autocast output equals the float32 one exactly")
	}

	// Backward (outside autocast) through the autocast graph: f32 gradients
	// of the f32 parameters, near the f32 ones.
	a.Backward(out.loss)
	for i, p := range net.params() {
		g := a.Grad(p.Tensor)
		if g == nil {
			t.Fatalf("%s has no gradient", p.Name)
		}
		wantDType(t, p.Name+" grad", g, Float32)
		wantDType(t, p.Name, p.Tensor, Float32)
		nearRel(t, p.Name+" grad", vals(t, g), refGrads[i], 0.06)
	}
	if err := a.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestAutocastAdamWKeepsFP32MasterWeights(t *testing.T) {
	s := NewScope()
	defer s.Close()
	net := newTinyNet(t, s, 12, 24, 4, 3)
	x, y := randData(s, 16, 12, 4, 4)
	opt, err := NewAdamW(net.params(), DefaultAdamW(2e-2))
	if err != nil {
		t.Fatal(err)
	}
	defer opt.Close()
	var losses []float64
	for step := 0; step < 25; step++ {
		a := s.Autocast(BFloat16)
		out := net.forward(a, x, y)
		wantDType(t, "logits", out.logits, BFloat16)
		a.Backward(out.loss)
		for _, p := range net.params() {
			g := a.Grad(p.Tensor)
			if g == nil {
				t.Fatalf("step %d: %s has no gradient", step, p.Name)
			}
			wantDType(t, p.Name+" grad", g, Float32)
		}
		l, err := out.loss.Item()
		if err != nil || a.Err() != nil {
			t.Fatal(err, a.Err())
		}
		losses = append(losses, l)
		if err := opt.Step(2e-2); err != nil {
			t.Fatal(err)
		}
		if err := opt.ZeroGrad(); err != nil {
			t.Fatal(err)
		}
		a.Close()
		for _, p := range net.params() {
			wantDType(t, p.Name, p.Tensor, Float32)
		}
	}
	if last := losses[len(losses)-1]; !(last < 0.5*losses[0]) {
		t.Fatalf("loss went from %.4f to %.4f under autocast: %v", losses[0], last, losses)
	}
	st, steps, err := opt.State(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range net.params() {
		if steps[p.Name] != 25 {
			t.Fatalf("%s: %d steps", p.Name, steps[p.Name])
		}
		wantDType(t, p.Name+".exp_avg", st[p.Name+".exp_avg"], Float32)
		wantDType(t, p.Name+".exp_avg_sq", st[p.Name+".exp_avg_sq"], Float32)
	}
}

// staleCheck runs an autocast forward, a large AdamW step on the weight, and
// the autocast forward again, on one OS thread (where a cache of casts kept
// across calls would be found). It returns the second output's largest
// difference from the same product computed by hand from the updated
// weight's bf16 cast, and how far the step moved that product.
func staleCheck(t *testing.T) (stale, moved float64) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	s := NewScope()
	defer s.Close()
	x, _ := randData(s, 4, 8, 2, 5)
	w := s.Randn(Float32, Device{}, 6, 8)
	if err := w.SetRequiresGrad(true); err != nil {
		t.Fatal(err)
	}
	opt, err := NewAdamW([]Param{{"w", w, false}}, DefaultAdamW(0.5))
	if err != nil {
		t.Fatal(err)
	}
	defer opt.Close()

	a := s.Autocast(BFloat16)
	y1 := a.Linear(x, w, nil)
	a.Backward(a.Sum(a.Mul(y1, y1), false))
	if err := opt.Step(0.5); err != nil {
		t.Fatal(err)
	}
	y2 := a.Linear(x, w, nil)
	// Inference under autocast too (no grad, same weight).
	y3 := a.NoGrad().Linear(x, w, nil)
	ng := s.NoGrad()
	want := ng.Linear(ng.ToDType(x, BFloat16), ng.ToDType(w, BFloat16), nil)
	if err := a.Err(); err != nil {
		t.Fatal(err)
	}
	if err := ng.Err(); err != nil {
		t.Fatal(err)
	}
	wantDType(t, "y2", y2, BFloat16)
	v1, v2, v3, vw := vals(t, y1), vals(t, y2), vals(t, y3), vals(t, want)
	for i := range vw {
		stale = math.Max(stale, math.Abs(float64(v2[i]-vw[i])))
		stale = math.Max(stale, math.Abs(float64(v3[i]-vw[i])))
		moved = math.Max(moved, math.Abs(float64(vw[i]-v1[i])))
	}
	return stale, moved
}

func TestAutocastUsesUpdatedWeights(t *testing.T) {
	stale, moved := staleCheck(t)
	if moved < 0.5 {
		t.Fatalf("the step moved the output by only %g: the check would not see stale casts", moved)
	}
	if stale > 1e-6 {
		t.Fatalf("autocast forward after the optimiser step is %g off the updated weights' product", stale)
	}

	// The check does catch stale casts: with libtorch's cache kept on across
	// calls (which the shim avoids), the second forward reuses the bf16 copy
	// of the weight from before the step.
	autocastKeepCache(true)
	func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer autocastKeepCache(false)
		stale, _ = staleCheck(t)
	}()
	if stale < 0.5 {
		t.Fatalf("with the autocast cache kept, the forward after the step was only %g off: the check misses stale casts", stale)
	}
}

func TestAutocastStaysInItsScope(t *testing.T) {
	runtime.LockOSThread()
	cpu0, cuda0, cache0, cpuDT0, cudaDT0 := autocastState()
	runtime.UnlockOSThread()
	if cpu0 || cuda0 {
		t.Fatalf("autocast on before any call: cpu %v cuda %v", cpu0, cuda0)
	}

	s := NewScope()
	defer s.Close()
	x := s.Randn(Float32, Device{}, 3, 4)
	w := s.Randn(Float32, Device{}, 5, 4)
	if err := w.SetRequiresGrad(true); err != nil {
		t.Fatal(err)
	}
	a := s.Autocast(BFloat16)
	sib := s.Child()

	runtime.LockOSThread()
	wantDType(t, "autocast linear", a.Linear(x, w, nil), BFloat16)
	if cpu, cuda, cache, cpuDT, cudaDT := autocastState(); cpu != cpu0 || cuda != cuda0 || cache != cache0 ||
		cpuDT != cpuDT0 || cudaDT != cudaDT0 {
		t.Fatalf("thread autocast state after an autocast call: cpu %v cuda %v cache %v %v %v, before: %v %v %v %v %v",
			cpu, cuda, cache, cpuDT, cudaDT, cpu0, cuda0, cache0, cpuDT0, cudaDT0)
	}
	wantDType(t, "sibling linear on the same thread", sib.Linear(x, w, nil), Float32)
	runtime.UnlockOSThread()

	wantDType(t, "parent matmul", s.Matmul(x, s.Transpose(w, 0, 1)), Float32)
	wantDType(t, "child of autocast", a.Child().Matmul(x, a.Transpose(w, 0, 1)), BFloat16)
	wantDType(t, "autocast(float32) inside autocast", a.Autocast(Float32).Matmul(x, s.Transpose(w, 0, 1)), Float32)
	wantDType(t, "autocast(-1) inside autocast", a.Autocast(-1).Linear(x, w, nil), Float32)
	if _, on := a.Autocast(Float32).AutocastDType(); on {
		t.Fatal("Autocast(Float32) reports autocast on")
	}
	if _, on := s.AutocastDType(); on {
		t.Fatal("root scope reports autocast on")
	}

	// Grad and autocast combine: no grad under autocast records nothing
	// (the flags are not read as a bool), and autocast still applies.
	inf := a.NoGrad()
	y := inf.Linear(x, w, nil)
	wantDType(t, "no-grad autocast linear", y, BFloat16)
	if y.RequiresGrad() {
		t.Fatal("no-grad autocast scope recorded an operation")
	}
	if z := a.Linear(x, w, nil); !z.RequiresGrad() {
		t.Fatal("autocast scope with grad did not record")
	}

	// float16 autocast is CUDA-only: CPU tensors compute as without it.
	wantDType(t, "float16 autocast on the CPU", s.Autocast(Float16).Linear(x, w, nil), Float32)
	bad := s.Autocast(Int64)
	if bad.Err() == nil {
		t.Fatal("Autocast(Int64) is not an error")
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if err := a.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestAutocastConcurrentGoroutines runs autocast and plain goroutines at
// once: Go moves them between OS threads, so each call must set its thread's
// autocast state and leave it as it found it.
func TestAutocastConcurrentGoroutines(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("needs two Ps to run goroutines on several threads at once")
	}
	root := NewScope()
	defer root.Close()
	x := root.Randn(Float32, Device{}, 4, 8)
	w := root.Randn(Float32, Device{}, 8, 8)
	const workers, iters = 4, 200
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers)
	for i := 0; i < 2*workers; i++ {
		amp := i%2 == 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := 0; it < iters; it++ {
				s := NewScope().NoGrad()
				want := Float32
				if amp {
					s = s.Autocast(BFloat16)
					want = BFloat16
				}
				y := s.Matmul(x, w)
				l := s.Linear(x, w, nil)
				sm := s.Softmax(y, -1)
				if err := s.Err(); err != nil {
					errs <- err
					s.Close()
					return
				}
				if y.DType() != want || l.DType() != want || sm.DType() != Float32 {
					errs <- fmt.Errorf("autocast %v, iteration %d: matmul %v, linear %v, softmax %v", amp, it,
						y.DType(), l.DType(), sm.DType())
					s.Close()
					return
				}
				s.Close()
				// Between calls, whatever thread this goroutine is on has
				// autocast off.
				if cpu, cuda, _, _, _ := autocastState(); cpu || cuda {
					errs <- fmt.Errorf("autocast %v, iteration %d: thread left with autocast on (cpu %v, cuda %v)",
						amp, it, cpu, cuda)
					return
				}
				runtime.Gosched()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
