package faiss

/*
#include "re2g_faiss.h"
*/
import "C"

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/re2g/re2g/internal/limits"
)

// threads is the OpenMP thread count passed to every native call; 0 means
// OpenMP's default (OMP_NUM_THREADS or the number of cores).
var threads atomic.Int32

var ompDefault = sync.OnceValue(func() int { return int(C.re2g_omp_max_threads()) })

// SetThreads sets how many OpenMP threads FAISS uses for adds and batched
// searches; 0 restores the default (OMP_NUM_THREADS, else all cores). A
// negative n, or more than limits.MaxThreads (4 per CPU), is an error and
// changes nothing.
//
// OpenMP keeps its thread count per OS thread, and Go runs cgo calls on
// whichever thread the goroutine is on, so a plain omp_set_num_threads from
// Go would affect one arbitrary thread. Instead the count is passed to each
// native call, which sets it for its own duration.
func SetThreads(n int) error {
	if err := limits.CheckThreads(n); err != nil {
		return fmt.Errorf("faiss: %w", err)
	}
	threads.Store(int32(n))
	return nil
}

// Threads reports the OpenMP thread count in effect for batched work.
func Threads() int {
	if n := int(threads.Load()); n > 0 {
		return n
	}
	return ompDefault()
}

// ompForSmallBatches disables the clamp below (benchmarks only: it shows
// what the clamp saves).
var ompForSmallBatches bool

// threadsFor is the thread count for a call over n queries. FAISS
// parallelises searches over queries, so more threads than queries only
// wakes idle threads: a single query runs on the calling thread alone, which
// keeps it off the OpenMP fork/join path (the slow single-query case of
// FAISS issue #2823) and lets concurrent single-query callers scale.
func threadsFor(n int) int {
	t := Threads()
	if n < t && !ompForSmallBatches {
		t = n
	}
	if t < 1 {
		t = 1
	}
	return t
}
