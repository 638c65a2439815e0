package bm25

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/internal/dirtest"
)

// extIndex builds an ExternalText index of ps in one segment and closes it.
func extIndex(t *testing.T, ps []data.Passage) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ext")
	ix, err := Create(dir, Options{ExternalText: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := ix.Add(ctx, ps, nil); err != nil {
		t.Fatal(err)
	}
	if err := ix.Optimize(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func genPassages(n int) []data.Passage {
	var ps []data.Passage
	for i := range n {
		ps = append(ps, data.Passage{ID: fmt.Sprintf("p%03d", i), Title: fmt.Sprintf("Title %d", i%9),
			Text: fmt.Sprintf("alpha%d beta%d gamma shared words %d %s", i%7, i%13, i, filler(i)[:200])})
	}
	return ps
}

// TestCloneUpdateEqualsFreshBuild: a clone of an index, updated (passages
// added, others deleted with the text the caller gives), scores exactly as
// an index built at once from the passages it ends with, before and after
// Compact, while the original, open read-only throughout, is unchanged on
// disk and in its answers, and shares its segment files with the clone.
func TestCloneUpdateEqualsFreshBuild(t *testing.T) {
	ps := genPassages(400)
	src := extIndex(t, ps[:300])
	reader, err := OpenReadOnly(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	queries := []string{"alpha3 beta5", "gamma shared", "Title 4 alpha1", "beta12 words"}
	var before [][]Hit
	for _, q := range queries {
		hs, err := reader.Search(ctx, q, 20, Params{})
		if err != nil {
			t.Fatal(err)
		}
		before = append(before, hs)
	}
	state := dirtest.State(t, src)

	dst := filepath.Join(t.TempDir(), "gen1")
	if err := Clone(ctx, src, dst); err != nil {
		t.Fatal(err)
	}
	shared := 0
	zaps, _ := filepath.Glob(filepath.Join(src, "store", "*.zap"))
	for _, z := range zaps {
		a, _ := os.Stat(z)
		b, err := os.Stat(filepath.Join(dst, "store", filepath.Base(z)))
		if err == nil && os.SameFile(a, b) {
			shared++
		}
	}
	if len(zaps) == 0 || shared != len(zaps) {
		t.Fatalf("%d of %d segment files hard-linked", shared, len(zaps))
	}
	up, err := OpenUpdate(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Add(ctx, ps[300:], nil); err != nil {
		t.Fatal(err)
	}
	gone := append(append([]data.Passage{}, ps[:40]...), data.Passage{ID: "nope", Text: "not there"})
	n, err := up.DeletePassages(ctx, gone)
	if err != nil || n != 40 {
		t.Fatalf("DeletePassages: %d %v", n, err)
	}
	fresh, err := Create(filepath.Join(t.TempDir(), "fresh"), Options{ExternalText: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if err := fresh.Add(ctx, ps[40:], nil); err != nil {
		t.Fatal(err)
	}
	same := func(stage string) {
		t.Helper()
		for _, q := range queries {
			got, err1 := up.Search(ctx, q, 20, Params{})
			want, err2 := fresh.Search(ctx, q, 20, Params{})
			if err1 != nil || err2 != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: %q:\n got %v %v\nwant %v %v", stage, q, got, err1, want, err2)
			}
		}
		if !reflect.DeepEqual(up.AvgLen(), fresh.AvgLen()) {
			t.Fatalf("%s: average lengths %v, fresh %v", stage, up.AvgLen(), fresh.AvgLen())
		}
	}
	same("updated")
	if err := up.Compact(ctx, ps[100]); err != nil {
		t.Fatal(err)
	}
	if segs, del, err := up.Segments(); segs != 1 || del != 0 || err != nil {
		t.Fatalf("compacted: %d segments, %d deleted documents, %v", segs, del, err)
	}
	same("compacted")
	if err := up.Close(); err != nil {
		t.Fatal(err)
	}
	for i, q := range queries {
		hs, err := reader.Search(ctx, q, 20, Params{})
		if err != nil || !reflect.DeepEqual(hs, before[i]) {
			t.Fatalf("the original's reader: %q: %v %v, want %v", q, hs, err, before[i])
		}
	}
	if after := dirtest.State(t, src); !reflect.DeepEqual(state, after) {
		t.Fatal("updating the clone changed the original's files")
	}
	re, err := OpenReadOnly(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	defer re.Close()
	if n, _ := re.Count(); n != 360 {
		t.Fatalf("the clone reopened holds %d passages, want 360", n)
	}
}

// TestCloneRefusesAndCleansUp: a clone over an existing path, or of a
// directory that is not an index, is an error that leaves nothing behind.
func TestCloneRefusesAndCleansUp(t *testing.T) {
	src := extIndex(t, genPassages(10))
	dst := t.TempDir()
	if err := Clone(ctx, src, dst); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("clone onto an existing directory: %v", err)
	}
	missing := filepath.Join(t.TempDir(), "x")
	if err := Clone(ctx, t.TempDir(), missing); err == nil {
		t.Fatal("cloned a directory without an index")
	}
	if _, err := os.Stat(missing); err == nil {
		t.Fatal("a failed clone left its destination")
	}
}

// TestSearchDamagedSegmentDoesNotPanic: a segment file with a stretch of
// bytes overwritten (which an open that checks sizes only does not see)
// makes opening or searching fail, naming the index, or answer; never
// crash the process (zapx panics on some such files while loading them or
// reading their postings: those panics come back as ErrDamaged).
func TestSearchDamagedSegmentDoesNotPanic(t *testing.T) {
	good := extIndex(t, genPassages(200))
	zaps, _ := filepath.Glob(filepath.Join(good, "store", "*.zap"))
	if len(zaps) != 1 {
		t.Fatalf("segments: %v", zaps)
	}
	st, _ := os.Stat(zaps[0])
	recovered := 0
	for _, frac := range []float64{0.02, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.97} {
		dir := dirtest.Copy(t, good)
		z := filepath.Join(dir, "store", filepath.Base(zaps[0]))
		f, err := os.OpenFile(z, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		junk := make([]byte, st.Size()/8)
		x := uint32(frac * 1e6)
		for i := range junk {
			x = x*1664525 + 1013904223
			junk[i] = byte(x >> 24)
		}
		f.WriteAt(junk, int64(frac*float64(st.Size())))
		f.Close()
		check := func(err error) {
			t.Helper()
			if errors.Is(err, ErrDamaged) {
				recovered++
				if !strings.Contains(err.Error(), dir) {
					t.Errorf("the error does not name the index: %v", err)
				}
			}
		}
		ix, err := OpenReadOnly(ctx, dir)
		if err != nil {
			check(err)
			continue
		}
		for _, q := range []string{"alpha3 beta5", "gamma shared words", "Title 4"} {
			_, err := ix.Search(ctx, q, 10, Params{})
			check(err)
		}
		ix.Close()
	}
	if recovered == 0 {
		t.Fatal("no damage reached a panic: the test no longer covers the recovery")
	}
}

// TestCompactOneSegmentDropsDeleted: deletions from an index of one
// segment stay as bleve's deletion bitmap until Compact, which leaves one
// segment without them and the scores of a fresh build.
func TestCompactOneSegmentDropsDeleted(t *testing.T) {
	ps := genPassages(120)
	dir := extIndex(t, ps)
	ix, err := OpenUpdate(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if n, err := ix.DeletePassages(ctx, ps[:30]); n != 30 || err != nil {
		t.Fatalf("delete: %d %v", n, err)
	}
	if segs, del, err := ix.Segments(); segs != 1 || del != 30 || err != nil {
		t.Fatalf("after deleting: %d segments, %d deleted documents, %v", segs, del, err)
	}
	if err := ix.Compact(ctx, ps[50]); err != nil {
		t.Fatal(err)
	}
	if segs, del, err := ix.Segments(); segs != 1 || del != 0 || err != nil {
		t.Fatalf("compacted: %d segments, %d deleted documents, %v", segs, del, err)
	}
	fresh := extIndex(t, ps[30:])
	fr, err := OpenReadOnly(ctx, fresh)
	if err != nil {
		t.Fatal(err)
	}
	defer fr.Close()
	for _, q := range []string{"alpha3 beta5", "gamma shared", "Title 4 alpha1"} {
		got, err1 := ix.Search(ctx, q, 20, Params{})
		want, err2 := fr.Search(ctx, q, 20, Params{})
		if err1 != nil || err2 != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\n got %v %v\nwant %v %v", q, got, err1, want, err2)
		}
	}
}

// TestCompactWithoutChanges: compacting (or optimizing) an index of one
// segment opened without changes returns at once (it used to wait for
// ever for bleve's background threads, which report busy until they
// persist a snapshot of their own).
func TestCompactWithoutChanges(t *testing.T) {
	ps := genPassages(50)
	dir := extIndex(t, ps)
	ix, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	c, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := ix.Compact(c, ps[3]); err != nil {
		t.Fatal(err)
	}
	if err := ix.Optimize(c); err != nil {
		t.Fatal(err)
	}
}
