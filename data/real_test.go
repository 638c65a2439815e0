package data

import (
	"os"
	"path/filepath"
	"testing"
)

// shared is a file of the read-only test collections beside the repository.
func shared(t *testing.T, rel string) string {
	t.Helper()
	p := filepath.Join("..", "..", "shared", "data", rel)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("test data %s is missing (%v): these tests need ../shared/data beside the repository root, as CI has it", p, err)
	}
	return p
}

// TestRealCollections loads every shared collection with a strict (nil)
// report, so a single malformed record fails, and checks the sizes their
// README gives.
func TestRealCollections(t *testing.T) {
	sf, err := OpenSciFact(shared(t, "scifact/scifact_hf_csv.zip"))
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	corpus, err := sf.Corpus(nil)
	if err != nil || len(corpus) != 5183 {
		t.Errorf("SciFact corpus: %d passages, %v; want 5183", len(corpus), err)
	}
	qs, qrels, err := sf.Claims("validation", nil)
	if err != nil {
		t.Fatal(err)
	}
	beirQ, err := LoadQueries(shared(t, "scifact/topics.beir-v1.0.0-scifact.test.tsv.gz"), nil)
	if err != nil {
		t.Fatal(err)
	}
	beirQrels, err := LoadQrels(shared(t, "scifact/qrels.beir-v1.0.0-scifact.test.txt"), nil)
	if err != nil {
		t.Fatal(err)
	}
	// The claims CSV gives exactly BEIR's test topics and qrels.
	if len(qs) != 300 || len(beirQ) != 300 {
		t.Errorf("SciFact claims %d, BEIR topics %d; want 300", len(qs), len(beirQ))
	}
	for i := range min(len(qs), len(beirQ)) {
		if qs[i] != beirQ[i] {
			t.Errorf("claim %d = %v, BEIR topic %v", i, qs[i], beirQ[i])
			break
		}
	}
	if qrels.Len() != 339 || beirQrels.Len() != 339 {
		t.Errorf("SciFact qrels %d, BEIR %d; want 339", qrels.Len(), beirQrels.Len())
	}
	for q, m := range beirQrels {
		for d, g := range m {
			if qrels[q][d] != g {
				t.Errorf("SciFact qrel %s %s: claims give %d, BEIR %d", q, d, qrels[q][d], g)
			}
		}
	}

	arg, err := LoadCorpus(shared(t, "arguana/corpus.jsonl.gz"), nil)
	if err != nil || len(arg) != 8674 {
		t.Errorf("ArguAna corpus: %d, %v; want 8674", len(arg), err)
	}
	argQ, err := LoadQueries(shared(t, "arguana/queries.jsonl.gz"), nil)
	if err != nil || len(argQ) != 1406 {
		t.Errorf("ArguAna queries: %d, %v; want 1406", len(argQ), err)
	}
	argQrels, err := LoadQrels(shared(t, "arguana/test.tsv"), nil)
	if err != nil || len(argQrels) != 1406 {
		t.Errorf("ArguAna BEIR qrels: %d queries, %v; want 1406", len(argQrels), err)
	}

	cacm, err := LoadCACM(shared(t, "cacm/cacm.tar.gz"), nil)
	if err != nil || len(cacm) != 3204 {
		t.Errorf("CACM: %d documents, %v; want 3204", len(cacm), err)
	}
	topics, err := LoadTopics(shared(t, "cacm/topics.cacm.txt"), nil)
	if err != nil || len(topics) != 64 {
		t.Errorf("CACM topics: %d, %v; want 64", len(topics), err)
	}
	cq, err := LoadQrels(shared(t, "cacm/qrels.cacm.txt"), nil)
	if err != nil || len(cq) != 52 {
		t.Errorf("CACM qrels: %d judged topics, %v; want 52", len(cq), err)
	}

	sq, err := LoadSQuAD(shared(t, "squadshifts/new_wiki_v1.0.json"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(sq.Passages) != 1581 || len(sq.Questions) != 7938 {
		t.Errorf("SQuADShifts: %d paragraphs, %d questions; want 1581, 7938", len(sq.Passages), len(sq.Questions))
	}
}
