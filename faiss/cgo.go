// Package faiss is a thin Go layer over FAISS (Debian's libfaiss 1.7.3) for
// dense passage retrieval: HNSW indexes (float32 or 8-bit scalar-quantised
// vectors, inner product or L2, or inner product turned into L2 by one extra
// dimension), exact flat indexes for ground truth, int64 ids, batched search
// with a per-search efSearch, explicit thread control, and atomic save/load.
//
// It calls FAISS's C API (build/faiss/lib/libfaiss_c.a, built by `make
// natives` from Debian's faiss source package) and a small C++ shim compiled
// into the same library (third_party/faiss/re2g_faiss.cpp) for the HNSW
// parts the 1.7.3 C API lacks. Native memory is released by Close.
package faiss

/*
#cgo CFLAGS: -I${SRCDIR}/../third_party/faiss
#cgo LDFLAGS: -L${SRCDIR}/../build/faiss/lib -lfaiss_c -lfaiss -llapack -lblas -lgomp -lstdc++ -lm
#include <stdlib.h>
#include <string.h>
*/
import "C"

import (
	"errors"
	"unsafe"
)

// cErr converts a shim error string (NULL for success) to a Go error and
// frees it.
func cErr(s *C.char) error {
	if s == nil {
		return nil
	}
	defer C.free(unsafe.Pointer(s))
	return errors.New(C.GoString(s))
}
