package bm25

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blevesearch/bleve/v2/index/scorch"

	"github.com/re2g/re2g/data"
)

// segments is the number of segments of ix's current snapshot.
func segments(t *testing.T, ix *Index) int {
	t.Helper()
	r, err := ix.adv.Reader()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	return len(r.(*scorch.IndexSnapshot).Segments())
}

// TestOptimizeLeavesOneSegment: after Optimize an index written in many
// batches is one segment, as its doc says. bleve's force merge merges at
// most 10 segments a task, once: and returns before the merged snapshot is on disk: re2g
// index of 200,000 passages (20 batches) opened again with 12 segments.
func TestOptimizeLeavesOneSegment(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ix")
	ix, err := Create(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	for b := range 30 {
		var ps []data.Passage
		for i := range 400 {
			ps = append(ps, data.Passage{ID: fmt.Sprintf("p%d-%d", b, i), Text: fmt.Sprintf("batch%d word%d shared %s", b, i, strings.Repeat(fmt.Sprintf("w%d ", i*b), 20))})
		}
		if err := ix.Add(ctx, ps, nil); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d segments before Optimize", segments(t, ix))
	if err := ix.Optimize(ctx); err != nil {
		t.Fatal(err)
	}
	if n := segments(t, ix); n != 1 {
		t.Fatalf("%d segments after Optimize", n)
	}
	st := ix.adv.(*scorch.Scorch).StatsMap()
	if st["LastPersistedEpoch"] != st["CurRootEpoch"] {
		t.Fatalf("Optimize returned before its snapshot was on disk: persisted epoch %v, current %v", st["LastPersistedEpoch"], st["CurRootEpoch"])
	}
	want, err := ix.Search(ctx, "batch7 shared", 10, Params{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if n := segments(t, ro); n != 1 {
		t.Fatalf("%d segments on disk after Optimize", n)
	}
	got, err := ro.Search(ctx, "batch7 shared", 10, Params{})
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) || len(got) != 10 {
		t.Fatalf("search after reopening: %v %v, before %v", got, err, want)
	}
}
