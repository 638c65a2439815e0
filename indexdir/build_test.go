package indexdir

import (
	"context"
	"errors"
	"fmt"
	"github.com/re2g/re2g/internal/dirtest"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/re2g/re2g/bm25"
	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/dense"
	"github.com/re2g/re2g/faiss"
	"github.com/re2g/re2g/internal/synthcorpus"
	"github.com/re2g/re2g/torch"
)

func TestIndexCrashAndResumeEqualsUninterrupted(t *testing.T) {
	torch.SetNumThreads(2)
	corpusPath := tinyCorpus(t, 50)
	enc := loadEncoder(t, ctxEncoderDir(t), 8)
	ctx := context.Background()
	full := filepath.Join(t.TempDir(), "full")
	build(t, corpusPath, Options{Out: full, Encoder: enc, Chunk: 8, Progress: io.Discard})
	// a crash after 3 of 7 chunks
	crashed := filepath.Join(t.TempDir(), "crashed")
	boom := errors.New("killed")
	_, err := Build(ctx, corpusPath, Options{Out: crashed, Encoder: enc, Chunk: 8, Progress: io.Discard,
		afterChunk: func(done int) error {
			if done == 3 {
				return boom
			}
			return nil
		}})
	if !errors.Is(err, boom) {
		t.Fatalf("want the simulated crash, got %v", err)
	}
	if _, err := Open(ctx, crashed); err == nil {
		t.Fatal("an unfinished index opened")
	}
	if _, err := Build(ctx, corpusPath, Options{Out: crashed, Encoder: enc, Chunk: 8, Progress: io.Discard}); err == nil {
		t.Fatal("rebuilding over an unfinished index without --resume succeeded")
	}
	encoded := 0
	if _, err := Build(ctx, corpusPath, Options{Out: crashed, Encoder: enc, Chunk: 8, Resume: true, Progress: io.Discard,
		afterChunk: func(done int) error { encoded = done; return nil }}); err != nil {
		t.Fatal(err)
	}
	if encoded != 4 {
		t.Fatalf("resume encoded %d chunks, want the 4 missing ones", encoded)
	}
	a, b := vectors(t, full), vectors(t, crashed)
	if len(a) != 50 || len(b) != 50 {
		t.Fatalf("%d and %d vectors", len(a), len(b))
	}
	for id, v := range a {
		if !reflect.DeepEqual(v, b[id]) {
			t.Fatalf("passage %s: resumed vector differs", id)
		}
	}
	checkDense(t, open(t, crashed), a)
}

// vectors reads every vector of an index's vector store by the passage ids
// the store itself records.
func vectors(t *testing.T, dir string) map[string][]float32 {
	t.Helper()
	st, err := dense.Open(filepath.Join(dir, denseDir))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]float32{}
	for _, si := range st.Shards() {
		_, ids, vecs, err := st.ReadShard(context.Background(), si.Name)
		if err != nil {
			t.Fatal(err)
		}
		for i, id := range ids {
			out[id] = vecs[i*st.Dim() : (i+1)*st.Dim()]
		}
	}
	return out
}

// checkDense checks that the index maps passages to vectors and FAISS ids
// to passages as the vector store's own id lists do: Vectors of every id,
// and dense search against the exact top 5 by inner product.
func checkDense(t *testing.T, ix *Index, want map[string][]float32) {
	t.Helper()
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	got, found, err := ix.Vectors(append(ids, "no-such-passage"))
	if err != nil {
		t.Fatal(err)
	}
	d := ix.Dim()
	for i, id := range ids {
		if !found[i] || !reflect.DeepEqual(got[i*d:(i+1)*d], want[id]) {
			t.Fatalf("Vectors(%s): found %v, not the vector the store has for it", id, found[i])
		}
	}
	if found[len(ids)] {
		t.Fatal("Vectors found a passage the index lacks")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5 {
		q := make([]float32, d)
		for i := range q {
			q[i] = float32(rng.NormFloat64())
		}
		type scored struct {
			id    string
			score float32
		}
		var exact []scored
		for id, v := range want {
			var s float32
			for i := range v {
				s += v[i] * q[i]
			}
			exact = append(exact, scored{id, s})
		}
		sort.Slice(exact, func(i, j int) bool { return exact[i].score > exact[j].score })
		hits, err := ix.DenseSearch(context.Background(), [][]float32{q}, 5, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i, h := range hits[0] {
			if h.ID != exact[i].id {
				t.Fatalf("dense hit %d: %s, the exact top 5 %v", i, h.ID, exact[:5])
			}
			p, ok, err := ix.Passage(h.ID)
			if err != nil || !ok || p.Title != h.Title || p.Text != h.Text {
				t.Fatalf("dense hit %s: its passage %+v %v %v differs from the hit's %q", h.ID, p, ok, err, h.Title)
			}
		}
	}
}

func TestShardsMergeIntoOneIndex(t *testing.T) {
	// One FAISS thread: an HNSW graph is then the same for the same vectors
	// added in the same order.
	faiss.SetThreads(1)
	t.Cleanup(func() { faiss.SetThreads(0) })
	corpusPath := tinyCorpus(t, 30)
	enc := loadEncoder(t, ctxEncoderDir(t), 0)
	ctx := context.Background()
	var dirs []string
	for i := 0; i < 3; i++ {
		d := filepath.Join(t.TempDir(), "shard")
		m := build(t, corpusPath, Options{Out: d, Encoder: enc, Chunk: 4, Shard: i, NumShards: 3, Progress: io.Discard})
		if m.Shard != fmt.Sprintf("%d/3", i) || m.Passages != 30 {
			t.Fatalf("shard manifest: %+v", m)
		}
		if _, err := os.Stat(filepath.Join(d, passagesDir)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a shard kept its passage store: %v", err)
		}
		dirs = append(dirs, d)
	}
	parent := t.TempDir()
	out := filepath.Join(parent, "merged")
	o := Options{Progress: io.Discard}
	if _, err := Merge(ctx, corpusPath, out, dirs[:2], o); err == nil {
		t.Fatal("merging without a shard succeeded")
	}
	// a failed merge leaves nothing behind: no half-written dense/, no
	// temporary directory
	if ents, _ := os.ReadDir(parent); len(ents) != 0 {
		t.Fatalf("a failed merge left %v", ents)
	}
	// a directory that holds something is not merged into, nor touched
	os.MkdirAll(out, 0o755)
	os.WriteFile(filepath.Join(out, "keep"), []byte("x"), 0o644)
	if _, err := Merge(ctx, corpusPath, out, dirs, o); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("merge into a non-empty directory: %v", err)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 1 {
		t.Fatalf("the non-empty directory now holds %v", ents)
	}
	os.RemoveAll(out)
	// a damaged shard is an error naming its file
	bad := dirtest.Copy(t, dirs[1])
	vec := filepath.Join(bad, denseDir, "chunk-000001.g1.vec")
	raw, err := os.ReadFile(vec)
	if err != nil {
		t.Fatal(err)
	}
	raw[40] ^= 1
	os.WriteFile(vec, raw, 0o644)
	if _, err := Merge(ctx, corpusPath, out, []string{dirs[0], bad, dirs[2]}, o); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), vec) {
		t.Fatalf("merging a damaged shard: %v", err)
	}
	// a shard of other chunks is refused, naming it
	other := filepath.Join(t.TempDir(), "other")
	build(t, corpusPath, Options{Out: other, Encoder: enc, Chunk: 5, Shard: 2, NumShards: 3, Progress: io.Discard})
	if _, err := Merge(ctx, corpusPath, out, []string{dirs[0], dirs[1], other}, o); err == nil || !strings.Contains(err.Error(), other) || !strings.Contains(err.Error(), "--chunk") {
		t.Fatalf("merging shards of different chunk sizes: %v", err)
	}
	// shards in any order
	if _, err := Merge(ctx, corpusPath, out, []string{dirs[2], dirs[0], dirs[1]}, o); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 1 {
		t.Fatalf("after the merge the parent holds %v, want the index alone", ents)
	}
	if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o755 {
		t.Fatalf("merged index directory: %v %v", st.Mode(), err)
	}
	single := filepath.Join(t.TempDir(), "single")
	build(t, corpusPath, Options{Out: single, Encoder: enc, Chunk: 4, Progress: io.Discard})
	a, b := vectors(t, out), vectors(t, single)
	for id, v := range b {
		if !reflect.DeepEqual(a[id], v) {
			t.Fatalf("passage %s differs between merged shards and one build", id)
		}
	}
	checkDense(t, open(t, out), b)
	// The merged vector store and HNSW index are the one build's, byte for
	// byte: the chunks are numbered, and added, in corpus order.
	for _, f := range []string{"manifest.json", hnswFile} {
		x, err := os.ReadFile(filepath.Join(out, denseDir, f))
		if err != nil {
			t.Fatal(err)
		}
		y, err := os.ReadFile(filepath.Join(single, denseDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(x, y) {
			t.Errorf("%s of the merged shards differs from one build's", f)
		}
	}
}

// TestResumeKeepsTheChunkSize: an interrupted build resumes only with the
// chunk size it was started with (its chunks are the checkpoints).
func TestResumeKeepsTheChunkSize(t *testing.T) {
	corpusPath := tinyCorpus(t, 30)
	enc := loadEncoder(t, ctxEncoderDir(t), 0)
	out := filepath.Join(t.TempDir(), "idx")
	boom := errors.New("killed")
	if _, err := Build(context.Background(), corpusPath, Options{Out: out, Encoder: enc, Chunk: 4, Progress: io.Discard,
		afterChunk: func(int) error { return boom }}); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	_, err := Build(context.Background(), corpusPath, Options{Out: out, Encoder: enc, Chunk: 5, Resume: true, Progress: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "was started with chunks of 4 passages, not 5: resume it with --chunk 4") {
		t.Fatalf("resuming with another chunk size: %v", err)
	}
	build(t, corpusPath, Options{Out: out, Encoder: enc, Chunk: 4, Resume: true, Progress: io.Discard})
}

// TestBuildDuplicateIDs: a repeated passage id in a gzipped stream is an
// error naming the corpus and both lines, found before any BM25 work, and
// no index opens.
func TestBuildDuplicateIDs(t *testing.T) {
	var b strings.Builder
	for i := range 3000 {
		id := fmt.Sprintf("p%d", i)
		if i == 2500 {
			id = "p17"
		}
		fmt.Fprintf(&b, `{"id": %q, "wikipedia_id": "w%d", "title": "T", "text": "passage %d"}`+"\n", id, i/10, i)
	}
	corpus := writeFile(t, "dup.jsonl.gz", b.String(), true)
	out := filepath.Join(t.TempDir(), "index")
	_, err := Build(context.Background(), corpus, Options{Out: out, Progress: io.Discard})
	if err == nil || !strings.Contains(err.Error(), corpus) || !strings.Contains(err.Error(), `line 2501: duplicate passage id "p17" (first at line 18)`) {
		t.Fatalf("a repeated id: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, bm25Dir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("BM25 was built before the ids were checked: %v", err)
	}
	if ents, _ := filepath.Glob(filepath.Join(out, "*passages*")); len(ents) != 0 {
		t.Fatalf("a failed store left %v", ents)
	}
	if _, err := Open(context.Background(), out); err == nil {
		t.Fatal("the failed build opened")
	}
}

// TestBuildBadPassages: malformed records are skipped into the report,
// naming their lines; a corpus left without passages is an error naming
// it.
func TestBuildBadPassages(t *testing.T) {
	corpus := writeFile(t, "space.jsonl", `{"_id": "a", "text": "x"}`+"\n"+`{"_id": "b c", "title": "T", "text": "x"}`+"\n", false)
	rep := &data.Report{}
	m, err := Build(context.Background(), corpus, Options{Out: filepath.Join(t.TempDir(), "index"), Progress: io.Discard, Report: rep})
	if err != nil || m.Passages != 1 || len(rep.Skips) != 1 || rep.Skips[0].Line != 2 || !strings.Contains(rep.Skips[0].Reason, "white space") {
		t.Fatalf("an id with a space: %+v %v, skips %v", m, err, rep.Skips)
	}
	for name, c := range map[string]struct{ content, want string }{
		"empty":  {"\n\n", "empty first line"},
		"notext": {`{"_id": "a", "title": "", "text": "  "}` + "\n", "no passages"},
	} {
		corpus := writeFile(t, name+".jsonl", c.content, false)
		_, err := Build(context.Background(), corpus, Options{Out: filepath.Join(t.TempDir(), "index"), Progress: io.Discard})
		if err == nil || !strings.Contains(err.Error(), corpus) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want an error naming %s and %q", name, err, corpus, c.want)
		}
	}
}

// TestStoreServesSearches: BM25 hits, pages, and rows of a built index come
// from its passage store, in corpus order, as the corpus has them.
func TestStoreServesSearches(t *testing.T) {
	ps := squadPassages(t, 40)
	dir := filepath.Join(t.TempDir(), "index")
	m := build(t, kiltCorpus(t, 40), Options{Out: dir, Progress: io.Discard})
	if m.Passages != 40 || !m.Pages || m.Dense != nil {
		t.Fatalf("manifest %+v", m)
	}
	ix := open(t, dir)
	for i, want := range ps {
		got, err := ix.Row(i)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != want.ID || got.Title != want.Title || got.Text != want.Text || got.Page != "page-"+want.Title || got.Line != i+1 {
			t.Fatalf("row %d: %+v, the corpus has %+v", i, got, want)
		}
		if page := ix.Page(want.ID); page != "page-"+want.Title {
			t.Fatalf("Page(%s) = %q", want.ID, page)
		}
	}
	if ix.Page("unknown") != "unknown" {
		t.Fatal("the page of an unknown passage is not its id")
	}
	if _, ok, err := ix.Passage("unknown"); ok || err != nil {
		t.Fatalf("an unknown passage: %v %v", ok, err)
	}
	hs, err := ix.SparseSearch(context.Background(), ps[7].Text, 3, bm25.Params{})
	if err != nil || len(hs) == 0 || hs[0].ID != ps[7].ID || hs[0].Text != ps[7].Text || hs[0].Title != ps[7].Title {
		t.Fatalf("BM25 search for passage 7's text: %+v %v", hs, err)
	}
	ids, err := ix.PassageIDs(context.Background())
	if err != nil || len(ids) != 40 || ids[0] != ps[0].ID || ids[39] != ps[39].ID {
		t.Fatalf("PassageIDs: %v %v", ids, err)
	}
	if _, err := ix.DenseSearch(context.Background(), [][]float32{{1}}, 1, 0); err == nil {
		t.Fatal("dense search on a BM25-only index")
	}
	// BEIR passages have no pages
	beir := filepath.Join(t.TempDir(), "beir")
	if m := build(t, tinyCorpus(t, 5), Options{Out: beir, Progress: io.Discard}); m.Pages {
		t.Fatal("a BEIR corpus has pages")
	}
	if ix := open(t, beir); ix.HasPages() || ix.Page(ps[0].ID) != ps[0].ID {
		t.Fatal("a BEIR index has pages")
	}
}

// TestBuildStreamsSyntheticCorpus builds the BM25-only index of a gzipped
// stream of 50,000 synthetic KILT passages (sentences of ArguAna and
// SQuADShifts, from a fixed seed) in a second process, and reports its
// peak resident memory (VmHWM) against the corpus size (re2g bench ingest
// measures how it grows); the store then holds every passage as the stream
// had it, at its row and under its id, and BM25 finds a passage by its text.
func TestBuildStreamsSyntheticCorpus(t *testing.T) {
	if testing.Short() {
		t.Skip("50,000 passages")
	}
	src, err := synthcorpus.Load(shared)
	if err != nil {
		t.Skipf("shared data not available: %v", err)
	}
	const n = 50_000
	corpus := filepath.Join(t.TempDir(), "kilt.jsonl.gz")
	size, err := synthcorpus.Write(corpus, n, 7, src)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "index")
	h := startHelper(t, nil, "bm25", out, corpus)
	got := h.line(t)
	kb, err := strconv.Atoi(strings.TrimPrefix(got, "vmhwm "))
	if !strings.HasPrefix(got, "vmhwm ") || err != nil {
		t.Fatalf("helper: %q", got)
	}
	h.finish(t)
	t.Logf("%d passages, %.1f MiB of JSON lines: peak RSS of the build %.0f MiB (%.2f bytes per corpus byte, fixed costs included)",
		n, float64(size)/(1<<20), float64(kb)/1024, float64(kb)*1024/float64(size))
	ix := open(t, out)
	if ix.Manifest.Passages != n || !ix.HasPages() || ix.HasDense() {
		t.Fatalf("manifest %+v", ix.Manifest)
	}
	rows := 0
	var sample []Passage
	if _, err := ReadCorpus(context.Background(), corpus, nil, func(want Passage) error {
		want.Row = rows
		want.Range = &data.PassageRange{Page: want.Page, First: rows % synthcorpus.PerPage, Last: rows % synthcorpus.PerPage}
		got, err := ix.Row(rows)
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(got, want) {
			return fmt.Errorf("row %d: %+v, the stream has %+v", rows, got, want)
		}
		if rows%997 == 0 {
			sample = append(sample, want)
		}
		rows++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if rows != n {
		t.Fatalf("the stream has %d passages", rows)
	}
	for _, want := range sample {
		if got, err := ix.Get(want.ID); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("Get(%s): %+v %v", want.ID, got, err)
		}
		if ix.Page(want.ID) != want.Page {
			t.Fatalf("Page(%s) = %s", want.ID, ix.Page(want.ID))
		}
	}
	hs, err := ix.SparseSearch(context.Background(), sample[3].Text, 3, bm25.Params{})
	if err != nil || len(hs) == 0 || hs[0].ID != sample[3].ID {
		t.Fatalf("BM25 search for a passage's text: %+v %v", hs, err)
	}
}
