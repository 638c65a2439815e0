package indexdir

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/re2g/re2g/dense"
	"github.com/re2g/re2g/indexdir/pstore"
)

// Merge combines encoding shards (Build with NumShards > 1, in any order,
// on any machines) of one corpus into a finished index at out, which must
// be missing or empty: the vectors are merged, and the passage store, the
// BM25 and HNSW indexes built. It builds in a temporary directory beside
// out and renames it into place, holding out's writer lock, so a failed
// merge leaves nothing behind. Shards from older re2g versions merge too:
// they hold vectors only.
func Merge(ctx context.Context, corpusPath, out string, shardDirs []string, o Options) (_ *Manifest, err error) {
	if len(shardDirs) == 0 {
		return nil, errors.New("index merge: no shards given")
	}
	sum, err := fileSHA256(corpusPath)
	if err != nil {
		return nil, fmt.Errorf("index merge: corpus: %w", err)
	}
	out = filepath.Clean(out)
	_, statErr := os.Stat(out)
	created := errors.Is(statErr, fs.ErrNotExist)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, fmt.Errorf("index merge: %w", err)
	}
	lock, err := lockIndex(ctx, out, o.LockTimeout)
	if err != nil {
		if created {
			os.Remove(out)
		}
		return nil, err
	}
	defer func() {
		releaseLock(lock)
		if err != nil && created {
			os.Remove(out) // only if still empty
		}
	}()
	if empty, err := emptyDir(out); err != nil || !empty {
		return nil, fmt.Errorf("index merge: %s exists and is not empty", out)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(out), "."+filepath.Base(out)+".merge-*")
	if err != nil {
		return nil, fmt.Errorf("index merge: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("index merge: %w", err)
	}
	man, err := mergeInto(ctx, tmp, sum, corpusPath, shardDirs, o)
	if err != nil {
		return nil, err
	}
	// Swap the finished directory in, out locked throughout.
	if err := lock.ReplaceDir(tmp); err != nil {
		return nil, fmt.Errorf("index merge: %w", err)
	}
	return man, nil
}

// mergeInto builds the merged index in dir.
func mergeInto(ctx context.Context, dir, sum, corpusPath string, shardDirs []string, o Options) (*Manifest, error) {
	var dm *DenseManifest
	var dst *dense.Store
	for _, d := range shardDirs {
		m, err := readManifest(d)
		if err != nil {
			return nil, fmt.Errorf("index merge: shard %s is not finished: %w", d, err)
		}
		if m.CorpusSHA256 != sum || m.Dense == nil {
			return nil, fmt.Errorf("index merge: shard %s was built from another corpus or has no vectors", d)
		}
		if dm != nil && (m.Dense.Chunk != dm.Chunk || m.Dense.Dim != dm.Dim) {
			return nil, fmt.Errorf("index merge: shard %s has chunks of %d vectors of dimension %d, shard %s %d of %d: shards of one index are built with one --chunk and encoder",
				d, m.Dense.Chunk, m.Dense.Dim, shardDirs[0], dm.Chunk, dm.Dim)
		}
		if err := verifyFiles(ctx, d, m, VerifyFull, nil); err != nil {
			return nil, fmt.Errorf("index merge: shard %s: %w", d, err)
		}
		src, err := dense.Open(filepath.Join(d, denseDir))
		if err != nil {
			return nil, err
		}
		if dst == nil {
			dst, err = dense.Create(filepath.Join(dir, denseDir), src.Dim(), src.DType())
			if err != nil {
				return nil, err
			}
			dm = m.Dense
		}
		if err := dense.Merge(ctx, dst, src); err != nil {
			return nil, err
		}
	}
	n, pages, err := ingest(ctx, corpusPath, dir, o)
	if err != nil {
		return nil, err
	}
	if dst.Count() != n {
		return nil, fmt.Errorf("index merge: the shards hold %d vectors, the corpus %d passages (a shard is missing?)", dst.Count(), n)
	}
	if _, _, err := chunkMap(dst, n, dm.Chunk); err != nil {
		return nil, fmt.Errorf("index merge: %w", err)
	}
	// In chunk order, as a build of one process stores them: the HNSW
	// index then equals that build's, whatever order the shards came in.
	if err := renumberByChunk(dst); err != nil {
		return nil, err
	}
	store, err := pstore.Open(filepath.Join(dir, passagesDir))
	if err != nil {
		return nil, fmt.Errorf("index merge: %w", err)
	}
	defer store.Close()
	if err := buildBM25(ctx, filepath.Join(dir, bm25Dir), store, o); err != nil {
		return nil, err
	}
	train, err := buildHNSW(ctx, dir, o)
	if err != nil {
		return nil, err
	}
	dm.Vectors, dm.HNSW, dm.SQ8Train = dst.Count(), o.HNSW, train
	man := &Manifest{Created: time.Now().UTC(), Corpus: corpusPath, CorpusSHA256: sum, Passages: n, Pages: pages, Dense: dm,
		Segments: []Segment{{Rows: n, SQ8Train: train}}}
	man.BM25 = &struct {
		Fields string `json:"fields"`
	}{Fields: o.BM25.Fields}
	if err := writeManifest(ctx, dir, man); err != nil {
		return nil, err
	}
	return man, nil
}

// chunkMap relates the vector store's shards to the corpus: shard number →
// chunk (-1 for none) and chunk → shard number, checking that every chunk
// of n passages is there once, with as many vectors as it has passages.
func chunkMap(st *dense.Store, n, chunk int) (chunkOf, shardOf []int, err error) {
	if chunk <= 0 {
		return nil, nil, fmt.Errorf("vector store %s: chunk size %d", st.Dir(), chunk)
	}
	chunks := (n + chunk - 1) / chunk
	shardOf = make([]int, chunks)
	for i := range shardOf {
		shardOf[i] = -1
	}
	for _, si := range st.Shards() {
		c, ok := parseChunkName(si.Name)
		if !ok || c >= chunks {
			return nil, nil, fmt.Errorf("vector store %s: shard %q is not a chunk of %d passages in chunks of %d", st.Dir(), si.Name, n, chunk)
		}
		lo, hi := chunkRows(c, chunk, n)
		if si.Count != hi-lo {
			return nil, nil, fmt.Errorf("vector store %s: shard %s has %d vectors, its chunk %d passages", st.Dir(), si.Name, si.Count, hi-lo)
		}
		if shardOf[c] >= 0 {
			return nil, nil, fmt.Errorf("vector store %s: chunk %d twice", st.Dir(), c)
		}
		shardOf[c] = si.No
		for len(chunkOf) <= si.No {
			chunkOf = append(chunkOf, -1)
		}
		chunkOf[si.No] = c
	}
	for c, no := range shardOf {
		if no < 0 {
			return nil, nil, fmt.Errorf("vector store %s: chunk %d (%s) is missing", st.Dir(), c, chunkName(c))
		}
	}
	return chunkOf, shardOf, nil
}
