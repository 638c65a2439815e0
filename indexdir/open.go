package indexdir

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"

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

// Index is an opened index directory, safe for concurrent searches. It is
// the generation its manifest named when it was opened: updates that other
// processes commit later (Add, Delete, Compact) show in an Index opened
// after them (pipeline.Pipeline.ReloadIndex swaps one in).
type Index struct {
	Dir      string
	Manifest Manifest
	sparse   *bm25.Index
	segs     []*segment
	rows     int      // stored passages, deleted ones included
	deleted  []uint64 // bit set of the deleted rows (nil: none)
}

// segment is an opened Segment. Its rows are the index's rows first to
// first+passages.Len()-1.
type segment struct {
	Segment
	first   int
	deleted int // rows of it deleted
	*segFiles
}

// segFiles are a segment's opened files. A segment's files never change
// once committed, so Indexes of successive generations share them
// (OpenOptions.Reuse); the last to close releases them.
type segFiles struct {
	refs     atomic.Int32
	passages *pstore.Store
	hnsw     *faiss.Index
	vectors  *dense.Store
	chunkOf  []int // vector store shard number → chunk
	shardOf  []int // chunk → vector store shard number
	chunk    int
}

// OpenOptions control OpenWith.
type OpenOptions struct {
	// Verify is how much of the files is checked against the manifest
	// (VerifyQuick: sizes, and the CRC-32C of the files read whole).
	Verify Verify
	// SkipHNSW leaves the HNSW indexes unloaded and their checksums
	// unread (their sizes are still checked): for updates, which read the
	// passages, vectors and BM25 but never search, and which would
	// otherwise hold every segment's graph in memory (a gigabyte at a
	// million SQ8 vectors). Such an Index's DenseSearch is an error.
	SkipHNSW bool
	// Reuse is an open Index of the same directory, of an earlier
	// generation (a server's, reloading): the segments the new manifest
	// names as it did (the same directory, rows and file checksums) are
	// shared with it instead of opened again, and (unless Verify is
	// VerifyFull) their files' checksums are not read again: their sizes
	// are checked. Adding or deleting
	// passages leaves the large segments as they were, so a reload after
	// an update holds one copy of their HNSW graphs, not two. Reuse must
	// stay open until OpenWith returns; either Index may be closed first.
	Reuse *Index
}

// openRetries bounds how often OpenWith starts again when the manifest
// changed while it opened the index (an update committed meanwhile, whose
// clean-up removed files of the generation it had read).
const openRetries = 8

// Open opens a finished index directory for searching, with VerifyQuick
// checks; see OpenWith.
func Open(ctx context.Context, dir string) (*Index, error) {
	return OpenWith(ctx, dir, OpenOptions{})
}

// OpenWith opens a finished index directory for searching. It writes
// nothing there (the directory may be read-only), and any number of
// processes (and Indexes in one process) may have it open at once, while a
// writer updates it. The files are checked against the manifest as
// o.Verify says, so a missing, truncated or (as far as the mode reads)
// damaged file is an error naming it. An index from before the passage
// store is refused (ErrOldIndex) with the command that rebuilds it. If an
// update is committed while it opens (and removes files of the generation
// it read), it opens the new generation instead. ctx bounds the wait for a
// process that has the BM25 store open for writing.
func OpenWith(ctx context.Context, dir string, o OpenOptions) (*Index, error) {
	for attempt := 0; ; attempt++ {
		ix, sum, err := openOnce(ctx, dir, o)
		if err == nil {
			return ix, nil
		}
		if attempt >= openRetries || sum == "" || ctx.Err() != nil {
			return nil, err
		}
		now, rerr := readManifest(dir)
		if rerr != nil || now.ManifestSHA256 == sum {
			return nil, err
		}
		slog.Debug("index: a new generation was committed while opening: opening it", "dir", dir, "err", err)
	}
}

// openOnce opens the generation the manifest names now; sum is the
// manifest's SHA-256 when it could be read.
func openOnce(ctx context.Context, dir string, o OpenOptions) (_ *Index, sum string, _ error) {
	ix := &Index{Dir: dir}
	m, err := readManifest(dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, "", fmt.Errorf("index %s: %w", dir, err)
		}
		if held, pid := dirlock.Held(dir); held {
			return nil, "", fmt.Errorf("index %s is being built by PID %d: wait for it to finish", dir, pid)
		}
		if _, perr := os.Stat(filepath.Join(dir, progressFile)); perr == nil {
			return nil, "", fmt.Errorf("index %s: the build did not finish (re2g index --resume continues it)", dir)
		}
		return nil, "", fmt.Errorf("index %s: %w", dir, err)
	}
	sum = m.ManifestSHA256
	ix.Manifest = *m
	if m.Shard != "" {
		return nil, sum, fmt.Errorf("index %s: shard %s of an index: merge the shards first (re2g index merge)", dir, m.Shard)
	}
	if m.Version < minManifestVersion {
		return nil, sum, fmt.Errorf("index %s: %w (manifest version %d, passages in bleve and %s): rebuild it (re2g index --corpus %s --out NEW_DIR)",
			dir, ErrOldIndex, m.Version, legacyPagesFile, m.Corpus)
	}
	for _, rel := range []string{m.BM25Dir, m.Tombstones} {
		if !validRel(rel) {
			return nil, sum, fmt.Errorf("index %s: %s: %w: path %q outside the index", dir, filepath.Join(dir, manifestFile), ErrCorrupt, rel)
		}
	}
	if (m.Deleted > 0) != (m.Tombstones != "") || m.Deleted < 0 {
		return nil, sum, fmt.Errorf("index %s: %s: %w: %d deleted passages, tombstones %q", dir, filepath.Join(dir, manifestFile), ErrCorrupt, m.Deleted, m.Tombstones)
	}
	reused := reusable(dir, m, o)
	skip := func(rel string) bool {
		if o.SkipHNSW && path.Base(rel) == hnswFile {
			return true
		}
		if o.Verify == VerifyFull {
			return false // every byte, as asked, shared or not
		}
		for _, r := range reused {
			if segmentFile(r.dir, rel) {
				return true
			}
		}
		return false
	}
	if err := verifyFiles(ctx, dir, m, o.Verify, skip); err != nil {
		return nil, sum, fmt.Errorf("index %s: %w", dir, err)
	}
	fail := func(err error) (*Index, string, error) {
		ix.Close()
		return nil, sum, fmt.Errorf("index %s: %w", dir, err)
	}
	for i, s := range m.segments() {
		if r := reused[i]; r != nil {
			r.files.refs.Add(1)
			ix.segs = append(ix.segs, &segment{Segment: s, first: ix.rows, segFiles: r.files})
			ix.rows += s.Rows
			continue
		}
		seg, err := openSegment(dir, s, ix.rows, m.Dense, !o.SkipHNSW)
		if err != nil {
			return fail(err)
		}
		ix.segs = append(ix.segs, seg)
		ix.rows += s.Rows
	}
	if ix.rows != m.Passages+m.Deleted {
		return fail(fmt.Errorf("the passage stores hold %d passages, the manifest says %d and %d deleted", ix.rows, m.Passages, m.Deleted))
	}
	if m.Tombstones != "" {
		rows, err := readTombstones(filepath.Join(dir, filepath.FromSlash(m.Tombstones)), ix.rows)
		if err != nil {
			return fail(err)
		}
		if len(rows) != m.Deleted {
			return fail(fmt.Errorf("%s holds %d deleted passages, the manifest says %d", m.Tombstones, len(rows), m.Deleted))
		}
		ix.deleted = make([]uint64, (ix.rows+63)/64)
		for _, r := range rows {
			ix.deleted[r/64] |= 1 << (r % 64)
			ix.segs[ix.segmentOf(int(r))].deleted++
		}
	}
	if d := m.Dense; d != nil && d.Vectors != m.Passages {
		return fail(fmt.Errorf("the manifest says %d vectors for %d passages", d.Vectors, m.Passages))
	}
	if ix.sparse, err = bm25.OpenReadOnly(ctx, filepath.Join(dir, filepath.FromSlash(m.bm25Dir()))); err != nil {
		return fail(err)
	}
	if n, err := ix.sparse.Count(); err != nil || n != uint64(m.Passages) {
		return fail(fmt.Errorf("the BM25 index %s holds %d passages, the manifest says %d (%v)", m.bm25Dir(), n, m.Passages, err))
	}
	return ix, sum, nil
}

// segments are the manifest's segments: one at the top of the directory
// for a version 3 manifest.
func (m *Manifest) segments() []Segment {
	if len(m.Segments) > 0 || m.Version >= 4 {
		return m.Segments
	}
	s := Segment{Rows: m.Passages}
	if m.Dense != nil {
		s.SQ8Train = m.Dense.SQ8Train
	}
	return []Segment{s}
}

// bm25Dir is the BM25 index's directory, relative to the index.
func (m *Manifest) bm25Dir() string {
	if m.BM25Dir == "" {
		return bm25Dir
	}
	return m.BM25Dir
}

// openSegment opens a segment's passage store and, with d, its vectors and
// HNSW index, checking them against the manifest.
func openSegment(dir string, s Segment, first int, d *DenseManifest, loadHNSW bool) (_ *segment, err error) {
	if !validRel(s.Dir) {
		return nil, fmt.Errorf("%s: %w: segment directory %q outside the index", filepath.Join(dir, manifestFile), ErrCorrupt, s.Dir)
	}
	seg := &segment{Segment: s, first: first, segFiles: &segFiles{}}
	seg.refs.Store(1)
	defer func() {
		if err != nil {
			seg.close()
		}
	}()
	root := filepath.Join(dir, filepath.FromSlash(s.Dir))
	if seg.passages, err = pstore.Open(filepath.Join(root, passagesDir)); err != nil {
		return nil, err
	}
	if seg.passages.Len() != s.Rows {
		return nil, fmt.Errorf("the passage store %s holds %d passages, the manifest says %d", seg.passages.Dir(), seg.passages.Len(), s.Rows)
	}
	if d == nil {
		return seg, nil
	}
	if seg.vectors, err = dense.Open(filepath.Join(root, denseDir)); err != nil {
		return nil, err
	}
	if seg.vectors.Dim() != d.Dim || seg.vectors.Count() != s.Rows {
		return nil, fmt.Errorf("the vector store %s holds %d vectors of dimension %d, the manifest says %d of %d",
			filepath.Join(root, denseDir), seg.vectors.Count(), seg.vectors.Dim(), s.Rows, d.Dim)
	}
	seg.chunk = d.Chunk
	if seg.chunkOf, seg.shardOf, err = chunkMap(seg.vectors, s.Rows, d.Chunk); err != nil {
		return nil, err
	}
	if !loadHNSW {
		return seg, nil
	}
	hnswPath := filepath.Join(root, denseDir, hnswFile)
	if seg.hnsw, err = faiss.Load(hnswPath); err != nil {
		return nil, err
	}
	if err := seg.hnsw.CheckConfig(d.HNSW); err != nil {
		return nil, fmt.Errorf("%s is not the index the manifest records: %w", hnswPath, err)
	}
	if seg.hnsw.Dim() != d.Dim {
		return nil, fmt.Errorf("%s: HNSW dimension %d, manifest says %d", hnswPath, seg.hnsw.Dim(), d.Dim)
	}
	if n := seg.hnsw.Ntotal(); n != int64(s.Rows) {
		return nil, fmt.Errorf("%s holds %d vectors for %d passages", hnswPath, n, s.Rows)
	}
	return seg, nil
}

// close releases the segment's files, unless another Index shares them.
func (s *segment) close() error {
	if s.segFiles == nil || s.refs.Add(-1) > 0 {
		return nil
	}
	var errs []error
	if s.hnsw != nil {
		errs = append(errs, s.hnsw.Close())
	}
	if s.passages != nil {
		errs = append(errs, s.passages.Close())
	}
	return errors.Join(errs...)
}

// reusedSegment is a segment of OpenOptions.Reuse that a new generation
// names unchanged.
type reusedSegment struct {
	files *segFiles
	dir   string // the segment's directory ("": the index's top)
}

// segmentFile reports whether the file rel belongs to the segment in
// directory dir ("": the index's top): its passage store or vectors (a
// generation's directory also holds BM25 and tombstones, which are not
// the segment's).
func segmentFile(dir, rel string) bool {
	if dir != "" {
		dir += "/"
	}
	return strings.HasPrefix(rel, dir+passagesDir+"/") || strings.HasPrefix(rel, dir+denseDir+"/")
}

// reusable finds, for each segment of m (by position), the segment of
// o.Reuse it may share: the same directory and rows, every file of it
// recorded with the same size and checksum in both manifests, and its
// HNSW graph loaded where this Index needs it.
func reusable(dir string, m *Manifest, o OpenOptions) map[int]*reusedSegment {
	prev := o.Reuse
	if prev == nil || filepath.Clean(prev.Dir) != filepath.Clean(dir) || m.ManifestSHA256 == "" ||
		prev.Manifest.ManifestSHA256 == "" || (m.Dense == nil) != (prev.Manifest.Dense == nil) {
		return nil
	}
	if m.Dense != nil && (m.Dense.Dim != prev.Manifest.Dense.Dim || m.Dense.HNSW != prev.Manifest.Dense.HNSW || m.Dense.Chunk != prev.Manifest.Dense.Chunk) {
		return nil
	}
	files := func(m *Manifest, seg string) []FileSum {
		var out []FileSum
		for _, f := range m.Files {
			if segmentFile(seg, f.Path) {
				out = append(out, f)
			}
		}
		slices.SortFunc(out, func(a, b FileSum) int { return strings.Compare(a.Path, b.Path) })
		return out
	}
	out := map[int]*reusedSegment{}
	for i, s := range m.segments() {
		for _, p := range prev.segs {
			if p.Dir != s.Dir || p.Rows != s.Rows || (m.Dense != nil && !o.SkipHNSW && p.hnsw == nil) {
				continue
			}
			if a, b := files(m, s.Dir), files(&prev.Manifest, s.Dir); len(a) > 0 && slices.Equal(a, b) {
				out[i] = &reusedSegment{files: p.segFiles, dir: s.Dir}
			}
			break
		}
	}
	return out
}

// Close releases the indexes.
func (ix *Index) Close() error {
	var errs []error
	if ix.sparse != nil {
		errs = append(errs, ix.sparse.Close())
	}
	for _, s := range ix.segs {
		errs = append(errs, s.close())
	}
	return errors.Join(errs...)
}

// HasDense reports whether the index holds passage vectors.
func (ix *Index) HasDense() bool { return ix.Manifest.Dense != nil && len(ix.segs) > 0 }

// Len is the number of passages searches can return (deleted ones are not
// counted).
func (ix *Index) Len() int { return ix.Manifest.Passages }

// Rows is the number of rows: passages stored, deleted ones included
// (until Compact removes them). Row numbers run from 0 to Rows()-1.
func (ix *Index) Rows() int { return ix.rows }

// Deleted reports whether row holds a deleted passage.
func (ix *Index) Deleted(row int) bool {
	return ix.deleted != nil && row >= 0 && row < ix.rows && ix.deleted[row/64]&(1<<(row%64)) != 0
}

// segmentOf is the index of the segment holding row (0 ≤ row < rows).
func (ix *Index) segmentOf(row int) int {
	return sort.Search(len(ix.segs), func(i int) bool { return ix.segs[i].first+ix.segs[i].Rows > row })
}

// Row returns the passage stored at row (0 ≤ row < Rows; see Deleted),
// with its Row set to row.
func (ix *Index) Row(row int) (Passage, error) {
	if row < 0 || row >= ix.rows {
		return Passage{}, fmt.Errorf("index %s: %w: row %d of %d", ix.Dir, pstore.ErrRange, row, ix.rows)
	}
	s := ix.segs[ix.segmentOf(row)]
	p, err := s.passages.Row(row - s.first)
	if err != nil {
		return Passage{}, fmt.Errorf("index %s: %w", ix.Dir, err)
	}
	p.Row = row
	return p, nil
}

// lookup is the row of the passage id, deleted passages excepted; an id the
// index lacks is an error wrapping pstore.ErrNotFound. The newest segment
// is asked first: an id replaced by Add is deleted in an older one.
func (ix *Index) lookup(id string) (int, error) {
	for i := len(ix.segs) - 1; i >= 0; i-- {
		s := ix.segs[i]
		r, err := s.passages.Lookup(id)
		if errors.Is(err, pstore.ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("index %s: %w", ix.Dir, err)
		}
		if row := s.first + r; !ix.Deleted(row) {
			return row, nil
		}
	}
	return 0, fmt.Errorf("index %s: passage %q: %w", ix.Dir, id, pstore.ErrNotFound)
}

// Get returns the passage with the given id (not a deleted one), with its
// Row; an id the index lacks is an error wrapping pstore.ErrNotFound.
func (ix *Index) Get(id string) (Passage, error) {
	row, err := ix.lookup(id)
	if err != nil {
		return Passage{}, err
	}
	return ix.Row(row)
}

// Passage returns a stored passage; ok is false for an id the index lacks
// (or has deleted).
func (ix *Index) Passage(id string) (data.Passage, bool, error) {
	p, err := ix.Get(id)
	if errors.Is(err, pstore.ErrNotFound) {
		return data.Passage{}, false, nil
	}
	if err != nil {
		return data.Passage{}, false, err
	}
	return p.DataPassage(), true, nil
}

// Page is the page (wikipedia_id) of a passage, or the passage id itself
// when the corpus has no pages (or the index lacks the passage).
func (ix *Index) Page(id string) string {
	if !ix.Manifest.Pages {
		return id
	}
	p, err := ix.Get(id)
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
		p, err := ix.Get(h.ID)
		if err != nil {
			return nil, fmt.Errorf("index %s: BM25 hit %q: %w", ix.Dir, h.ID, err)
		}
		out[i] = Hit{ID: h.ID, Title: p.Title, Text: p.Text, Score: h.Score}
	}
	return out, nil
}

// localRow is the segment row of a FAISS id of the segment's HNSW index.
func (s *segment) localRow(id int64) (int, error) {
	no, r := dense.SplitID(id)
	if id < 0 || no >= len(s.chunkOf) || s.chunkOf[no] < 0 {
		return 0, fmt.Errorf("%w %d: no shard %d in %s", dense.ErrUnknownID, id, no, s.vectors.Dir())
	}
	lo, hi := chunkRows(s.chunkOf[no], s.chunk, s.Rows)
	if r >= hi-lo {
		return 0, fmt.Errorf("%w %d: shard %d of %s has %d rows", dense.ErrUnknownID, id, no, s.vectors.Dir(), hi-lo)
	}
	return lo + r, nil
}

// faissID is the FAISS id of a segment row.
func (s *segment) faissID(row int) int64 {
	return dense.FaissID(s.shardOf[row/s.chunk], row%s.chunk)
}

// MaxDenseFetch bounds how many hits DenseSearch asks one segment's HNSW
// index for, to make up for deleted passages (see DenseSearch).
const MaxDenseFetch = 4096

// scored is a dense hit: an index row and its score.
type scored struct {
	row   int
	score float32
}

// DenseSearch returns the k passages of highest inner product with each
// query vector (nq×dim, row-major); efSearch 0 keeps the index's default.
//
// Each segment's HNSW index is searched and the lists merged by score.
// Deleted passages are filtered out, so a segment with D deleted of its n
// vectors is asked for more than k hits: min(n, k+D) when that is at most
// 1.5·k·n/(n−D) (k+D hits hold k live ones whatever was deleted, as far as
// the approximate search finds them), else 1.5·k·n/(n−D) (enough when the
// deleted passages are spread evenly); a query left with fewer than k live
// hits is searched again with four times as many, up to min(n, k+D) or
// the bound below. So a query whose whole neighbourhood was deleted still
// gets k hits, from further out, unless more than MaxDenseFetch (or 4·k,
// if larger) of its nearest vectors in a segment are deleted: then it gets
// fewer (Compact removes deleted vectors for good). HNSW searches with efSearch at least
// the number of hits asked for.
func (ix *Index) DenseSearch(ctx context.Context, queries [][]float32, k, efSearch int) ([][]Hit, error) {
	if !ix.HasDense() {
		return nil, fmt.Errorf("index %s has no dense vectors (built without --ctx-encoder)", ix.Dir)
	}
	if ix.segs[0].hnsw == nil {
		return nil, fmt.Errorf("index %s was opened without its HNSW indexes (OpenOptions.SkipHNSW)", ix.Dir)
	}
	if len(queries) == 0 {
		return nil, nil
	}
	if k <= 0 {
		return nil, fmt.Errorf("dense search: k must be positive, got %d", k)
	}
	d := ix.Manifest.Dense.Dim
	flat := make([]float32, 0, len(queries)*d)
	for i, q := range queries {
		if len(q) != d {
			return nil, fmt.Errorf("dense search: query %d has dimension %d, index %d", i, len(q), d)
		}
		flat = append(flat, q...)
	}
	all := make([][]scored, len(queries))
	lower := false
	for _, s := range ix.segs {
		lower = s.hnsw.Metric() == faiss.L2
		got, err := ix.searchSegment(ctx, s, flat, len(queries), k, efSearch)
		if err != nil {
			return nil, err
		}
		for q := range all {
			all[q] = append(all[q], got[q]...)
		}
	}
	out := make([][]Hit, len(queries))
	for q, hs := range all {
		slices.SortStableFunc(hs, func(a, b scored) int {
			if a.score != b.score {
				if (a.score > b.score) != lower {
					return -1
				}
				return 1
			}
			return a.row - b.row
		})
		for _, h := range hs[:min(k, len(hs))] {
			p, err := ix.Row(h.row)
			if err != nil {
				return nil, err
			}
			out[q] = append(out[q], Hit{ID: p.ID, Title: p.Title, Text: p.Text, Score: float64(h.score)})
		}
	}
	return out, nil
}

// fetchSizes are the hits DenseSearch first asks a segment for, and the
// most it will ask for, to find k live ones among n vectors of which del
// are deleted.
func fetchSizes(k, n, del int) (first, most int) {
	if del == 0 {
		return min(n, k), min(n, k)
	}
	most = min(n, k+del, max(MaxDenseFetch, 4*k))
	spread := int(math.Ceil(1.5 * float64(k) * float64(n) / float64(n-del)))
	return min(most, max(spread, k)), most
}

// searchSegment returns each query's best k live hits in one segment,
// searching again with more hits for the queries that deleted passages
// left short (see DenseSearch).
func (ix *Index) searchSegment(ctx context.Context, s *segment, flat []float32, nq, k, efSearch int) ([][]scored, error) {
	out := make([][]scored, nq)
	n := s.Rows
	if n-s.deleted <= 0 {
		return out, nil
	}
	d := ix.Manifest.Dense.Dim
	fetch, most := fetchSizes(k, n, s.deleted)
	pending := make([]int, nq)
	for i := range pending {
		pending[i] = i
	}
	for len(pending) > 0 {
		x := flat
		if len(pending) < nq {
			x = make([]float32, 0, len(pending)*d)
			for _, q := range pending {
				x = append(x, flat[q*d:(q+1)*d]...)
			}
		}
		res, err := s.hnsw.Search(ctx, x, fetch, &faiss.SearchOptions{EfSearch: efSearch})
		if err != nil {
			return nil, fmt.Errorf("index %s: %w", ix.Dir, err)
		}
		var short []int
		for i, q := range pending {
			ids, scores := res.Row(i)
			hs := out[q][:0]
			for j, id := range ids {
				if id < 0 {
					continue
				}
				r, err := s.localRow(id)
				if err != nil {
					return nil, fmt.Errorf("index %s: %w", ix.Dir, err)
				}
				if row := s.first + r; !ix.Deleted(row) {
					hs = append(hs, scored{row, scores[j]})
					if len(hs) == k {
						break
					}
				}
			}
			out[q] = hs
			if len(hs) < k && fetch < most {
				short = append(short, q)
			}
		}
		if len(short) > 0 {
			slog.Debug("dense search: deleted passages left queries short: searching again", "dir", ix.Dir, "segment", s.Dir,
				"queries", len(short), "k", k, "fetched", fetch, "next", min(4*fetch, most))
		}
		pending, fetch = short, min(4*fetch, most)
	}
	return out, nil
}

// validRel reports whether rel (slash-separated) stays inside the index
// directory.
func validRel(rel string) bool {
	if rel == "" {
		return true
	}
	c := filepath.Clean(filepath.FromSlash(rel))
	return !filepath.IsAbs(c) && c != ".." && !startsWithDotDot(c)
}

func startsWithDotDot(p string) bool {
	return len(p) >= 3 && p[:3] == ".."+string(filepath.Separator)
}
