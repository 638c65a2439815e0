package faiss

/*
#include "re2g_faiss.h"
*/
import "C"

import (
	"fmt"
	"sync"
)

// efGate makes efSearch a per-search setting that is safe under concurrent
// searches. FAISS 1.7.3 has SearchParametersHNSW, but applies it only in
// part: HNSW::search sizes its candidate heap from the index's own
// hnsw.efSearch (impl/HNSW.cpp, "int ef = std::max(efSearch, k)") and only
// the stopping rule from the parameters, so a per-search value gives
// results that differ from the same value set on the index (what Python
// users do). Instead the gate sets hnsw.efSearch on the index itself, and
// lets searches with the same value run together while a search with a
// different value waits for them to finish (and new arrivals with the old
// value queue behind it, so it is not starved).
type efGate struct {
	mu     sync.Mutex
	cond   *sync.Cond
	cur    int // efSearch currently set on the native index
	active int // searches running with cur
	want   int // efSearch the oldest waiter needs (0: none waiting)
}

func newEfGate(cur int) *efGate {
	g := &efGate{cur: cur}
	g.cond = sync.NewCond(&g.mu)
	return g
}

// acquire waits until searches may run with ef, sets it on p if needed, and
// registers one running search; release ends it.
func (g *efGate) acquire(p *C.FaissIndex, ef int) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.active > 0 && (g.cur != ef || (g.want != 0 && g.want != ef)) {
		if g.want == 0 && ef != g.cur {
			g.want = ef
		}
		g.cond.Wait()
	}
	if g.cur != ef {
		if err := cErr(C.re2g_hnsw_set_params(p, 0, C.int(ef))); err != nil {
			g.cond.Broadcast()
			return fmt.Errorf("faiss: set efSearch %d: %w", ef, err)
		}
		g.cur = ef
	}
	if g.want == ef {
		g.want = 0
	}
	g.active++
	return nil
}

func (g *efGate) release() {
	g.mu.Lock()
	g.active--
	if g.active == 0 {
		g.cond.Broadcast()
	}
	g.mu.Unlock()
}
