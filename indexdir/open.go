package indexdir

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
	"github.com/re2g/re2g/indexdir/pstore"
	"github.com/re2g/re2g/internal/dirlock"
)

// ErrOldIndex reports an index directory from before the passage store
// (manifest version 1 or 2: passages in bleve's stored fields, pages in
// pages.json), which this re2g does not read: rebuild it.
var ErrOldIndex = errors.New("built by an older re2g")

// Hit is one passage a retriever returned, with the retriever's score.
type Hit struct {
	ID          string
	Title, Text string
	Score       float64
}

// Index is an opened index directory, safe for concurrent searches.
type Index struct {
	Dir      string
	Manifest Manifest
	sparse   *bm25.Index
	hnsw     *faiss.Index
	vectors  *dense.Store
	passages *pstore.Store
	chunkOf  []int // vector store shard number → chunk
	shardOf  []int // chunk → vector store shard number
}

// Open opens a finished index directory for searching. It writes nothing
// there (the directory may be read-only), and any number of processes (and
// Indexes in one process) may have it open at once. Every file is checked
// against the sizes and CRC-32C checksums in the manifest first, so a
// damaged file is an error naming it. An index from before the passage
// store is refused (ErrOldIndex) with the command that rebuilds it. ctx
// bounds the wait for a process that has the BM25 store open for writing.
func Open(ctx context.Context, dir string) (*Index, error) {
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
	if m.Version < manifestVersion {
		return nil, fmt.Errorf("index %s: %w (manifest version %d, passages in bleve and %s): rebuild it (re2g index --corpus %s --out NEW_DIR)",
			dir, ErrOldIndex, m.Version, legacyPagesFile, m.Corpus)
	}
	if err := verifyFiles(ctx, dir, m); err != nil {
		return nil, fmt.Errorf("index %s: %w", dir, err)
	}
	fail := func(err error) (*Index, error) {
		ix.Close()
		return nil, fmt.Errorf("index %s: %w", dir, err)
	}
	if ix.passages, err = pstore.Open(filepath.Join(dir, passagesDir)); err != nil {
		return fail(err)
	}
	if ix.passages.Len() != m.Passages {
		return fail(fmt.Errorf("the passage store holds %d passages, the manifest says %d", ix.passages.Len(), m.Passages))
	}
	if ix.sparse, err = bm25.OpenReadOnly(ctx, filepath.Join(dir, bm25Dir)); err != nil {
		return fail(err)
	}
	if d := ix.Manifest.Dense; d != nil {
		if ix.vectors, err = dense.Open(filepath.Join(dir, denseDir)); err != nil {
			return fail(err)
		}
		if ix.hnsw, err = faiss.Load(filepath.Join(dir, denseDir, hnswFile)); err != nil {
			return fail(err)
		}
		if err := ix.hnsw.CheckConfig(d.HNSW); err != nil {
			return fail(fmt.Errorf("%s is not the index the manifest records: %w", filepath.Join(denseDir, hnswFile), err))
		}
		if ix.hnsw.Dim() != d.Dim || ix.vectors.Dim() != d.Dim {
			return fail(fmt.Errorf("HNSW dimension %d, vector store %d, manifest says %d", ix.hnsw.Dim(), ix.vectors.Dim(), d.Dim))
		}
		if n := ix.hnsw.Ntotal(); n != int64(d.Vectors) || ix.vectors.Count() != d.Vectors || d.Vectors != m.Passages {
			return fail(fmt.Errorf("HNSW holds %d vectors, the vector store %d, manifest says %d for %d passages", n, ix.vectors.Count(), d.Vectors, m.Passages))
		}
		if ix.chunkOf, ix.shardOf, err = chunkMap(ix.vectors, m.Passages, d.Chunk); err != nil {
			return fail(err)
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
	if ix.passages != nil {
		errs = append(errs, ix.passages.Close())
	}
	return errors.Join(errs...)
}

// HasDense reports whether the index holds passage vectors.
func (ix *Index) HasDense() bool { return ix.hnsw != nil }

// Passages is the index's passage store: every passage by row (corpus
// order) and by id.
func (ix *Index) Passages() *pstore.Store { return ix.passages }

// Passage returns a stored passage; ok is false for an id the index lacks.
func (ix *Index) Passage(id string) (data.Passage, bool, error) {
	p, err := ix.passages.Get(id)
	if errors.Is(err, pstore.ErrNotFound) {
		return data.Passage{}, false, nil
	}
	if err != nil {
		return data.Passage{}, false, fmt.Errorf("index %s: %w", ix.Dir, err)
	}
	return p.DataPassage(), true, nil
}

// Page is the page (wikipedia_id) of a passage, or the passage id itself
// when the corpus has no pages (or the index lacks the passage).
func (ix *Index) Page(id string) string {
	if !ix.Manifest.Pages {
		return id
	}
	p, err := ix.passages.Get(id)
	if err != nil || p.Page == "" {
		return id
	}
	return p.Page
}

// SparseSearch returns the k best BM25 hits for each query, with their passages.
func (ix *Index) SparseSearch(ctx context.Context, query string, k int, p bm25.Params) ([]Hit, error) {
	hs, err := ix.sparse.Search(ctx, query, k, p)
	if err != nil {
		return nil, err
	}
	out := make([]Hit, len(hs))
	for i, h := range hs {
		p, err := ix.passages.Get(h.ID)
		if err != nil {
			return nil, fmt.Errorf("index %s: BM25 hit %q: %w", ix.Dir, h.ID, err)
		}
		out[i] = Hit{ID: h.ID, Title: p.Title, Text: p.Text, Score: h.Score}
	}
	return out, nil
}

// row is the passage row of a FAISS id.
func (ix *Index) row(id int64) (int, error) {
	no, r := dense.SplitID(id)
	if id < 0 || no >= len(ix.chunkOf) || ix.chunkOf[no] < 0 {
		return 0, fmt.Errorf("index %s: %w %d: no shard %d", ix.Dir, dense.ErrUnknownID, id, no)
	}
	lo, hi := chunkRows(ix.chunkOf[no], ix.Manifest.Dense.Chunk, ix.Manifest.Passages)
	if r >= hi-lo {
		return 0, fmt.Errorf("index %s: %w %d: shard %d has %d rows", ix.Dir, dense.ErrUnknownID, id, no, hi-lo)
	}
	return lo + r, nil
}

// faissID is the FAISS id of a passage row.
func (ix *Index) faissID(row int) int64 {
	chunk := ix.Manifest.Dense.Chunk
	return dense.FaissID(ix.shardOf[row/chunk], row%chunk)
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
			row, err := ix.row(id)
			if err != nil {
				return nil, err
			}
			p, err := ix.passages.Row(row)
			if err != nil {
				return nil, fmt.Errorf("index %s: %w", ix.Dir, err)
			}
			out[i] = append(out[i], Hit{ID: p.ID, Title: p.Title, Text: p.Text, Score: float64(scores[j])})
		}
	}
	return out, nil
}
