package torch

/*
#include <stdlib.h>
#include "re2g_torch.h"
*/
import "C"

import (
	"fmt"
	"math"
	"unsafe"
)

// Shape is the tensor's size along each dimension (nil for a freed tensor).
func (t *Tensor) Shape() []int64 {
	if t == nil || t.h == nil {
		return nil
	}
	n := int(C.re2g_ndim(t.h))
	shape := make([]int64, n)
	if n > 0 {
		C.re2g_shape(t.h, (*C.int64_t)(unsafe.Pointer(&shape[0])))
	}
	return shape
}

// Dim is the number of dimensions.
func (t *Tensor) Dim() int {
	if t == nil || t.h == nil {
		return 0
	}
	return int(C.re2g_ndim(t.h))
}

// Size is the size of dimension d; negative d counts from the end.
func (t *Tensor) Size(d int) int64 {
	sh := t.Shape()
	if d < 0 {
		d += len(sh)
	}
	if d < 0 || d >= len(sh) {
		return 0
	}
	return sh[d]
}

// Numel is the number of elements.
func (t *Tensor) Numel() int64 {
	if t == nil || t.h == nil {
		return 0
	}
	return int64(C.re2g_numel(t.h))
}

// DType is the element type.
func (t *Tensor) DType() DType {
	if t == nil || t.h == nil {
		return -1
	}
	return DType(C.re2g_dtype(t.h))
}

// Device is where the tensor lives.
func (t *Tensor) Device() Device {
	if t == nil || t.h == nil {
		return Device{}
	}
	var typ, idx C.int
	C.re2g_device(t.h, &typ, &idx)
	return Device{Type: DeviceType(typ), Index: int(idx)}
}

func (t *Tensor) String() string {
	if t == nil || t.h == nil {
		return "Tensor<freed>"
	}
	return fmt.Sprintf("Tensor%v %s %s", t.Shape(), t.DType(), t.Device())
}

func numel(shape []int64) (int64, error) {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension in shape %v", shape)
		}
		if d != 0 && n > math.MaxInt64/d {
			return 0, fmt.Errorf("shape %v overflows", shape)
		}
		n *= d
	}
	return n, nil
}

func shapePtr(shape []int64) *C.int64_t {
	if len(shape) == 0 {
		return nil
	}
	return (*C.int64_t)(unsafe.Pointer(&shape[0]))
}

// fromData copies n elements of dt at p into a new CPU tensor.
func (s *Scope) fromData(op string, p unsafe.Pointer, n int, dt DType, shape []int64) *Tensor {
	if s.err != nil {
		return invalid()
	}
	want, err := numel(shape)
	if err != nil {
		s.SetErr(&Error{Op: op, Msg: err.Error()})
		return invalid()
	}
	if want != int64(n) {
		s.SetErr(&Error{Op: op, Msg: fmt.Sprintf("%d values do not fill shape %v (%d elements)", n, shape, want)})
		return invalid()
	}
	var h C.re2g_t
	if !s.check(op, C.re2g_from_data(p, C.int(dt), shapePtr(shape), C.int(len(shape)), &h)) {
		return invalid()
	}
	return s.wrap(h)
}

func sliceData[T any](v []T) unsafe.Pointer {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Pointer(&v[0])
}

// FromFloat32 copies data into a new CPU float32 tensor of the given shape.
func (s *Scope) FromFloat32(data []float32, shape ...int64) *Tensor {
	return s.fromData("from_float32", sliceData(data), len(data), Float32, shape)
}

// FromFloat64 copies data into a new CPU float64 tensor.
func (s *Scope) FromFloat64(data []float64, shape ...int64) *Tensor {
	return s.fromData("from_float64", sliceData(data), len(data), Float64, shape)
}

// FromInt64 copies data into a new CPU int64 tensor.
func (s *Scope) FromInt64(data []int64, shape ...int64) *Tensor {
	return s.fromData("from_int64", sliceData(data), len(data), Int64, shape)
}

// FromBool copies data into a new CPU bool tensor.
func (s *Scope) FromBool(data []bool, shape ...int64) *Tensor {
	return s.fromData("from_bool", sliceData(data), len(data), Bool, shape)
}

// FromBytes copies raw little-endian elements of type dt (float16 and
// bfloat16 among them) into a new CPU tensor.
func (s *Scope) FromBytes(dt DType, data []byte, shape ...int64) *Tensor {
	if dt.Size() == 0 {
		s.SetErr(&Error{Op: "from_bytes", Msg: fmt.Sprintf("unsupported dtype %v", dt)})
		return invalid()
	}
	if len(data)%dt.Size() != 0 {
		s.SetErr(&Error{Op: "from_bytes", Msg: fmt.Sprintf("%d bytes is not a whole number of %v elements", len(data), dt)})
		return invalid()
	}
	return s.fromData("from_bytes", sliceData(data), len(data)/dt.Size(), dt, shape)
}

// Full returns a tensor of the given shape filled with v.
func (s *Scope) Full(v float64, dt DType, dev Device, shape ...int64) *Tensor {
	if s.err != nil {
		return invalid()
	}
	var h C.re2g_t
	if !s.check("full", C.re2g_full(shapePtr(shape), C.int(len(shape)), C.double(v), C.int(dt), C.int(dev.Type), C.int(dev.Index), &h)) {
		return invalid()
	}
	return s.wrap(h)
}

// Zeros returns a zero-filled tensor.
func (s *Scope) Zeros(dt DType, dev Device, shape ...int64) *Tensor {
	return s.Full(0, dt, dev, shape...)
}

// Ones returns a tensor of ones.
func (s *Scope) Ones(dt DType, dev Device, shape ...int64) *Tensor {
	return s.Full(1, dt, dev, shape...)
}

// Arange returns [start, start+step, ...) up to end, exclusive.
func (s *Scope) Arange(start, end, step int64, dt DType, dev Device) *Tensor {
	if s.err != nil {
		return invalid()
	}
	var h C.re2g_t
	if !s.check("arange", C.re2g_arange(C.int64_t(start), C.int64_t(end), C.int64_t(step), C.int(dt), C.int(dev.Type), C.int(dev.Index), &h)) {
		return invalid()
	}
	return s.wrap(h)
}

func (s *Scope) random(op string, normal bool, dt DType, dev Device, shape []int64) *Tensor {
	if s.err != nil {
		return invalid()
	}
	n := C.int(0)
	if normal {
		n = 1
	}
	var h C.re2g_t
	if !s.check(op, C.re2g_rand(shapePtr(shape), C.int(len(shape)), n, C.int(dt), C.int(dev.Type), C.int(dev.Index), &h)) {
		return invalid()
	}
	return s.wrap(h)
}

// Randn returns standard normal samples.
func (s *Scope) Randn(dt DType, dev Device, shape ...int64) *Tensor {
	return s.random("randn", true, dt, dev, shape)
}

// Rand returns uniform samples in [0, 1).
func (s *Scope) Rand(dt DType, dev Device, shape ...int64) *Tensor {
	return s.random("rand", false, dt, dev, shape)
}

// copyOut copies t's elements, converted to dt, into dst (len n).
func (t *Tensor) copyOut(op string, dt DType, dst unsafe.Pointer, n int) error {
	if t == nil || t.h == nil {
		return &Error{Op: op, Msg: ErrFreed.Error()}
	}
	if int64(n) != t.Numel() {
		return &Error{Op: op, Msg: fmt.Sprintf("buffer of %d for %d elements", n, t.Numel())}
	}
	h := t.h
	if t.DType() != dt {
		var conv C.re2g_t
		if e := C.re2g_to(0, t.h, C.int(dt), -1, 0, &conv); e != nil {
			return cErr(op, e)
		}
		live.Add(1)
		defer func() { C.re2g_free(conv); live.Add(-1) }()
		h = conv
	}
	return cErr(op, C.re2g_copy_out(h, dst, C.size_t(n*dt.Size())))
}

// Float32s copies t's elements (converted to float32) into a new slice.
func (t *Tensor) Float32s() ([]float32, error) {
	out := make([]float32, t.Numel())
	return out, t.copyOut("float32s", Float32, sliceData(out), len(out))
}

// Float64s copies t's elements (converted to float64) into a new slice.
func (t *Tensor) Float64s() ([]float64, error) {
	out := make([]float64, t.Numel())
	return out, t.copyOut("float64s", Float64, sliceData(out), len(out))
}

// Int64s copies t's elements (converted to int64) into a new slice.
func (t *Tensor) Int64s() ([]int64, error) {
	out := make([]int64, t.Numel())
	return out, t.copyOut("int64s", Int64, sliceData(out), len(out))
}

// Bools copies t's elements (converted to bool) into a new slice.
func (t *Tensor) Bools() ([]bool, error) {
	out := make([]bool, t.Numel())
	return out, t.copyOut("bools", Bool, sliceData(out), len(out))
}

// Bytes copies t's raw elements, in its own dtype, little-endian.
func (t *Tensor) Bytes() ([]byte, error) {
	dt := t.DType()
	out := make([]byte, t.Numel()*int64(dt.Size()))
	if t == nil || t.h == nil {
		return nil, &Error{Op: "bytes", Msg: ErrFreed.Error()}
	}
	return out, cErr("bytes", C.re2g_copy_out(t.h, sliceData(out), C.size_t(len(out))))
}

// Item returns the value of a one-element tensor.
func (t *Tensor) Item() (float64, error) {
	if t == nil || t.h == nil {
		return 0, &Error{Op: "item", Msg: ErrFreed.Error()}
	}
	var v C.double
	if err := cErr("item", C.re2g_item(t.h, &v)); err != nil {
		if e, ok := err.(*Error); ok {
			e.Shapes = describe(t)
		}
		return 0, err
	}
	return float64(v), nil
}
