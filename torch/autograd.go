package torch

/*
#include "re2g_torch.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// SetRequiresGrad marks t as a leaf whose gradient autograd computes.
func (t *Tensor) SetRequiresGrad(on bool) error {
	if !t.Valid() {
		return &Error{Op: "set_requires_grad", Msg: ErrFreed.Error()}
	}
	f := C.int(0)
	if on {
		f = 1
	}
	return cErr("set_requires_grad", C.re2g_set_requires_grad(t.h, f))
}

// RequiresGrad reports whether autograd tracks t.
func (t *Tensor) RequiresGrad() bool { return t.Valid() && C.re2g_requires_grad(t.h) != 0 }

// Backward accumulates the gradients of the scalar t into the leaves that
// require them. It records its error in s.
func (s *Scope) Backward(t *Tensor) {
	if !s.ready("backward", t) {
		return
	}
	s.check("backward", C.re2g_backward(t.h, nil, 0), t)
}

// BackwardWith back-propagates gradOut through t (for non-scalar t).
func (s *Scope) BackwardWith(t, gradOut *Tensor, retainGraph bool) {
	if !s.ready("backward", t, gradOut) {
		return
	}
	r := C.int(0)
	if retainGraph {
		r = 1
	}
	s.check("backward", C.re2g_backward(t.h, gradOut.h, r), t, gradOut)
}

// Grad returns t's accumulated gradient (a handle owned by s sharing the
// gradient's storage), or nil when it has none.
func (s *Scope) Grad(t *Tensor) *Tensor {
	if !s.ready("grad", t) {
		return nil
	}
	var h C.re2g_t
	if !s.check("grad", C.re2g_grad(t.h, &h), t) || h == nil {
		return nil
	}
	return s.wrap(h)
}

// ZeroGrad drops t's accumulated gradient.
func (t *Tensor) ZeroGrad() error {
	if !t.Valid() {
		return &Error{Op: "zero_grad", Msg: ErrFreed.Error()}
	}
	return cErr("zero_grad", C.re2g_zero_grad(t.h))
}

// CopyFrom overwrites t's elements in place with src's (broadcast, converted),
// without recording the copy in autograd: for loading and updating weights.
func (t *Tensor) CopyFrom(src *Tensor) error {
	if !t.Valid() || !src.Valid() {
		return &Error{Op: "copy_", Msg: ErrFreed.Error()}
	}
	if err := cErr("copy_", C.re2g_copy_(t.h, src.h)); err != nil {
		err.(*Error).Shapes = describe(t, src)
		return err
	}
	return nil
}

func handles(op string, ts []*Tensor) ([]C.re2g_t, error) {
	hs := make([]C.re2g_t, len(ts))
	for i, t := range ts {
		if !t.Valid() {
			return nil, &Error{Op: op, Msg: fmt.Sprintf("parameter %d: %v", i, ErrFreed)}
		}
		hs[i] = t.h
	}
	return hs, nil
}

// ClipGradNorm scales the gradients of params so that their joint 2-norm is
// at most maxNorm, as torch.nn.utils.clip_grad_norm_, and returns the norm
// before clipping.
func ClipGradNorm(params []*Tensor, maxNorm float64) (float64, error) {
	hs, err := handles("clip_grad_norm", params)
	if err != nil || len(hs) == 0 {
		return 0, err
	}
	var total C.double
	err = cErr("clip_grad_norm", C.re2g_clip_grad_norm((*C.re2g_t)(unsafe.Pointer(&hs[0])), C.int(len(hs)), C.double(maxNorm), &total))
	return float64(total), err
}
