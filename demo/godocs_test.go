package demo

import (
	"runtime"
	"strings"
	"testing"

	"github.com/re2g/re2g/tokenizer"
)

func TestBuildFromGoroot(t *testing.T) {
	c, err := Build(runtime.GOROOT())
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, p := range c.Passages {
		if ids[p.ID] {
			t.Fatalf("duplicate passage id %s", p.ID)
		}
		ids[p.ID] = true
	}
	for _, q := range c.QA {
		if !ids[q.PassageID] {
			t.Fatalf("question %s names a missing passage %s", q.ID, q.PassageID)
		}
	}
	found := false
	for _, q := range c.QA {
		if q.ID == "strings" {
			found = true
			if !strings.HasPrefix(q.Question, "Which Go package implements") || q.Answers[0] != "strings" {
				t.Fatalf("strings question: %+v", q)
			}
		}
	}
	if !found {
		t.Fatal("no question about package strings")
	}
	train, dev := Split(c.QA, 20, "demo")
	t.Logf("%d passages, %d questions (%d train, %d held out)", len(c.Passages), len(c.QA), len(train), len(dev))
	if len(c.Passages) < 1000 || len(dev) < 50 || len(train) < 4*len(dev)/2 {
		t.Fatalf("corpus too small: %d passages, %d/%d questions", len(c.Passages), len(train), len(dev))
	}
	held := map[string]bool{}
	for _, q := range dev {
		held[q.Package] = true
	}
	for _, q := range train {
		if held[q.Package] {
			t.Fatalf("package %s is in both splits", q.Package)
		}
	}
}

func TestWriteTokenizer(t *testing.T) {
	c, err := Build(runtime.GOROOT())
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, p := range c.Passages {
		texts = append(texts, p.Title+" "+p.Text)
	}
	path := t.TempDir() + "/tokenizer.json"
	n, err := WriteTokenizer(path, texts, 5000)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if tok.VocabSize() != n {
		t.Fatalf("vocabulary %d, wrote %d", tok.VocabSize(), n)
	}
	e := tok.EncodePair("Which Go package implements simple functions?", "Package strings implements simple functions to manipulate UTF-8 encoded strings.")
	unk, _ := tok.TokenToID("[UNK]")
	for _, id := range e.IDs {
		if id == unk {
			t.Fatalf("unknown token in %v", e.IDs)
		}
	}
	text, err := tok.Decode(e.IDs, true)
	if err != nil || !strings.Contains(text, "package strings implements simple functions") {
		t.Fatalf("decode: %q %v", text, err)
	}
}
