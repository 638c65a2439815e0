package bm25

import (
	"context"
	"errors"
	"github.com/re2g/re2g/internal/dirtest"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/re2g/re2g/data"
)

func TestOpenReadOnlyWritesNothingAndSharesTheIndex(t *testing.T) {
	ix, dir := newIndex(t, Flat, tiny)
	want, err := ix.Search(ctx, "delegates", 5, Params{})
	if err != nil {
		t.Fatal(err)
	}
	// statistics out of date, as after a crash: a read-only open recounts in
	// memory only
	if err := ix.bi.SetInternal([]byte(keyStats), []byte(`{"contents": {"docs": 9, "sum_len": 1}, "_passages": {"docs": 1}}`)); err != nil {
		t.Fatal(err)
	}
	ix.Close()
	time.Sleep(10 * time.Millisecond) // mtimes would move
	before := dirtest.State(t, dir)
	a, err := OpenReadOnly(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenReadOnly(ctx, dir) // a second reader at the same time
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Index{a, b} {
		got, err := r.Search(ctx, "delegates", 5, Params{})
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("read-only search %v %v, want %v", got, err, want)
		}
		if _, ok, err := r.Passage(tiny[0].ID); !ok || err != nil {
			t.Fatalf("passage: %v %v", ok, err)
		}
	}
	if err := a.Add(ctx, tiny, nil); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Add on a read-only index: %v", err)
	}
	if _, err := a.Delete(ctx, []string{tiny[0].ID}); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Delete on a read-only index: %v", err)
	}
	if err := a.Optimize(ctx); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Optimize on a read-only index: %v", err)
	}
	a.Close()
	b.Close()
	after := dirtest.State(t, dir)
	if !reflect.DeepEqual(before, after) {
		for p, v := range after {
			if before[p] != v {
				t.Errorf("%s changed", p)
			}
		}
		t.Fatalf("opening read-only and searching changed the index (%d files before, %d after)", len(before), len(after))
	}
}

func TestOpenReadOnlyWaitsForAWriterUntilTheContextEnds(t *testing.T) {
	ix, dir := newIndex(t, Flat, tiny)
	ix.Close()
	w, err := Open(dir) // a writer: bolt's exclusive lock
	if err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = OpenReadOnly(c, dir)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "open for writing") {
		t.Fatalf("want a deadline error naming the writer, got %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the wait ended %v after a 300ms deadline", d)
	}
	w.Close()
	r, err := OpenReadOnly(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
}

// TestTiesByPassageID: two indexes of the same passages, inserted in
// different orders and batches (so different internal document numbers and
// segments), rank equal scores the same way: by passage id.
func TestTiesByPassageID(t *testing.T) {
	sq, err := data.LoadSQuAD(sharedData(t, "squadshifts/new_wiki_v1.0.json"), &data.Report{})
	if err != nil {
		t.Fatal(err)
	}
	ps := sq.Passages[:600]
	// corpora hold duplicate passages under other ids: exact ties
	for i := 0; i < len(ps); i += 7 {
		ps = append(ps, data.Passage{ID: "dup-" + ps[i].ID, Title: ps[i].Title, Text: ps[i].Text})
	}
	a, _ := newIndex(t, Flat, ps)
	if err := a.Optimize(ctx); err != nil {
		t.Fatal(err)
	}
	shuffled := append([]data.Passage(nil), ps...)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	b, _ := newIndex(t, Flat, shuffled[:200])
	if err := b.Add(ctx, shuffled[200:], nil); err != nil {
		t.Fatal(err)
	}
	queries := []string{"the", "city", "university", "war", "church"} // single common terms: many equal scores
	for i, q := range sq.Queries() {
		if i == 300 {
			break
		}
		queries = append(queries, q.Text)
	}
	ties, boundary := 0, 0
	for _, q := range queries {
		for _, k := range []int{3, 10} {
			ra, err := a.Search(ctx, q, k, Params{})
			if err != nil {
				t.Fatal(err)
			}
			rb, err := b.Search(ctx, q, k, Params{})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ra, rb) {
				t.Fatalf("query %q, k %d: the two builds rank\n%v\n%v", q, k, ra, rb)
			}
			for j := 1; j < len(ra); j++ {
				if ra[j].Score == ra[j-1].Score {
					ties++
					if ra[j].ID < ra[j-1].ID {
						t.Fatalf("query %q: equal scores not by id: %v", q, ra)
					}
				}
			}
			if len(ra) == k {
				if full, _ := a.Search(ctx, q, k+1, Params{}); len(full) == k+1 && full[k].Score == ra[k-1].Score {
					boundary++
				}
			}
		}
	}
	if ties == 0 || boundary == 0 {
		t.Fatalf("the queries gave %d ties and %d ties at the k-th place: the test would not see an order that depends on the build", ties, boundary)
	}
	t.Logf("%d queries: %d equal-score neighbours, %d ties at the k-th place", len(queries), ties, boundary)
}
