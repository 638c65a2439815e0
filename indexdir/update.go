package indexdir

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/re2g/re2g/bm25"
	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/dense"
	"github.com/re2g/re2g/indexdir/pstore"
	"github.com/re2g/re2g/internal/atomicfile"
	"github.com/re2g/re2g/internal/bom"
	"github.com/re2g/re2g/internal/dirlock"
	"github.com/re2g/re2g/internal/progress"
	"github.com/re2g/re2g/neural"
)

// Updates (Add, Delete, Compact) never change a file of a committed
// generation. Each writes what it adds into a new generation directory,
// gNNNNNN (built as .gNNNNNN.tmp-* and renamed into place when complete and
// synced), then commits by replacing manifest.json atomically — the one
// commit point — and removes what the new manifest no longer names. A crash
// before the manifest is replaced leaves the previous generation, which the
// next writer cleans up after; a crash after it, the new one. Readers open
// whatever generation the manifest names when they read it (Open starts
// again if the clean-up removed files under it) and keep theirs open while
// later ones are committed.

// tombstonesFile is where a generation records the rows deleted so far.
const tombstonesFile = "deleted.rows"

// tombstonesMagic starts a tombstones file: then the count (uint64) and the
// rows (uint64 each, ascending), little-endian.
const tombstonesMagic = "RE2GDEL1"

var (
	genName     = regexp.MustCompile(`^g[0-9]{6,}$`)
	genTmpName  = regexp.MustCompile(`^\.g[0-9]{6,}\.tmp-`)
	strayTemp   = regexp.MustCompile(`^\.(manifest\.json|passages)\.tmp-`)
	genChildren = map[string]bool{passagesDir: true, denseDir: true, bm25Dir: true, tombstonesFile: true}
)

// UpdateOptions control Add, Delete and Compact.
type UpdateOptions struct {
	// Encoder is the context encoder that encodes the passages Add adds to
	// an index with vectors (nil for a BM25-only index); EncoderDir is its
	// directory, checked against the encoder the index records unless
	// Force.
	Encoder    *neural.Encoder
	EncoderDir string
	Force      bool
	// Vectors (with VectorIDs for a .npy file) are the added passages'
	// precomputed vectors, in corpus order, instead of Encoder's (see
	// Options.Vectors): for an index whose vectors were made elsewhere.
	// They must come from the encoder of the index's other vectors, which
	// only their dimension can show.
	Vectors, VectorIDs string
	// Replace lets Add replace a passage whose id the index holds (deleting
	// it and adding the new one); without it such an id is an error.
	Replace bool
	// IgnoreMissing lets Delete skip ids the index lacks; without it the
	// first is an error naming it.
	IgnoreMissing bool
	// LockTimeout is how long to wait for the directory's writer lock.
	LockTimeout time.Duration
	// Progress receives progress bars (nil: stderr).
	Progress io.Writer
	// Report receives the corpus records Add skips as malformed (nil:
	// their summary is logged).
	Report *data.Report
}

func (o UpdateOptions) progressOut() io.Writer {
	if o.Progress != nil {
		return o.Progress
	}
	return os.Stderr
}

func (o UpdateOptions) buildOptions(out string) Options {
	return Options{Out: out, Encoder: o.Encoder, EncoderDir: o.EncoderDir, Vectors: o.Vectors, VectorIDs: o.VectorIDs,
		Progress: o.Progress, Report: o.Report}
}

// stepHook, set by tests, is called at each step of an update, by name.
var stepHook func(step string)

func step(name string) {
	if stepHook != nil {
		stepHook(name)
	}
}

// update is a writer's state: the locked index, its committed generation
// opened, and the directory the new generation is written into.
type update struct {
	dir  string
	op   string
	lock *dirlock.Lock
	ix   *Index
	gen  int
	name string // the new generation's directory name
	tmp  string // where it is written
}

// genDirName is the directory of generation gen.
func genDirName(gen int) string { return fmt.Sprintf("g%06d", gen) }

// beginUpdate locks dir, cleans up after writers that crashed, opens the
// committed generation and makes the temporary directory of the next one.
func beginUpdate(ctx context.Context, dir, op string, o UpdateOptions) (_ *update, err error) {
	dir = filepath.Clean(dir)
	if _, err := os.Stat(filepath.Join(dir, manifestFile)); err != nil {
		return nil, fmt.Errorf("index %s %s: no finished index there: %w", op, dir, err)
	}
	lock, err := lockIndex(ctx, dir, o.LockTimeout)
	if err != nil {
		return nil, err
	}
	u := &update{dir: dir, op: op, lock: lock}
	defer func() {
		if err != nil {
			u.end()
		}
	}()
	m, err := readManifest(dir)
	if err != nil {
		return nil, fmt.Errorf("index %s %s: %w", op, dir, err)
	}
	if m.Shard != "" {
		return nil, fmt.Errorf("index %s %s: shard %s of an index: merge the shards first (re2g index merge)", op, dir, m.Shard)
	}
	collectGarbage(dir, m)
	if u.ix, err = OpenWith(ctx, dir, OpenOptions{SkipHNSW: true}); err != nil {
		return nil, err
	}
	if u.ix.Manifest.ManifestSHA256 != m.ManifestSHA256 {
		return nil, fmt.Errorf("index %s %s: the manifest changed while it was locked", op, dir)
	}
	u.gen = m.Generation + 1
	u.name = genDirName(u.gen)
	if u.tmp, err = os.MkdirTemp(dir, "."+u.name+".tmp-*"); err != nil {
		return nil, fmt.Errorf("index %s %s: %w", op, dir, err)
	}
	if err := os.Chmod(u.tmp, 0o755); err != nil {
		return nil, fmt.Errorf("index %s %s: %w", op, dir, err)
	}
	step("begin")
	return u, nil
}

// end drops what an unfinished update wrote, closes the index and
// releases the lock.
func (u *update) end() {
	if u.tmp != "" {
		os.RemoveAll(u.tmp)
	}
	if u.ix != nil {
		u.ix.Close()
	}
	releaseLock(u.lock)
}

// next is the committed manifest, copied, as the next generation's
// starting point (a version 3 manifest's segment made explicit).
func (u *update) next() *Manifest {
	m := u.ix.Manifest
	m.Segments = slices.Clone(m.segments())
	if m.Dense != nil {
		d := *m.Dense
		m.Dense = &d
	}
	m.Generation = u.gen
	m.Created = time.Now().UTC()
	return &m
}

// commit syncs the new generation, moves it into place and commits the
// manifest m, which names it; then it removes what m no longer names.
func (u *update) commit(ctx context.Context, m *Manifest) error {
	if err := syncTree(u.tmp); err != nil {
		return fmt.Errorf("index %s %s: %w", u.op, u.dir, err)
	}
	step("synced")
	final := filepath.Join(u.dir, u.name)
	if err := atomicfile.Rename(u.tmp, final); err != nil {
		return fmt.Errorf("index %s %s: %w", u.op, u.dir, err)
	}
	u.tmp = ""
	step("renamed")
	files, err := u.files(ctx, m)
	if err != nil {
		return err
	}
	if err := saveManifest(u.dir, m, files); err != nil {
		return fmt.Errorf("index %s %s: %w", u.op, u.dir, err)
	}
	step("committed")
	u.ix.Close() // before its files go
	u.ix = nil
	collectGarbage(u.dir, m)
	step("cleaned")
	return nil
}

// files are the checksums of every file m names: those of the committed
// generation it keeps, as recorded, and the new generation's, read (but
// for the segment files the BM25 clone hard-linked, whose checksums are
// the recorded ones).
func (u *update) files(ctx context.Context, m *Manifest) ([]FileSum, error) {
	roots := m.roots()
	old := u.ix.Manifest
	recorded := map[string]FileSum{}
	var out []FileSum
	for _, f := range old.Files {
		recorded[f.Path] = f
		if underAny(f.Path, roots) && !under(f.Path, u.name) {
			out = append(out, f)
		}
	}
	oldBM25 := old.bm25Dir()
	sums, err := sumFiles(ctx, u.dir, filepath.Join(u.dir, u.name), nil, func(rel, p string) (FileSum, bool) {
		if inner, ok := strings.CutPrefix(rel, m.bm25Dir()+"/"); ok && strings.HasSuffix(rel, ".zap") {
			if f, ok := recorded[path.Join(oldBM25, inner)]; ok && sameFile(p, filepath.Join(u.dir, filepath.FromSlash(f.Path))) {
				return FileSum{Path: rel, Size: f.Size, CRC32C: f.CRC32C}, true
			}
		}
		return FileSum{}, false
	})
	if err != nil {
		return nil, fmt.Errorf("index %s %s: checksums: %w", u.op, u.dir, err)
	}
	out = append(out, sums...)
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// under reports whether the slash-separated path p is root or inside it.
func under(p, root string) bool {
	return root == "" || p == root || strings.HasPrefix(p, root+"/")
}

func underAny(p string, roots []string) bool {
	for _, r := range roots {
		if under(p, r) {
			return true
		}
	}
	return false
}

// roots are the paths (relative, slash-separated) of everything the
// manifest names: each segment's passage store and vectors, the BM25
// index, the tombstones.
func (m *Manifest) roots() []string {
	var out []string
	for _, s := range m.segments() {
		out = append(out, path.Join(s.Dir, passagesDir))
		if m.Dense != nil {
			out = append(out, path.Join(s.Dir, denseDir))
		}
	}
	out = append(out, m.bm25Dir())
	if m.Tombstones != "" {
		out = append(out, m.Tombstones)
	}
	return out
}

// collectGarbage removes from dir what the manifest m does not name: the
// generations a later one replaced (in whole or in part) and what crashed
// writers left (temporary directories, generations never committed). Only
// names an index uses are touched. A process that has an earlier
// generation open keeps using its files (Linux keeps a removed file's
// data while it is open or mapped); one that is opening it starts again
// with the new manifest (OpenWith).
func collectGarbage(dir string, m *Manifest) {
	roots := m.roots()
	named := func(rel string) bool {
		for _, r := range roots {
			if under(r, rel) || under(rel, r) {
				return true
			}
		}
		return false
	}
	var removed []string
	remove := func(rel string) {
		if err := os.RemoveAll(filepath.Join(dir, filepath.FromSlash(rel))); err != nil {
			slog.Warn("index: removing files of an earlier generation", "dir", dir, "path", rel, "err", err)
			return
		}
		removed = append(removed, rel)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		slog.Warn("index: clean-up", "dir", dir, "err", err)
		return
	}
	for _, e := range ents {
		name := e.Name()
		switch {
		case genTmpName.MatchString(name) || strayTemp.MatchString(name):
			remove(name)
		case name == passagesDir || name == denseDir || name == bm25Dir:
			if !named(name) {
				remove(name)
			}
		case genName.MatchString(name) && e.IsDir():
			if !named(name) {
				remove(name)
				continue
			}
			kids, err := os.ReadDir(filepath.Join(dir, name))
			if err != nil {
				continue
			}
			for _, k := range kids {
				rel := name + "/" + k.Name()
				if genChildren[k.Name()] && !named(rel) {
					remove(rel)
				}
			}
		}
	}
	if len(removed) > 0 {
		slog.Info("index: removed what the manifest no longer names", "dir", dir, "generation", m.Generation, "paths", removed)
	}
}

// syncTree fsyncs every file and directory under dir.
func syncTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil && d.IsDir() {
			return nil // not every file system syncs directories
		}
		return err
	})
}

// EncoderFingerprint identifies a model directory's files, for checking
// that passages added to an index are encoded by the encoder its vectors
// were: the SHA-256 of the names, sizes and contents of its weight,
// configuration and vocabulary files (.safetensors, .bin, .json, .txt,
// .model at its top level).
func EncoderFingerprint(dir string) (string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("encoder %s: %w", dir, err)
	}
	h := sha256.New()
	n := 0
	for _, e := range ents {
		switch filepath.Ext(e.Name()) {
		case ".safetensors", ".bin", ".json", ".txt", ".model":
		default:
			continue
		}
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return "", fmt.Errorf("encoder %s: %w", dir, err)
		}
		st, err := f.Stat()
		if err == nil {
			fmt.Fprintf(h, "%s\x00%d\x00", e.Name(), st.Size())
			_, err = io.Copy(h, f)
		}
		f.Close()
		if err != nil {
			return "", fmt.Errorf("encoder %s: %w", dir, err)
		}
		n++
	}
	if n == 0 {
		return "", fmt.Errorf("encoder %s: no model files", dir)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// checkEncoder checks the encoder Add was given against the index's.
func checkEncoder(dir string, m *Manifest, o UpdateOptions) error {
	d := m.Dense
	if d == nil {
		if o.Encoder != nil || o.Vectors != "" {
			return fmt.Errorf("index %s has no dense vectors (built without --ctx-encoder): add passages to it without an encoder or vectors", dir)
		}
		return nil
	}
	if o.Vectors != "" {
		if o.Encoder != nil {
			return fmt.Errorf("index add: vectors %s and a context encoder: give one or the other", o.Vectors)
		}
		v, err := dense.OpenVectorFile(o.Vectors, o.VectorIDs)
		if err != nil {
			return fmt.Errorf("index add: %w", err)
		}
		dim := v.Dim()
		v.Close()
		if dim != d.Dim {
			return fmt.Errorf("index add: vectors %s have dimension %d, the vectors of index %s %d", o.Vectors, dim, dir, d.Dim)
		}
		return nil
	}
	if o.VectorIDs != "" {
		return errors.New("index add: an ids file for vectors without a vectors file")
	}
	if o.Encoder == nil {
		if d.Encoder == "" {
			return fmt.Errorf("index %s holds passage vectors made elsewhere: the passages added need them too: give theirs (--vectors)", dir)
		}
		return fmt.Errorf("index %s holds passage vectors: the passages added need them too: give its context encoder (--ctx-encoder %s) or their vectors (--vectors)", dir, d.Encoder)
	}
	if o.Encoder.Dim() != d.Dim {
		return fmt.Errorf("context encoder %s has dimension %d, the vectors of index %s %d", o.EncoderDir, o.Encoder.Dim(), dir, d.Dim)
	}
	if o.Force {
		return nil
	}
	if d.MaxLength > 0 && o.Encoder.MaxLength() != d.MaxLength {
		return fmt.Errorf("context encoder %s cuts passages to %d tokens, the vectors of index %s were encoded from %d (re2g index add --max-length %d)",
			o.EncoderDir, o.Encoder.MaxLength(), dir, d.MaxLength, d.MaxLength)
	}
	if d.EncoderSHA256 != "" {
		if o.EncoderDir == "" {
			return fmt.Errorf("index %s: which directory is the context encoder from? (UpdateOptions.EncoderDir; its files are checked against those the index was encoded with)", dir)
		}
		fp, err := EncoderFingerprint(o.EncoderDir)
		if err != nil {
			return err
		}
		if fp != d.EncoderSHA256 {
			return fmt.Errorf("context encoder %s (files %.12s…) is not the one the vectors of index %s were encoded with (%s, files %.12s…): vectors of two encoders do not compare (--force adds them anyway)",
				o.EncoderDir, fp, dir, d.Encoder, d.EncoderSHA256)
		}
		return nil
	}
	a, err1 := filepath.Abs(o.EncoderDir)
	b, err2 := filepath.Abs(d.Encoder)
	if err1 != nil || err2 != nil || a != b {
		return fmt.Errorf("index %s records its context encoder as %s (not its files: built by an older re2g), not %s: vectors of two encoders do not compare (--force adds them anyway)",
			dir, d.Encoder, o.EncoderDir)
	}
	slog.Warn("index: the context encoder's files cannot be checked (index built by an older re2g): trusting its directory name", "dir", dir, "encoder", o.EncoderDir)
	return nil
}

// Add adds the passages of the corpus at corpusPath (any format
// ReadCorpus reads) to the index in dir: a new segment with their passage
// store and, in an index with vectors, their vectors (encoded by
// o.Encoder, which must be the index's context encoder) and HNSW index; a
// new BM25 generation with them indexed. An id the index holds is an error
// naming it, unless o.Replace, which deletes the passage it names. Nothing
// committed is rewritten (see the package's update notes); the writer lock
// is held throughout. It returns the new manifest.
func Add(ctx context.Context, dir, corpusPath string, o UpdateOptions) (_ *Manifest, err error) {
	u, err := beginUpdate(ctx, dir, "add", o)
	if err != nil {
		return nil, err
	}
	defer u.end()
	dir = u.dir
	m := u.next()
	if err := checkEncoder(dir, m, o); err != nil {
		return nil, err
	}
	start := time.Now()
	n, pages, err := ingest(ctx, corpusPath, u.tmp, o.buildOptions(u.tmp))
	if err != nil {
		return nil, err
	}
	if pages != m.Pages {
		has := map[bool]string{true: "has pages (KILT passages or SQuAD)", false: "has no pages (BEIR)"}
		return nil, fmt.Errorf("corpus %s %s, index %s's corpus %s: one index keeps one kind", corpusPath, has[pages], dir, has[m.Pages])
	}
	step("store")
	store, err := pstore.Open(filepath.Join(u.tmp, passagesDir))
	if err != nil {
		return nil, fmt.Errorf("index add: %w", err)
	}
	defer store.Close()
	// ids the index holds: errors, or (Replace) passages to delete
	var replaced []int
	var first Passage
	err = store.Scan(ctx, 0, n, func(p Passage) error {
		row, err := u.ix.lookup(p.ID)
		if errors.Is(err, pstore.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(replaced) == 0 {
			first = p
		}
		replaced = append(replaced, row)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index add: %w", err)
	}
	if len(replaced) > 0 && !o.Replace {
		where := fmt.Sprintf("line %d", first.Line)
		if first.Line == 0 {
			where = fmt.Sprintf("passage %d", first.Row+1)
		}
		return nil, fmt.Errorf("corpus %s: %s: passage id %q is in index %s already (%d of the corpus's ids are): re2g index add --replace replaces them",
			corpusPath, where, first.ID, dir, len(replaced))
	}
	seg := Segment{Dir: u.name, Rows: n}
	if m.Dense != nil {
		bo := o.buildOptions(u.tmp)
		bo.Chunk, bo.HNSW, bo.EncoderDir = m.Dense.Chunk, m.Dense.HNSW, m.Dense.Encoder
		if t := m.Dense.SQ8Train; t != nil {
			bo.SQ8Train = dense.SQ8Train{Sample: t.Sample, Seed: t.Seed}
		}
		if bo.Vectors != "" {
			if err := checkVectorsCorpus(ctx, store, bo); err != nil {
				return nil, err
			}
			if _, err := importVectors(ctx, store, bo); err != nil {
				return nil, err
			}
		} else if _, err := encodeCorpus(ctx, store, bo); err != nil {
			return nil, err
		}
		step("vectors")
		if seg.SQ8Train, err = buildHNSW(ctx, u.tmp, bo); err != nil {
			return nil, err
		}
		step("hnsw")
	}
	bm, err := u.cloneBM25(ctx)
	if err != nil {
		return nil, err
	}
	defer bm.Close()
	if len(replaced) > 0 {
		if err := u.deleteBM25(ctx, bm, replaced); err != nil {
			return nil, err
		}
	}
	err = addBM25(ctx, bm, store, n, o.progressOut())
	if err == nil {
		err = bm.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("index add: BM25: %w", err)
	}
	step("bm25")
	if len(replaced) > 0 {
		if err := u.writeTombstones(m, replaced); err != nil {
			return nil, err
		}
		step("tombstones")
	}
	m.Segments = append(m.Segments, seg)
	m.BM25Dir = path.Join(u.name, bm25Dir)
	m.Passages += n - len(replaced)
	if m.Dense != nil {
		m.Dense.Vectors = m.Passages
	}
	if err := u.commit(ctx, m); err != nil {
		return nil, err
	}
	slog.Info("index: passages added", "dir", dir, "generation", m.Generation, "added", n, "replaced", len(replaced),
		"passages", m.Passages, "deleted", m.Deleted, "seconds", time.Since(start).Seconds())
	return m, nil
}

// cloneBM25 makes the new generation's BM25 index, a clone of the
// committed one, and opens it for writing.
func (u *update) cloneBM25(ctx context.Context) (*bm25.Index, error) {
	to := filepath.Join(u.tmp, bm25Dir)
	if err := bm25.Clone(ctx, filepath.Join(u.dir, filepath.FromSlash(u.ix.Manifest.bm25Dir())), to); err != nil {
		return nil, err
	}
	step("bm25-clone")
	return bm25.OpenUpdate(ctx, to)
}

// deleteBM25 deletes the passages of rows from the BM25 index bm.
func (u *update) deleteBM25(ctx context.Context, bm *bm25.Index, rows []int) error {
	ps := make([]data.Passage, 0, len(rows))
	for _, r := range rows {
		p, err := u.ix.Row(r)
		if err != nil {
			return err
		}
		ps = append(ps, p.DataPassage())
	}
	n, err := bm.DeletePassages(ctx, ps)
	if err != nil {
		return fmt.Errorf("index %s %s: BM25: %w", u.op, u.dir, err)
	}
	if n != len(ps) {
		return fmt.Errorf("index %s %s: %w: the BM25 index holds %d of the %d passages deleted", u.op, u.dir, ErrCorrupt, n, len(ps))
	}
	return nil
}

// writeTombstones records, in the new generation, the rows deleted so far
// and rows, and sets m's counts.
func (u *update) writeTombstones(m *Manifest, rows []int) error {
	all := make([]uint64, 0, m.Deleted+len(rows))
	for r := range u.ix.rows {
		if u.ix.Deleted(r) {
			all = append(all, uint64(r))
		}
	}
	for _, r := range rows {
		all = append(all, uint64(r))
	}
	slices.Sort(all)
	all = slices.Compact(all)
	if len(all) != m.Deleted+len(rows) {
		return fmt.Errorf("index %s %s: a passage deleted twice", u.op, u.dir)
	}
	b := make([]byte, 0, 16+8*len(all))
	b = append(b, tombstonesMagic...)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(all)))
	for _, r := range all {
		b = binary.LittleEndian.AppendUint64(b, r)
	}
	if err := atomicfile.WriteFile(filepath.Join(u.tmp, tombstonesFile), b, 0o644); err != nil {
		return fmt.Errorf("index %s %s: %w", u.op, u.dir, err)
	}
	m.Tombstones = path.Join(u.name, tombstonesFile)
	m.Deleted = len(all)
	return nil
}

// readTombstones reads a tombstones file of an index of rows rows.
func readTombstones(p string, rows int) ([]uint64, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w: the file is missing", p, ErrCorrupt)
		}
		return nil, err
	}
	if len(b) < 16 || string(b[:8]) != tombstonesMagic {
		return nil, fmt.Errorf("%s: %w: not a tombstones file", p, ErrCorrupt)
	}
	n := binary.LittleEndian.Uint64(b[8:])
	if uint64(len(b)-16)/8 != n || (len(b)-16)%8 != 0 {
		return nil, fmt.Errorf("%s: %w: %d bytes for %d rows", p, ErrCorrupt, len(b), n)
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(b[16+8*i:])
		if out[i] >= uint64(rows) || (i > 0 && out[i] <= out[i-1]) {
			return nil, fmt.Errorf("%s: %w: row %d (entry %d) out of order or past the %d rows", p, ErrCorrupt, out[i], i, rows)
		}
	}
	return out, nil
}

// Delete deletes the passages with the given ids from the index in dir: a
// new generation whose tombstones name their rows (searches skip them)
// and whose BM25 index has them deleted. An id the index lacks is an
// error naming it, unless o.IgnoreMissing. The vectors and passages stay
// on disk until Compact. It returns the new manifest (the committed one,
// unchanged, when nothing is to be deleted).
func Delete(ctx context.Context, dir string, ids []string, o UpdateOptions) (_ *Manifest, err error) {
	u, err := beginUpdate(ctx, dir, "delete", o)
	if err != nil {
		return nil, err
	}
	defer u.end()
	dir = u.dir
	start := time.Now()
	var rows []int
	var missing []string
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		row, err := u.ix.lookup(id)
		if errors.Is(err, pstore.ErrNotFound) {
			missing = append(missing, id)
			continue
		}
		if err != nil {
			return nil, err
		}
		rows = append(rows, row)
	}
	if len(missing) > 0 && !o.IgnoreMissing {
		more := ""
		if len(missing) > 1 {
			more = fmt.Sprintf(" (nor %d more of the ids)", len(missing)-1)
		}
		return nil, fmt.Errorf("index %s holds no passage %q%s: re2g index delete --ignore-missing skips them", dir, missing[0], more)
	}
	if len(rows) == 0 {
		slog.Info("index: nothing to delete", "dir", dir, "missing", len(missing))
		m := u.ix.Manifest
		return &m, nil
	}
	m := u.next()
	bm, err := u.cloneBM25(ctx)
	if err != nil {
		return nil, err
	}
	defer bm.Close()
	if err := u.deleteBM25(ctx, bm, rows); err != nil {
		return nil, err
	}
	if err := bm.Close(); err != nil {
		return nil, fmt.Errorf("index delete: BM25: %w", err)
	}
	step("bm25")
	if err := u.writeTombstones(m, rows); err != nil {
		return nil, err
	}
	step("tombstones")
	m.BM25Dir = path.Join(u.name, bm25Dir)
	m.Passages -= len(rows)
	if m.Dense != nil {
		m.Dense.Vectors = m.Passages
	}
	if err := u.commit(ctx, m); err != nil {
		return nil, err
	}
	slog.Info("index: passages deleted", "dir", dir, "generation", m.Generation, "deleted_now", len(rows), "missing", len(missing),
		"passages", m.Passages, "deleted", m.Deleted, "seconds", time.Since(start).Seconds())
	return m, nil
}

// Compact rewrites the index in dir as one segment without its deleted
// passages: a new passage store and vector store of the live passages in
// row order, an HNSW index built over them (as a build of those passages
// builds it), and the BM25 index merged into one segment without deleted
// documents; then it removes every earlier generation. An index that is
// one segment with nothing deleted (and BM25 in one segment) is left as it
// is. It returns the manifest.
func Compact(ctx context.Context, dir string, o UpdateOptions) (_ *Manifest, err error) {
	u, err := beginUpdate(ctx, dir, "compact", o)
	if err != nil {
		return nil, err
	}
	defer u.end()
	dir = u.dir
	ix := u.ix
	segs, deletedDocs, err := ix.sparse.Segments()
	if err != nil {
		return nil, err
	}
	if len(ix.segs) == 1 && ix.Manifest.Deleted == 0 && segs <= 1 && deletedDocs == 0 {
		slog.Info("index: already compact", "dir", dir, "generation", ix.Manifest.Generation)
		m := ix.Manifest
		return &m, nil
	}
	start := time.Now()
	m := u.next()
	live := m.Passages
	if live == 0 {
		return nil, fmt.Errorf("index compact %s: every passage is deleted: there is nothing to compact into (build a new index)", dir)
	}
	w, err := pstore.Create(filepath.Join(u.tmp, passagesDir))
	if err != nil {
		return nil, fmt.Errorf("index compact: %w", err)
	}
	bar := progress.NewTo(o.progressOut(), live, "passages", "passages")
	var sample Passage
	for _, s := range ix.segs {
		err := s.passages.Scan(ctx, 0, s.Rows, func(p Passage) error {
			if ix.Deleted(s.first + p.Row) {
				return nil
			}
			if w.Count() == 0 {
				sample = p
			}
			bar.Add(1)
			return w.Add(p)
		})
		if err != nil {
			w.Abort()
			return nil, fmt.Errorf("index compact: %w", err)
		}
	}
	bar.Finish()
	if w.Count() != live {
		w.Abort()
		return nil, fmt.Errorf("index compact %s: %d live passages, the manifest says %d", dir, w.Count(), live)
	}
	if err := w.Close(ctx); err != nil {
		return nil, fmt.Errorf("index compact: %w", err)
	}
	step("store")
	seg := Segment{Dir: u.name, Rows: live}
	if m.Dense != nil {
		if err := u.compactVectors(ctx, m.Dense, o); err != nil {
			return nil, err
		}
		step("vectors")
		bo := Options{Out: u.tmp, HNSW: m.Dense.HNSW, Progress: o.Progress}
		if t := m.Dense.SQ8Train; t != nil {
			bo.SQ8Train = dense.SQ8Train{Sample: t.Sample, Seed: t.Seed}
		}
		if seg.SQ8Train, err = buildHNSW(ctx, u.tmp, bo); err != nil {
			return nil, err
		}
		if seg.SQ8Train != nil {
			m.Dense.SQ8Train = seg.SQ8Train
		}
		step("hnsw")
	}
	to := filepath.Join(u.tmp, bm25Dir)
	if err := bm25.Clone(ctx, filepath.Join(dir, filepath.FromSlash(ix.Manifest.bm25Dir())), to); err != nil {
		return nil, err
	}
	step("bm25-clone")
	bm, err := bm25.Open(to)
	if err != nil {
		return nil, err
	}
	err = bm.Compact(ctx, sample.DataPassage())
	if cerr := bm.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("index compact: BM25: %w", err)
	}
	step("bm25")
	m.Segments = []Segment{seg}
	m.BM25Dir = path.Join(u.name, bm25Dir)
	m.Tombstones, m.Deleted = "", 0
	if err := u.commit(ctx, m); err != nil {
		return nil, err
	}
	slog.Info("index: compacted", "dir", dir, "generation", m.Generation, "passages", m.Passages,
		"segments_before", len(ix.segs), "deleted_before", ix.Manifest.Deleted, "seconds", time.Since(start).Seconds())
	return m, nil
}

// compactVectors writes the live passages' vectors, in row order, into
// the new generation's vector store, in chunks of the index's size, one
// source chunk at a time.
func (u *update) compactVectors(ctx context.Context, d *DenseManifest, o UpdateOptions) error {
	ix := u.ix
	dst, err := dense.Create(filepath.Join(u.tmp, denseDir), d.Dim, ix.segs[0].vectors.DType())
	if err != nil {
		return err
	}
	var ids []string
	var vecs []float32
	chunks := 0
	flush := func() error {
		if _, err := dst.PutShard(ctx, chunkName(chunks), ids, vecs); err != nil {
			return err
		}
		chunks++
		ids, vecs = ids[:0], vecs[:0]
		return nil
	}
	bar := progress.NewTo(o.progressOut(), ix.Manifest.Passages, "vectors", "vectors")
	defer bar.Finish()
	for _, s := range ix.segs {
		for c, no := range s.shardOf {
			name := ""
			for _, si := range s.vectors.Shards() {
				if si.No == no {
					name = si.Name
				}
			}
			_, sids, svecs, err := s.vectors.ReadShard(ctx, name)
			if err != nil {
				return err
			}
			lo, _ := chunkRows(c, d.Chunk, s.Rows)
			for r, id := range sids {
				if ix.Deleted(s.first + lo + r) {
					continue
				}
				ids = append(ids, id)
				vecs = append(vecs, svecs[r*d.Dim:(r+1)*d.Dim]...)
				bar.Add(1)
				if len(ids) == d.Chunk {
					if err := flush(); err != nil {
						return err
					}
				}
			}
		}
	}
	if len(ids) > 0 {
		if err := flush(); err != nil {
			return err
		}
	}
	if dst.Count() != ix.Manifest.Passages {
		return fmt.Errorf("index compact %s: %d vectors of live passages, the manifest says %d", u.dir, dst.Count(), ix.Manifest.Passages)
	}
	return nil
}

// VerifyIndex checks every byte of every file of the index in dir against
// the manifest (VerifyFull), then opens it, which checks how the files fit
// together; it returns the manifest.
func VerifyIndex(ctx context.Context, dir string) (*Manifest, error) {
	ix, err := OpenWith(ctx, dir, OpenOptions{Verify: VerifyFull})
	if err != nil {
		return nil, err
	}
	m := ix.Manifest
	return &m, ix.Close()
}

// ReadIDs reads the passage ids of a file for Delete: one id a line, or
// JSON lines with the id as "_id", "pid" or "id" (a corpus file's lines);
// blank lines are skipped. A malformed line is an error naming the file and
// the line.
func ReadIDs(p string) ([]string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("ids: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(bom.Reader(f))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var out []string
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" {
			continue
		}
		if strings.HasPrefix(s, "{") {
			var rec map[string]json.RawMessage
			if err := json.Unmarshal([]byte(s), &rec); err != nil {
				return nil, fmt.Errorf("%s: line %d: %w", p, line, err)
			}
			found := false
			for _, k := range []string{"_id", "pid", "id"} {
				raw, ok := rec[k]
				if !ok {
					continue
				}
				var id string
				if err := json.Unmarshal(raw, &id); err != nil {
					var num json.Number
					if err := json.Unmarshal(raw, &num); err != nil {
						return nil, fmt.Errorf("%s: line %d: %q is not a string or a number", p, line, k)
					}
					id = num.String()
				}
				out, found = append(out, id), true
				break
			}
			if !found {
				return nil, fmt.Errorf("%s: line %d: no \"_id\", \"pid\" or \"id\"", p, line)
			}
			continue
		}
		if strings.ContainsAny(s, " \t") {
			return nil, fmt.Errorf("%s: line %d: %q: one passage id a line (ids have no white space)", p, line, s)
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return out, nil
}
