// Package indexdir builds, opens and merges re2g index directories: the
// passage store (passages/, package pstore), the BM25 index (bm25/) and the
// passage vectors with their HNSW index (dense/), described and checksummed
// by manifest.json. Building streams the corpus: its memory is the indexes'
// own structures and one batch or encoding chunk, not the corpus.
package indexdir

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/re2g/re2g/bm25"
	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/dense"
	"github.com/re2g/re2g/faiss"
	"github.com/re2g/re2g/indexdir/pstore"
	"github.com/re2g/re2g/internal/atomicfile"
	"github.com/re2g/re2g/internal/dirlock"
	"github.com/re2g/re2g/internal/progress"
	"github.com/re2g/re2g/neural"
	"github.com/re2g/re2g/torch/dist"
)

// The layout of an index directory.
const (
	manifestFile = "manifest.json"
	progressFile = "progress.json"
	passagesDir  = "passages"
	bm25Dir      = "bm25"
	denseDir     = "dense"
	hnswFile     = "hnsw.faiss"
	// legacyPagesFile is where indexes before version 3 kept the page of
	// every passage, one JSON map.
	legacyPagesFile = "pages.json"
)

// Options control Build and Merge.
type Options struct {
	Out        string
	Encoder    *neural.Encoder   // context encoder; nil builds BM25 only
	EncoderDir string            // recorded in the manifest
	Extra      map[string]string // recorded in the manifest's dense part (e.g. what produced the encoder)
	Chunk      int               // passages per encoded chunk, the unit of checkpointing (default 2048)
	Shard      int               // with NumShards > 1: encode only chunks c with c % NumShards == Shard
	NumShards  int
	Resume     bool
	BM25       bm25.Options
	HNSW       faiss.HNSWConfig
	SQ8Train   dense.SQ8Train // with HNSW.SQ8: the quantiser's training sample
	Progress   io.Writer      // progress bars (nil: stderr)
	// Report receives the corpus records skipped as malformed (nil: their
	// summary is logged).
	Report *data.Report
	// LockTimeout is how long to wait for the directory's writer lock while
	// another build or merge holds it (0: not at all).
	LockTimeout time.Duration
	// Vectors is a file of precomputed passage vectors to index instead of
	// encoding (dense.OpenVectorFile: .npy with the ids file VectorIDs, or
	// JSON lines), one a passage in corpus order.
	Vectors, VectorIDs string
	// Dist is the group of a distributed build (re2g index under a
	// launcher): with more than one rank, every rank calls Build with the
	// same options; the ranks split the encoding and rank 0 builds the rest
	// (see buildDist). o.Out must be a directory every rank sees. Progress
	// is best shown on rank 0 alone, and the caller's logger should name the
	// rank on the others. nil, or a group of one rank, is a build of one
	// process.
	Dist *dist.Group
	// afterChunk is a test hook called after each chunk is stored.
	afterChunk func(done int) error
}

// buildState records which steps of a build are complete, for --resume.
type buildState struct {
	CorpusSHA256 string `json:"corpus_sha256"`
	Shard        string `json:"shard,omitempty"`
	StoreDone    bool   `json:"store_done"`
	Passages     int    `json:"passages,omitempty"` // once the store is done
	Pages        bool   `json:"pages,omitempty"`
	Vectors      string `json:"vectors,omitempty"` // Options.Vectors
	Chunk        int    `json:"chunk,omitempty"`   // passages per encoded chunk (0: from before it was recorded)
	BM25Done     bool   `json:"bm25_done"`
	DenseDone    bool   `json:"dense_done"`
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o644)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func (o Options) shardLabel() string {
	if o.NumShards > 1 {
		return fmt.Sprintf("%d/%d", o.Shard, o.NumShards)
	}
	return ""
}

func (o Options) progressOut() io.Writer {
	if o.Progress != nil {
		return o.Progress
	}
	return os.Stderr
}

// Build builds an index directory from the corpus at corpusPath (any
// format ReadCorpus reads), streaming it: the passage store first (where
// repeated ids are found), then from it the BM25 index, and, with an
// encoder, the passage vectors (encoded in checkpointed chunks, so that an
// interrupted build resumes where it stopped) and their HNSW index; with
// Vectors, the vectors come from that file instead. With
// NumShards > 1 it only encodes its share of the chunks: Merge then
// combines the shards into one index. With a Dist group of several ranks
// the ranks split the encoding and rank 0 builds the rest (see Options.Dist).
func Build(ctx context.Context, corpusPath string, o Options) (*Manifest, error) {
	if o.Chunk <= 0 {
		o.Chunk = 2048
	}
	if o.Dist.Size() > 1 {
		return buildDist(ctx, corpusPath, o)
	}
	if err := checkBuildOptions(o); err != nil {
		return nil, err
	}
	b, err := startBuild(ctx, corpusPath, o)
	if err != nil {
		return nil, err
	}
	defer b.release()
	store, err := b.passageStore(ctx)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	if o.Vectors != "" {
		if err := checkVectorsCorpus(ctx, store, o); err != nil {
			return nil, err
		}
	}
	if o.NumShards <= 1 && !b.pr.BM25Done {
		if err := buildBM25(ctx, filepath.Join(o.Out, bm25Dir), store, o); err != nil {
			return nil, err
		}
		b.pr.BM25Done = true
		if err := b.save(); err != nil {
			return nil, err
		}
	}
	var dm *DenseManifest
	if o.Encoder != nil || o.Vectors != "" {
		encode := encodeCorpus
		if o.Vectors != "" {
			encode = importVectors
		}
		if dm, err = encode(ctx, store, o); err != nil {
			return nil, err
		}
	}
	if o.NumShards > 1 {
		// A shard holds vectors only: Merge makes the store again from the
		// corpus.
		store.Close()
		if err := os.RemoveAll(store.Dir()); err != nil {
			return nil, fmt.Errorf("index: %w", err)
		}
	}
	return b.finish(ctx, dm, 0)
}

// checkBuildOptions checks what Build can check of o before any work.
func checkBuildOptions(o Options) error {
	if o.NumShards > 1 && (o.Shard < 0 || o.Shard >= o.NumShards) {
		return fmt.Errorf("index: shard %d of %d", o.Shard, o.NumShards)
	}
	if o.NumShards > 1 && o.Encoder == nil {
		return errors.New("index: shards split the encoding: --shard needs a context encoder")
	}
	return checkVectorsOptions(o)
}

// buildRun is a build under way: its directory locked, its progress file
// read or written.
type buildRun struct {
	o        Options
	corpus   string
	sum      string // the corpus's SHA-256
	progPath string
	pr       buildState
	lock     *dirlock.Lock
}

// startBuild hashes the corpus, makes and locks o.Out, and reads the
// progress of the build there (o.Resume) or starts one in an empty
// directory.
func startBuild(ctx context.Context, corpusPath string, o Options) (_ *buildRun, err error) {
	sum, err := fileSHA256(corpusPath)
	if err != nil {
		return nil, fmt.Errorf("index: corpus: %w", err)
	}
	b := &buildRun{o: o, corpus: corpusPath, sum: sum, progPath: filepath.Join(o.Out, progressFile),
		pr: buildState{CorpusSHA256: sum, Shard: o.shardLabel(), Vectors: o.Vectors, Chunk: o.Chunk}}
	if _, err := os.Stat(filepath.Join(o.Out, manifestFile)); err == nil {
		return nil, fmt.Errorf("index: %s already holds a finished index", o.Out)
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	if b.lock, err = lockIndex(ctx, o.Out, o.LockTimeout); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			b.release()
		}
	}()
	if _, err := os.Stat(filepath.Join(o.Out, manifestFile)); err == nil {
		return nil, fmt.Errorf("index: %s already holds a finished index", o.Out)
	}
	if _, err := os.Stat(b.progPath); err != nil {
		if empty, err := emptyDir(o.Out); err != nil || !empty {
			return nil, fmt.Errorf("index: %s exists and is not empty", o.Out)
		}
		return b, b.save()
	}
	if !o.Resume {
		return nil, fmt.Errorf("index: %s holds an unfinished build: pass --resume to continue it, or remove it", o.Out)
	}
	var old buildState
	if err := readJSON(b.progPath, &old); err != nil {
		return nil, err
	}
	if old.CorpusSHA256 != sum || old.Shard != b.pr.Shard {
		return nil, fmt.Errorf("index: %s was started for another corpus or shard (sha256 %s, shard %q)", o.Out, old.CorpusSHA256, old.Shard)
	}
	if old.Vectors != b.pr.Vectors {
		return nil, fmt.Errorf("index: %s was started with vectors %q, not %q", o.Out, old.Vectors, b.pr.Vectors)
	}
	if encodes := o.Encoder != nil || o.Vectors != ""; encodes && old.Chunk != 0 && old.Chunk != o.Chunk {
		return nil, fmt.Errorf("index: %s was started with chunks of %d passages, not %d: resume it with --chunk %d", o.Out, old.Chunk, o.Chunk, old.Chunk)
	}
	b.pr = old
	if b.pr.Chunk == 0 {
		b.pr.Chunk = o.Chunk
	}
	slog.Info("resuming index build", "dir", o.Out, "store_done", b.pr.StoreDone, "bm25_done", b.pr.BM25Done, "dense_done", b.pr.DenseDone)
	return b, nil
}

// save writes the build's progress file.
func (b *buildRun) save() error { return writeJSON(b.progPath, b.pr) }

// release gives up the directory's lock.
func (b *buildRun) release() { releaseLock(b.lock) }

// passageStore ingests the corpus into the passage store unless an earlier
// run did, and opens it.
func (b *buildRun) passageStore(ctx context.Context) (*pstore.Store, error) {
	if !b.pr.StoreDone {
		n, pages, err := ingest(ctx, b.corpus, b.o.Out, b.o)
		if err != nil {
			return nil, err
		}
		b.pr.StoreDone, b.pr.Passages, b.pr.Pages = true, n, pages
		if err := b.save(); err != nil {
			return nil, err
		}
	}
	store, err := pstore.Open(filepath.Join(b.o.Out, passagesDir))
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	if store.Len() != b.pr.Passages {
		store.Close()
		return nil, fmt.Errorf("index: %s holds %d passages, %s says %d", store.Dir(), store.Len(), b.progPath, b.pr.Passages)
	}
	return store, nil
}

// finish completes the build once its passages, BM25 index (unless a shard)
// and vectors (dm, nil for none) are in place: the encoder's fingerprint,
// the HNSW index (unless a shard), the manifest (with worldSize, the ranks
// of a distributed build, 0 for one process), and the progress file
// removed.
func (b *buildRun) finish(ctx context.Context, dm *DenseManifest, worldSize int) (*Manifest, error) {
	o := b.o
	man := &Manifest{Corpus: b.corpus, CorpusSHA256: b.sum, Passages: b.pr.Passages, Pages: b.pr.Pages, Shard: b.pr.Shard, WorldSize: worldSize}
	if o.NumShards <= 1 {
		man.BM25 = &struct {
			Fields string `json:"fields"`
		}{Fields: o.BM25.Fields}
	}
	if dm != nil {
		if o.EncoderDir != "" {
			sum, err := EncoderFingerprint(o.EncoderDir)
			if err != nil {
				return nil, fmt.Errorf("index: %w", err)
			}
			dm.EncoderSHA256 = sum
		}
		if o.NumShards <= 1 {
			var err error
			if dm.SQ8Train, err = buildHNSW(ctx, o.Out, o); err != nil {
				return nil, err
			}
		}
		man.Dense = dm
	}
	if o.NumShards <= 1 {
		man.Segments = []Segment{{Rows: b.pr.Passages}}
		if man.Dense != nil {
			man.Segments[0].SQ8Train = man.Dense.SQ8Train
		}
	}
	man.Created = time.Now().UTC()
	if err := writeManifest(ctx, o.Out, man); err != nil {
		return nil, err
	}
	if err := os.Remove(b.progPath); err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	return man, nil
}

// ingest streams the corpus into dir's passage store, made anew (a store
// left unfinished by an interrupted build is dropped), and returns the
// number of passages and whether they have pages. A repeated passage id is
// an error naming both lines.
func ingest(ctx context.Context, corpusPath, dir string, o Options) (int, bool, error) {
	storeDir := filepath.Join(dir, passagesDir)
	if err := os.RemoveAll(storeDir); err != nil {
		return 0, false, fmt.Errorf("index: %w", err)
	}
	if stale, _ := filepath.Glob(filepath.Join(dir, "."+passagesDir+".tmp-*")); len(stale) > 0 {
		for _, s := range stale {
			os.RemoveAll(s)
		}
	}
	w, err := pstore.Create(storeDir)
	if err != nil {
		return 0, false, fmt.Errorf("index: %w", err)
	}
	rep := o.Report
	if rep == nil {
		rep = &data.Report{}
	}
	skipped := len(rep.Skips)
	var size int64
	if st, err := os.Stat(corpusPath); err == nil {
		size = st.Size()
	}
	bar := progress.NewTo(o.progressOut(), -1, "read corpus", "passages")
	start := time.Now()
	format, err := ReadCorpus(ctx, corpusPath, rep, func(p Passage) error {
		if err := checkPassage(p); err != nil {
			return fmt.Errorf("corpus %s: %w", corpusPath, err)
		}
		if err := w.Add(p); err != nil {
			return fmt.Errorf("index: %w", err)
		}
		bar.Add(1)
		return nil
	})
	bar.Finish()
	if err != nil {
		w.Abort()
		return 0, false, err
	}
	n := w.Count()
	if o.Report == nil && len(rep.Skips) > skipped {
		slog.Warn("corpus records skipped", "corpus", corpusPath, "summary", rep.Summary())
	}
	if n == 0 {
		w.Abort()
		return 0, false, fmt.Errorf("corpus %s: no passages (%s)", corpusPath, rep.Summary())
	}
	if err := w.Close(ctx); err != nil {
		var dup *pstore.DuplicateError
		if errors.As(err, &dup) {
			return 0, false, fmt.Errorf("corpus %s: %w", corpusPath, err)
		}
		return 0, false, fmt.Errorf("index: %w", err)
	}
	slog.Info("passage store written", "dir", storeDir, "passages", n, "corpus_file_bytes", size, "seconds", time.Since(start).Seconds())
	return n, format != FormatBEIR, nil
}

// checkPassage holds a passage to what the indexes take: an id without
// white space (a TREC run file's, and a line of the vector store's id
// files), and some text.
func checkPassage(p Passage) error {
	where := fmt.Sprintf("line %d", p.Line)
	if p.Line == 0 {
		where = fmt.Sprintf("passage %q", p.ID)
	}
	switch {
	case p.ID == "" || strings.ContainsAny(p.ID, " \t\r\n"):
		return fmt.Errorf("%s: passage id %q: empty or contains white space", where, p.ID)
	case strings.TrimSpace(p.Title) == "" && strings.TrimSpace(p.Text) == "":
		return fmt.Errorf("%s: passage %s: no title or text", where, p.ID)
	}
	return nil
}

// bm25Batch is the number of passages buildBM25 gives bleve at a time:
// bleve's analysis of a batch is most of the build's memory.
const bm25Batch = 2000

// buildBM25 indexes the store's passages, one bleve batch at a time.
func buildBM25(ctx context.Context, dir string, store *pstore.Store, o Options) error {
	os.RemoveAll(dir) // an interrupted BM25 build starts over: it is the cheap part
	bo := o.BM25
	bo.ExternalText = true // the passage store has the text
	ix, err := bm25.Create(dir, bo)
	if err != nil {
		return err
	}
	err = addBM25(ctx, ix, store, store.Len(), o.progressOut())
	if err == nil {
		err = ix.Optimize(ctx)
	}
	if err != nil {
		ix.Close()
		return err
	}
	return ix.Close()
}

// addBM25 adds the store's first n passages to ix, one bleve batch at a
// time, with a progress bar on w.
func addBM25(ctx context.Context, ix *bm25.Index, store *pstore.Store, n int, w io.Writer) error {
	bar := progress.NewTo(w, n, "indexing", "docs")
	defer bar.Finish()
	batch := make([]data.Passage, 0, bm25Batch)
	flush := func() error {
		if err := ix.Add(ctx, batch, nil); err != nil {
			return err
		}
		bar.Add(len(batch))
		clear(batch)
		batch = batch[:0]
		return nil
	}
	err := store.Scan(ctx, 0, n, func(p Passage) error {
		batch = append(batch, p.DataPassage())
		if len(batch) == cap(batch) {
			return flush()
		}
		return nil
	})
	if err == nil && len(batch) > 0 {
		err = flush()
	}
	return err
}

func chunkName(c int) string { return fmt.Sprintf("chunk-%06d", c) }

// parseChunkName is chunkName's inverse.
func parseChunkName(name string) (int, bool) {
	var c int
	if _, err := fmt.Sscanf(name, "chunk-%d", &c); err != nil || c < 0 || chunkName(c) != name {
		return 0, false
	}
	return c, true
}

// chunkRows is the rows of chunk c of n passages.
func chunkRows(c, chunk, n int) (lo, hi int) { return c * chunk, min(n, (c+1)*chunk) }

// buildHNSW builds and saves the HNSW index of out's vectors; for SQ8 it
// returns how the quantiser was trained, for the manifest.
func buildHNSW(ctx context.Context, out string, o Options) (*dense.SQ8Train, error) {
	st, err := dense.Open(filepath.Join(out, denseDir))
	if err != nil {
		return nil, err
	}
	start := time.Now()
	bar := progress.NewTo(o.progressOut(), st.Count(), "hnsw", "vectors")
	ix, err := st.BuildIndex(ctx, dense.BuildOptions{HNSW: o.HNSW, SQ8Train: o.SQ8Train, Progress: func(done, total int) { bar.Set(done) }})
	if err != nil {
		return nil, err
	}
	defer ix.Close()
	if err := ix.Save(filepath.Join(out, denseDir, hnswFile)); err != nil {
		return nil, err
	}
	slog.Info("hnsw index built", "index", ix.Description(), "vectors", st.Count(), "seconds", time.Since(start).Seconds())
	if !o.HNSW.SQ8 {
		return nil, nil
	}
	t := o.SQ8Train
	t.Vectors = t.Size(st.Count())
	return &t, nil
}

// lockIndex takes dir's writer lock: builds and merges, never searches.
func lockIndex(ctx context.Context, dir string, timeout time.Duration) (*dirlock.Lock, error) {
	l, err := dirlock.Acquire(ctx, dir, timeout)
	var busy *dirlock.BusyError
	if errors.As(err, &busy) {
		return nil, fmt.Errorf("index %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	return l, nil
}

func releaseLock(l *dirlock.Lock) {
	if err := l.Release(); err != nil {
		slog.Warn("index: releasing the lock", "dir", l.Dir(), "err", err)
	}
}

// emptyDir reports whether dir holds nothing but its lock file.
func emptyDir(dir string) (bool, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	for _, e := range ents {
		if e.Name() != dirlock.FileName {
			return false, nil
		}
	}
	return true, nil
}
