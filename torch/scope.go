package torch

/*
#include "re2g_torch.h"
*/
import "C"

import (
	"fmt"
	"strings"
)

// Tensor is a handle to a libtorch tensor. It is owned by the Scope that
// created it, or by the caller after Scope.Disown.
type Tensor struct {
	h     C.re2g_t
	owner *Scope
}

// Scope owns the tensors made by the operations called on it and frees them
// all on Close. A Scope, like the tensors it makes, is for one goroutine at a
// time; tensors are safe to read from many goroutines at once (model weights,
// for example), each with its own Scope.
type Scope struct {
	parent   *Scope
	owned    []*Tensor
	err      error
	noGrad   bool
	autocast C.int // RE2G_AUTOCAST_* flag, 0 for none
	closed   bool
}

// NewScope returns a root scope in which autograd records operations on
// tensors that require gradients.
func NewScope() *Scope { return &Scope{} }

// Child returns a scope whose Keep moves tensors into s. It inherits s's
// grad and autocast modes and starts without error.
func (s *Scope) Child() *Scope { return &Scope{parent: s, noGrad: s.noGrad, autocast: s.autocast} }

// NoGrad returns a child scope in which autograd records nothing: for
// inference, and for updates of parameters.
func (s *Scope) NoGrad() *Scope {
	c := s.Child()
	c.noGrad = true
	return c
}

// GradEnabled reports whether operations in s are recorded by autograd.
func (s *Scope) GradEnabled() bool { return !s.noGrad }

// Autocast returns a child scope whose operations run under libtorch's
// autocast to dt, BFloat16 or Float16, as in PyTorch's
// `with torch.autocast(device, dtype=dt)`: the matrix products (Linear,
// Matmul, BMM, Attention's products) compute in dt from float32 operands,
// and the operations that CUDA autocast runs in float32 do so on every
// device (the shim casts their 16-bit inputs where CPU autocast would not):
// LayerNorm, Softmax, LogSoftmax, LogSumExp, Sum, CrossEntropy, KLDiv, and
// Attention's softmax. Other operations run in their inputs' type (a bf16
// product plus a float32 residual is float32). Its children inherit it;
// Float32 or -1 returns a child without autocast (to leave it within a
// region); any other type is the child's error. BFloat16 applies on the CPU
// and on CUDA, Float16 on CUDA only (operations on CPU tensors then run as
// without autocast).
//
// This is re2g's mixed-precision training (--dtype bfloat16): bf16 autocast
// over fp32 master weights. The parameters stay float32, so their gradients
// are float32 (autograd casts the bf16 gradients back through the recorded
// casts), and AdamW keeps its moments in float32 and updates the float32
// weights; only activations and matrix products are bf16. There is no loss
// scaling: bf16 has float32's 8-bit exponent, so its gradients underflow or
// overflow no sooner than float32 ones (float16 training would need a
// gradient scaler, which re2g does not provide). Backward runs outside
// autocast, as in PyTorch. Autocast's cache of weight casts is off, so each
// use of a weight casts it anew: a shim call cannot tell where a forward
// pass ends, and a cache kept across calls would serve casts of weights that
// an optimiser step has since updated in place.
func (s *Scope) Autocast(dt DType) *Scope {
	c := s.Child()
	switch dt {
	case BFloat16:
		c.autocast = C.RE2G_AUTOCAST_BF16
	case Float16:
		c.autocast = C.RE2G_AUTOCAST_F16
	case Float32, -1:
		c.autocast = 0
	default:
		c.SetErr(&Error{Op: "autocast", Msg: fmt.Sprintf("autocast to %v: want bfloat16, float16, or float32 for none", dt)})
	}
	return c
}

// AutocastDType reports the type s's operations autocast to, and whether
// they do.
func (s *Scope) AutocastDType() (DType, bool) {
	switch s.autocast {
	case C.RE2G_AUTOCAST_BF16:
		return BFloat16, true
	case C.RE2G_AUTOCAST_F16:
		return Float16, true
	}
	return Float32, false
}

// Err is the first error of an operation in s, or nil.
func (s *Scope) Err() error { return s.err }

// SetErr records err as s's error, unless s already has one. Model code uses
// it to report its own checks through the same path as libtorch's errors.
func (s *Scope) SetErr(err error) {
	if s.err == nil && err != nil {
		s.err = err
	}
}

// Close frees every tensor s still owns. It is safe to call twice.
func (s *Scope) Close() {
	for _, t := range s.owned {
		if t.owner == s {
			t.free()
		}
	}
	s.owned = nil
	s.closed = true
}

// Len is the number of tensors s owns (including freed slots not yet reclaimed).
func (s *Scope) Len() int { return len(s.owned) }

// Keep moves ts into the parent scope, so that they outlive s. In a root
// scope it is Disown.
func (s *Scope) Keep(ts ...*Tensor) {
	for _, t := range ts {
		if t == nil || t.owner != s {
			continue
		}
		if s.parent == nil {
			t.owner = nil
			continue
		}
		t.owner = s.parent
		s.parent.owned = append(s.parent.owned, t)
	}
}

// Disown removes t from s: the caller owns it and must call t.Free.
func (s *Scope) Disown(t *Tensor) *Tensor {
	if t != nil && t.owner == s {
		t.owner = nil
	}
	return t
}

// Adopt makes s the owner of a tensor that the caller owned (after Disown).
func (s *Scope) Adopt(t *Tensor) *Tensor {
	if t != nil && t.owner == nil && t.h != nil {
		t.owner = s
		s.owned = append(s.owned, t)
	}
	return t
}

// Free releases t now, whoever owns it. Using t afterwards is an error, not a crash.
func (t *Tensor) Free() {
	if t != nil {
		t.free()
	}
}

func (t *Tensor) free() {
	if t.h != nil {
		C.re2g_free(t.h)
		t.h = nil
		live.Add(-1)
	}
	t.owner = nil
}

// Valid reports whether t holds a tensor (it was not freed and its operation did not fail).
func (t *Tensor) Valid() bool { return t != nil && t.h != nil }

// wrap registers a new native handle with s.
func (s *Scope) wrap(h C.re2g_t) *Tensor {
	live.Add(1)
	t := &Tensor{h: h, owner: s}
	if s.closed {
		// A closed scope still owns what it makes, to be freed on the next Close:
		// reuse after Close is a bug in the caller, but not a leak.
		s.closed = false
	}
	s.owned = append(s.owned, t)
	return t
}

// invalid is returned by operations that failed or were skipped.
func invalid() *Tensor { return &Tensor{} }

// ready checks that s has no error and that every input is valid; when not,
// it records an error (if none is recorded yet) and returns false.
func (s *Scope) ready(op string, ts ...*Tensor) bool {
	if s.err != nil {
		return false
	}
	for i, t := range ts {
		if t == nil || t.h == nil {
			s.err = &Error{Op: op, Msg: fmt.Sprintf("operand %d: %v", i, ErrFreed)}
			return false
		}
	}
	return true
}

// check records the shim's error for op, with the shapes of its operands.
func (s *Scope) check(op string, e C.re2g_err, ts ...*Tensor) bool {
	if e == nil {
		return true
	}
	err := cErr(op, e).(*Error)
	err.Shapes = describe(ts...)
	s.SetErr(err)
	return false
}

// describe renders operands as "[2 3]f32, [4 5]f32".
func describe(ts ...*Tensor) string {
	parts := make([]string, 0, len(ts))
	for _, t := range ts {
		if t == nil || t.h == nil {
			parts = append(parts, "<freed>")
			continue
		}
		parts = append(parts, fmt.Sprintf("%v%s", t.Shape(), shortDType(t.DType())))
	}
	return strings.Join(parts, ", ")
}

func shortDType(d DType) string {
	switch d {
	case Float32:
		return "f32"
	case Float16:
		return "f16"
	case BFloat16:
		return "bf16"
	case Int64:
		return "i64"
	case Bool:
		return "bool"
	case Float64:
		return "f64"
	case Int32:
		return "i32"
	}
	return d.String()
}

// grad is the flags argument of the shim's computing calls: RE2G_GRAD when
// autograd records, or'ed with the autocast flag.
func (s *Scope) grad() C.int {
	if s.noGrad {
		return s.autocast
	}
	return C.RE2G_GRAD | s.autocast
}

// Run calls f with a child scope and returns what f returns, moved into s;
// everything else f made is freed when it returns. Model code runs each
// layer this way, so that a layer's intermediates go as soon as its output
// exists (autograd keeps what the backward pass needs by itself). f's error
// becomes s's.
func (s *Scope) Run(f func(c *Scope) *Tensor) *Tensor {
	c := s.Child()
	defer c.Close()
	out := f(c)
	if err := c.Err(); err != nil {
		s.SetErr(err)
		return invalid()
	}
	c.Keep(out)
	return out
}
