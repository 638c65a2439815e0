package torch

/*
#include "re2g_torch.h"
*/
import "C"

import "unsafe"

// The low-level access below is for packages that bind more of the shim
// (torch/dist): cgo types are per package, so the shim's tensor handles
// (re2g_t) cross package boundaries as unsafe.Pointer.

// NativeHandle is t's shim handle (a re2g_t), still owned by t; nil for a
// freed or invalid tensor. It is valid until t is freed.
func NativeHandle(t *Tensor) unsafe.Pointer {
	if t == nil {
		return nil
	}
	return unsafe.Pointer(t.h)
}

// WrapNative makes s the owner of h, a re2g_t that a shim call returned to
// the caller.
func (s *Scope) WrapNative(h unsafe.Pointer) *Tensor {
	if h == nil {
		return invalid()
	}
	return s.wrap(C.re2g_t(h))
}

// NativeFlags is the flags argument of the shim's computing calls for s:
// RE2G_GRAD when autograd records, or'ed with its autocast flag.
func (s *Scope) NativeFlags() int32 { return int32(s.grad()) }
