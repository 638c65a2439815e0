package train

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/indexdir"
	"github.com/re2g/re2g/kilt"
)

// TestIndexPositivesByRow: the passage map IndexPositives builds by row from
// the passage store finds what one built from a list of every id and page
// finds.
func TestIndexPositivesByRow(t *testing.T) {
	dir := t.TempDir()
	corpus := filepath.Join(dir, "passages.jsonl")
	f, err := os.Create(corpus)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	pages := map[string]string{}
	enc := json.NewEncoder(f)
	for p := range 4 {
		for k := range 3 {
			id := fmt.Sprintf("%d::[%d,%d]", 100+p, 2*k, 2*k+1)
			if p == 3 {
				id = fmt.Sprintf("loose-%d", k) // no range in the id: the page's whole
			}
			ids = append(ids, id)
			pages[id] = fmt.Sprint(100 + p)
			enc.Encode(map[string]string{"id": id, "wikipedia_id": fmt.Sprint(100 + p), "title": fmt.Sprint("Page ", p), "text": fmt.Sprint("text ", p, k)})
		}
	}
	f.Close()
	index := filepath.Join(dir, "index")
	if _, err := indexdir.Build(context.Background(), corpus, indexdir.Options{Out: index, Progress: nopWriter{}}); err != nil {
		t.Fatal(err)
	}
	pos, err := IndexPositives(context.Background(), index)
	if err != nil {
		t.Fatal(err)
	}
	want, err := kilt.NewPassageMap(ids, func(id string) string { return pages[id] })
	if err != nil {
		t.Fatal(err)
	}
	for _, prov := range [][]data.KILTProvenance{
		{{WikipediaID: "101", StartParagraph: 2, EndParagraph: 3}},
		{{WikipediaID: "102", StartParagraph: 1, EndParagraph: 4}},
		{{WikipediaID: "100"}},
		{{WikipediaID: "103", StartParagraph: 0, EndParagraph: 0}},
		{{WikipediaID: "2::[0,1]"}},
		{{WikipediaID: "999", StartParagraph: 0, EndParagraph: 1}},
	} {
		got, err := pos(prov)
		if err != nil {
			t.Fatal(err)
		}
		ev := []kilt.Evidence{kilt.EvidenceFromData(prov[0])}
		exp, err := want.Positives(ev)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, exp) {
			t.Errorf("provenance %+v: positives %v, the id list's map %v", prov[0], got, exp)
		}
		if prov[0].WikipediaID == "101" && !slices.Equal(got, []string{"101::[2,3]"}) {
			t.Errorf("provenance %+v: positives %v", prov[0], got)
		}
	}
	// After deleting a passage, IndexPositives no longer gives it.
	if _, err := indexdir.Delete(context.Background(), index, []string{"101::[2,3]"}, indexdir.UpdateOptions{Progress: nopWriter{}}); err != nil {
		t.Fatal(err)
	}
	pos, err = IndexPositives(context.Background(), index)
	if err != nil {
		t.Fatal(err)
	}
	for _, prov := range []data.KILTProvenance{
		{WikipediaID: "101", StartParagraph: 2, EndParagraph: 3},
		{WikipediaID: "101", StartParagraph: 0, EndParagraph: 5},
	} {
		got, err := pos([]data.KILTProvenance{prov})
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range got {
			if id == "101::[2,3]" {
				t.Errorf("provenance %+v after deleting 101::[2,3]: positives %v", prov, got)
			}
		}
		if prov.EndParagraph == 5 && len(got) != 2 {
			t.Errorf("provenance %+v after deleting 101::[2,3]: positives %v, want the two left", prov, got)
		}
	}
}
