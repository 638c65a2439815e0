package main

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/indexdir"
	"github.com/re2g/re2g/kilt"
)

func sharedFile(t *testing.T, rel string) string {
	t.Helper()
	p := filepath.Join("..", "..", "..", "shared", "data", rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared data not available: %v", err)
	}
	return p
}

func fileLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := data.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

func TestKILTPassagesCommand(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "ks.jsonl.gz")
	f, _ := os.Create(in)
	zw := gzip.NewWriter(f)
	zw.Write([]byte(`{"_id": "1", "wikipedia_id": "1", "wikipedia_title": "One", "text": ["One\n", "Section::::A.\n", "w w w w w w"]}
{"wikipedia_id": 2, "wikipedia_title": "Two", "text": ["Two words"]}
{"wikipedia_title": "no id", "text": ["x"]}
`))
	zw.Close()
	f.Close()
	out := filepath.Join(dir, "passages.jsonl.gz")
	ids := filepath.Join(dir, "ids.txt")
	_, stderr, err := runRe2g(t, "data", "kilt-passages", "--in", in, "--out", out, "--ids", ids, "--min-words", "3", "--max-words", "5")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{"pid":"1::[0,1]","title":"One","text":"One Section: A."}`,
		`{"pid":"1::[2,2)","title":"One","text":"w w w w w"}`,
		`{"pid":"2::[0,0]","title":"Two","text":"Two words"}`,
	}
	if got := fileLines(t, out); !reflect.DeepEqual(got, want) {
		t.Errorf("passages:\n%s", strings.Join(got, "\n"))
	}
	if got := fileLines(t, ids); !reflect.DeepEqual(got, []string{"1::[0,1]", "1::[2,2)", "2::[0,0]"}) {
		t.Errorf("ids: %v", got)
	}
	if !strings.Contains(stderr, "skipped 1 records") || !strings.Contains(stderr, "-> 3 passages (1 cut at the end, 0 at the start)") {
		t.Errorf("stderr:\n%s", stderr)
	}
	// re2g index reads the output, with the page of each passage.
	c, err := indexdir.LoadCorpus(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Passages) != 3 || !reflect.DeepEqual(c.Pages, map[string]string{"1::[0,1]": "1", "1::[2,2)": "1", "2::[0,0]": "2"}) {
		t.Errorf("corpus: %v, pages %v", c.Passages, c.Pages)
	}
	if _, _, err := runRe2g(t, "data", "kilt-passages", "--in", in, "--out", out, "--strict"); err == nil {
		t.Error("--strict: a page without id is not an error")
	}
	if _, _, err := runRe2g(t, "data", "kilt-passages", "--in", in, "--out", out, "--min-words", "9", "--max-words", "5"); err == nil {
		t.Error("min > max: no error")
	}
}

// covers reports whether the passage holds paragraph i whole, or is all
// there is of it (a single paragraph cut short).
func covers(r data.PassageRange, i int) bool {
	switch {
	case r.First == i && r.Last == i:
		return !r.CutFirst || !r.CutLast
	case r.First == i:
		return !r.CutFirst
	case r.Last == i:
		return !r.CutLast
	}
	return r.First < i && i < r.Last
}

// TestSQuADShiftsKILTChain runs the whole chain on SQuADShifts New Wiki:
// articles as KILT pages with page + paragraph provenance, the reference's
// split into passages, and the positives of every question.
func TestSQuADShiftsKILTChain(t *testing.T) {
	squad := sharedFile(t, "squadshifts/new_wiki_v1.0.json")
	dir := t.TempDir()
	ks, task, passages, positives := filepath.Join(dir, "ks.jsonl"), filepath.Join(dir, "task.jsonl"),
		filepath.Join(dir, "passages.jsonl"), filepath.Join(dir, "positives.jsonl")
	if _, _, err := runRe2g(t, "data", "squad-kilt", "--in", squad, "--out", task, "--pages", ks); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := runRe2g(t, "data", "kilt-passages", "--in", ks, "--out", passages); err != nil {
		t.Fatal(err)
	} else {
		t.Log(strings.TrimSpace(stderr))
	}
	pages := fileLines(t, ks)
	if len(pages) != 48 {
		t.Errorf("%d pages, want 48 articles", len(pages))
	}
	paragraphs := 0
	for _, l := range pages {
		var p data.KILTPage
		if err := json.Unmarshal([]byte(l), &p); err != nil || p.WikipediaID == "" || strings.ContainsAny(p.WikipediaID, " \t") {
			t.Fatalf("page %.80s: %v", l, err)
		}
		paragraphs += len(p.Text)
	}
	if paragraphs != 1581 {
		t.Errorf("%d paragraphs, want 1581", paragraphs)
	}

	corpus, err := indexdir.LoadCorpus(passages)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(corpus.Passages))
	text := map[string]string{}
	ranges := map[string]data.PassageRange{}
	for i, p := range corpus.Passages {
		ids[i] = p.ID
		text[p.ID] = p.Text
		r, ok := data.ParsePassageID(p.ID)
		if !ok || corpus.Pages[p.ID] != r.Page {
			t.Fatalf("passage %q: page %q", p.ID, corpus.Pages[p.ID])
		}
		ranges[p.ID] = r
	}
	m, err := kilt.NewPassageMap(ids, func(id string) string { return corpus.Pages[id] })
	if err != nil {
		t.Fatal(err)
	}
	recs, err := kilt.ReadFile(task)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 7938 {
		t.Errorf("%d questions, want 7938", len(recs))
	}
	none, missed, answered, multi := 0, 0, 0, 0
	for _, r := range recs {
		ev, err := kilt.RecordEvidence(r)
		if err != nil || len(ev) != 1 || !ev[0].Paragraphs || ev[0].Start != ev[0].End {
			t.Fatalf("question %s: evidence %v, %v", r.ID, ev, err)
		}
		pos, err := m.Positives(ev)
		if err != nil {
			t.Fatal(err)
		}
		if len(pos) == 0 {
			none++
			continue
		}
		if len(pos) > 1 {
			multi++
		}
		// The positives are exactly the passages that hold the paragraph.
		var holding []string
		for _, id := range m.PagePassages(ev[0].Page) {
			if covers(ranges[id], ev[0].Start) {
				holding = append(holding, id)
			}
		}
		if !reflect.DeepEqual(pos, holding) {
			missed++
			if missed <= 3 {
				t.Errorf("question %s, %s paragraph %d: positives %v, passages holding it %v", r.ID, ev[0].Page, ev[0].Start, pos, holding)
			}
		}
		found := false
		for _, o := range r.Output {
			for _, p := range pos {
				if o.HasAnswer && strings.Contains(text[p], strings.Join(strings.Fields(o.Answer), " ")) {
					found = true
				}
			}
		}
		if found {
			answered++
		}
	}
	if none != 0 {
		t.Errorf("%d questions without a positive", none)
	}
	t.Logf("%d passages on %d pages; %d questions: %d without positives, %d with several, %d whose positives hold an answer",
		m.Len(), m.Pages(), len(recs), none, multi, answered)

	// The command gives the same.
	_, stderr, err := runRe2g(t, "data", "kilt-positives", "--corpus", passages, "--task", task, "--out", positives)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(strings.TrimSpace(stderr))
	if lines := fileLines(t, positives); len(lines) != len(recs)-none {
		t.Errorf("kilt-positives wrote %d lines", len(lines))
	}
	if !strings.Contains(stderr, "0 without any passage, 0 with bad provenance") {
		t.Errorf("kilt-positives:\n%s", stderr)
	}

	// Without --pages the provenance stays passage-level, and names the
	// question's own passage of the SQuAD corpus.
	if _, _, err := runRe2g(t, "data", "squad-kilt", "--in", squad, "--out", task, "--limit", "50"); err != nil {
		t.Fatal(err)
	}
	sq, err := indexdir.LoadCorpus(squad)
	if err != nil {
		t.Fatal(err)
	}
	sqIDs := make([]string, len(sq.Passages))
	for i, p := range sq.Passages {
		sqIDs[i] = p.ID
	}
	sm, err := kilt.NewPassageMap(sqIDs, func(id string) string { return sq.Pages[id] })
	if err != nil {
		t.Fatal(err)
	}
	recs, err = kilt.ReadFile(task)
	if err != nil || len(recs) != 50 {
		t.Fatalf("%d records, %v", len(recs), err)
	}
	for _, r := range recs {
		ev, err := kilt.RecordEvidence(r)
		if err != nil || len(ev) != 1 || ev[0].Paragraphs {
			t.Fatalf("question %s: %v %v", r.ID, ev, err)
		}
		if pos, err := sm.Positives(ev); err != nil || !reflect.DeepEqual(pos, []string{ev[0].Page}) {
			t.Errorf("question %s: positives %v, want %s (%v)", r.ID, pos, ev[0].Page, err)
		}
	}
}

func TestSciFactKILT(t *testing.T) {
	zip := sharedFile(t, "scifact/scifact_hf_csv.zip")
	dir := t.TempDir()
	task := filepath.Join(dir, "scifact-dev-kilt.jsonl")
	_, stderr, err := runRe2g(t, "data", "scifact-kilt", "--in", zip, "--split", "validation", "--out", task)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr, "300 claims (validation): 188 ->") || !strings.Contains(stderr, "112 without evidence left out; 0 evidence documents not in the corpus") {
		t.Errorf("stderr:\n%s", stderr)
	}
	recs, err := kilt.ReadFile(task)
	if err != nil {
		t.Fatal(err)
	}
	sf, err := data.OpenSciFact(zip)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	docs, err := sf.Corpus(nil)
	if err != nil {
		t.Fatal(err)
	}
	_, qrels, err := sf.Claims("validation", nil)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i] = d.ID
	}
	m, err := kilt.NewPassageMap(ids, nil)
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]int{}
	for _, r := range recs {
		if len(r.Output) != 1 || !r.Output[0].HasAnswer || len(r.Output[0].Provenance) == 0 {
			t.Fatalf("claim %s: %+v", r.ID, r.Output)
		}
		labels[r.Output[0].Answer]++
		ev, err := kilt.RecordEvidence(r)
		if err != nil {
			t.Fatal(err)
		}
		pos, err := m.Positives(ev)
		if err != nil || len(pos) != len(ev) {
			t.Errorf("claim %s: positives %v for %v (%v)", r.ID, pos, ev, err)
		}
		for _, p := range pos {
			if qrels[r.ID][p] != 1 {
				t.Errorf("claim %s: positive %s is not in BEIR's qrels", r.ID, p)
			}
		}
	}
	if labels["SUPPORTS"] != 124 || labels["REFUTES"] != 64 {
		t.Errorf("labels %v, want 124 SUPPORTS and 64 REFUTES", labels)
	}
}
