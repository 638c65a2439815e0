package faiss

/*
#include "re2g_faiss.h"
*/
import "C"

import (
	"sync"
	"sync/atomic"
)

// threads is the OpenMP thread count passed to every native call; 0 means
// OpenMP's default (OMP_NUM_THREADS or the number of cores).
var threads atomic.Int32

var ompDefault = sync.OnceValue(func() int { return int(C.re2g_omp_max_threads()) })

// SetThreads sets how many OpenMP threads FAISS uses for adds and batched
// searches; n <= 0 restores the default (OMP_NUM_THREADS, else all cores).
//
// OpenMP keeps its thread count per OS thread, and Go runs cgo calls on
// whichever thread the goroutine is on, so a plain omp_set_num_threads from
// Go would affect one arbitrary thread. Instead the count is passed to each
// native call, which sets it for its own duration.
func SetThreads(n int) {
	if n < 0 {
		n = 0
	}
	threads.Store(int32(n))
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
