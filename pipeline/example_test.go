package pipeline_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/re2g/re2g/indexdir"
	"github.com/re2g/re2g/pipeline"
)

// A Go service embeds the pipeline: build (or ship) an index, open it with
// the models it has, and answer. Here: BM25 retrieval only, on three passages.
func Example() {
	dir, _ := os.MkdirTemp("", "re2g-example")
	defer os.RemoveAll(dir)
	corpus := filepath.Join(dir, "corpus.jsonl")
	os.WriteFile(corpus, []byte(`{"_id": "go", "title": "Go", "text": "Go is a programming language designed at Google."}
{"_id": "rust", "title": "Rust", "text": "Rust is a language empowering everyone to build reliable software."}
{"_id": "tea", "title": "Tea", "text": "Tea is an aromatic beverage prepared by pouring hot water over leaves."}
`), 0o644)
	index := filepath.Join(dir, "index")
	if _, err := indexdir.Build(context.Background(), corpus, indexdir.Options{Out: index, Progress: nopWriter{}}); err != nil {
		log.Fatal(err)
	}
	// With QueryEncoder, Reranker and Generator set, the same call retrieves
	// with DPR and BM25, reranks, generates and weights the answers.
	p, err := pipeline.New(pipeline.Config{Index: index, SparseK: 2, RerankK: 2})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	res, err := p.Answer(context.Background(), "which language was designed at Google?")
	if err != nil {
		log.Fatal(err)
	}
	for _, pv := range res.Provenance {
		fmt.Printf("%s %.2f\n", pv.ID, pv.Prob)
	}
	// Output:
	// go 0.50
	// rust 0.50
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }
