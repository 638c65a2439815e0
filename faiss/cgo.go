// Package faiss is a thin Go layer over FAISS (Debian's libfaiss 1.7.3) for
// dense passage retrieval: HNSW indexes (float32 or 8-bit scalar-quantised
// vectors, inner product or L2), exact flat indexes for ground truth, int64
// ids, batched search with a per-search efSearch, explicit thread control,
// atomic save/load, and a check of an index against its configuration.
//
// Inner product is ranked natively: FAISS builds the HNSW graph with inner
// product as its similarity. The package used to offer a third metric,
// inner product through an L2 index over augmented vectors (Bachrach et al.
// 2014, as DPR's HNSW indexer does: x -> [x, sqrt(phi-|x|²)], q -> [q, 0]).
// It was removed: its ranking was exact (brute force over the augmented
// vectors gives the inner-product top k), but the graph built over the
// augmented vectors links them by x·y + e_x·e_y, and where norms spread the
// extra coordinates' product outweighs the directions' (16 times on
// scripts/bench_faiss's vectors), so the graph joins vectors of like norm and
// recall@10 fell to 0.15–0.66 where inner product had 0.97–1.0. On vectors of
// nearly equal norm (a trained DPR's, unit vectors) it tied with inner
// product; its one edge, a recall ceiling up to 0.006 higher on a 16-d toy
// set, went with efConstruction 200; and it needed the corpus's largest norm
// before the first add. docs/results/faiss-ip-as-l2.md has the measurements.
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
