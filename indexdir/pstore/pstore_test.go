package pstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/re2g/re2g/data"
)

func write(t *testing.T, dir string, ps []Passage) error {
	t.Helper()
	w, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if err := w.Add(p); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Close(context.Background())
}

// samples covers every page kind and range form.
func samples() []Passage {
	return []Passage{
		{Line: 1, ID: "290::[1,3]", Page: "290", Title: "Autism", Text: "Autism is a developmental disorder."},
		{Line: 1, ID: "290::(3,4]", Page: "290", Title: "Autism", Text: "the end of paragraph 3"},
		{Line: 2, ID: "291::[0,0)", Page: "other", Title: "Cut", Text: "the beginning of paragraph 0"},
		{Line: 3, ID: "Normans#0", Page: "Normans", Title: "Normans", Text: "The Normans were..."},
		{Line: 4, ID: "doc-7", Title: "", Text: "no title, no page, \"quotes\" and ünïcödé"},
		{Line: 0, ID: "12345", Page: "12345", Title: "T", Text: strings.Repeat("long text ", 3000)},
	}
}

func TestRowsAndIDs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "passages")
	ps := samples()
	if err := write(t, dir, ps); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Len() != len(ps) {
		t.Fatalf("Len %d, want %d", s.Len(), len(ps))
	}
	for i, want := range ps {
		want.Row = i
		if r, ok := data.ParsePassageID(want.ID); ok {
			want.Range = &r
		}
		got, err := s.Row(i)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("row %d: %+v, want %+v", i, got, want)
		}
		row, err := s.Lookup(want.ID)
		if err != nil || row != i {
			t.Fatalf("Lookup(%q) = %d, %v; want %d", want.ID, row, err, i)
		}
		byID, err := s.Get(want.ID)
		if err != nil || !reflect.DeepEqual(byID, want) {
			t.Fatalf("Get(%q) = %+v, %v", want.ID, byID, err)
		}
		if id, err := s.ID(i); err != nil || id != want.ID {
			t.Fatalf("ID(%d) = %q, %v", i, id, err)
		}
	}
	for _, unknown := range []string{"", "nope", "290::[1,4]", "doc-70", "Normans#"} {
		_, err := s.Lookup(unknown)
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), fmt.Sprintf("%q", unknown)) || !strings.Contains(err.Error(), dir) {
			t.Fatalf("Lookup(%q): %v; want ErrNotFound naming the id and the store", unknown, err)
		}
	}
	for _, row := range []int{-1, len(ps), 1 << 50} {
		if _, err := s.Row(row); !errors.Is(err, ErrRange) || !strings.Contains(err.Error(), fmt.Sprint(row)) {
			t.Fatalf("Row(%d): %v; want ErrRange naming the row", row, err)
		}
	}
	var scanned []Passage
	if err := s.Scan(context.Background(), 1, len(ps), func(p Passage) error { scanned = append(scanned, p); return nil }); err != nil {
		t.Fatal(err)
	}
	for i, p := range scanned {
		want, _ := s.Row(i + 1)
		if !reflect.DeepEqual(p, want) {
			t.Fatalf("Scan row %d: %+v, Row: %+v", i+1, p, want)
		}
	}
	if len(scanned) != len(ps)-1 {
		t.Fatalf("Scan gave %d rows", len(scanned))
	}
	if err := s.Scan(context.Background(), 2, 1, func(Passage) error { return nil }); !errors.Is(err, ErrRange) {
		t.Fatalf("Scan(2, 1): %v", err)
	}
}

// TestManyIDs: every id of 200k (many sharing long prefixes, as KILT's do)
// is found at its row from several goroutines at once, and near misses are
// not.
func TestManyIDs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "passages")
	const n = 200_000
	w, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := w.Add(Passage{ID: fmt.Sprintf("%d::[%d,%d]", i/7, i%7, i%7), Page: fmt.Sprint(i / 7), Text: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += 4 {
				id := fmt.Sprintf("%d::[%d,%d]", i/7, i%7, i%7)
				if row, err := s.Lookup(id); err != nil || row != i {
					errs <- fmt.Errorf("Lookup(%q) = %d, %v; want %d", id, row, err, i)
					return
				}
				miss := fmt.Sprintf("%d::[%d,%d]", i/7, i%7, i%7+1)
				if _, err := s.Lookup(miss); !errors.Is(err, ErrNotFound) {
					errs <- fmt.Errorf("Lookup(%q): %v", miss, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	p, err := s.Row(n - 1)
	if err != nil || p.Page != fmt.Sprint((n-1)/7) || p.Range == nil || p.Range.Page != p.Page {
		t.Fatalf("last row: %+v %v", p, err)
	}
}

func TestDuplicateIDs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "passages")
	ps := []Passage{{Line: 3, ID: "a", Text: "1"}, {Line: 4, ID: "b", Text: "2"}, {Line: 9, ID: "a", Text: "3"}}
	err := write(t, dir, ps)
	var dup *DuplicateError
	if !errors.As(err, &dup) || dup.ID != "a" || dup.Line != 9 || dup.FirstLine != 3 || dup.Row != 2 || dup.FirstRow != 0 {
		t.Fatalf("duplicate ids: %v (%+v)", err, dup)
	}
	if !strings.Contains(err.Error(), "line 9") || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("the error does not name both lines: %v", err)
	}
	// nothing is left behind
	if ents, _ := os.ReadDir(filepath.Dir(dir)); len(ents) != 0 {
		t.Fatalf("a failed store left %v", ents)
	}
	if err := write(t, dir, ps[:2]); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(dir); err == nil {
		t.Fatal("Create over an existing store succeeded")
	}
}

// TestDamage: a store file cut short, grown, or with a changed header is an
// error naming the file when the store opens; a damaged record is one
// naming the data file when it is read (the index manifest's checksums
// catch every changed byte before that).
func TestDamage(t *testing.T) {
	good := filepath.Join(t.TempDir(), "passages")
	if err := write(t, good, samples()); err != nil {
		t.Fatal(err)
	}
	cp := func(t *testing.T) string {
		dst := filepath.Join(t.TempDir(), "passages")
		os.MkdirAll(dst, 0o755)
		for _, f := range []string{DataFile, OffsetsFile, IDsFile} {
			b, err := os.ReadFile(filepath.Join(good, f))
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dst, f), b, 0o644)
		}
		return dst
	}
	for _, f := range []string{DataFile, OffsetsFile, IDsFile} {
		for _, d := range []struct {
			name string
			do   func([]byte) []byte
		}{
			{"truncated", func(b []byte) []byte { return b[:len(b)/2] }},
			{"grown", func(b []byte) []byte { return append(b, 0, 0, 0, 0, 0, 0, 0, 0) }},
			{"header", func(b []byte) []byte { b[3] ^= 0xff; return b }},
			{"empty", func(b []byte) []byte { return nil }},
		} {
			t.Run(f+"/"+d.name, func(t *testing.T) {
				dir := cp(t)
				p := filepath.Join(dir, f)
				b, _ := os.ReadFile(p)
				os.WriteFile(p, d.do(b), 0o644)
				s, err := Open(dir)
				if err == nil {
					s.Close()
					t.Fatal("opened")
				}
				if !strings.Contains(err.Error(), p) {
					t.Fatalf("the error does not name %s: %v", p, err)
				}
			})
		}
		t.Run(f+"/missing", func(t *testing.T) {
			dir := cp(t)
			os.Remove(filepath.Join(dir, f))
			if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), f) {
				t.Fatalf("a missing %s: %v", f, err)
			}
		})
	}
	t.Run("record", func(t *testing.T) {
		dir := cp(t)
		p := filepath.Join(dir, DataFile)
		b, _ := os.ReadFile(p)
		// the first record's id length, made longer than the record
		b[len(dataMagic)+1] = 0x7f
		os.WriteFile(p, b, 0o644)
		s, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.Row(0); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), p) {
			t.Fatalf("a damaged record: %v", err)
		}
		if _, err := s.Row(1); err != nil {
			t.Fatalf("the next record: %v", err)
		}
		if _, err := s.Lookup("290::[1,3]"); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("looking up the damaged record's id: %v", err)
		}
	})
}

func TestAddChecks(t *testing.T) {
	w, err := Create(filepath.Join(t.TempDir(), "passages"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if err := w.Add(Passage{Text: "no id"}); err == nil {
		t.Fatal("an empty id was added")
	}
	if err := w.Add(Passage{ID: "x", Text: strings.Repeat("x", maxField+1)}); err == nil || !strings.Contains(err.Error(), `"x"`) {
		t.Fatalf("an oversized text: %v", err)
	}
}

func TestEmptyStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "passages")
	if err := write(t, dir, nil); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Lookup("a"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	if _, err := s.Row(0); !errors.Is(err, ErrRange) {
		t.Fatal(err)
	}
}

// TestChangedBytesNeverPanic changes each byte of the offsets and id
// files, and bytes all over the data file, of a store the open checks
// accept (an index opened without reading every byte: its passages are
// read lazily): every read — by row, by id, a scan — returns the passage,
// or an error naming the store's file, and never panics.
func TestChangedBytesNeverPanic(t *testing.T) {
	good := filepath.Join(t.TempDir(), "passages")
	ps := samples()
	if err := write(t, good, ps); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range []string{DataFile, OffsetsFile, IDsFile} {
		b, err := os.ReadFile(filepath.Join(good, f))
		if err != nil {
			t.Fatal(err)
		}
		files[f] = b
	}
	dir := filepath.Join(t.TempDir(), "passages")
	os.MkdirAll(dir, 0o755)
	opened, failed := 0, 0
	for _, f := range []string{OffsetsFile, IDsFile, DataFile} {
		b := files[f]
		var at []int
		for i := range b {
			if f != DataFile || i < 400 || i%97 == 0 {
				at = append(at, i)
			}
		}
		for _, i := range at {
			for _, x := range []byte{0xff, 0x01, 0x80} {
				for g, c := range files {
					if g == f {
						c = bytes.Clone(c)
						c[i] ^= x
					}
					if err := os.WriteFile(filepath.Join(dir, g), c, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				s, err := Open(dir)
				if err != nil {
					if !strings.Contains(err.Error(), dir) {
						t.Fatalf("%s byte %d ^ %#x: open: the error does not name the store: %v", f, i, x, err)
					}
					continue
				}
				opened++
				named := func(err error) {
					t.Helper()
					if err != nil {
						failed++
						if !strings.Contains(err.Error(), filepath.Join(dir, "passages.")) {
							t.Fatalf("%s byte %d ^ %#x: the error does not name the store's file: %v", f, i, x, err)
						}
					}
				}
				for r := range s.Len() {
					_, err := s.Row(r)
					named(err)
					_, err = s.ID(r)
					named(err)
				}
				for _, p := range ps {
					_, err := s.Get(p.ID)
					if !errors.Is(err, ErrNotFound) {
						named(err)
					}
				}
				if _, err := s.Lookup("not-there"); !errors.Is(err, ErrNotFound) {
					named(err)
				}
				named(s.Scan(context.Background(), 0, s.Len(), func(Passage) error { return nil }))
				s.Close()
			}
		}
	}
	if opened == 0 || failed == 0 {
		t.Fatalf("%d damaged stores opened, %d reads failed: the test no longer reaches the lazy reads", opened, failed)
	}
	t.Logf("%d damaged stores opened; %d reads of them failed, naming the file", opened, failed)
}
