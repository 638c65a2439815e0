package indexdir

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/indexdir/pstore"
)

const bomMark = "\xef\xbb\xbf"

func writeFile(t *testing.T, name, content string, gz bool) string {
	t.Helper()
	b := []byte(content)
	if gz {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(b)
		zw.Close()
		b = buf.Bytes()
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// corpora are a small corpus in each format ReadCorpus reads, with the
// passages it must stream from each.
var corpora = []struct {
	name, format, content string
	want                  []Passage
}{
	{"beir.jsonl", FormatBEIR,
		`{"_id": "d1", "title": "T1", "text": "one"}` + "\n\n" + `{"_id": 2, "title": "T2", "text": "two"}` + "\n",
		[]Passage{{Line: 1, ID: "d1", Title: "T1", Text: "one"}, {Line: 3, ID: "2", Title: "T2", Text: "two"}}},
	{"kilt.jsonl", FormatKILT,
		`{"id": "1", "wikipedia_id": "7", "title": "A", "text": "x"}` + "\n" + `{"id": "2", "wikipedia_id": 8, "title": "B", "text": "y"}` + "\n",
		[]Passage{{Line: 1, ID: "1", Page: "7", Title: "A", Text: "x"}, {Line: 2, ID: "2", Page: "8", Title: "B", Text: "y"}}},
	{"ibm.jsonl", FormatKILT,
		`{"pid": "290::[1,3]", "title": "Autism", "text": "a b"}` + "\n" + `{"pid": "own", "title": "O", "text": "c"}` + "\n",
		[]Passage{{Line: 1, ID: "290::[1,3]", Page: "290", Title: "Autism", Text: "a b"}, {Line: 2, ID: "own", Page: "own", Title: "O", Text: "c"}}},
	{"kilt-pages.jsonl", FormatKILT,
		`{"_id": "12", "wikipedia_id": "12", "wikipedia_title": "P", "text": ["first", " ", "third"]}` + "\n",
		[]Passage{{Line: 1, ID: "12_0", Page: "12", Title: "P", Text: "first"}, {Line: 1, ID: "12_2", Page: "12", Title: "P", Text: "third"}}},
	{"kilt-pages-uid.jsonl", FormatKILT,
		`{"_id": "13", "wikipedia_title": "Q", "text": ["only"]}` + "\n",
		[]Passage{{Line: 1, ID: "13_0", Page: "13", Title: "Q", Text: "only"}}},
	{"squad.json", FormatSQuAD,
		"{\n \"data\": [{\"title\": \"T\", \"paragraphs\": [{\"context\": \"C.\", \"qas\": []}, {\"context\": \"D.\", \"qas\": []}]}]}\n",
		[]Passage{{ID: "T#0", Page: "T", Title: "T", Text: "C."}, {ID: "T#1", Page: "T", Title: "T", Text: "D."}}},
}

// TestReadCorpusFormats: every format streams the same passages (pages and
// lines included) plain, gzipped, with a byte order mark, and both.
func TestReadCorpusFormats(t *testing.T) {
	for _, c := range corpora {
		for _, v := range []struct {
			suffix string
			mark   string
			gz     bool
		}{{"", "", false}, {".gz", "", true}, {"", bomMark, false}, {".gz", bomMark, true}} {
			p := writeFile(t, c.name+v.suffix, v.mark+c.content, v.gz)
			var got []Passage
			rep := &data.Report{}
			format, err := ReadCorpus(context.Background(), p, rep, func(p Passage) error { got = append(got, p); return nil })
			if err != nil || len(rep.Skips) > 0 {
				t.Fatalf("%s (mark %v, gz %v): %v %v", c.name, v.mark != "", v.gz, err, rep.Skips)
			}
			if format != c.format || !reflect.DeepEqual(got, c.want) {
				t.Fatalf("%s (mark %v, gz %v): %s %+v, want %s %+v", c.name, v.mark != "", v.gz, format, got, c.format, c.want)
			}
		}
	}
}

// TestReadCorpusStops: fn's error ends the stream, and so does the
// context.
func TestReadCorpusStops(t *testing.T) {
	var b strings.Builder
	for i := range 5000 {
		b.WriteString(`{"_id": "d` + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + `", "title": "", "text": "t"}` + "\n")
	}
	p := writeFile(t, "c.jsonl", b.String(), true)
	stop := errors.New("stop")
	n := 0
	if _, err := ReadCorpus(context.Background(), p, nil, func(Passage) error {
		if n++; n == 3 {
			return stop
		}
		return nil
	}); !errors.Is(err, stop) || n != 3 {
		t.Fatalf("fn's error: %v after %d passages", err, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ReadCorpus(ctx, p, nil, func(Passage) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled context: %v", err)
	}
}

func TestReadCorpusBadInput(t *testing.T) {
	for name, content := range map[string]string{
		"not-json.txt": "hello\n",
		"empty.jsonl":  "\n\n",
		"no-text.json": `{"_id": "a", "contents": "Pyserini's layout"}` + "\n",
	} {
		p := writeFile(t, name, content, false)
		_, err := ReadCorpus(context.Background(), p, &data.Report{}, func(Passage) error { return nil })
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v; want an error naming the file", name, err)
		}
	}
	if _, err := ReadCorpus(context.Background(), filepath.Join(t.TempDir(), "missing.jsonl"), nil, func(Passage) error { return nil }); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing file: %v", err)
	}
}

// TestLoadCorpusByteOrderMark: a corpus file with a UTF-8 byte order mark,
// in each format LoadCorpus tells apart, loads as without it (re2g index
// used to say "not JSON lines nor a SQuAD JSON file").
func TestLoadCorpusByteOrderMark(t *testing.T) {
	for _, c := range corpora {
		want, err := LoadCorpus(writeFile(t, c.name, c.content, false))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got, err := LoadCorpus(writeFile(t, c.name, bomMark+c.content, false))
		if err != nil {
			t.Errorf("%s with a mark: %v", c.name, err)
			continue
		}
		if !reflect.DeepEqual(got.Passages, want.Passages) || !reflect.DeepEqual(got.Pages, want.Pages) || len(got.Report.Skips) > 0 {
			t.Errorf("%s with a mark: %+v, without %+v", c.name, got, want)
		}
		if (want.Pages != nil) != (c.format != FormatBEIR) {
			t.Errorf("%s: pages %v", c.name, want.Pages)
		}
	}
}

func TestLoadCorpusDuplicate(t *testing.T) {
	p := writeFile(t, "dup.jsonl", `{"_id": "a", "text": "1"}`+"\n"+`{"_id": "b", "text": "2"}`+"\n"+`{"_id": "a", "text": "3"}`+"\n", true)
	_, err := LoadCorpus(p)
	var dup *pstore.DuplicateError
	if !errors.As(err, &dup) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("a repeated id: %v", err)
	}
}
