package indexdir

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/re2g/re2g/indexdir/pstore"
	"github.com/re2g/re2g/internal/atomicfile"
)

// PassageIDs lists the id of every passage of the index (deleted ones
// excepted), in row order.
func (ix *Index) PassageIDs(ctx context.Context) ([]string, error) {
	ids := make([]string, 0, ix.Len())
	for _, s := range ix.segs {
		err := s.passages.Scan(ctx, 0, s.Rows, func(p Passage) error {
			if !ix.Deleted(s.first + p.Row) {
				ids = append(ids, p.ID)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("index %s: %w", ix.Dir, err)
		}
	}
	return ids, nil
}

// HasPages reports whether the corpus records each passage's page.
func (ix *Index) HasPages() bool { return ix.Manifest.Pages }

// Dim is the dimension of the stored passage vectors (0 without them).
func (ix *Index) Dim() int {
	if !ix.HasDense() {
		return 0
	}
	return ix.Manifest.Dense.Dim
}

// Vectors returns the stored vectors of the given passages, row-major
// (len(ids)×Dim), each found through the passage stores and read from its
// segment's vector files at its offset; found[i] is false (and row i zero)
// for a passage the index lacks. The vector files are read when it is
// called: an Index kept open while an update's clean-up removed its
// generation's files (Compact) must be opened again.
func (ix *Index) Vectors(ids []string) (vecs []float32, found []bool, err error) {
	if !ix.HasDense() {
		return nil, nil, fmt.Errorf("index %s has no dense vectors (built without --ctx-encoder)", ix.Dir)
	}
	d := ix.Dim()
	found = make([]bool, len(ids))
	vecs = make([]float32, len(ids)*d)
	type want struct {
		at   []int
		fids []int64
	}
	bySeg := make([]want, len(ix.segs))
	for i, id := range ids {
		row, err := ix.lookup(id)
		if errors.Is(err, pstore.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		si := ix.segmentOf(row)
		s := ix.segs[si]
		bySeg[si].at = append(bySeg[si].at, i)
		bySeg[si].fids = append(bySeg[si].fids, s.faissID(row-s.first))
		found[i] = true
	}
	for si, w := range bySeg {
		if len(w.at) == 0 {
			continue
		}
		got, err := ix.segs[si].vectors.Vectors(w.fids)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("index %s: %w (an update removed this generation's files since the index was opened: open it again)", ix.Dir, err)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("index %s: %w", ix.Dir, err)
		}
		for j, i := range w.at {
			copy(vecs[i*d:(i+1)*d], got[j*d:(j+1)*d])
		}
	}
	return vecs, found, nil
}

// WriteCorpus writes the index's passages (deleted ones excepted), in row
// order, to path as a corpus Build reads back into the same passages: KILT
// passage lines ({id, wikipedia_id, title, text}) for an index with pages,
// BEIR lines ({_id, title, text}) otherwise. The file is written
// atomically. After updates it is the corpus the index holds, which the
// file it was built from (Manifest.Corpus) no longer is.
func (ix *Index) WriteCorpus(ctx context.Context, path string) error {
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		enc := json.NewEncoder(bw)
		enc.SetEscapeHTML(false)
		for _, s := range ix.segs {
			err := s.passages.Scan(ctx, 0, s.Rows, func(p Passage) error {
				if ix.Deleted(s.first + p.Row) {
					return nil
				}
				if ix.Manifest.Pages {
					return enc.Encode(struct {
						ID    string `json:"id"`
						Page  string `json:"wikipedia_id"`
						Title string `json:"title"`
						Text  string `json:"text"`
					}{p.ID, p.Page, p.Title, p.Text})
				}
				return enc.Encode(struct {
					ID    string `json:"_id"`
					Title string `json:"title"`
					Text  string `json:"text"`
				}{p.ID, p.Title, p.Text})
			})
			if err != nil {
				return fmt.Errorf("index %s: %w", ix.Dir, err)
			}
		}
		return bw.Flush()
	})
}
