package data

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func write(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeGz(t *testing.T, name, content string) string {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(content))
	zw.Close()
	return write(t, name, b.String())
}

// wantSkips checks that rep holds exactly the given "line: reason prefix"
// skips.
func wantSkips(t *testing.T, rep *Report, want ...string) {
	t.Helper()
	if len(rep.Skips) != len(want) {
		t.Fatalf("skips = %v, want %d: %v", rep.Skips, len(want), want)
	}
	for i, w := range want {
		line, reason, _ := strings.Cut(w, ": ")
		got := rep.Skips[i]
		if got.String() == "" || !strings.HasSuffix(strings.SplitN(got.String(), ": ", 2)[0], ":"+line) || !strings.HasPrefix(got.Reason, reason) {
			t.Errorf("skip %d = %v, want line %s reason %q…", i, got, line, reason)
		}
	}
}

func TestCorpus(t *testing.T) {
	src := `{"_id": "d1", "title": "T1", "text": "one"}
{"_id": 7, "text": "numeric id"}

{"_id": "d1", "title": "dup", "text": "x"}
{"title": "no id", "text": "x"}
{"_id": "d3", "title": "", "text": "  "}
{"_id": "bad id", "text": "x"}
{not json
{"_id": "d4", "title": "T4", "text": "four", "metadata": {"url": "u"}}
`
	p := writeGz(t, "corpus.jsonl.gz", src)
	rep := &Report{}
	got, err := LoadCorpus(p, rep)
	if err != nil {
		t.Fatal(err)
	}
	want := []Passage{{"d1", "T1", "one"}, {"7", "", "numeric id"}, {"d4", "T4", "four"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	wantSkips(t, rep, "4: duplicate id", "5: no _id", "6: empty title and text", "7: id \"bad id\" contains white space", "8: bad JSON")
	if s := rep.Summary(); !strings.Contains(s, "skipped 5 records") || !strings.Contains(s, p+":4") {
		t.Errorf("summary = %q", s)
	}
	// Strict: the first malformed line is an error naming file and line.
	_, err = LoadCorpus(p, nil)
	if err == nil || !strings.Contains(err.Error(), p+":4: duplicate id") {
		t.Errorf("strict error = %v", err)
	}
	if _, err := LoadCorpus(filepath.Join(t.TempDir(), "missing.jsonl"), nil); err == nil {
		t.Error("missing file: no error")
	}
}

func TestQueries(t *testing.T) {
	jsonl := write(t, "q.jsonl", `{"_id": "q1", "text": "what is x"}
{"_id": "q2", "text": ""}
{"_id": "q1", "text": "again"}
`)
	rep := &Report{}
	got, err := LoadQueries(jsonl, rep)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []Query{{"q1", "what is x"}}) {
		t.Errorf("jsonl: got %v", got)
	}
	wantSkips(t, rep, "2: empty query text", "3: duplicate query id")

	tsv := writeGz(t, "q.tsv.gz", "1\tfirst query\n2\tsecond\twith tab\nno-tab-here\n")
	rep = &Report{}
	got, err = LoadQueries(tsv, rep)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []Query{{"1", "first query"}, {"2", "second\twith tab"}}) {
		t.Errorf("tsv: got %v", got)
	}
	wantSkips(t, rep, "3: no TAB")
}

func TestQrels(t *testing.T) {
	trec := write(t, "qrels.txt", "1 0 d1 1\n1 0 d2 2\n2 Q0 d1 0\n1 0 d1 3\nbad line\n3 0 d9 x\n")
	rep := &Report{}
	q, err := LoadQrels(trec, rep)
	if err != nil {
		t.Fatal(err)
	}
	want := Qrels{"1": {"d1": 3, "d2": 2}, "2": {"d1": 0}}
	if !reflect.DeepEqual(q, want) {
		t.Errorf("trec: got %v, want %v", q, want)
	}
	wantSkips(t, rep, "5: want 3 (BEIR) or 4 (TREC) fields", "6: relevance \"x\" is not an integer")

	beir := write(t, "test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\n")
	q, err = LoadQrels(beir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(q, Qrels{"q1": {"d1": 1}, "q2": {"d2": 2}}) || q.Len() != 2 {
		t.Errorf("beir: got %v", q)
	}
	var b bytes.Buffer
	if err := WriteQrels(&b, want); err != nil {
		t.Fatal(err)
	}
	if b.String() != "1 0 d1 3\n1 0 d2 2\n2 0 d1 0\n" {
		t.Errorf("WriteQrels = %q", b.String())
	}
}

func TestTopics(t *testing.T) {
	classic := write(t, "topics.txt", `<top>
<num> Number: 301
<title> International Organized Crime
<desc> Description:
Identify organizations.
<narr> Narrative:
A relevant document...
</top>

<top>
<num> Number: 302
<desc> Description:
Only a description here.
</top>
<top>
<title> no number
</top>
`)
	rep := &Report{}
	got, err := LoadTopics(classic, rep)
	if err != nil {
		t.Fatal(err)
	}
	want := []Query{{"301", "International Organized Crime"}, {"302", "Only a description here."}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	wantSkips(t, rep, "15: topic without a number")

	cacm := write(t, "topics.cacm.txt", "<DOC>\n<DOCNO> 1 </DOCNO>\n\n What articles exist\n on TSS?\n</DOC>\n<DOC>\n<DOCNO> 2 </DOCNO>\n</DOC>\n")
	rep = &Report{}
	got, err = LoadTopics(cacm, rep)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []Query{{"1", "What articles exist on TSS?"}}) {
		t.Errorf("cacm form: got %v", got)
	}
	wantSkips(t, rep, "7: topic 2 has no text")
	if _, err := LoadTopics(write(t, "empty.txt", "nothing here"), nil); err == nil {
		t.Error("no topics: no error")
	}
}

func TestSQuAD(t *testing.T) {
	p := write(t, "squad.json", `{"version": "1.1", "data": [
 {"title": "Some Article", "paragraphs": [
  {"context": "Paris is the capital.", "qas": [
    {"id": "q1", "question": "Capital?", "answers": [{"text": "Paris", "answer_start": 0}, {"text": "Paris", "answer_start": 0}]},
    {"id": "q2", "question": " ", "answers": []}]},
  {"context": "", "qas": []},
  {"context": "Second paragraph.", "qas": [{"id": "q1", "question": "dup?", "answers": []}, {"id": 3, "question": "numeric id?", "answers": []}]}
 ]}]}`)
	rep := &Report{}
	sq, err := LoadSQuAD(p, rep)
	if err != nil {
		t.Fatal(err)
	}
	wantP := []Passage{{"Some_Article#0", "Some Article", "Paris is the capital."}, {"Some_Article#2", "Some Article", "Second paragraph."}}
	if !reflect.DeepEqual(sq.Passages, wantP) {
		t.Errorf("passages %v", sq.Passages)
	}
	wantQ := []SQuADQuestion{{"q1", "Capital?", []string{"Paris", "Paris"}, "Some_Article#0"}, {"3", "numeric id?", nil, "Some_Article#2"}}
	if !reflect.DeepEqual(sq.Questions, wantQ) {
		t.Errorf("questions %v", sq.Questions)
	}
	if !reflect.DeepEqual(sq.Qrels(), Qrels{"q1": {"Some_Article#0": 1}, "3": {"Some_Article#2": 1}}) {
		t.Errorf("qrels %v", sq.Qrels())
	}
	if len(rep.Skips) != 3 {
		t.Errorf("skips %v", rep.Skips)
	}
	if _, err := LoadSQuAD(write(t, "bad.json", `{"data": [`), nil); err == nil {
		t.Error("truncated JSON: no error")
	}
}

func TestParsePyStrList(t *testing.T) {
	got, err := ParsePyStrList(`['First.' "It's second."
 'Tab\there \'q\' \u200e\x94 back\\slash' '']`)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"First.", "It's second.", "Tab\there 'q' \u200e\u0094 back\\slash", ""}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, bad := range []string{`'a'`, `['unterminated]`, `[x]`, `['\u12']`} {
		if _, err := ParsePyStrList(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestSciFactZip(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sf.zip")
	f, _ := os.Create(p)
	zw := zip.NewWriter(f)
	add := func(name, content string) {
		w, _ := zw.Create(name)
		w.Write([]byte(content))
	}
	add("corpus_train.csv", "doc_id,title,abstract,structured\n"+
		"10,Title A,\"['One.' \"\"It's two.\"\"]\",False\n"+
		"11,Title B,not a list,False\n"+
		"12,Title C,\"['Only.']\",False\n")
	add("claims_validation.csv", "id,claim,evidence_doc_id,evidence_label,evidence_sentences,cited_doc_ids\n"+
		"1,Claim one.,,,[],[10]\n"+
		"2,Claim two.,12,SUPPORT,[0],[12 10]\n"+
		"2,Claim two.,12,SUPPORT,[1],[12 10]\n")
	zw.Close()
	f.Close()
	sf, err := OpenSciFact(p)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	rep := &Report{}
	ps, err := sf.Corpus(rep)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ps, []Passage{{"10", "Title A", "One. It's two."}, {"12", "Title C", "Only."}}) {
		t.Errorf("corpus %v", ps)
	}
	wantSkips(t, rep, "3: abstract: not a [...] list")
	qs, qr, err := sf.Claims("validation", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(qs, []Query{{"1", "Claim one."}, {"2", "Claim two."}}) {
		t.Errorf("claims %v", qs)
	}
	if !reflect.DeepEqual(qr, Qrels{"1": {"10": 1}, "2": {"12": 1, "10": 1}}) {
		t.Errorf("qrels %v", qr)
	}
	if _, _, err := sf.Claims("nosuch", nil); err == nil {
		t.Error("missing member: no error")
	}
}

func TestCACM(t *testing.T) {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	add := func(name, content string) {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg})
		tw.Write([]byte(content))
	}
	add("CACM-0001.html", "<html>\n<pre>\n\nPreliminary Report &amp; more\n\nCACM 1958\n</pre>\n</html>\n")
	add("README", "not a doc")
	add("CACM-0002.html", "<html><pre>  </pre></html>")
	tw.Close()
	zw.Close()
	p := write(t, "cacm.tar.gz", b.String())
	rep := &Report{}
	ps, err := LoadCACM(p, rep)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ps, []Passage{{ID: "CACM-0001", Text: "Preliminary Report & more CACM 1958"}}) {
		t.Errorf("got %v", ps)
	}
	wantSkips(t, rep, "2: member README is not an .html file", "3: member CACM-0002.html has no text")
	if _, err := LoadCACM(write(t, "junk.tar.gz", "junk"), nil); err == nil {
		t.Error("not a tarball: no error")
	}
}

func TestKILTPassages(t *testing.T) {
	p := write(t, "ks.jsonl", `{"id": "100", "wikipedia_id": "42", "title": "Answer", "text": "The answer is 42."}
{"_id": "7", "wikipedia_title": "Page", "text": ["Page\n", "First para.", "  ", "Second para."]}
{"id": "101", "title": "No wiki id", "text": "x"}
{"id": "100", "wikipedia_id": "42", "title": "dup", "text": "x"}
{"id": "102", "wikipedia_id": "42", "text": 5}
`)
	rep := &Report{}
	ps, err := LoadKILTPassages(p, rep)
	if err != nil {
		t.Fatal(err)
	}
	want := []KILTPassage{
		{Passage{"100", "Answer", "The answer is 42."}, "42"},
		{Passage{"7_0", "Page", "Page"}, "7"},
		{Passage{"7_1", "Page", "First para."}, "7"},
		{Passage{"7_3", "Page", "Second para."}, "7"},
	}
	if !reflect.DeepEqual(ps, want) {
		t.Errorf("got %v", ps)
	}
	wantSkips(t, rep, "3: passage without wikipedia_id", "4: duplicate id 100", "5: text is neither")
}

func TestKILTTask(t *testing.T) {
	p := write(t, "nq-dev-kilt.jsonl", `{"id": "a1", "input": "who wrote x?", "output": [{"answer": "Y", "provenance": [{"wikipedia_id": "123", "title": "X", "start_paragraph_id": 2, "end_paragraph_id": 2}]}, {"answer": "Y Z"}]}
{"id": 5, "input": "test example without output"}
{"id": "a2", "input": ""}
{"id": "a3", "input": "q", "output": [{"answer": "a", "provenance": [{"title": "no id"}]}]}
[1, 2]
`)
	rep := &Report{}
	exs, err := LoadKILTTask(p, rep)
	if err != nil {
		t.Fatal(err)
	}
	want := []KILTExample{
		{ID: "a1", Input: "who wrote x?", Output: []KILTOutput{
			{Answer: "Y", Provenance: []KILTProvenance{{WikipediaID: "123", Title: "X", StartParagraph: 2, EndParagraph: 2}}},
			{Answer: "Y Z"}}},
		{ID: "5", Input: "test example without output"},
	}
	if !reflect.DeepEqual(exs, want) {
		t.Errorf("got %+v", exs)
	}
	wantSkips(t, rep, "3: example a2 has no input", "4: example a3 output 0 provenance 0 has no wikipedia_id", "5: bad JSON")
	if exs[0].Query() != (Query{"a1", "who wrote x?"}) {
		t.Errorf("query %v", exs[0].Query())
	}
}

func TestWriteReadRoundTrip(t *testing.T) {
	ps := []Passage{{"a", "T <b>", "x & y"}, {"b", "", "z"}}
	var b bytes.Buffer
	if err := WriteCorpus(&b, ps); err != nil {
		t.Fatal(err)
	}
	got, err := ReadCorpus(&b, "mem", nil)
	if err != nil || !reflect.DeepEqual(got, ps) {
		t.Errorf("corpus round trip: %v %v", got, err)
	}
	qs := []Query{{"1", "q one"}}
	b.Reset()
	WriteQueries(&b, qs)
	gq, err := ReadQueries(&b, "mem", nil)
	if err != nil || !reflect.DeepEqual(gq, qs) {
		t.Errorf("queries round trip: %v %v", gq, err)
	}
}

func TestLongLine(t *testing.T) {
	long := `{"_id": "big", "text": "` + strings.Repeat("word ", 400_000) + `"}` + "\n"
	ps, err := ReadCorpus(strings.NewReader(long), "mem", nil)
	if err != nil || len(ps) != 1 || len(ps[0].Text) != 2_000_000 {
		t.Errorf("2 MB line: %d passages, %v", len(ps), err)
	}
}
