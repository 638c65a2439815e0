package indexdir

import (
	"context"
	"errors"
	"fmt"

	"github.com/re2g/re2g/indexdir/pstore"
)

// PassageIDs lists the id of every passage of the index, in corpus order.
func (ix *Index) PassageIDs(ctx context.Context) ([]string, error) {
	ids := make([]string, 0, ix.passages.Len())
	err := ix.passages.Scan(ctx, 0, ix.passages.Len(), func(p Passage) error {
		ids = append(ids, p.ID)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", ix.Dir, err)
	}
	return ids, nil
}

// HasPages reports whether the corpus records each passage's page.
func (ix *Index) HasPages() bool { return ix.Manifest.Pages }

// Dim is the dimension of the stored passage vectors (0 without them).
func (ix *Index) Dim() int {
	if ix.vectors == nil {
		return 0
	}
	return ix.vectors.Dim()
}

// Vectors returns the stored vectors of the given passages, row-major
// (len(ids)×Dim), each found through the passage store and read from the
// vector store's files at its offset; found[i] is false (and row i zero)
// for a passage the index lacks.
func (ix *Index) Vectors(ids []string) (vecs []float32, found []bool, err error) {
	if ix.vectors == nil {
		return nil, nil, fmt.Errorf("index %s has no dense vectors (built without --ctx-encoder)", ix.Dir)
	}
	found = make([]bool, len(ids))
	var have []int64
	for i, id := range ids {
		row, err := ix.passages.Lookup(id)
		if errors.Is(err, pstore.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("index %s: %w", ix.Dir, err)
		}
		found[i] = true
		have = append(have, ix.faissID(row))
	}
	got, err := ix.vectors.Vectors(have)
	if err != nil {
		return nil, nil, fmt.Errorf("index %s: %w", ix.Dir, err)
	}
	d := ix.vectors.Dim()
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
