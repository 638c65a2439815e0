package faiss

/*
#include <stdlib.h>
#include "re2g_faiss.h"
*/
import "C"

import (
	"context"
	"fmt"
	"sync"
	"unsafe"
)

// Metric is the similarity an index ranks by.
type Metric int

const (
	// InnerProduct ranks by largest dot product (DPR scores); HNSW builds
	// its graph with inner product as the similarity.
	InnerProduct Metric = 0
	// L2 ranks by smallest squared Euclidean distance.
	L2 Metric = 1
)

// removedIPAsL2 is the name of the metric that was 2: inner product through
// an L2 index over augmented vectors (see the package doc).
const removedIPAsL2 = "ip-as-l2"

func (m Metric) String() string {
	switch m {
	case InnerProduct:
		return "ip"
	case L2:
		return "l2"
	}
	return fmt.Sprintf("Metric(%d)", int(m))
}

// ParseMetric parses "ip" or "l2".
func ParseMetric(s string) (Metric, error) {
	for _, m := range []Metric{InnerProduct, L2} {
		if m.String() == s {
			return m, nil
		}
	}
	if s == removedIPAsL2 {
		return 0, fmt.Errorf("faiss: metric %q was removed: it ranked as ip does, with a worse HNSW graph "+
			"(docs/results/faiss-ip-as-l2.md); build the index with ip", s)
	}
	return 0, fmt.Errorf("faiss: unknown metric %q (want ip or l2)", s)
}

// Index is a FAISS index with int64 ids. Searches may run concurrently;
// Add, Train, SetDefaultEfSearch and Close wait for them.
type Index struct {
	mu     sync.RWMutex
	ptr    *C.FaissIndex
	dim    int
	metric Metric

	gate      *efGate // HNSW only: serialises searches with different efSearch
	defaultEf int     // HNSW only: efSearch when a search gives none
}

// newIndex wraps a native index.
func newIndex(p *C.FaissIndex, dim int, m Metric) (*Index, error) {
	ix := &Index{ptr: p, dim: dim, metric: m}
	var kind, hm, efc, efs C.int
	if err := cErr(C.re2g_hnsw_params(p, &kind, &hm, &efc, &efs)); err != nil {
		C.faiss_Index_free(p)
		return nil, fmt.Errorf("faiss: HNSW parameters: %w", err)
	}
	if kind != 0 {
		ix.defaultEf = int(efs)
		ix.gate = newEfGate(int(efs))
	}
	return ix, nil
}

// Close frees the native index. It is safe to call more than once.
func (ix *Index) Close() error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.ptr != nil {
		C.faiss_Index_free(ix.ptr)
		ix.ptr = nil
	}
	return nil
}

// Delete is Close, under go-faiss's name.
func (ix *Index) Delete() { _ = ix.Close() }

// Dim is the vector dimension callers use.
func (ix *Index) Dim() int { return ix.dim }

// Metric is the ranking the index implements.
func (ix *Index) Metric() Metric { return ix.metric }

// Ntotal is the number of vectors in the index.
func (ix *Index) Ntotal() int64 {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if ix.ptr == nil {
		return 0
	}
	return int64(C.faiss_Index_ntotal(ix.ptr))
}

// IsTrained reports whether the index can accept vectors.
func (ix *Index) IsTrained() bool {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.ptr != nil && C.faiss_Index_is_trained(ix.ptr) != 0
}

// Description names the native structure, e.g. "IDMap(HNSWFlat) ip d=768".
func (ix *Index) Description() string {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if ix.ptr == nil {
		return "closed"
	}
	var buf [64]C.char
	if err := cErr(C.re2g_index_description(ix.ptr, &buf[0], C.int(len(buf)))); err != nil {
		return "unknown: " + err.Error()
	}
	return fmt.Sprintf("%s %s d=%d", C.GoString(&buf[0]), ix.metric, ix.dim)
}

// rows checks that x holds whole vectors and returns how many.
func (ix *Index) rows(x []float32, what string) (int, error) {
	if len(x) == 0 {
		return 0, fmt.Errorf("%w: no %s given", ErrDimension, what)
	}
	if len(x)%ix.dim != 0 {
		return 0, fmt.Errorf("%w: %d floats of %s is not a multiple of the index dimension %d", ErrDimension, len(x), what, ix.dim)
	}
	return len(x) / ix.dim, nil
}

// Train trains a quantised index (SQ8) on sample vectors; other indexes need
// no training and ignore it.
func (ix *Index) Train(ctx context.Context, x []float32) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n, err := ix.rows(x, "training vectors")
	if err != nil {
		return err
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.ptr == nil {
		return ErrClosed
	}
	if C.faiss_Index_is_trained(ix.ptr) != 0 {
		return nil
	}
	if err := cErr(C.re2g_train(ix.ptr, C.int64_t(n), (*C.float)(&x[0]), C.int(threadsFor(n)))); err != nil {
		return fmt.Errorf("faiss: train on %d vectors: %w", n, err)
	}
	return nil
}

// addChunk bounds each native add so that cancellation is noticed.
const addChunk = 16384

// Add adds the vectors x (len(ids) rows of Dim floats) under the given ids.
func (ix *Index) Add(ctx context.Context, x []float32, ids []int64) error {
	n, err := ix.rows(x, "vectors")
	if err != nil {
		return err
	}
	if n != len(ids) {
		return fmt.Errorf("%w: %d vectors of dimension %d but %d ids", ErrDimension, n, ix.dim, len(ids))
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.ptr == nil {
		return ErrClosed
	}
	if C.faiss_Index_is_trained(ix.ptr) == 0 {
		return ErrNotTrained
	}
	for lo := 0; lo < n; lo += addChunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		hi := min(lo+addChunk, n)
		chunk := x[lo*ix.dim : hi*ix.dim]
		if err := cErr(C.re2g_add(ix.ptr, C.int64_t(hi-lo), (*C.float)(&chunk[0]),
			(*C.int64_t)(unsafe.Pointer(&ids[lo])), C.int(threadsFor(hi-lo)))); err != nil {
			return fmt.Errorf("faiss: add %d vectors: %w", hi-lo, err)
		}
	}
	return nil
}

// SearchOptions tune one search.
type SearchOptions struct {
	// EfSearch is HNSW's search breadth for this search only (0: the
	// index's default). Ignored by non-HNSW indexes. Concurrent searches
	// with the same value run in parallel; a different value waits for
	// them (see efGate).
	EfSearch int
}

// Result holds the top-k hits of N queries, row-major: query i's hits are
// IDs[i*K:(i+1)*K], best first, with Scores alongside (inner products for
// InnerProduct, squared distances for L2). Missing
// hits (fewer than k vectors reachable) have id -1.
type Result struct {
	N, K   int
	IDs    []int64
	Scores []float32
}

// Row returns query i's ids and scores.
func (r *Result) Row(i int) ([]int64, []float32) {
	return r.IDs[i*r.K : (i+1)*r.K], r.Scores[i*r.K : (i+1)*r.K]
}

// searchChunk bounds each native batched search so that cancellation is
// noticed between chunks; large enough that OpenMP stays busy.
const searchChunk = 4096

// Search finds the k best vectors for each query in x (rows of Dim floats).
func (ix *Index) Search(ctx context.Context, x []float32, k int, opt *SearchOptions) (*Result, error) {
	n, err := ix.rows(x, "queries")
	if err != nil {
		return nil, err
	}
	if k <= 0 {
		return nil, fmt.Errorf("faiss: k must be positive, got %d", k)
	}
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if ix.ptr == nil {
		return nil, ErrClosed
	}
	if C.faiss_Index_ntotal(ix.ptr) == 0 {
		return nil, ErrEmpty
	}
	if ix.gate != nil {
		ef := ix.defaultEf
		if opt != nil && opt.EfSearch > 0 {
			ef = opt.EfSearch
		}
		if err := ix.gate.acquire(ix.ptr, ef); err != nil {
			return nil, err
		}
		defer ix.gate.release()
	}
	res := &Result{N: n, K: k, IDs: make([]int64, n*k), Scores: make([]float32, n*k)}
	d := ix.dim
	for lo := 0; lo < n; lo += searchChunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hi := min(lo+searchChunk, n)
		q := x[lo*d : hi*d]
		if err := cErr(C.re2g_search(ix.ptr, C.int64_t(hi-lo), (*C.float)(&q[0]), C.int64_t(k),
			C.int(threadsFor(hi-lo)),
			(*C.float)(&res.Scores[lo*k]), (*C.int64_t)(unsafe.Pointer(&res.IDs[lo*k])))); err != nil {
			return nil, fmt.Errorf("faiss: search %d queries: %w", hi-lo, err)
		}
	}
	return res, nil
}
