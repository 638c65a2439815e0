package indexdir

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/re2g/re2g/dense"
	"github.com/re2g/re2g/indexdir/pstore"
	"github.com/re2g/re2g/internal/progress"
	"github.com/re2g/re2g/neural"
)

// Encoding in chunks. The corpus's passages are encoded in chunks of
// Options.Chunk rows, chunk c holding rows [c·Chunk, (c+1)·Chunk): each is
// one call of the encoder over its rows (so its batches, and its vectors,
// are the same whichever process encodes it) and one shard of a vector
// store, written atomically (the unit of checkpointing: an interrupted
// build resumes at the chunks no store holds). Which process encodes which
// chunk is one rule for every way of splitting the work: chunk c belongs to
// part c mod N of N (ownsChunk) — the shards of `re2g index --shard I/N`
// and the ranks of a distributed build alike.
//
// A build writes its chunks into dense/; in a distributed build rank 0
// does, and rank R > 0 writes into a vector store of its own, .dense-rankR
// (a name the manifest's file list skips), since a store has one writer.
// A chunk counts as encoded in any of these stores, so a build resumes with
// any number of ranks; gatherChunks then links every rank's chunks into
// dense/ and numbers dense/'s shards in chunk order.

// rankStorePrefix begins the name of a rank's vector store in a
// distributed build's directory; the rank follows.
const rankStorePrefix = ".dense-rank"

// rankStoreDir is the vector store rank writes its chunks into: dense/ for
// rank 0 and for a build of one process.
func rankStoreDir(out string, rank int) string {
	if rank == 0 {
		return filepath.Join(out, denseDir)
	}
	return filepath.Join(out, rankStorePrefix+strconv.Itoa(rank))
}

// ownsChunk reports whether chunk c is part's of parts (every chunk with
// one part).
func ownsChunk(c, part, parts int) bool { return parts <= 1 || c%parts == part }

// openChunkStores opens the vector stores under out that may hold encoded
// chunks: dense/ and every rank's store, those that exist. A rank's store
// whose manifest was never written (its rank stopped before its first
// chunk) holds nothing, and is skipped.
func openChunkStores(out string) ([]*dense.Store, error) {
	dirs := []string{filepath.Join(out, denseDir)}
	ranks, err := filepath.Glob(filepath.Join(out, rankStorePrefix+"*"))
	if err != nil {
		return nil, err
	}
	dirs = append(dirs, ranks...)
	var out2 []*dense.Store
	for _, d := range dirs {
		st, err := dense.Open(d)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("index: %w", err)
		}
		out2 = append(out2, st)
	}
	return out2, nil
}

// storedChunks is the set of chunks of n passages that a vector store under
// out holds whole (as many vectors as the chunk has passages), checking that
// every store has dimension dim.
func storedChunks(out string, n, chunk, dim int) (map[int]bool, error) {
	stores, err := openChunkStores(out)
	if err != nil {
		return nil, err
	}
	done := map[int]bool{}
	for _, st := range stores {
		if st.Dim() != dim {
			return nil, fmt.Errorf("index: vector store %s has dimension %d, encoder %d", st.Dir(), st.Dim(), dim)
		}
		for _, si := range st.Shards() {
			if c, ok := wholeChunk(si, n, chunk); ok {
				done[c] = true
			}
		}
	}
	return done, nil
}

// wholeChunk reports whether the shard si is a whole chunk of n passages,
// and which.
func wholeChunk(si dense.ShardInfo, n, chunk int) (int, bool) {
	c, ok := parseChunkName(si.Name)
	if !ok || c*chunk >= n {
		return 0, false
	}
	lo, hi := chunkRows(c, chunk, n)
	return c, si.Count == hi-lo
}

// encodeChunks encodes the chunks of the store's passages that are part's
// (of parts, ownsChunk) and not done, into the vector store at dir (made if
// missing), one shard a chunk. after, if not nil, is called with each
// chunk's rows once it is stored; bar counts them. It returns how many
// chunks and passages it encoded.
func encodeChunks(ctx context.Context, store *pstore.Store, dir string, o Options, part, parts int, done map[int]bool,
	after func(rows int), bar *progress.Reporter) (chunks, rows int, err error) {
	n := store.Len()
	var todo []int
	for c := 0; c*o.Chunk < n; c++ {
		if ownsChunk(c, part, parts) && !done[c] {
			todo = append(todo, c)
		}
	}
	if len(todo) == 0 {
		return 0, 0, nil
	}
	st, err := dense.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		st, err = dense.Create(dir, o.Encoder.Dim(), dense.F32)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("index: %w", err)
	}
	if st.Dim() != o.Encoder.Dim() {
		return 0, 0, fmt.Errorf("index: vector store %s has dimension %d, encoder %d", dir, st.Dim(), o.Encoder.Dim())
	}
	for _, c := range todo {
		lo, hi := chunkRows(c, o.Chunk, n)
		in := make([]neural.Passage, 0, hi-lo)
		ids := make([]string, 0, hi-lo)
		if err := store.Scan(ctx, lo, hi, func(p Passage) error {
			in = append(in, neural.Passage{Title: p.Title, Text: p.Text})
			ids = append(ids, p.ID)
			return nil
		}); err != nil {
			return chunks, rows, fmt.Errorf("index: chunk %d: %w", c, err)
		}
		vecs, err := o.Encoder.EncodePassages(ctx, in)
		if err != nil {
			return chunks, rows, fmt.Errorf("index: encode chunk %d: %w", c, err)
		}
		flat := make([]float32, 0, len(vecs)*st.Dim())
		for _, v := range vecs {
			flat = append(flat, v...)
		}
		if _, err := st.PutShard(ctx, chunkName(c), ids, flat); err != nil {
			return chunks, rows, err
		}
		chunks++
		rows += hi - lo
		bar.Add(hi - lo)
		if after != nil {
			after(hi - lo)
		}
		if o.afterChunk != nil {
			if err := o.afterChunk(chunks); err != nil {
				return chunks, rows, err
			}
		}
	}
	return chunks, rows, nil
}

// encodeCorpus encodes the chunks of the store's passages that no vector
// store under o.Out holds yet (those of shard o.Shard with NumShards > 1)
// into dense/, then gathers into dense/ any chunks an earlier distributed
// run left in its ranks' stores.
func encodeCorpus(ctx context.Context, store *pstore.Store, o Options) (*DenseManifest, error) {
	n, dim := store.Len(), o.Encoder.Dim()
	done, err := storedChunks(o.Out, n, o.Chunk, dim)
	if err != nil {
		return nil, err
	}
	total := 0
	for c := 0; c*o.Chunk < n; c++ {
		if ownsChunk(c, o.Shard, o.NumShards) && !done[c] {
			lo, hi := chunkRows(c, o.Chunk, n)
			total += hi - lo
		}
	}
	bar := progress.NewTo(o.progressOut(), total, "encode passages", "passages")
	start := time.Now()
	chunks, rows, err := encodeChunks(ctx, store, rankStoreDir(o.Out, 0), o, o.Shard, o.NumShards, done, nil, bar)
	bar.Finish()
	if err != nil {
		return nil, err
	}
	if chunks > 0 {
		logEncoded(chunks, rows, start)
	}
	st, err := gatherChunks(ctx, o.Out, n, o.Chunk, dim)
	if err != nil {
		return nil, err
	}
	return &DenseManifest{Encoder: o.EncoderDir, Dim: st.Dim(), Vectors: st.Count(), HNSW: o.HNSW, Chunk: o.Chunk, Extra: o.Extra,
		MaxLength: o.Encoder.MaxLength()}, nil
}

// gatherChunks links the whole chunks of every rank's vector store under
// out into dense/ (made if missing) and removes the ranks' stores, then
// numbers dense/'s shards in chunk order, so that the HNSW index adds the
// vectors in corpus order and gives them the FAISS ids of a build of one
// process, whichever process encoded each chunk and in whatever order.
func gatherChunks(ctx context.Context, out string, n, chunk, dim int) (*dense.Store, error) {
	dst, err := dense.Create(filepath.Join(out, denseDir), dim, dense.F32)
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	ranks, err := filepath.Glob(filepath.Join(out, rankStorePrefix+"*"))
	if err != nil {
		return nil, err
	}
	start, linked := time.Now(), 0
	for _, d := range ranks {
		src, err := dense.Open(d)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("index: %w", err)
		}
		var names []string
		for _, si := range src.Shards() {
			if _, ok := wholeChunk(si, n, chunk); ok {
				names = append(names, si.Name)
			}
		}
		k, err := dst.LinkShards(ctx, src, names)
		if err != nil {
			return nil, fmt.Errorf("index: %w", err)
		}
		linked += k
	}
	for _, d := range ranks {
		if err := os.RemoveAll(d); err != nil {
			return nil, fmt.Errorf("index: %w", err)
		}
	}
	if err := renumberByChunk(dst); err != nil {
		return nil, err
	}
	if len(ranks) > 0 {
		slog.Info("chunks gathered", "dir", dst.Dir(), "rank_stores", len(ranks), "chunks_linked", linked, "seconds", time.Since(start).Seconds())
	}
	return dst, nil
}

// renumberByChunk numbers the shards of st in chunk order (any shard that
// is not a chunk last, by name): the order BuildIndex adds them in.
func renumberByChunk(st *dense.Store) error {
	names := make([]string, 0, len(st.Shards()))
	for _, si := range st.Shards() {
		names = append(names, si.Name)
	}
	slices.SortStableFunc(names, func(a, b string) int {
		ca, oka := parseChunkName(a)
		cb, okb := parseChunkName(b)
		switch {
		case oka && okb:
			return ca - cb
		case oka:
			return -1
		case okb:
			return 1
		}
		return strings.Compare(a, b)
	})
	if err := st.Renumber(names); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	return nil
}
