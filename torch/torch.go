// Package torch is a thin binding of libtorch for Go, through re2g's C ABI
// shim (torch/csrc), itself a shared library: the same Go binary runs with
// Debian's CPU libtorch or with a shim built against a CUDA libtorch found
// earlier on the library path (LD_LIBRARY_PATH).
//
// Native memory is owned explicitly. Every tensor belongs to a Scope, which
// frees all of its tensors when it is closed; the few results that must
// outlive a scope are moved out with Keep or Disown. Errors are sticky per
// scope, in the manner of bufio.Scanner: the first failing operation records
// an error naming the operation and its operands' shapes, later operations in
// that scope do nothing, and the caller checks Scope.Err once.
package torch

/*
#cgo CFLAGS: -I${SRCDIR}/csrc
#cgo LDFLAGS: -L${SRCDIR}/../build/lib -lre2gtorch -Wl,--enable-new-dtags -Wl,-rpath,${SRCDIR}/../build/lib
#include <stdlib.h>
#include "re2g_torch.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"

	"github.com/re2g/re2g/internal/limits"
)

// live counts the native tensor handles held by Go: a leak check for tests.
var live atomic.Int64

// LiveTensors reports how many native tensor handles are currently held.
func LiveTensors() int64 { return live.Load() }

// Version is the version of the libtorch the shim was built against.
func Version() string { return C.GoString(C.re2g_torch_version()) }

// CUDAAvailable reports whether the loaded libtorch sees a CUDA device.
func CUDAAvailable() bool { return C.re2g_cuda_available() != 0 }

// HostTransfers reports how many times this process has copied tensor values
// back to host memory (reads: Float64s, Int64s, Item, …) and made tensors from
// host memory (writes: FromInt64, FromFloat32, …). On a GPU each one waits for
// the device, so loops that must stay on the device are tested by these counts.
func HostTransfers() (reads, writes int64) {
	var r, w C.int64_t
	C.re2g_host_transfers(&r, &w)
	return int64(r), int64(w)
}

// CUDADeviceCount is the number of CUDA devices libtorch sees.
func CUDADeviceCount() int { return int(C.re2g_cuda_device_count()) }

// CheckDevice reports why d cannot be used, or nil: CUDA when libtorch sees
// no CUDA device (a CPU-only build, or no GPU or driver), or a CUDA index
// beyond the devices it sees.
func CheckDevice(d Device) error {
	if d.Type != CUDA {
		return nil
	}
	n := 0
	if CUDAAvailable() {
		n = CUDADeviceCount()
	}
	switch {
	case n == 0:
		return fmt.Errorf("device %s: CUDA is not available (libtorch %s sees no CUDA device: a CPU-only build, or no GPU or driver)", d, Version())
	case d.Index >= n:
		return fmt.Errorf("device %s: libtorch sees %d CUDA device(s), cuda:0 to cuda:%d", d, n, n-1)
	}
	return nil
}

// SetNumThreads sets libtorch's intra-op thread pool size; 0 means one
// thread per core. It is process-wide: call it once at start-up. A negative
// n, or more than limits.MaxThreads (4 per CPU), is an error and changes
// nothing.
func SetNumThreads(n int) error {
	if err := limits.CheckThreads(n); err != nil {
		return fmt.Errorf("torch: %w", err)
	}
	if n == 0 {
		n = runtime.NumCPU()
	}
	C.re2g_set_num_threads(C.int(n))
	return nil
}

// NumThreads reports libtorch's intra-op thread count.
func NumThreads() int { return int(C.re2g_get_num_threads()) }

// ManualSeed seeds libtorch's random generators (CPU and CUDA).
func ManualSeed(seed uint64) { C.re2g_manual_seed(C.uint64_t(seed)) }

// Synchronize waits for the work queued on a CUDA device; a no-op on CPU.
func Synchronize(d Device) error {
	if d.Type != CUDA {
		return nil
	}
	return cErr("synchronize", C.re2g_cuda_synchronize(C.int(d.Index)))
}

// cErr turns a shim error string into a Go error and frees it.
func cErr(op string, e C.re2g_err) error {
	if e == nil {
		return nil
	}
	msg := C.GoString(e)
	C.re2g_free_err(e)
	return &Error{Op: op, Msg: msg}
}

// Error is an error raised by libtorch or by this package's checks.
type Error struct {
	Op     string // the operation, e.g. "matmul"
	Shapes string // the operands' shapes and dtypes, when known
	Msg    string // libtorch's message, without its C++ backtrace
}

func (e *Error) Error() string {
	if e.Shapes != "" {
		return fmt.Sprintf("torch: %s(%s): %s", e.Op, e.Shapes, e.Msg)
	}
	return fmt.Sprintf("torch: %s: %s", e.Op, e.Msg)
}

// ErrFreed is reported when a tensor is used after its scope was closed or
// after it was freed, or when it came from a failed operation.
var ErrFreed = errors.New("tensor was freed, or came from a failed operation")
