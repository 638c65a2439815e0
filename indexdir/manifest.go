package indexdir

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/re2g/re2g/dense"
	"github.com/re2g/re2g/faiss"
	"github.com/re2g/re2g/internal/atomicfile"
)

// manifestVersion 4 indexes take updates (Add, Delete, Compact): their
// passages are in segments, BM25 in a generation directory, deleted rows in
// a tombstone file, all named by the manifest; a version 3 index is a
// version 4 one with one segment at the top of the directory and no updates,
// and opens as one. Version 3 keeps the passages in a passage store
// (passages/, package pstore) instead of bleve's stored fields and a
// pages.json map; version 2 added every file's size and CRC-32C, and the
// manifest's own SHA-256, which version 1 manifests lack.
const manifestVersion = 4

// minManifestVersion is the oldest manifest version Open reads.
const minManifestVersion = 3

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
	// holds vectors only, until Merge combines the shards.
	Shard string `json:"shard,omitempty"`
	// WorldSize is the number of ranks of the distributed build (re2g index
	// under a launcher) that finished the index (0: one process).
	WorldSize int `json:"world_size,omitempty"`
	// Generation counts the updates committed since the index was built
	// (0: none).
	Generation int `json:"generation,omitempty"`
	// Segments hold the passages, in row order (version 4; a version 3
	// index has one, at the top of the directory). Passages counts those
	// not deleted.
	Segments []Segment `json:"segments,omitempty"`
	// BM25Dir is the directory of the BM25 index ("": bm25).
	BM25Dir string `json:"bm25_dir,omitempty"`
	// Deleted is how many stored passages are deleted (until Compact),
	// Tombstones the file of their rows.
	Deleted    int    `json:"deleted,omitempty"`
	Tombstones string `json:"tombstones,omitempty"`
	// Files are every other file of the index, checked when it is opened
	// (empty for indexes from before version 2).
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
	// EncoderSHA256 identifies the context encoder's files
	// (EncoderFingerprint), and MaxLength is the tokens it cut passages to,
	// so that Add can refuse another encoder or another length.
	EncoderSHA256 string `json:"encoder_sha256,omitempty"`
	MaxLength     int    `json:"max_length,omitempty"`
}

// Segment is one part of an index's passages, in a directory of its own:
// a passage store (passages/) and, in a dense index, the vectors and their
// HNSW index (dense/). A build makes one; each Add adds one with the
// passages it adds; Compact folds them all into one.
type Segment struct {
	// Dir is the segment's directory, relative to the index ("": the
	// index directory itself, where a build puts it).
	Dir string `json:"dir"`
	// Rows is how many passages it stores, deleted ones included.
	Rows int `json:"rows"`
	// SQ8Train is how its SQ8 quantiser was trained (an SQ8 index).
	SQ8Train *dense.SQ8Train `json:"sq8_train,omitempty"`
}

// ReadManifest reads and checks the manifest of the index directory dir
// (see OpenContext for the files' checks).
func ReadManifest(dir string) (*Manifest, error) { return readManifest(dir) }

// ErrCorrupt reports an index file that does not match the manifest.
var ErrCorrupt = errors.New("damaged")

// FileSum is one file of an index directory as the manifest records it.
type FileSum struct {
	Path   string `json:"path"` // relative to the index directory, slash-separated
	Size   int64  `json:"size"`
	CRC32C uint32 `json:"crc32c"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// sumKey is the manifest's own checksum field; it is the last field the
// manifest is written with, so its last occurrence is the real one.
const sumKey = `"manifest_sha256": "`

// indexFiles lists and checksums every file under dir that the manifest
// covers: all but the manifest itself, the build's progress file, and names
// starting with a dot (the lock, temporary files).
func indexFiles(ctx context.Context, dir string) ([]FileSum, error) {
	out, err := sumFiles(ctx, dir, dir, func(rel string, d fs.DirEntry) bool {
		return strings.HasPrefix(d.Name(), ".") || (!d.IsDir() && (rel == manifestFile || rel == progressFile))
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("index %s: checksums: %w", dir, err)
	}
	return out, nil
}

// sumFiles checksums the regular files under root, a directory in dir, as
// the manifest records them (their paths relative to dir). It passes over
// the entries skip names (a directory with all below it), and takes the
// sum known gives a file, where it gives one, instead of reading the file.
func sumFiles(ctx context.Context, dir, root string, skip func(rel string, d fs.DirEntry) bool, known func(rel, p string) (FileSum, bool)) ([]FileSum, error) {
	var out []FileSum
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case skip != nil && skip(rel, d):
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		case d.IsDir():
			return nil
		case !d.Type().IsRegular():
			return fmt.Errorf("%s: not a regular file", p)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if known != nil {
			if f, ok := known(rel, p); ok {
				out = append(out, f)
				return nil
			}
		}
		size, crc, err := checksum(p)
		if err != nil {
			return err
		}
		out = append(out, FileSum{Path: rel, Size: size, CRC32C: crc})
		return nil
	})
	return out, err
}

func checksum(path string) (int64, uint32, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	h := crc32.New(castagnoli)
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", path, err)
	}
	return n, h.Sum32(), nil
}

// writeManifest records dir's files in man and writes it, with its own
// SHA-256, atomically as dir/manifest.json.
func writeManifest(ctx context.Context, dir string, man *Manifest) error {
	files, err := indexFiles(ctx, dir)
	if err != nil {
		return err
	}
	return saveManifest(dir, man, files)
}

// saveManifest writes man, with files its files, with its own SHA-256,
// atomically as dir/manifest.json.
func saveManifest(dir string, man *Manifest, files []FileSum) error {
	man.Version, man.Files = manifestVersion, files
	b, err := signManifest(man)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, manifestFile), b, 0o644)
}

// signManifest is man as the manifest file holds it, with its SHA-256
// (which it sets in man too).
func signManifest(man *Manifest) ([]byte, error) {
	man.ManifestSHA256 = strings.Repeat("0", sha256.Size*2)
	b, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return nil, err
	}
	b = append(b, '\n')
	at := bytes.LastIndex(b, []byte(sumKey)) + len(sumKey)
	sum := sha256.Sum256(b)
	man.ManifestSHA256 = hex.EncodeToString(sum[:])
	copy(b[at:], man.ManifestSHA256)
	return b, nil
}

// readManifest reads and checks dir/manifest.json: its SHA-256 if it has
// one; a manifest without one must be from before checksums (version 1).
func readManifest(dir string) (*Manifest, error) {
	path := filepath.Join(dir, manifestFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", path, ErrCorrupt, err)
	}
	at := bytes.LastIndex(b, []byte(sumKey))
	if at < 0 {
		if m.Version >= 2 || len(m.Files) > 0 {
			return nil, fmt.Errorf("%s: %w: no manifest_sha256", path, ErrCorrupt)
		}
		return &m, nil
	}
	at += len(sumKey)
	if at+sha256.Size*2 > len(b) {
		return nil, fmt.Errorf("%s: %w: manifest_sha256 cut short", path, ErrCorrupt)
	}
	recorded := string(b[at : at+sha256.Size*2])
	zeroed := bytes.Clone(b)
	copy(zeroed[at:], strings.Repeat("0", sha256.Size*2))
	sum := sha256.Sum256(zeroed)
	if got := hex.EncodeToString(sum[:]); got != recorded || m.ManifestSHA256 != recorded {
		return nil, fmt.Errorf("%s: %w: SHA-256 %s, the file says %s", path, ErrCorrupt, got, recorded)
	}
	if m.Version > manifestVersion {
		return nil, fmt.Errorf("%s: version %d, made by a newer re2g (this one reads up to %d)", path, m.Version, manifestVersion)
	}
	return &m, nil
}

// Verify says how much of an index's files opening it checks against the
// manifest.
type Verify int

const (
	// VerifyQuick checks the manifest's SHA-256, every file's presence and
	// size, and the CRC-32C of the files read whole when an index opens (the
	// HNSW index, which FAISS loads into memory, so that a changed byte is
	// an error rather than a crash in the first search) and of the small
	// ones (JSON, bleve's root.bolt, tombstones). The files read lazily
	// through memory maps or at offsets — the passage store, the vector
	// shards, bleve's segments — are checked for size only: a changed byte
	// there shows as an error naming the file when it is read (or as a
	// changed passage), never as a crash. Opening costs the HNSW file's read,
	// not the corpus's.
	VerifyQuick Verify = iota
	// VerifyFull checks the CRC-32C of every byte of every file (re2g index
	// verify): minutes at KILT's size.
	VerifyFull
)

func (v Verify) String() string {
	if v == VerifyFull {
		return "full"
	}
	return "quick"
}

// ParseVerify parses "quick" or "full".
func ParseVerify(s string) (Verify, error) {
	switch s {
	case "quick", "":
		return VerifyQuick, nil
	case "full":
		return VerifyFull, nil
	}
	return 0, fmt.Errorf("verify %q: want quick or full", s)
}

// lazyFile reports whether the file at rel (slash-separated) is read
// lazily, a record or a row at a time, so that VerifyQuick checks its size
// only: the passage store's files, vector shards and their id lists, and
// bleve's segments.
func lazyFile(rel string) bool {
	switch path.Ext(rel) {
	case ".dat", ".off", ".ids", ".vec", ".zap":
		return true
	}
	return false
}

// verifyFiles checks the files the manifest lists against their sizes and,
// as mode says, their CRC-32C, a few at a time; the first mismatch names the
// file. A manifest from before checksums passes with a warning.
// skip (nil: none) names files whose checksums are left unread (their
// sizes are checked).
func verifyFiles(ctx context.Context, dir string, m *Manifest, mode Verify, skip func(rel string) bool) error {
	if m.ManifestSHA256 == "" {
		slog.Warn("index has no checksums (built by an older re2g): damaged files are not detected; rebuild it to add them", "dir", dir)
		return nil
	}
	start := time.Now()
	work := make(chan FileSum)
	errs := make(chan error, len(m.Files))
	var wg sync.WaitGroup
	var read atomic.Int64
	for range min(runtime.NumCPU(), 4, max(1, len(m.Files))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range work {
				full := mode == VerifyFull || !lazyFile(f.Path)
				if skip != nil && skip(f.Path) {
					full = false
				}
				if full {
					read.Add(f.Size)
				}
				errs <- verifyFile(dir, f, full)
			}
		}()
	}
	go func() {
		defer close(work)
		for _, f := range m.Files {
			if ctx.Err() != nil {
				return
			}
			work <- f
		}
	}()
	wg.Wait()
	close(errs)
	var first error
	for err := range errs {
		if err != nil && first == nil {
			first = err
		}
	}
	if first == nil {
		first = ctx.Err()
	}
	if first != nil {
		return first
	}
	slog.Debug("index files verified", "dir", dir, "mode", mode, "files", len(m.Files), "bytes_read", read.Load(), "seconds", time.Since(start).Seconds())
	return nil
}

// verifyFile checks one file's size and, with crc, its CRC-32C.
func verifyFile(dir string, f FileSum, crc bool) error {
	if f.Path == "" || filepath.IsAbs(f.Path) || strings.HasPrefix(filepath.Clean(filepath.FromSlash(f.Path)), "..") {
		return fmt.Errorf("%s: %w: file path %q outside the index", filepath.Join(dir, manifestFile), ErrCorrupt, f.Path)
	}
	path := filepath.Join(dir, filepath.FromSlash(f.Path))
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: %w: the file is missing", path, ErrCorrupt)
		}
		return err
	}
	if st.Size() != f.Size {
		return fmt.Errorf("%s: %w: %d bytes, the manifest says %d", path, ErrCorrupt, st.Size(), f.Size)
	}
	if !crc {
		return nil
	}
	size, sum, err := checksum(path)
	if err != nil {
		return err
	}
	if size != f.Size || sum != f.CRC32C {
		return fmt.Errorf("%s: %w: CRC-32C %08x, the manifest says %08x", path, ErrCorrupt, sum, f.CRC32C)
	}
	return nil
}
