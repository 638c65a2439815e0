package pipeline

import (
	"context"
	"fmt"
)

// PassageIDs lists the id of every passage of the index.
func (ix *Index) PassageIDs(ctx context.Context) ([]string, error) {
	ids, err := ix.sparse.IDs(ctx)
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", ix.Dir, err)
	}
	return ids, nil
}

// HasPages reports whether the corpus records each passage's page.
func (ix *Index) HasPages() bool { return ix.pages != nil }

// Dim is the dimension of the stored passage vectors (0 without them).
func (ix *Index) Dim() int {
	if ix.store == nil {
		return 0
	}
	return ix.store.Dim()
}

// Vectors returns the stored vectors of the given passages, row-major
// (len(ids)×Dim), read from the vector store's files one row at a time;
// found[i] is false (and row i zero) for a passage without a vector.
func (ix *Index) Vectors(ids []string) (vecs []float32, found []bool, err error) {
	if ix.store == nil {
		return nil, nil, fmt.Errorf("index %s has no dense vectors (built without --ctx-encoder)", ix.Dir)
	}
	fids, found, err := ix.store.Lookup(ids)
	if err != nil {
		return nil, nil, fmt.Errorf("index %s: %w", ix.Dir, err)
	}
	var have []int64
	for i, f := range fids {
		if found[i] {
			have = append(have, f)
		}
	}
	got, err := ix.store.Vectors(have)
	if err != nil {
		return nil, nil, fmt.Errorf("index %s: %w", ix.Dir, err)
	}
	d := ix.store.Dim()
	vecs = make([]float32, len(ids)*d)
	k := 0
	for i := range ids {
		if found[i] {
			copy(vecs[i*d:(i+1)*d], got[k*d:(k+1)*d])
			k++
		}
	}
	return vecs, found, nil
}
