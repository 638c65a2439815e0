package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRunWithRAGDirectory: re2g index with a BertModel as context encoder,
// then re2g run with a RAG directory (transformers' layout, pytorch_model.bin)
// as --query-encoder and --generator, and a vocab.txt-only reranker.
func TestRunWithRAGDirectory(t *testing.T) {
	hf := "../../testdata/hf"
	dir := t.TempDir()
	corpus := filepath.Join(dir, "corpus.jsonl")
	os.WriteFile(corpus, []byte(`{"_id": "a", "title": "Armenian Apostolic Church", "text": "The Monastic Brotherhood consists of the celibate clergy of the monastery."}
{"_id": "b", "title": "Cilicia", "text": "The Catholicossate settled in Cilicia after the fall of Ani."}
{"_id": "c", "title": "\"Etchmiadzin\"", "text": "The Mother See of Holy Etchmiadzin is led by the Catholicos."}
{"_id": "d", "title": "Jerusalem", "text": "The brotherhood of St. James is at the Armenian Patriarchate of Jerusalem."}
`), 0o644)
	idx := filepath.Join(dir, "index")
	if err := newApp().Run([]string{"re2g", "index", "--corpus", corpus, "--out", idx, "--ctx-encoder", filepath.Join(hf, "bert", "bin")}); err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(dir, "task.jsonl")
	os.WriteFile(in, []byte(`{"id": "q1", "input": "What is the Monastic Brotherhood?"}
{"id": "q2", "input": "Where is the brotherhood of St. James?"}
`), 0o644)
	out := filepath.Join(dir, "pred.jsonl")
	rag := filepath.Join(hf, "rag-token", "bin")
	if err := newApp().Run([]string{"re2g", "run", "--index", idx, "--query-encoder", rag, "--generator", rag,
		"--reranker", filepath.Join(hf, "cross-encoder-1", "safetensors"), "--rerank-k", "2", "--num-beams", "2",
		"--num-return-sequences", "2", "--max-new-tokens", "6", "--in", in, "--out", out}); err != nil {
		t.Fatal(err)
	}
	type pred struct {
		ID     string `json:"id"`
		Output []struct {
			Answer     string           `json:"answer"`
			Provenance []map[string]any `json:"provenance"`
		} `json:"output"`
	}
	ps := readLines[pred](t, out)
	if len(ps) != 2 || len(ps[0].Output) == 0 || ps[0].Output[0].Answer == "" || len(ps[0].Output[0].Provenance) != 2 {
		t.Fatalf("predictions %+v", ps)
	}
}
