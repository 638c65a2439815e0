package indexdir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"time"

	"github.com/re2g/re2g/dense"
	"github.com/re2g/re2g/indexdir/pstore"
	"github.com/re2g/re2g/internal/progress"
)

// Precomputed vectors (Options.Vectors): a corpus encoded elsewhere (on
// GPUs, by another tool) goes into the index instead of being encoded
// here. The file is one dense.OpenVectorFile reads; its rows must be the
// corpus's passages in corpus order, which is checked id by id.

// checkVectorsOptions checks what can be checked of o.Vectors before any
// work: that it goes without an encoder and shards, and that the file
// opens (format, dimension).
func checkVectorsOptions(o Options) error {
	if o.Vectors == "" {
		if o.VectorIDs != "" {
			return errors.New("index: an ids file for vectors without a vectors file")
		}
		return nil
	}
	if o.Encoder != nil {
		return fmt.Errorf("index: vectors %s and a context encoder: give one or the other", o.Vectors)
	}
	if o.NumShards > 1 {
		return fmt.Errorf("index: vectors %s: shards split the encoding; precomputed vectors need none", o.Vectors)
	}
	v, err := dense.OpenVectorFile(o.Vectors, o.VectorIDs)
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	return v.Close()
}

// checkVectorsCorpus checks, before the BM25 build, that the vectors file
// has a row for each of the n passages of store, and for a .npy file that
// its ids file lists the passages in corpus order (JSON lines are checked
// as they are imported).
func checkVectorsCorpus(ctx context.Context, store *pstore.Store, o Options) error {
	v, err := dense.OpenVectorFile(o.Vectors, o.VectorIDs)
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	defer v.Close()
	n := store.Len()
	if v.Rows() >= 0 && v.Rows() != n {
		return fmt.Errorf("index: vectors %s: %d rows for the corpus's %d passages", o.Vectors, v.Rows(), n)
	}
	if v.Rows() < 0 {
		return nil
	}
	return v.ScanIDs(ctx, func(row int, id string) error {
		if row >= n {
			return fmt.Errorf("index: vectors %s: the ids file %s has more than the corpus's %d passages", o.Vectors, o.VectorIDs, n)
		}
		want, err := store.ID(row)
		if err != nil {
			return fmt.Errorf("index: %w", err)
		}
		if id != want {
			return mismatch(o, row, id, want)
		}
		return nil
	})
}

func mismatch(o Options, row int, id, want string) error {
	src := o.Vectors
	if o.VectorIDs != "" {
		src = o.VectorIDs
	}
	return fmt.Errorf("index: vectors %s: row %d is passage %q, the corpus's passage %d is %q: the vectors must be in corpus order", src, row, id, row, want)
}

// importVectors stores o.Vectors in the vector store chunk by chunk, as
// encodeCorpus stores what it encodes (chunks a previous run stored are
// skipped), checking each row's id against the passage store.
func importVectors(ctx context.Context, store *pstore.Store, o Options) (*DenseManifest, error) {
	v, err := dense.OpenVectorFile(o.Vectors, o.VectorIDs)
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	defer v.Close()
	dir := filepath.Join(o.Out, denseDir)
	st, err := dense.Open(dir)
	if err != nil {
		if st, err = dense.Create(dir, v.Dim(), dense.F32); err != nil {
			return nil, err
		}
	}
	if st.Dim() != v.Dim() {
		return nil, fmt.Errorf("index: vector store %s has dimension %d, vectors %s %d", dir, st.Dim(), o.Vectors, v.Dim())
	}
	have := map[string]int{}
	for _, si := range st.Shards() {
		have[si.Name] = si.Count
	}
	n := store.Len()
	chunks := (n + o.Chunk - 1) / o.Chunk
	total := 0
	for c := range chunks {
		if lo, hi := chunkRows(c, o.Chunk, n); have[chunkName(c)] != hi-lo {
			total += hi - lo
		}
	}
	start := time.Now()
	bar := progress.NewTo(o.progressOut(), total, "import vectors", "vectors")
	d, stored := v.Dim(), 0
	for c := range chunks {
		lo, hi := chunkRows(c, o.Chunk, n)
		if have[chunkName(c)] == hi-lo {
			if err := v.Skip(hi - lo); err != nil {
				return nil, fmt.Errorf("index: %w", err)
			}
			continue
		}
		flat := make([]float32, (hi-lo)*d)
		ids := make([]string, 0, hi-lo)
		err := store.Scan(ctx, lo, hi, func(p Passage) error {
			row := lo + len(ids)
			id, err := v.Next(flat[(row-lo)*d : (row-lo+1)*d])
			if err == io.EOF {
				return fmt.Errorf("index: vectors %s: %d rows for the corpus's %d passages", o.Vectors, row, n)
			}
			if err != nil {
				return fmt.Errorf("index: %w", err)
			}
			if id != p.ID {
				return mismatch(o, row, id, p.ID)
			}
			ids = append(ids, id)
			return nil
		})
		if err != nil {
			return nil, err
		}
		if _, err := st.PutShard(ctx, chunkName(c), ids, flat); err != nil {
			return nil, err
		}
		bar.Add(hi - lo)
		stored++
		if o.afterChunk != nil {
			if err := o.afterChunk(stored); err != nil {
				return nil, err
			}
		}
	}
	bar.Finish()
	if _, err := v.Next(make([]float32, d)); err != io.EOF {
		if err == nil {
			err = fmt.Errorf("index: vectors %s: more rows than the corpus's %d passages", o.Vectors, n)
		}
		return nil, err
	}
	slog.Info("vectors imported", "vectors", o.Vectors, "rows", n, "dim", d, "seconds", time.Since(start).Seconds())
	extra := maps.Clone(o.Extra)
	if extra == nil {
		extra = map[string]string{}
	}
	extra["vectors"] = o.Vectors
	if o.VectorIDs != "" {
		extra["vector_ids"] = o.VectorIDs
	}
	return &DenseManifest{Dim: d, Vectors: st.Count(), HNSW: o.HNSW, Chunk: o.Chunk, Extra: extra}, nil
}
