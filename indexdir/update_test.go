package indexdir

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/re2g/re2g/bm25"
	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/internal/dirtest"
	"github.com/re2g/re2g/internal/tinymodels"
)

// kiltFile writes passages as KILT passage lines (pages "page-" + title).
func kiltFile(t testing.TB, ps []data.Passage) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "passages.jsonl")
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, x := range ps {
		enc.Encode(map[string]string{"id": x.ID, "wikipedia_id": "page-" + x.Title, "title": x.Title, "text": x.Text})
	}
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// updateQueries are BM25 queries for comparing indexes.
var updateQueries = []string{"city university", "the population of the state", "Normans", "who built the cathedral", "war and peace treaty"}

// state is what an index answers: its passage ids, and its BM25 and dense
// top 10 (ids and scores) for updateQueries and fixed random vectors.
type state struct {
	Generation int
	IDs        []string
	Sparse     [][]Hit
	Dense      [][]Hit
}

func stateOf(t *testing.T, ix *Index) state {
	t.Helper()
	ctx := context.Background()
	s := state{Generation: ix.Manifest.Generation}
	var err error
	if s.IDs, err = ix.PassageIDs(ctx); err != nil {
		t.Fatal(err)
	}
	for _, q := range updateQueries {
		hs, err := ix.SparseSearch(ctx, q, 10, bm25.Params{})
		if err != nil {
			t.Fatal(err)
		}
		s.Sparse = append(s.Sparse, hs)
	}
	if ix.HasDense() {
		rng := rand.New(rand.NewPCG(3, 4))
		for range 6 {
			q := make([]float32, ix.Dim())
			for i := range q {
				q[i] = float32(rng.NormFloat64())
			}
			hs, err := ix.DenseSearch(ctx, [][]float32{q}, 10, 0)
			if err != nil {
				t.Fatal(err)
			}
			for i := range hs[0] {
				hs[0][i].Score = math.Round(hs[0][i].Score*1e4) / 1e4 // vectors encoded in other batches differ in the last bits
			}
			s.Dense = append(s.Dense, hs[0])
		}
	}
	return s
}

func openState(t *testing.T, dir string) state {
	t.Helper()
	ix, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	return stateOf(t, ix)
}

// liveVectors are the stored vectors of every live passage, by id.
func liveVectors(t *testing.T, ix *Index) map[string][]float32 {
	t.Helper()
	ids, err := ix.PassageIDs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	vecs, found, err := ix.Vectors(ids)
	if err != nil {
		t.Fatal(err)
	}
	d := ix.Dim()
	out := map[string][]float32{}
	for i, id := range ids {
		if !found[i] {
			t.Fatalf("no vector for live passage %s", id)
		}
		out[id] = vecs[i*d : (i+1)*d]
	}
	return out
}

func sameState(t *testing.T, what string, got, want state) {
	t.Helper()
	if !reflect.DeepEqual(got.IDs, want.IDs) {
		t.Fatalf("%s: passage ids\n got %v\nwant %v", what, got.IDs, want.IDs)
	}
	for i := range want.Sparse {
		if !reflect.DeepEqual(got.Sparse[i], want.Sparse[i]) {
			t.Fatalf("%s: BM25 %q:\n got %v\nwant %v", what, updateQueries[i], hitIDs(got.Sparse[i]), hitIDs(want.Sparse[i]))
		}
	}
	for i := range want.Dense {
		if !reflect.DeepEqual(hitIDs(got.Dense[i]), hitIDs(want.Dense[i])) {
			t.Fatalf("%s: dense query %d:\n got %v\nwant %v", what, i, hitIDs(got.Dense[i]), hitIDs(want.Dense[i]))
		}
	}
}

func hitIDs(hs []Hit) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = fmt.Sprintf("%s %.4f", h.ID, h.Score)
	}
	return out
}

// without is ps less the passages with the given ids.
func without(ps []data.Passage, ids ...string) []data.Passage {
	var out []data.Passage
	for _, p := range ps {
		if !slices.Contains(ids, p.ID) {
			out = append(out, p)
		}
	}
	return out
}

// updateIndex builds, in a directory of its own, the index an update test
// starts from: a dense index of the first k of n SQuAD passages. It returns
// the directory, the passages, and options that update the index with the
// context encoder that built it.
func updateIndex(t *testing.T, n, k int) (string, []data.Passage, UpdateOptions) {
	t.Helper()
	encDir := ctxEncoderDir(t)
	o := UpdateOptions{Encoder: loadEncoder(t, encDir, 0), EncoderDir: encDir, Progress: io.Discard}
	ps := squadPassages(t, n)
	dir := filepath.Join(t.TempDir(), "index")
	buildWith(t, kiltFile(t, ps[:k]), dir, o)
	return dir, ps, o
}

// buildWith builds a dense index (chunks of 8) of corpus in out with o's
// encoder.
func buildWith(t testing.TB, corpus, out string, o UpdateOptions) *Manifest {
	t.Helper()
	return build(t, corpus, Options{Out: out, Encoder: o.Encoder, EncoderDir: o.EncoderDir, Chunk: 8, Progress: io.Discard})
}

// TestAddDeleteCompactEqualsFreshBuild: passages added to an index (a
// segment of their own) are found by BM25 and dense search; deleted ones
// are found by neither, and every top 10 stays full; after each step BM25
// answers exactly (ids and scores) as a build of the corpus the index then
// holds, dense search finds the exact top 5 of the live vectors, and, once
// compacted, the index is one segment whose dense top 10 is the fresh
// build's, with no file of earlier generations left.
func TestAddDeleteCompactEqualsFreshBuild(t *testing.T) {
	ctx := context.Background()
	dir, ps, o := updateIndex(t, 60, 40)
	a, b := ps[:40], ps[40:]
	fresh := func(t *testing.T, ps []data.Passage) state {
		t.Helper()
		out := filepath.Join(t.TempDir(), "fresh")
		buildWith(t, kiltFile(t, ps), out, o)
		return openState(t, out)
	}

	m, err := Add(ctx, dir, kiltFile(t, b), o)
	if err != nil {
		t.Fatal(err)
	}
	if m.Generation != 1 || m.Passages != 60 || m.Deleted != 0 || len(m.Segments) != 2 || m.Dense.Vectors != 60 || m.Segments[1].Rows != 20 {
		t.Fatalf("manifest after add: %+v", m)
	}
	ix := open(t, dir)
	got := stateOf(t, ix)
	want := fresh(t, ps)
	sameState(t, "added", got, want)
	hs, err := ix.SparseSearch(ctx, b[5].Text, 1, bm25.Params{})
	if err != nil || len(hs) != 1 || hs[0].ID != b[5].ID {
		t.Fatalf("BM25 search for an added passage's text: %v %v", hs, err)
	}
	if ix.Page(b[5].ID) != "page-"+b[5].Title {
		t.Fatalf("the page of an added passage: %q", ix.Page(b[5].ID))
	}
	vecs := liveVectors(t, ix)
	checkDense(t, ix, vecs)
	fromB := 0
	for _, q := range got.Dense {
		for _, h := range q {
			if slices.ContainsFunc(b, func(p data.Passage) bool { return p.ID == h.ID }) {
				fromB++
			}
		}
	}
	if fromB == 0 {
		t.Fatal("no dense hit is an added passage")
	}
	// delete passages of both segments, among them the dense and BM25 top hits
	gone := []string{a[3].ID, a[17].ID, b[2].ID, got.Sparse[0][0].ID, got.Dense[0][0].ID, got.Dense[0][1].ID}
	m, err = Delete(ctx, dir, gone, o)
	if err != nil {
		t.Fatal(err)
	}
	gone = slices.Compact(slices.Sorted(slices.Values(gone)))
	live := without(ps, gone...)
	if m.Generation != 2 || m.Passages != len(live) || m.Deleted != len(gone) || m.Dense.Vectors != len(live) {
		t.Fatalf("manifest after delete: %+v", m)
	}
	ix = open(t, dir)
	got = stateOf(t, ix)
	for i, hs := range append(got.Sparse, got.Dense...) {
		if i >= len(got.Sparse) && len(hs) != 10 {
			t.Fatalf("a dense top 10 of %d hits after deleting", len(hs))
		}
		for _, h := range hs {
			if slices.Contains(gone, h.ID) {
				t.Fatalf("deleted passage %s found", h.ID)
			}
		}
	}
	for _, id := range gone {
		if _, ok, err := ix.Passage(id); ok || err != nil {
			t.Fatalf("deleted passage %s: %v %v", id, ok, err)
		}
	}
	want = fresh(t, live)
	sameState(t, "deleted", got, want)
	// the corpus the index holds now, written out, builds the same index
	written := filepath.Join(t.TempDir(), "written.jsonl")
	if err := ix.WriteCorpus(ctx, written); err != nil {
		t.Fatal(err)
	}
	rebuilt := filepath.Join(t.TempDir(), "rebuilt")
	buildWith(t, written, rebuilt, o)
	sameState(t, "rebuilt from WriteCorpus", openState(t, rebuilt), want)
	if rix := open(t, rebuilt); !rix.HasPages() || rix.Page(live[0].ID) != "page-"+live[0].Title {
		t.Fatal("WriteCorpus lost the pages")
	}
	delete(vecs, "")
	for _, id := range gone {
		delete(vecs, id)
	}
	checkDense(t, ix, vecs)

	m, err = Compact(ctx, dir, o)
	if err != nil {
		t.Fatal(err)
	}
	if m.Generation != 3 || m.Passages != len(live) || m.Deleted != 0 || len(m.Segments) != 1 || m.Tombstones != "" || m.Segments[0].Rows != len(live) {
		t.Fatalf("manifest after compact: %+v", m)
	}
	got = openState(t, dir)
	sameState(t, "compacted", got, want)
	checkDense(t, open(t, dir), vecs)
	for _, f := range files(t, dir) {
		if f != manifestFile && !strings.HasPrefix(f, "g000003/") {
			t.Fatalf("compacted index still has %s", f)
		}
	}
	if m2, err := Compact(ctx, dir, o); err != nil || m2.Generation != 3 {
		t.Fatalf("compacting a compact index: %v %+v", err, m2)
	}
	if _, err := VerifyIndex(ctx, dir); err != nil {
		t.Fatal(err)
	}
}

// TestUpdateRefusals: what Add and Delete refuse, with errors that say
// why; Replace replaces; IgnoreMissing skips.
func TestUpdateRefusals(t *testing.T) {
	ctx := context.Background()
	dir, ps, o := updateIndex(t, 40, 30)
	before := fileState(t, dir)
	unchanged := func(what string) {
		t.Helper()
		if after := fileState(t, dir); !reflect.DeepEqual(after, before) {
			t.Fatalf("%s changed the index:\n%v\n%v", what, before, after)
		}
	}
	// an id the index holds, on the corpus's line 2
	dup := kiltFile(t, []data.Passage{ps[35], ps[4], ps[36]})
	if _, err := Add(ctx, dir, dup, o); err == nil || !strings.Contains(err.Error(), dup+": line 2: passage id \""+ps[4].ID+"\" is in index") ||
		!strings.Contains(err.Error(), "--replace") {
		t.Fatalf("adding an id the index holds: %v", err)
	}
	unchanged("a refused add")
	// another encoder
	other, err := tinymodels.Write(t.TempDir(), tokenizerJSON(t), tinymodels.Tiny, 99)
	if err != nil {
		t.Fatal(err)
	}
	oenc := loadEncoder(t, other.CtxEncoder, 0)
	add := kiltFile(t, ps[30:32])
	if _, err := Add(ctx, dir, add, UpdateOptions{Encoder: oenc, EncoderDir: other.CtxEncoder, Progress: io.Discard}); err == nil ||
		!strings.Contains(err.Error(), "is not the one the vectors of index") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("adding with another encoder: %v", err)
	}
	if _, err := Add(ctx, dir, add, UpdateOptions{Progress: io.Discard}); err == nil || !strings.Contains(err.Error(), "--ctx-encoder") {
		t.Fatalf("adding to a dense index without an encoder: %v", err)
	}
	beir := filepath.Join(t.TempDir(), "beir.jsonl")
	f, _ := os.Create(beir)
	data.WriteCorpus(f, ps[30:32])
	f.Close()
	if _, err := Add(ctx, dir, beir, o); err == nil || !strings.Contains(err.Error(), "has no pages (BEIR)") {
		t.Fatalf("adding BEIR passages to a KILT index: %v", err)
	}
	if _, err := Delete(ctx, dir, []string{ps[1].ID, "no-such", "nor-this"}, o); err == nil ||
		!strings.Contains(err.Error(), `holds no passage "no-such" (nor 1 more of the ids)`) || !strings.Contains(err.Error(), "--ignore-missing") {
		t.Fatalf("deleting unknown ids: %v", err)
	}
	unchanged("refused updates")
	if m, err := Delete(ctx, dir, []string{"no-such"}, UpdateOptions{IgnoreMissing: true}); err != nil || m.Generation != 0 {
		t.Fatalf("deleting nothing: %v %+v", err, m)
	}
	unchanged("deleting nothing")
	// --force adds another encoder's vectors
	if m, err := Add(ctx, dir, add, UpdateOptions{Encoder: oenc, EncoderDir: other.CtxEncoder, Force: true, Progress: io.Discard}); err != nil || m.Passages != 32 {
		t.Fatalf("a forced add: %v %+v", err, m)
	}
	// replacing: the new text is found, the old one is not
	changed := ps[4]
	changed.Text = "Zanzibar quokka xylophone: a replaced passage."
	o.Replace = true
	m, err := Add(ctx, dir, kiltFile(t, []data.Passage{changed}), o)
	if err != nil {
		t.Fatal(err)
	}
	if m.Passages != 32 || m.Deleted != 1 {
		t.Fatalf("after replacing: %d passages, %d deleted", m.Passages, m.Deleted)
	}
	ix := open(t, dir)
	if hs, err := ix.SparseSearch(ctx, "zanzibar quokka", 5, bm25.Params{}); err != nil || len(hs) != 1 || hs[0].ID != changed.ID || hs[0].Text != changed.Text {
		t.Fatalf("the replaced passage's new text: %v %v", hs, err)
	}
	if p, ok, err := ix.Passage(changed.ID); !ok || err != nil || p.Text != changed.Text {
		t.Fatalf("the replaced passage: %+v %v %v", p, ok, err)
	}
	hs, err := ix.SparseSearch(ctx, ps[4].Text, 3, bm25.Params{})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		if h.ID == changed.ID && h.Text != changed.Text {
			t.Fatal("the old text of a replaced passage was found")
		}
	}
	ix.Close()
	// a BM25-only index refuses an encoder
	bdir := filepath.Join(t.TempDir(), "bm25only")
	build(t, kiltFile(t, ps[:5]), Options{Out: bdir, Progress: io.Discard})
	if _, err := Add(ctx, bdir, add, o); err == nil || !strings.Contains(err.Error(), "has no dense vectors") {
		t.Fatalf("an encoder for a BM25-only index: %v", err)
	}
	if m, err := Add(ctx, bdir, add, UpdateOptions{Progress: io.Discard}); err != nil || m.Passages != 7 || m.Dense != nil {
		t.Fatalf("adding to a BM25-only index: %v %+v", err, m)
	}
}

func TestReadIDs(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name, text string
		want       []string
		err        string
	}{
		{"plain", "\ufeffa\n\n  b \nc", []string{"a", "b", "c"}, ""},
		{"jsonl", `{"_id": "a", "title": "x"}` + "\n" + `{"pid": 7}` + "\n" + `{"id": "290::[1,3]"}` + "\n", []string{"a", "7", "290::[1,3]"}, ""},
		{"spaces", "a\nb c\n", nil, "line 2"},
		{"noid", `{"text": "x"}`, nil, `line 1: no "_id"`},
		{"badjson", `{"_id": `, nil, "line 1"},
	} {
		p := filepath.Join(dir, c.name)
		os.WriteFile(p, []byte(c.text), 0o644)
		got, err := ReadIDs(p)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), p+": "+c.err) {
				t.Errorf("%s: %v, want an error with %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %v %v, want %v", c.name, got, err, c.want)
		}
	}
	if _, err := ReadIDs(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing file")
	}
}

// TestFetchSizes: the over-fetch rule of DenseSearch.
func TestFetchSizes(t *testing.T) {
	for _, c := range []struct{ k, n, del, first, most int }{
		{10, 100, 0, 10, 10},
		{10, 5, 0, 5, 5},
		{10, 1000, 3, 13, 13},               // few deleted: k+D at once
		{10, 1000, 500, 30, 510},            // half deleted: 1.5·k·n/live first
		{10, 100000, 50000, 30, 4096},       // bounded
		{5000, 100000, 50000, 15000, 20000}, // k over the bound: 4k
		{10, 20, 19, 20, 20},                // all but one deleted: everything
	} {
		first, most := fetchSizes(c.k, c.n, c.del)
		if first != c.first || most != c.most {
			t.Errorf("fetchSizes(%d, %d, %d) = %d, %d; want %d, %d", c.k, c.n, c.del, first, most, c.first, c.most)
		}
	}
}

// TestDeletedNeighbourhood: a query whose nearest passages are all
// deleted (more than a first over-fetch holds) still gets a full top k,
// from further out, equal to the exact top k of the live vectors.
func TestDeletedNeighbourhood(t *testing.T) {
	ctx := context.Background()
	dir := dirtest.Copy(t, denseIndex(t))
	ix := open(t, dir)
	vecs := liveVectors(t, ix)
	q := vecs[mustIDs(t, ix)[0]]
	hs, err := ix.DenseSearch(ctx, [][]float32{q}, 20, 0)
	if err != nil {
		t.Fatal(err)
	}
	var gone []string
	for _, h := range hs[0][:18] {
		gone = append(gone, h.ID)
	}
	ix.Close()
	if _, err := Delete(ctx, dir, gone, UpdateOptions{Progress: io.Discard}); err != nil {
		t.Fatal(err)
	}
	ix = open(t, dir)
	got, err := ix.DenseSearch(ctx, [][]float32{q}, 5, 0)
	if err != nil || len(got[0]) != 5 {
		t.Fatalf("a query whose 18 nearest passages are deleted: %v %v", got, err)
	}
	for _, id := range gone {
		delete(vecs, id)
	}
	checkDense(t, ix, vecs)
	if got[0][0].ID != hs[0][18].ID {
		t.Fatalf("the best live hit is %s, want %s", got[0][0].ID, hs[0][18].ID)
	}
}

func mustIDs(t *testing.T, ix *Index) []string {
	t.Helper()
	ids, err := ix.PassageIDs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestOpenVersion3Index: an index whose manifest is version 3 (built
// before updates) opens, and an update makes it version 4.
func TestOpenVersion3Index(t *testing.T) {
	ctx := context.Background()
	dir := dirtest.Copy(t, denseIndex(t))
	m, err := readManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	m.Version, m.Segments = 3, nil
	if m.Dense != nil {
		m.Dense.EncoderSHA256 = ""
	}
	b, err := signManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, manifestFile), b, 0o644)
	want := openState(t, denseIndex(t))
	sameState(t, "version 3", openState(t, dir), want)
	m2, err := Delete(ctx, dir, []string{want.IDs[0]}, UpdateOptions{Progress: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if m2.Version != 4 || len(m2.Segments) != 1 || m2.Segments[0].Dir != "" || m2.Passages != 29 {
		t.Fatalf("updated version 3 manifest: %+v", m2)
	}
	if _, err := VerifyIndex(ctx, dir); err != nil {
		t.Fatal(err)
	}
}

// fileState is dirtest.State without the directories' modification times
// (a writer's lock file and temporary directory come and go).
func fileState(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := dirtest.State(t, dir)
	for p, v := range out {
		if strings.HasPrefix(v, "d") {
			out[p] = "dir"
		}
	}
	return out
}

// TestDeleteThenAddAgain: an id deleted can be added again (without
// Replace): the new passage is the one found, by id and by BM25.
func TestDeleteThenAddAgain(t *testing.T) {
	ctx := context.Background()
	dir := dirtest.Copy(t, squadIndex(t))
	ix := open(t, dir)
	p, err := ix.Get(mustIDs(t, ix)[10])
	if err != nil {
		t.Fatal(err)
	}
	ix.Close()
	if _, err := Delete(ctx, dir, []string{p.ID}, UpdateOptions{Progress: io.Discard}); err != nil {
		t.Fatal(err)
	}
	again := p.DataPassage()
	again.Text = "Zanzibar quokka xylophone, added again."
	m, err := Add(ctx, dir, kiltFile(t, []data.Passage{again}), UpdateOptions{Progress: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if m.Passages != 1581 || m.Deleted != 1 {
		t.Fatalf("after deleting and adding again: %d passages, %d deleted", m.Passages, m.Deleted)
	}
	ix = open(t, dir)
	got, err := ix.Get(p.ID)
	if err != nil || got.Text != again.Text || got.Row != 1581 {
		t.Fatalf("the passage added again: %+v %v", got, err)
	}
	hs, err := ix.SparseSearch(ctx, "zanzibar quokka", 3, bm25.Params{})
	if err != nil || len(hs) != 1 || hs[0].ID != p.ID || hs[0].Text != again.Text {
		t.Fatalf("BM25: %v %v", hs, err)
	}
}

// TestUpdatesLeaveHNSWUnread: an update opens the index without its HNSW
// graphs (SkipHNSW: neither loaded nor checksummed), so one whose graph
// file is damaged still takes a deletion, while a search opening still
// refuses the damaged file; an Index opened so refuses dense search.
func TestUpdatesLeaveHNSWUnread(t *testing.T) {
	ctx := context.Background()
	dir, ps, o := updateIndex(t, 12, 10)
	var graph string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == hnswFile {
			graph = p
		}
		return nil
	})
	b, err := os.ReadFile(graph)
	if err != nil {
		t.Fatalf("the index's HNSW file: %v", err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(graph, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, dir); err == nil || !strings.Contains(err.Error(), hnswFile) {
		t.Fatalf("opening an index with a damaged HNSW file: %v", err)
	}
	ix, err := OpenWith(ctx, dir, OpenOptions{SkipHNSW: true})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := ix.Get(ps[3].ID); err != nil || p.Text != ps[3].Text {
		t.Fatalf("Get without the graphs: %+v %v", p, err)
	}
	if _, err := ix.DenseSearch(ctx, [][]float32{make([]float32, ix.Manifest.Dense.Dim)}, 3, 0); err == nil || !strings.Contains(err.Error(), "SkipHNSW") {
		t.Fatalf("dense search of an index opened without its graphs: %v", err)
	}
	ix.Close()
	m, err := Delete(ctx, dir, []string{ps[3].ID}, o)
	if err != nil || m.Passages != 9 || m.Deleted != 1 {
		t.Fatalf("deleting from an index whose graph is damaged: %+v %v", m, err)
	}
	if _, err := Open(ctx, dir); err == nil || !strings.Contains(err.Error(), hnswFile) {
		t.Fatalf("after the deletion, the damaged HNSW file opens: %v", err)
	}
}

// TestReuseSharesUnchangedSegments: an Index opened with Reuse (a server's
// reload) shares the segments an update left alone with the Index of the
// generation before, searches as a fresh open does, keeps working when
// the earlier Index is closed first, and shares nothing a compaction
// rewrote or another directory holds.
func TestReuseSharesUnchangedSegments(t *testing.T) {
	ctx := context.Background()
	dir, ps, o := updateIndex(t, 30, 20)
	a, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Add(ctx, dir, kiltFile(t, ps[20:30]), o); err != nil {
		t.Fatal(err)
	}
	reopen := func(prev *Index) *Index {
		t.Helper()
		ix, err := OpenWith(ctx, dir, OpenOptions{Reuse: prev})
		if err != nil {
			t.Fatal(err)
		}
		return ix
	}
	queries := make([][]float32, 4)
	for i := range queries {
		queries[i] = make([]float32, a.Manifest.Dense.Dim)
		for j := range queries[i] {
			queries[i][j] = float32(math.Sin(float64(7*i + j)))
		}
	}
	// same: ix answers every query as a fresh open of the directory does
	same := func(ix *Index, what string) {
		t.Helper()
		fresh := open(t, dir)
		want, err := fresh.DenseSearch(ctx, queries, 8, 0)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ix.DenseSearch(ctx, queries, 8, 0)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: dense search %v (%v), a fresh open %v", what, got, err, want)
		}
		for _, p := range ps[:30] {
			g, gerr := ix.Get(p.ID)
			f, ferr := fresh.Get(p.ID)
			if g != f || (gerr == nil) != (ferr == nil) {
				t.Fatalf("%s: Get(%s) = %+v %v, a fresh open %+v %v", what, p.ID, g, gerr, f, ferr)
			}
		}
	}
	b := reopen(a)
	if len(b.segs) != 2 || b.segs[0].segFiles != a.segs[0].segFiles || b.segs[1].segFiles == a.segs[0].segFiles || b.segs[0].refs.Load() != 2 {
		t.Fatalf("after an add: %d segments, the first shared: %v", len(b.segs), b.segs[0].segFiles == a.segs[0].segFiles)
	}
	same(b, "after an add")
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	same(b, "after an add, the earlier Index closed")

	if _, err := Delete(ctx, dir, []string{ps[3].ID, ps[25].ID}, o); err != nil {
		t.Fatal(err)
	}
	c := reopen(b)
	if c.segs[0].segFiles != b.segs[0].segFiles || c.segs[1].segFiles != b.segs[1].segFiles || c.Len() != 28 {
		t.Fatalf("after a delete: segments shared %v %v, %d passages", c.segs[0].segFiles == b.segs[0].segFiles, c.segs[1].segFiles == b.segs[1].segFiles, c.Len())
	}
	if _, err := c.Get(ps[3].ID); err == nil {
		t.Fatal("a deleted passage is found through a shared segment")
	}
	same(c, "after a delete")

	copied := dirtest.Copy(t, dir)
	other, err := OpenWith(ctx, copied, OpenOptions{Reuse: c})
	if err != nil {
		t.Fatal(err)
	}
	if other.segs[0].segFiles == c.segs[0].segFiles {
		t.Fatal("a copy of the index in another directory shares a segment")
	}
	other.Close()

	if _, err := Compact(ctx, dir, o); err != nil {
		t.Fatal(err)
	}
	d := reopen(c)
	if len(d.segs) != 1 || d.segs[0].segFiles == c.segs[0].segFiles || d.segs[0].segFiles == c.segs[1].segFiles {
		t.Fatal("after a compaction a rewritten segment is shared")
	}
	same(d, "after a compaction")
	for _, ix := range []*Index{c, b, d} {
		if err := ix.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
