package bm25

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/blevesearch/bleve/v2/index/scorch"
	segment "github.com/blevesearch/scorch_segment_api/v2"

	"github.com/re2g/re2g/data"
)

// filler is text that does not compress to nothing.
func filler(i int) string {
	var b strings.Builder
	x := uint64(i)*2654435761 + 1
	for range 150 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		fmt.Fprintf(&b, "%x ", x%1000003)
	}
	return b.String()
}

// liveBytes is the size of the segment files of ix's current snapshot
// (not of files bleve has yet to remove).
func liveBytes(t *testing.T, ix *Index) int64 {
	t.Helper()
	r, err := ix.adv.Reader()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var n int64
	for _, ss := range r.(*scorch.IndexSnapshot).Segments() {
		ps, ok := ss.Segment().(segment.PersistedSegment)
		if !ok {
			t.Fatal("a segment not on disk after Optimize")
		}
		st, err := os.Stat(ps.Path())
		if err != nil {
			t.Fatal(err)
		}
		n += st.Size()
	}
	return n
}

// TestExternalText: an index that keeps no text scores exactly as one that
// does, in either field layout, and is smaller; what needs the text says
// so instead of returning empty passages or wrong statistics.
func TestExternalText(t *testing.T) {
	var ps []data.Passage
	for i := range 400 {
		ps = append(ps, data.Passage{ID: fmt.Sprintf("p%d", i), Title: fmt.Sprintf("Title %d", i%9),
			Text: fmt.Sprintf("alpha%d beta%d gamma shared words, and a longer text to store %d %d %s", i%7, i%13, i, i*i, filler(i))})
	}
	for _, fields := range []string{Flat, MultiField} {
		t.Run(fields, func(t *testing.T) {
			stored, _ := newIndex(t, fields, ps)
			dir := filepath.Join(t.TempDir(), "ext")
			ext, err := Create(dir, Options{Fields: fields, ExternalText: true})
			if err != nil {
				t.Fatal(err)
			}
			defer ext.Close()
			if err := ext.Add(ctx, ps[:200], nil); err != nil {
				t.Fatal(err)
			}
			if err := ext.Add(ctx, ps[200:], nil); err != nil { // a second batch, over an index with passages
				t.Fatal(err)
			}
			for _, ix := range []*Index{stored, ext} {
				if err := ix.Optimize(ctx); err != nil {
					t.Fatal(err)
				}
			}
			for _, q := range []string{"alpha3 gamma", "beta5 alpha1 words title", "Title 4", "shared"} {
				want, err1 := stored.Search(ctx, q, 20, Params{})
				got, err2 := ext.Search(ctx, q, 20, Params{})
				if err1 != nil || err2 != nil || !reflect.DeepEqual(got, want) || len(got) == 0 {
					t.Fatalf("%q: %v %v, with stored text %v %v", q, got, err2, want, err1)
				}
			}
			if !ext.ExternalText() || stored.ExternalText() {
				t.Fatal("ExternalText() does not say how the index was made")
			}
			if _, _, err := ext.Passage("p1"); !errors.Is(err, ErrExternalText) {
				t.Fatalf("Passage: %v", err)
			}
			if err := ext.Add(ctx, []data.Passage{{ID: "new", Text: "fresh"}, ps[5]}, nil); !errors.Is(err, ErrExternalText) {
				t.Fatalf("replacing a passage: %v", err)
			}
			if n, _ := ext.Count(); n != 400 {
				t.Fatalf("a failed batch changed the count to %d", n)
			}
			if _, err := ext.Delete(ctx, []string{"p7"}); !errors.Is(err, ErrExternalText) {
				t.Fatalf("deleting a passage: %v", err)
			}
			if n, err := ext.Delete(ctx, []string{"absent"}); n != 0 || err != nil {
				t.Fatalf("deleting an absent passage: %d %v", n, err)
			}
			ids, err := ext.IDs(ctx)
			if err != nil || len(ids) != 400 {
				t.Fatalf("IDs: %d %v", len(ids), err)
			}
			a, b := liveBytes(t, ext), liveBytes(t, stored)
			t.Logf("segments: %d bytes without text, %d with", a, b)
			if a*2 >= b {
				t.Fatalf("without text %d bytes, with %d", a, b)
			}
			ext.Close()
			stored.Close()
			ro, err := OpenReadOnly(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			defer ro.Close()
			if !ro.ExternalText() {
				t.Fatal("reopened, the index forgot it keeps no text")
			}
			if hs, err := ro.Search(ctx, "alpha3 gamma", 5, Params{}); err != nil || len(hs) != 5 {
				t.Fatalf("search after reopening: %v %v", hs, err)
			}
			ro.Close()
			// statistics out of date (a crash between a batch and them) cannot
			// be recounted without the text
			w, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.bi.SetInternal([]byte(keyStats), []byte(`{"_passages": {"docs": 3}}`)); err != nil {
				t.Fatal(err)
			}
			w.Close()
			if _, err := OpenReadOnly(ctx, dir); !errors.Is(err, ErrExternalText) {
				t.Fatalf("out-of-date statistics: %v", err)
			}
		})
	}
}
