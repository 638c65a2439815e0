package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/re2g/re2g/bm25"
	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/dense"
	"github.com/re2g/re2g/faiss"
	"github.com/re2g/re2g/internal/atomicfile"
	"github.com/re2g/re2g/internal/dirlock"
	"github.com/re2g/re2g/internal/progress"
	"github.com/re2g/re2g/neural"
)

// The layout of an index directory.
const (
	manifestFile = "manifest.json"
	progressFile = "progress.json"
	pagesFile    = "pages.json"
	bm25Dir      = "bm25"
	denseDir     = "dense"
	hnswFile     = "hnsw.faiss"
)

// Manifest describes a built index: what corpus, which encoder, what
// parameters, how many of everything.
type Manifest struct {
	Version      int       `json:"version"`
	Created      time.Time `json:"created"`
	Corpus       string    `json:"corpus"`
	CorpusSHA256 string    `json:"corpus_sha256"`
	Passages     int       `json:"passages"`
	Pages        bool      `json:"pages"`
	BM25         *struct {
		Fields string `json:"fields"`
	} `json:"bm25,omitempty"`
	Dense *DenseManifest `json:"dense,omitempty"`
	// Shard is "I/N" for the partial output of one encoding shard, which
	// holds vectors only, until MergeShards combines the shards.
	Shard string `json:"shard,omitempty"`
	// Files are every other file of the directory, checked when it is
	// opened (empty for indexes from before version 2).
	Files []FileSum `json:"files,omitempty"`
	// ManifestSHA256 is the SHA-256 of this file as written with the field
	// all zeros. It must stay the last field.
	ManifestSHA256 string `json:"manifest_sha256,omitempty"`
}

// DenseManifest describes the dense half of an index.
type DenseManifest struct {
	Encoder string            `json:"encoder"`
	Dim     int               `json:"dim"`
	Vectors int               `json:"vectors"`
	HNSW    faiss.HNSWConfig  `json:"hnsw"`
	Chunk   int               `json:"chunk"`
	Extra   map[string]string `json:"extra,omitempty"`
	// SQ8Train is how the quantiser of an SQ8 index (HNSW.SQ8) was trained.
	SQ8Train *dense.SQ8Train `json:"sq8_train,omitempty"`
}

// IndexOptions control BuildIndex.
type IndexOptions struct {
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
	// LockTimeout is how long to wait for the directory's writer lock while
	// another build or merge holds it (0: not at all).
	LockTimeout time.Duration
	// afterChunk is a test hook called after each chunk is stored.
	afterChunk func(done int) error
}

// buildState records which steps of a build are complete, for --resume.
type buildState struct {
	CorpusSHA256 string `json:"corpus_sha256"`
	Shard        string `json:"shard,omitempty"`
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

func (o IndexOptions) shardLabel() string {
	if o.NumShards > 1 {
		return fmt.Sprintf("%d/%d", o.Shard, o.NumShards)
	}
	return ""
}

func (o IndexOptions) progressOut() io.Writer {
	if o.Progress != nil {
		return o.Progress
	}
	return os.Stderr
}

// BuildIndex builds an index directory from a corpus: the BM25 index, and,
// with an encoder, the passage vectors (encoded in checkpointed chunks, so
// that an interrupted build resumes where it stopped) and their HNSW index.
// With NumShards > 1 it only encodes its share of the chunks: MergeShards
// then combines the shards into one index.
func BuildIndex(ctx context.Context, corpusPath string, corpus *Corpus, o IndexOptions) (*Manifest, error) {
	if o.Chunk <= 0 {
		o.Chunk = 2048
	}
	if o.NumShards > 1 && (o.Shard < 0 || o.Shard >= o.NumShards) {
		return nil, fmt.Errorf("index: shard %d of %d", o.Shard, o.NumShards)
	}
	if o.NumShards > 1 && o.Encoder == nil {
		return nil, errors.New("index: shards split the encoding: --shard needs a context encoder")
	}
	sum, err := fileSHA256(corpusPath)
	if err != nil {
		return nil, fmt.Errorf("index: corpus: %w", err)
	}
	pr := buildState{CorpusSHA256: sum, Shard: o.shardLabel()}
	progPath := filepath.Join(o.Out, progressFile)
	if _, err := os.Stat(filepath.Join(o.Out, manifestFile)); err == nil {
		return nil, fmt.Errorf("index: %s already holds a finished index", o.Out)
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	lock, err := lockIndex(ctx, o.Out, o.LockTimeout)
	if err != nil {
		return nil, err
	}
	defer releaseLock(lock)
	if _, err := os.Stat(filepath.Join(o.Out, manifestFile)); err == nil {
		return nil, fmt.Errorf("index: %s already holds a finished index", o.Out)
	}
	if _, err := os.Stat(progPath); err == nil {
		if !o.Resume {
			return nil, fmt.Errorf("index: %s holds an unfinished build: pass --resume to continue it, or remove it", o.Out)
		}
		var old buildState
		if err := readJSON(progPath, &old); err != nil {
			return nil, err
		}
		if old.CorpusSHA256 != sum || old.Shard != pr.Shard {
			return nil, fmt.Errorf("index: %s was started for another corpus or shard (sha256 %s, shard %q)", o.Out, old.CorpusSHA256, old.Shard)
		}
		pr = old
		slog.Info("resuming index build", "dir", o.Out, "bm25_done", pr.BM25Done, "dense_done", pr.DenseDone)
	} else {
		if empty, err := emptyDir(o.Out); err != nil || !empty {
			return nil, fmt.Errorf("index: %s exists and is not empty", o.Out)
		}
		if err := writeJSON(progPath, pr); err != nil {
			return nil, err
		}
	}
	man := &Manifest{Corpus: corpusPath, CorpusSHA256: sum, Passages: len(corpus.Passages), Pages: corpus.Pages != nil, Shard: pr.Shard}
	if corpus.Pages != nil {
		if err := writeJSON(filepath.Join(o.Out, pagesFile), corpus.Pages); err != nil {
			return nil, err
		}
	}
	if o.NumShards <= 1 && !pr.BM25Done {
		if err := buildBM25(ctx, filepath.Join(o.Out, bm25Dir), corpus.Passages, o); err != nil {
			return nil, err
		}
		pr.BM25Done = true
		if err := writeJSON(progPath, pr); err != nil {
			return nil, err
		}
	}
	if o.NumShards <= 1 {
		man.BM25 = &struct {
			Fields string `json:"fields"`
		}{Fields: o.BM25.Fields}
	}
	if o.Encoder != nil {
		dm, err := encodeCorpus(ctx, corpus.Passages, o)
		if err != nil {
			return nil, err
		}
		if o.NumShards <= 1 {
			if dm.SQ8Train, err = buildHNSW(ctx, o.Out, o); err != nil {
				return nil, err
			}
		}
		man.Dense = dm
	}
	man.Created = time.Now().UTC()
	if err := writeManifest(ctx, o.Out, man); err != nil {
		return nil, err
	}
	if err := os.Remove(progPath); err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	return man, nil
}

func buildBM25(ctx context.Context, dir string, ps []data.Passage, o IndexOptions) error {
	os.RemoveAll(dir) // an interrupted BM25 build starts over: it is the cheap part
	ix, err := bm25.Create(dir, o.BM25)
	if err != nil {
		return err
	}
	if err := ix.Add(ctx, ps, o.progressOut()); err != nil {
		ix.Close()
		return err
	}
	if err := ix.Optimize(ctx); err != nil {
		ix.Close()
		return err
	}
	return ix.Close()
}

func chunkName(c int) string { return fmt.Sprintf("chunk-%06d", c) }

// encodeCorpus encodes the passages chunk by chunk into the vector store,
// skipping chunks a previous run already stored.
func encodeCorpus(ctx context.Context, ps []data.Passage, o IndexOptions) (*DenseManifest, error) {
	dir := filepath.Join(o.Out, denseDir)
	st, err := dense.Open(dir)
	if err != nil {
		st, err = dense.Create(dir, o.Encoder.Dim(), dense.F32)
		if err != nil {
			return nil, err
		}
	}
	if st.Dim() != o.Encoder.Dim() {
		return nil, fmt.Errorf("index: vector store %s has dimension %d, encoder %d", dir, st.Dim(), o.Encoder.Dim())
	}
	have := map[string]int{}
	for _, si := range st.Shards() {
		have[si.Name] = si.Count
	}
	chunks := (len(ps) + o.Chunk - 1) / o.Chunk
	var todo []int
	for c := 0; c < chunks; c++ {
		if o.NumShards > 1 && c%o.NumShards != o.Shard {
			continue
		}
		n := min(len(ps), (c+1)*o.Chunk) - c*o.Chunk
		if have[chunkName(c)] == n {
			continue
		}
		todo = append(todo, c)
	}
	total := 0
	for _, c := range todo {
		total += min(len(ps), (c+1)*o.Chunk) - c*o.Chunk
	}
	bar := progress.NewTo(o.progressOut(), total, "encode passages", "passages")
	for i, c := range todo {
		lo, hi := c*o.Chunk, min(len(ps), (c+1)*o.Chunk)
		in := make([]neural.Passage, hi-lo)
		ids := make([]string, hi-lo)
		for j, p := range ps[lo:hi] {
			in[j] = neural.Passage{Title: p.Title, Text: p.Text}
			ids[j] = p.ID
		}
		vecs, err := o.Encoder.EncodePassages(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("index: encode chunk %d: %w", c, err)
		}
		flat := make([]float32, 0, len(vecs)*st.Dim())
		for _, v := range vecs {
			flat = append(flat, v...)
		}
		if _, err := st.PutShard(ctx, chunkName(c), ids, flat); err != nil {
			return nil, err
		}
		bar.Add(hi - lo)
		if o.afterChunk != nil {
			if err := o.afterChunk(i + 1); err != nil {
				return nil, err
			}
		}
	}
	bar.Finish()
	return &DenseManifest{Encoder: o.EncoderDir, Dim: st.Dim(), Vectors: st.Count(), HNSW: o.HNSW, Chunk: o.Chunk, Extra: o.Extra}, nil
}

// buildHNSW builds and saves the HNSW index of out's vectors; for SQ8 it
// returns how the quantiser was trained, for the manifest.
func buildHNSW(ctx context.Context, out string, o IndexOptions) (*dense.SQ8Train, error) {
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

// MergeShards combines encoding shards (BuildIndex with NumShards > 1, in any
// order, on any machines) of one corpus into a finished index at out, which
// must be missing or empty: the vectors are merged, and the BM25 and HNSW
// indexes built. It builds in a temporary directory beside out and renames
// it into place, holding out's writer lock, so a failed merge leaves nothing
// behind.
func MergeShards(ctx context.Context, corpusPath string, corpus *Corpus, out string, shardDirs []string, o IndexOptions) (_ *Manifest, err error) {
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
	man, err := mergeInto(ctx, tmp, sum, corpusPath, corpus, shardDirs, o)
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
func mergeInto(ctx context.Context, dir, sum, corpusPath string, corpus *Corpus, shardDirs []string, o IndexOptions) (*Manifest, error) {
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
		if err := verifyFiles(ctx, d, m); err != nil {
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
	if dst.Count() != len(corpus.Passages) {
		return nil, fmt.Errorf("index merge: the shards hold %d vectors, the corpus %d passages (a shard is missing?)", dst.Count(), len(corpus.Passages))
	}
	if corpus.Pages != nil {
		if err := writeJSON(filepath.Join(dir, pagesFile), corpus.Pages); err != nil {
			return nil, err
		}
	}
	if err := buildBM25(ctx, filepath.Join(dir, bm25Dir), corpus.Passages, o); err != nil {
		return nil, err
	}
	train, err := buildHNSW(ctx, dir, o)
	if err != nil {
		return nil, err
	}
	dm.Vectors, dm.HNSW, dm.SQ8Train = dst.Count(), o.HNSW, train
	man := &Manifest{Created: time.Now().UTC(), Corpus: corpusPath, CorpusSHA256: sum, Passages: len(corpus.Passages),
		Pages: corpus.Pages != nil, Dense: dm}
	man.BM25 = &struct {
		Fields string `json:"fields"`
	}{Fields: o.BM25.Fields}
	if err := writeManifest(ctx, dir, man); err != nil {
		return nil, err
	}
	return man, nil
}
