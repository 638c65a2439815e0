package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/re2g/re2g/bm25"
	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/dense"
	"github.com/re2g/re2g/faiss"
	"github.com/re2g/re2g/internal/dirlock"
)

// Index is an opened index directory, safe for concurrent searches.
type Index struct {
	Dir      string
	Manifest Manifest
	sparse   *bm25.Index
	hnsw     *faiss.Index
	store    *dense.Store
	pages    map[string]string
}

// OpenIndex opens a finished index directory for searching; see
// OpenIndexContext.
func OpenIndex(dir string) (*Index, error) {
	return OpenIndexContext(context.Background(), dir)
}

// OpenIndexContext opens a finished index directory for searching. It
// writes nothing there (the directory may be read-only), and any number of
// processes (and Indexes in one process) may have it open at once. Every
// file is checked against the sizes and CRC-32C checksums in the manifest
// first, so a damaged file is an error naming it; an index from before
// checksums opens with a warning. ctx bounds the wait for a process that
// has the BM25 store open for writing.
func OpenIndexContext(ctx context.Context, dir string) (*Index, error) {
	ix := &Index{Dir: dir}
	m, err := readManifest(dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("index %s: %w", dir, err)
		}
		if held, pid := dirlock.Held(dir); held {
			return nil, fmt.Errorf("index %s is being built by PID %d: wait for it to finish", dir, pid)
		}
		if _, perr := os.Stat(filepath.Join(dir, progressFile)); perr == nil {
			return nil, fmt.Errorf("index %s: the build did not finish (re2g index --resume continues it)", dir)
		}
		return nil, fmt.Errorf("index %s: %w", dir, err)
	}
	ix.Manifest = *m
	if ix.Manifest.Shard != "" {
		return nil, fmt.Errorf("index %s: shard %s of an index: merge the shards first (re2g index merge)", dir, ix.Manifest.Shard)
	}
	if err := verifyFiles(ctx, dir, m); err != nil {
		return nil, fmt.Errorf("index %s: %w", dir, err)
	}
	if ix.sparse, err = bm25.OpenReadOnly(ctx, filepath.Join(dir, bm25Dir)); err != nil {
		return nil, fmt.Errorf("index %s: %w", dir, err)
	}
	if ix.Manifest.Pages {
		if err := readJSON(filepath.Join(dir, pagesFile), &ix.pages); err != nil {
			ix.Close()
			return nil, fmt.Errorf("index %s: %w", dir, err)
		}
	}
	if d := ix.Manifest.Dense; d != nil {
		if ix.store, err = dense.Open(filepath.Join(dir, denseDir)); err != nil {
			ix.Close()
			return nil, fmt.Errorf("index %s: %w", dir, err)
		}
		if ix.hnsw, err = faiss.Load(filepath.Join(dir, denseDir, hnswFile)); err != nil {
			ix.Close()
			return nil, fmt.Errorf("index %s: %w", dir, err)
		}
		if err := ix.hnsw.CheckConfig(d.HNSW); err != nil {
			ix.Close()
			return nil, fmt.Errorf("index %s: %s is not the index the manifest records: %w", dir, filepath.Join(denseDir, hnswFile), err)
		}
		if ix.hnsw.Dim() != d.Dim || ix.store.Dim() != d.Dim {
			ix.Close()
			return nil, fmt.Errorf("index %s: HNSW dimension %d, vector store %d, manifest says %d", dir, ix.hnsw.Dim(), ix.store.Dim(), d.Dim)
		}
		if n := ix.hnsw.Ntotal(); n != int64(d.Vectors) || ix.store.Count() != d.Vectors {
			ix.Close()
			return nil, fmt.Errorf("index %s: HNSW holds %d vectors, the vector store %d, manifest says %d", dir, n, ix.store.Count(), d.Vectors)
		}
	}
	return ix, nil
}

// Close releases the indexes.
func (ix *Index) Close() error {
	var errs []error
	if ix.sparse != nil {
		errs = append(errs, ix.sparse.Close())
	}
	if ix.hnsw != nil {
		errs = append(errs, ix.hnsw.Close())
	}
	return errors.Join(errs...)
}

// HasDense reports whether the index holds passage vectors.
func (ix *Index) HasDense() bool { return ix.hnsw != nil }

// Passage returns a stored passage.
func (ix *Index) Passage(id string) (data.Passage, bool, error) { return ix.sparse.Passage(id) }

// Page is the page (wikipedia_id) of a passage, or the passage id itself
// when the corpus has no pages.
func (ix *Index) Page(id string) string {
	if p, ok := ix.pages[id]; ok {
		return p
	}
	return id
}

// SparseSearch returns the k best BM25 hits for each query, with their passages.
func (ix *Index) SparseSearch(ctx context.Context, query string, k int, p bm25.Params) ([]Hit, error) {
	hs, err := ix.sparse.Search(ctx, query, k, p)
	if err != nil {
		return nil, err
	}
	return ix.fill(hs2hits(hs))
}

func hs2hits(hs []bm25.Hit) []Hit {
	out := make([]Hit, len(hs))
	for i, h := range hs {
		out[i] = Hit{ID: h.ID, Score: h.Score}
	}
	return out
}

func (ix *Index) fill(hs []Hit) ([]Hit, error) {
	for i := range hs {
		p, ok, err := ix.sparse.Passage(hs[i].ID)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("index %s: passage %q is in the vector index but not in the store", ix.Dir, hs[i].ID)
		}
		hs[i].Title, hs[i].Text = p.Title, p.Text
	}
	return hs, nil
}

// DenseSearch returns the k passages of highest inner product with each
// query vector (nq×dim, row-major); efSearch 0 keeps the index's default.
func (ix *Index) DenseSearch(ctx context.Context, queries [][]float32, k, efSearch int) ([][]Hit, error) {
	if ix.hnsw == nil {
		return nil, fmt.Errorf("index %s has no dense vectors (built without --ctx-encoder)", ix.Dir)
	}
	if len(queries) == 0 {
		return nil, nil
	}
	d := ix.hnsw.Dim()
	flat := make([]float32, 0, len(queries)*d)
	for i, q := range queries {
		if len(q) != d {
			return nil, fmt.Errorf("dense search: query %d has dimension %d, index %d", i, len(q), d)
		}
		flat = append(flat, q...)
	}
	res, err := ix.hnsw.Search(ctx, flat, k, &faiss.SearchOptions{EfSearch: efSearch})
	if err != nil {
		return nil, err
	}
	out := make([][]Hit, len(queries))
	for i := range queries {
		ids, scores := res.Row(i)
		for j, id := range ids {
			if id < 0 {
				continue
			}
			pid, err := ix.store.PassageID(id)
			if err != nil {
				return nil, err
			}
			out[i] = append(out[i], Hit{ID: pid, Score: float64(scores[j])})
		}
		if out[i], err = ix.fill(out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}
