package pipeline

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestLoadCorpusByteOrderMark: a corpus file with a UTF-8 byte order mark,
// in each format LoadCorpus tells apart, loads as without it (re2g index
// used to say "not JSON lines nor a SQuAD JSON file").
func TestLoadCorpusByteOrderMark(t *testing.T) {
	for name, content := range map[string]string{
		"beir.jsonl":  `{"_id": "d1", "title": "T1", "text": "one"}` + "\n" + `{"_id": "d2", "title": "T2", "text": "two"}` + "\n",
		"kilt.jsonl":  `{"id": "1", "wikipedia_id": "7", "title": "A", "text": "x"}` + "\n",
		"squad.json":  `{"data": [{"title": "T", "paragraphs": [{"context": "C.", "qas": []}]}]}`,
		"squad1.json": "{\n \"data\": [{\"title\": \"T\", \"paragraphs\": [{\"context\": \"C.\", \"qas\": []}]}]}\n",
	} {
		dir := t.TempDir()
		plain, marked := filepath.Join(dir, "plain-"+name), filepath.Join(dir, "marked-"+name)
		os.WriteFile(plain, []byte(content), 0o644)
		os.WriteFile(marked, []byte("\xef\xbb\xbf"+content), 0o644)
		want, err := LoadCorpus(plain)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := LoadCorpus(marked)
		if err != nil {
			t.Errorf("%s with a mark: %v", name, err)
			continue
		}
		if !reflect.DeepEqual(got.Passages, want.Passages) || !reflect.DeepEqual(got.Pages, want.Pages) || len(got.Report.Skips) > 0 {
			t.Errorf("%s with a mark: %+v, without %+v", name, got, want)
		}
	}
}
