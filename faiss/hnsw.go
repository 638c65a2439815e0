package faiss

/*
#include "re2g_faiss.h"
*/
import "C"

import (
	"fmt"
	"strings"
)

// HNSWConfig configures an HNSW index.
type HNSWConfig struct {
	// M is the number of links per node (level 0 has 2M). Default 32.
	M int
	// EfConstruction is the search breadth while adding. Default 80.
	EfConstruction int
	// EfSearch is the default search breadth. Default 128.
	EfSearch int
	// Metric: InnerProduct (default) or L2.
	Metric Metric
	// SQ8 stores vectors 8-bit scalar-quantised (4x smaller; needs Train).
	SQ8 bool
}

// HNSW defaults.
const (
	DefaultM              = 32
	DefaultEfConstruction = 80
	DefaultEfSearch       = 128
)

func (c HNSWConfig) withDefaults() HNSWConfig {
	if c.M == 0 {
		c.M = DefaultM
	}
	if c.EfConstruction == 0 {
		c.EfConstruction = DefaultEfConstruction
	}
	if c.EfSearch == 0 {
		c.EfSearch = DefaultEfSearch
	}
	return c
}

// NewHNSW creates an empty HNSW index (IndexHNSWFlat, or IndexHNSWSQ with
// 8-bit codes) over d-dimensional vectors, wrapped in an IndexIDMap.
func NewHNSW(d int, cfg HNSWConfig) (*Index, error) {
	cfg = cfg.withDefaults()
	if d <= 0 {
		return nil, fmt.Errorf("%w: dimension must be positive, got %d", ErrDimension, d)
	}
	if cfg.M < 2 || cfg.EfConstruction < 1 || cfg.EfSearch < 1 {
		return nil, fmt.Errorf("faiss: bad HNSW parameters M=%d efConstruction=%d efSearch=%d", cfg.M, cfg.EfConstruction, cfg.EfSearch)
	}
	cm, err := nativeMetric(cfg.Metric)
	if err != nil {
		return nil, err
	}
	sq := 0
	if cfg.SQ8 {
		sq = 1
	}
	var p *C.FaissIndex
	if err := cErr(C.re2g_index_hnsw(C.int(d), C.int(cfg.M), C.int(sq), C.int(cm),
		C.int(cfg.EfConstruction), C.int(cfg.EfSearch), &p)); err != nil {
		return nil, fmt.Errorf("faiss: new HNSW index: %w", err)
	}
	return newIndex(p, d, cfg.Metric)
}

// NewFlat creates an exact (brute-force) index with int64 ids: the ground
// truth for HNSW recall.
func NewFlat(d int, m Metric) (*Index, error) {
	if d <= 0 {
		return nil, fmt.Errorf("%w: dimension must be positive, got %d", ErrDimension, d)
	}
	cm, err := nativeMetric(m)
	if err != nil {
		return nil, err
	}
	var p *C.FaissIndex
	if err := cErr(C.re2g_index_flat(C.int(d), C.int(cm), &p)); err != nil {
		return nil, fmt.Errorf("faiss: new flat index: %w", err)
	}
	return newIndex(p, d, m)
}

// nativeMetric maps a Metric to FAISS's MetricType.
func nativeMetric(m Metric) (int, error) {
	switch m {
	case InnerProduct:
		return 0, nil
	case L2:
		return 1, nil
	case 2:
		return 0, fmt.Errorf("faiss: metric 2 (%s) was removed: build the index with ip", removedIPAsL2)
	}
	return 0, fmt.Errorf("faiss: unknown metric %d", int(m))
}

// HNSWParams are an HNSW index's parameters.
type HNSWParams struct {
	M, EfConstruction, EfSearch int
	SQ8                         bool
}

// HNSWParams reports the index's HNSW parameters; ok is false for a
// non-HNSW index.
func (ix *Index) HNSWParams() (p HNSWParams, ok bool, err error) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if ix.ptr == nil {
		return p, false, ErrClosed
	}
	var kind, m, efc, efs C.int
	if err := cErr(C.re2g_hnsw_params(ix.ptr, &kind, &m, &efc, &efs)); err != nil {
		return p, false, fmt.Errorf("faiss: HNSW parameters: %w", err)
	}
	if kind == 0 {
		return p, false, nil
	}
	return HNSWParams{M: int(m), EfConstruction: int(efc), EfSearch: ix.defaultEf, SQ8: kind == 2}, true, nil
}

// SetDefaultEfSearch changes the efSearch used when a search gives none. It
// waits for running searches; prefer SearchOptions.EfSearch per search.
func (ix *Index) SetDefaultEfSearch(ef int) error {
	if ef < 1 {
		return fmt.Errorf("faiss: efSearch must be positive, got %d", ef)
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.ptr == nil {
		return ErrClosed
	}
	if ix.gate == nil {
		return fmt.Errorf("faiss: set efSearch: index is not HNSW")
	}
	if err := cErr(C.re2g_hnsw_set_params(ix.ptr, 0, C.int(ef))); err != nil {
		return fmt.Errorf("faiss: set efSearch: %w", err)
	}
	ix.defaultEf, ix.gate.cur = ef, ef
	return nil
}

// CheckConfig reports, as ErrMismatch, how the index differs from the HNSW
// index cfg describes (zero fields taken as their defaults): its metric,
// its storage (SQ8 or float32), M, efConstruction and default efSearch.
func (ix *Index) CheckConfig(cfg HNSWConfig) error {
	cfg = cfg.withDefaults()
	p, ok, err := ix.HNSWParams()
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: %s is not HNSW", ErrMismatch, ix.Description())
	}
	storage := func(sq8 bool) string {
		if sq8 {
			return "sq8"
		}
		return "flat"
	}
	var diff []string
	if ix.metric != cfg.Metric {
		diff = append(diff, fmt.Sprintf("metric %s, want %s", ix.metric, cfg.Metric))
	}
	if p.SQ8 != cfg.SQ8 {
		diff = append(diff, fmt.Sprintf("vectors %s, want %s", storage(p.SQ8), storage(cfg.SQ8)))
	}
	if p.M != cfg.M {
		diff = append(diff, fmt.Sprintf("M %d, want %d", p.M, cfg.M))
	}
	if p.EfConstruction != cfg.EfConstruction {
		diff = append(diff, fmt.Sprintf("efConstruction %d, want %d", p.EfConstruction, cfg.EfConstruction))
	}
	if p.EfSearch != cfg.EfSearch {
		diff = append(diff, fmt.Sprintf("efSearch %d, want %d", p.EfSearch, cfg.EfSearch))
	}
	if len(diff) > 0 {
		return fmt.Errorf("%w: %s has %s", ErrMismatch, ix.Description(), strings.Join(diff, ", "))
	}
	return nil
}
