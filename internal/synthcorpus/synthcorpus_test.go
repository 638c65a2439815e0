package synthcorpus

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/re2g/re2g/data"
)

func TestGenerate(t *testing.T) {
	s, err := Load("../../../shared/data")
	if err != nil {
		if _, serr := os.Stat("../../../shared/data"); serr != nil {
			t.Skipf("shared data not available: %v", serr)
		}
		t.Fatal(err)
	}
	var a, b, c bytes.Buffer
	for _, x := range []struct {
		buf  *bytes.Buffer
		seed uint64
	}{{&a, 1}, {&b, 1}, {&c, 2}} {
		if err := Generate(x.buf, 23, x.seed, s); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) || bytes.Equal(a.Bytes(), c.Bytes()) {
		t.Fatal("the corpus is not a function of the seed")
	}
	want := a.Len()
	var ps []data.KILTPassage
	if err := data.EachKILTPassage(&a, "synthetic", nil, func(p data.KILTPassage, _ int) error { ps = append(ps, p); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(ps) != 23 || ps[0].ID != "1000000::[0,0]" || ps[7].ID != "1000001::[2,2]" || ps[7].WikipediaID != "1000001" || ps[7].Title != ps[5].Title {
		t.Fatalf("passages %+v", ps[:8])
	}
	for _, p := range ps {
		if n := len(strings.Fields(p.Text)); n < Words || n > 3*Words {
			t.Fatalf("passage %s has %d words", p.ID, n)
		}
	}
	path := filepath.Join(t.TempDir(), "c.jsonl.gz")
	size, err := Write(path, 23, 1, s)
	if err != nil || size != int64(want) {
		t.Fatalf("Write: %d bytes (want %d), %v", size, want, err)
	}
	got, err := data.LoadKILTPassages(path, nil)
	if err != nil || len(got) != 23 || got[22].Text != ps[22].Text {
		t.Fatalf("the gzipped file: %d passages, %v", len(got), err)
	}
	from := filepath.Join(t.TempDir(), "d.jsonl.gz")
	if _, err := WriteFrom(from, 50_000, 6, 1, s); err != nil {
		t.Fatal(err)
	}
	got, err = data.LoadKILTPassages(from, nil)
	if err != nil || len(got) != 6 || got[0].ID != "1050000::[0,0]" || got[5].ID != "1050001::[0,0]" {
		t.Fatalf("WriteFrom page 50000: %+v, %v", got, err)
	}
}
