package indexdir

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/re2g/re2g/internal/dirtest"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/re2g/re2g/bm25"
	"github.com/re2g/re2g/neural"
)

var (
	denseOnce sync.Once
	denseIdx  string
	denseErr  error
	denseTmp  string
)

// denseIndex builds (once per test binary) a finished index of 30 KILT
// passages with pages, BM25, vectors in 4 chunks and HNSW, and returns its
// directory; tests copy it before changing anything.
func denseIndex(t *testing.T) string {
	t.Helper()
	tokenizerJSON(t)
	denseOnce.Do(func() {
		denseTmp, denseErr = os.MkdirTemp("", "re2g-indexdir-index-")
		if denseErr != nil {
			return
		}
		enc, err := neural.LoadEncoder(ctxEncoderDir(t), neural.Options{MaxLength: 64})
		if err != nil {
			denseErr = err
			return
		}
		defer enc.Close()
		denseIdx = filepath.Join(denseTmp, "index")
		_, denseErr = Build(context.Background(), kiltCorpus(t, 30), Options{Out: denseIdx, Encoder: enc, Chunk: 8, Progress: io.Discard})
	})
	if denseErr != nil {
		t.Fatal(denseErr)
	}
	return denseIdx
}

// files lists every regular file under dir, relative and slash-separated.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return err
	})
	sort.Strings(out)
	return out
}

// TestOpenIndexDetectsDamage damages each file of an index directory in turn
// (cut in half, removed, one byte flipped) and holds each verification mode
// to its promise. Cut or removed, any file makes opening an error naming it.
// A flipped byte is an error naming the file when opening with VerifyFull
// (and VerifyIndex); with VerifyQuick, in every file but those read lazily
// (the passage store, the vector shards and their ids, bleve's segments:
// a flipped byte in hnsw.faiss used to open and crash the process in the
// first search). An index opened quickly with a flipped byte in a lazy file
// searches without crashing: errors, if any, name the index.
func TestOpenIndexDetectsDamage(t *testing.T) {
	good := denseIndex(t)
	open(t, good)
	all := files(t, good)
	for _, want := range []string{"manifest.json", "passages/passages.dat", "passages/passages.off", "passages/passages.ids", "bm25/store/root.bolt", "bm25/index_meta.json", "dense/manifest.json",
		"dense/chunk-000003.g1.vec", "dense/chunk-000003.g1.ids", "dense/hnsw.faiss", "dense/hnsw.faiss.json"} {
		if !slicesContains(all, want) {
			t.Fatalf("the index has no %s: %v", want, all)
		}
	}
	damages := []struct {
		name string
		do   func(path string) error
	}{
		{"truncate", func(p string) error {
			st, err := os.Stat(p)
			if err != nil {
				return err
			}
			return os.Truncate(p, st.Size()/2)
		}},
		{"flip", func(p string) error {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b[len(b)/2] ^= 0xff
			return os.WriteFile(p, b, 0o644)
		}},
		{"delete", os.Remove},
	}
	lazy := 0
	for _, rel := range all {
		for _, d := range damages {
			t.Run(rel+"/"+d.name, func(t *testing.T) {
				dir := dirtest.Copy(t, good)
				path := filepath.Join(dir, filepath.FromSlash(rel))
				if err := d.do(path); err != nil {
					t.Fatal(err)
				}
				wantErr := func(mode string, err error) {
					t.Helper()
					if err == nil {
						t.Fatalf("%s: opened an index with %s damaged (%s)", mode, rel, d.name)
					}
					if !strings.Contains(err.Error(), path) {
						t.Fatalf("%s: the error does not name %s: %v", mode, rel, err)
					}
					if !(rel == manifestFile && d.name == "delete") && !errors.Is(err, ErrCorrupt) {
						t.Fatalf("%s: want ErrCorrupt, got %v", mode, err)
					}
				}
				_, err := VerifyIndex(context.Background(), dir)
				wantErr("full", err)
				ix, err := Open(context.Background(), dir)
				if d.name != "flip" || !lazyFile(rel) {
					if err == nil {
						ix.Close()
					}
					wantErr("quick", err)
					return
				}
				if err != nil {
					t.Fatalf("quick: %s, read lazily, is checked for its size only, but the open failed: %v", rel, err)
				}
				defer ix.Close()
				lazy++
				searchAllNoPanic(t, ix, dir)
			})
		}
	}
	if lazy < 5 {
		t.Fatalf("%d lazily read files damaged: the test no longer covers them", lazy)
	}
	t.Run("manifest.json/edited", func(t *testing.T) {
		dir := dirtest.Copy(t, good)
		p := filepath.Join(dir, manifestFile)
		b, _ := os.ReadFile(p)
		edited := bytes.Replace(b, []byte(`"passages": 30`), []byte(`"passages": 31`), 1)
		if bytes.Equal(b, edited) {
			t.Fatalf("manifest has no passage count: %s", b)
		}
		os.WriteFile(p, edited, 0o644)
		if _, err := Open(context.Background(), dir); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), p) {
			t.Fatalf("an edited manifest: %v", err)
		}
	})
}

func slicesContains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

// TestOpenOldIndexSaysRebuild: an index from before the passage store
// (manifest version 2 with checksums, or version 1 without: passages in
// bleve, pages in pages.json) is refused with the command that rebuilds
// it, not opened half-way nor reported as damaged.
func TestOpenOldIndexSaysRebuild(t *testing.T) {
	for _, version := range []int{1, 2} {
		dir := dirtest.Copy(t, denseIndex(t))
		// the old layout: no passages/, a pages.json
		os.RemoveAll(filepath.Join(dir, passagesDir))
		os.WriteFile(filepath.Join(dir, legacyPagesFile), []byte(`{"a": "1"}`), 0o644)
		m, err := readManifest(dir)
		if err != nil {
			t.Fatal(err)
		}
		var b []byte
		if version == 2 {
			if m.Files, err = indexFiles(context.Background(), dir); err != nil {
				t.Fatal(err)
			}
			m.Version = 2
			if b, err = signManifest(m); err != nil {
				t.Fatal(err)
			}
		} else {
			m.Files, m.ManifestSHA256, m.Version = nil, "", 1
			b, _ = json.MarshalIndent(m, "", "  ")
		}
		os.WriteFile(filepath.Join(dir, manifestFile), b, 0o644)
		_, err = Open(context.Background(), dir)
		if !errors.Is(err, ErrOldIndex) || errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), dir) ||
			!strings.Contains(err.Error(), "rebuild it (re2g index --corpus "+m.Corpus) {
			t.Fatalf("a version %d index: %v", version, err)
		}
	}
	// a version-3 manifest stripped of its checksum is damage, not age
	dir := dirtest.Copy(t, denseIndex(t))
	p := filepath.Join(dir, manifestFile)
	var m map[string]any
	b, _ := os.ReadFile(p)
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "manifest_sha256")
	b, _ = json.MarshalIndent(m, "", "  ")
	os.WriteFile(p, b, 0o644)
	if _, err := Open(context.Background(), dir); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("version 3 without a checksum: %v", err)
	}
}

// chmodTree sets every file's and directory's permission bits.
func chmodTree(t *testing.T, dir string, file, folder os.FileMode) {
	t.Helper()
	var dirs []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if d.IsDir() {
			dirs = append(dirs, p)
		} else {
			os.Chmod(p, file)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		os.Chmod(dirs[i], folder)
	}
}

// TestOpenAndSearchWriteNothing: opening an index and searching it (BM25,
// HNSW, passages, stored vectors) leaves every byte, size and mtime as it
// was, in a directory without write permission (which stops the writes
// outright unless the test runs as root; then only the comparison does).
// bleve used to open its store read-write, changing root.bolt on a query and
// failing on a read-only file system.
func TestOpenAndSearchWriteNothing(t *testing.T) {
	t.Run("dense", func(t *testing.T) { openAndSearchWriteNothing(t, dirtest.Copy(t, denseIndex(t)), true) })
	// bleve's read-write open changed root.bolt of an index this size on the
	// first query
	t.Run("bm25-squadshifts", func(t *testing.T) { openAndSearchWriteNothing(t, dirtest.Copy(t, squadIndex(t)), false) })
}

var (
	squadOnce sync.Once
	squadIdx  string
	squadErr  error
	squadTmp  string
)

// squadIndex builds (once per test binary) the BM25 index of all 1,581
// SQuADShifts New Wiki paragraphs.
func squadIndex(t *testing.T) string {
	t.Helper()
	src := filepath.Join(shared, "squadshifts/new_wiki_v1.0.json")
	if _, err := os.Stat(src); err != nil {
		t.Skipf("shared data not available: %v", err)
	}
	squadOnce.Do(func() {
		if squadTmp, squadErr = os.MkdirTemp("", "re2g-indexdir-squad-"); squadErr != nil {
			return
		}
		squadIdx = filepath.Join(squadTmp, "index")
		_, squadErr = Build(context.Background(), src, Options{Out: squadIdx, Progress: io.Discard})
	})
	if squadErr != nil {
		t.Fatal(squadErr)
	}
	return squadIdx
}

func openAndSearchWriteNothing(t *testing.T, dir string, dense bool) {
	chmodTree(t, dir, 0o444, 0o555)
	t.Cleanup(func() { chmodTree(t, dir, 0o644, 0o755) })
	time.Sleep(20 * time.Millisecond) // so that a rewrite would show in the mtimes
	before := dirtest.State(t, dir)
	for range 2 {
		ix, err := Open(context.Background(), dir)
		if err != nil {
			t.Fatalf("a read-only index: %v", err)
		}
		if dense {
			searchAll(t, ix)
		} else if hs, err := ix.SparseSearch(context.Background(), "who elects the delegates", 10, bm25.Params{}); err != nil || len(hs) != 10 {
			t.Fatalf("BM25 search: %v %v", hs, err)
		}
		if err := ix.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if after := dirtest.State(t, dir); !reflect.DeepEqual(before, after) {
		for p, v := range after {
			if before[p] != v {
				t.Errorf("%s changed: %s -> %s", p, before[p], v)
			}
		}
		for p := range before {
			if _, ok := after[p]; !ok {
				t.Errorf("%s removed", p)
			}
		}
		t.Fatal("opening and searching the index changed it")
	}
}

// searchAllNoPanic runs every kind of search an Index has, on every
// passage, and wants results or errors naming dir (the damaged index), not
// a panic.
func searchAllNoPanic(t *testing.T, ix *Index, dir string) {
	t.Helper()
	ctx := context.Background()
	check := func(what string, err error) {
		t.Helper()
		if err != nil && !strings.Contains(err.Error(), dir) {
			t.Fatalf("%s: the error does not name the index: %v", what, err)
		}
	}
	ids, err := ix.PassageIDs(ctx)
	check("passage ids", err)
	for r := range ix.Rows() {
		_, err := ix.Row(r)
		check("row", err)
	}
	for _, id := range ids {
		_, _, err := ix.Passage(id)
		check("passage", err)
		ix.Page(id)
	}
	_, _, err = ix.Vectors(ids)
	check("vectors", err)
	for _, q := range []string{"city university", "the", "Normans"} {
		_, err := ix.SparseSearch(ctx, q, 10, bm25.Params{})
		check("BM25", err)
	}
	q := make([]float32, ix.Dim())
	for i := range q {
		q[i] = float32(i%7) - 3
	}
	_, err = ix.DenseSearch(ctx, [][]float32{q}, 10, 0)
	check("dense", err)
}

// searchAll runs every kind of search an Index has.
func searchAll(t *testing.T, ix *Index) {
	t.Helper()
	ctx := context.Background()
	hs, err := ix.SparseSearch(ctx, "city university", 5, bm25.Params{})
	if err != nil || len(hs) == 0 {
		t.Fatalf("BM25 search: %v %v", hs, err)
	}
	q := make([]float32, ix.Dim())
	for i := range q {
		q[i] = float32(i%7) - 3
	}
	dh, err := ix.DenseSearch(ctx, [][]float32{q}, 5, 0)
	if err != nil || len(dh) != 1 || len(dh[0]) != 5 {
		t.Fatalf("dense search: %v %v", dh, err)
	}
	if _, found, err := ix.Vectors([]string{hs[0].ID}); err != nil || !found[0] {
		t.Fatalf("stored vectors: %v %v", found, err)
	}
	if ix.Page(hs[0].ID) == hs[0].ID {
		t.Fatalf("no page for %s", hs[0].ID)
	}
}
