package data

import (
	"archive/zip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

const bomMark = "\xef\xbb\xbf"

// TestByteOrderMark: every loader reads a file that starts with a UTF-8
// byte order mark (as Windows Notepad saves one) as the same file without
// it, plain and gzipped: the first record is neither an error nor skipped.
func TestByteOrderMark(t *testing.T) {
	files := map[string]string{
		"corpus.jsonl":  `{"_id": "d1", "title": "T1", "text": "one"}` + "\n" + `{"_id": "d2", "title": "T2", "text": "two"}` + "\n",
		"queries.jsonl": `{"_id": "q1", "text": "first"}` + "\n",
		"queries.tsv":   "q1\tfirst\nq2\tsecond\n",
		"qrels.tsv":     "query-id\tcorpus-id\tscore\nq1\td1\t1\n",
		"qrels.trec":    "q1 0 d1 1\n",
		"topics.txt":    "<top>\n<num> Number: 1\n<title> first topic\n</top>\n",
		"kilt.jsonl":    `{"id": "100", "wikipedia_id": "42", "title": "A", "text": "The answer."}` + "\n",
		"task.jsonl":    `{"id": "a1", "input": "who?", "output": [{"answer": "Y"}]}` + "\n",
		"squad.json":    `{"data": [{"title": "T", "paragraphs": [{"context": "C.", "qas": [{"id": "q1", "question": "Q?", "answers": []}]}]}]}`,
	}
	load := map[string]func(p string, rep *Report) (any, error){
		"corpus.jsonl":  func(p string, rep *Report) (any, error) { return LoadCorpus(p, rep) },
		"queries.jsonl": func(p string, rep *Report) (any, error) { return LoadQueries(p, rep) },
		"queries.tsv":   func(p string, rep *Report) (any, error) { return LoadQueries(p, rep) },
		"qrels.tsv":     func(p string, rep *Report) (any, error) { return LoadQrels(p, rep) },
		"qrels.trec":    func(p string, rep *Report) (any, error) { return LoadQrels(p, rep) },
		"topics.txt":    func(p string, rep *Report) (any, error) { return LoadTopics(p, rep) },
		"kilt.jsonl":    func(p string, rep *Report) (any, error) { return LoadKILTPassages(p, rep) },
		"task.jsonl":    func(p string, rep *Report) (any, error) { return LoadKILTTask(p, rep) },
		"squad.json":    func(p string, rep *Report) (any, error) { return LoadSQuAD(p, rep) },
	}
	for name, content := range files {
		want, err := load[name](write(t, name, content), nil)
		if err != nil {
			t.Fatalf("%s without a mark: %v", name, err)
		}
		if v := reflect.ValueOf(want); (v.Kind() == reflect.Slice || v.Kind() == reflect.Map) && v.Len() == 0 {
			t.Fatalf("%s without a mark: nothing read", name)
		}
		for _, p := range []string{write(t, name, bomMark+content), writeGz(t, name+".gz", bomMark+content)} {
			rep := &Report{}
			got, err := load[name](p, rep)
			if err != nil || len(rep.Skips) > 0 {
				t.Errorf("%s: %v, skips %v", filepath.Base(p), err, rep.Skips)
				continue
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: %+v, without the mark %+v", filepath.Base(p), got, want)
			}
		}
	}

	// SciFact's CSV members, as Excel's "CSV UTF-8" writes them
	p := filepath.Join(t.TempDir(), "sf.zip")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	w, _ := zw.Create("corpus_train.csv")
	w.Write([]byte(bomMark + "doc_id,title,abstract,structured\n10,Title A,\"['One.']\",False\n"))
	zw.Close()
	f.Close()
	sf, err := OpenSciFact(p)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	ps, err := sf.Corpus(nil)
	if err != nil || !reflect.DeepEqual(ps, []Passage{{"10", "Title A", "One."}}) {
		t.Errorf("SciFact with a mark: %v, %v", ps, err)
	}
}
