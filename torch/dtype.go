package torch

/*
#include "re2g_torch.h"
*/
import "C"

import (
	"fmt"
	"strconv"
	"strings"
)

// DType is a tensor element type.
type DType int

// The element types re2g uses.
const (
	Float32  DType = C.RE2G_F32
	Float16  DType = C.RE2G_F16
	BFloat16 DType = C.RE2G_BF16
	Int64    DType = C.RE2G_I64
	Bool     DType = C.RE2G_BOOL
	Float64  DType = C.RE2G_F64
	Int32    DType = C.RE2G_I32
)

var dtypeNames = map[DType]string{
	Float32: "float32", Float16: "float16", BFloat16: "bfloat16", Int64: "int64",
	Bool: "bool", Float64: "float64", Int32: "int32",
}

func (d DType) String() string {
	if n, ok := dtypeNames[d]; ok {
		return n
	}
	return fmt.Sprintf("dtype(%d)", int(d))
}

// Size is the number of bytes of one element.
func (d DType) Size() int {
	switch d {
	case Float32, Int32:
		return 4
	case Float16, BFloat16:
		return 2
	case Int64, Float64:
		return 8
	case Bool:
		return 1
	}
	return 0
}

// IsFloat reports whether d is a floating-point type.
func (d DType) IsFloat() bool {
	return d == Float32 || d == Float16 || d == BFloat16 || d == Float64
}

// ParseDType reads "float32"/"f32", "float16"/"f16"/"half", "bfloat16"/"bf16", "int64", "bool".
func ParseDType(s string) (DType, error) {
	switch strings.ToLower(s) {
	case "float32", "f32", "float", "fp32":
		return Float32, nil
	case "float16", "f16", "half", "fp16":
		return Float16, nil
	case "bfloat16", "bf16":
		return BFloat16, nil
	case "int64", "i64", "long":
		return Int64, nil
	case "bool":
		return Bool, nil
	case "float64", "f64", "double":
		return Float64, nil
	case "int32", "i32":
		return Int32, nil
	}
	return 0, fmt.Errorf("unknown dtype %q (want float32, float16, bfloat16, int64, bool)", s)
}

// DeviceType is the kind of device a tensor lives on.
type DeviceType int

// Device types.
const (
	CPU  DeviceType = C.RE2G_CPU
	CUDA DeviceType = C.RE2G_CUDA
)

// Device is a device type and index, e.g. cuda:0.
type Device struct {
	Type  DeviceType
	Index int
}

// CPUDevice is the host.
var CPUDevice = Device{Type: CPU}

func (d Device) String() string {
	if d.Type == CUDA {
		return "cuda:" + strconv.Itoa(d.Index)
	}
	return "cpu"
}

// ParseDevice reads "cpu", "cuda" or "cuda:N". It does not check that the
// device exists: the first tensor moved there does, and reports an error.
func ParseDevice(s string) (Device, error) {
	switch {
	case s == "" || s == "cpu":
		return CPUDevice, nil
	case s == "cuda":
		return Device{Type: CUDA}, nil
	case strings.HasPrefix(s, "cuda:"):
		i, err := strconv.Atoi(s[5:])
		if err != nil || i < 0 {
			return Device{}, fmt.Errorf("bad device %q: want cpu, cuda or cuda:N", s)
		}
		return Device{Type: CUDA, Index: i}, nil
	}
	return Device{}, fmt.Errorf("bad device %q: want cpu, cuda or cuda:N", s)
}
