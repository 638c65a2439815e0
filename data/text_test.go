package data

import (
	"strings"
	"testing"
)

// TestCorpusWithoutText: a corpus record without a "text" field used to
// become a passage without text; it is an error naming the file and line,
// with a report too (records with an empty text are still only skipped).
func TestCorpusWithoutText(t *testing.T) {
	for name, c := range map[string]struct {
		content string
		load    func(p string, rep *Report) error
	}{
		"corpus.jsonl": {`{"_id": "d1", "title": "T1", "text": "one"}` + "\n" + `{"_id": "d2", "title": "T2"}` + "\n",
			func(p string, rep *Report) error { _, err := LoadCorpus(p, rep); return err }},
		"pyserini.jsonl": {`{"_id": "d1", "contents": "one"}` + "\n",
			func(p string, rep *Report) error { _, err := LoadCorpus(p, rep); return err }},
		"null.jsonl": {`{"_id": "d1", "title": "T1", "text": "one"}` + "\n" + `{"_id": "d2", "title": "T2", "text": null}` + "\n",
			func(p string, rep *Report) error { _, err := LoadCorpus(p, rep); return err }},
		"kilt.jsonl": {`{"id": "1", "wikipedia_id": "4", "title": "A", "text": "x"}` + "\n" + `{"id": "2", "wikipedia_id": "4", "title": "B"}` + "\n",
			func(p string, rep *Report) error { _, err := LoadKILTPassages(p, rep); return err }},
	} {
		p := write(t, name, c.content)
		line := strings.Count(strings.TrimSuffix(c.content, "\n"), "\n") + 1
		for _, rep := range []*Report{nil, {}} {
			err := c.load(p, rep)
			if err == nil || !strings.Contains(err.Error(), p+":"+string(rune('0'+line))) || !strings.Contains(err.Error(), `"text"`) {
				t.Errorf("%s (report %v): %v", name, rep != nil, err)
			}
		}
	}
	rep := &Report{}
	ps, err := LoadCorpus(write(t, "empty-text.jsonl", `{"_id": "d1", "title": "T1", "text": ""}`+"\n"+`{"_id": "d2", "title": "", "text": ""}`+"\n"), rep)
	if err != nil || len(ps) != 1 || len(rep.Skips) != 1 {
		t.Errorf("empty texts: %v %v %v", ps, rep.Skips, err)
	}
}
