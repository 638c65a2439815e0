package pipeline

import (
	"context"
	"io"
	"path/filepath"
	"testing"

	"github.com/re2g/re2g/indexdir"
	"github.com/re2g/re2g/neural"
)

const hf = "../testdata/hf"

// TestRAGDirectories runs the pipeline with a RAG directory as both query
// encoder and generator (testdata/hf/rag-token, transformers' layout): its
// sources are laid out as RAG's (passage first, the RagConfig's separators,
// the query as the question encoder's tokenizer decodes it), the reranker's
// passages with the same title separator; a BART directory keeps re2g's
// query-first layout; Separator/TitleSeparator override either.
func TestRAGDirectories(t *testing.T) {
	corpusPath, ps := tinyCorpus(t, 30)
	enc, err := neural.LoadEncoder(filepath.Join(hf, "bert", "safetensors"), neural.Options{})
	if err != nil {
		t.Fatal(err)
	}
	idx := filepath.Join(t.TempDir(), "index")
	if _, err := indexdir.Build(context.Background(), corpusPath, indexdir.Options{Out: idx, Encoder: enc, Progress: io.Discard}); err != nil {
		t.Fatal(err)
	}
	enc.Close()
	ragDir := filepath.Join(hf, "rag-token", "bin")
	p, err := New(Config{Index: idx, QueryEncoder: ragDir, Generator: ragDir, Reranker: filepath.Join(hf, "cross-encoder-2", "safetensors"),
		NumBeams: 2, NumReturnSequences: 2, MaxNewTokens: 6})
	if err != nil {
		t.Fatal(err)
	}
	if f := p.Format(); f != neural.RAGSourceFormat() {
		t.Errorf("format %+v, want RAG's", f)
	}
	if got, want := p.Source("Who Leads the Church?", `"Title"`, "Some  text."), "Title / Some text. // who leads the church?"; got != want {
		t.Errorf("source %q, want %q", got, want)
	}
	res, err := p.AnswerBatch(context.Background(), []string{"Where is " + ps[3].Title + "?", "who elects delegates"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if len(r.Provenance) != 5 || len(r.Answers) == 0 {
			t.Errorf("%d passages, %d answers", len(r.Provenance), len(r.Answers))
		}
	}
	p.Close()

	p, err = New(Config{Index: idx, Generator: filepath.Join(hf, "bart", "safetensors"), NumBeams: 1, MaxNewTokens: 4})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Source("Who?", "T", "x"), "Who? // T / x"; got != want {
		t.Errorf("BART source %q, want %q", got, want)
	}
	p.Close()

	p, err = New(Config{Index: idx, Generator: ragDir, Separator: " SEP ", TitleSeparator: ": ", NumBeams: 1, MaxNewTokens: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if got, want := p.Source("Who?", "T", "x"), "T: x SEP who?"; got != want {
		t.Errorf("source with overrides %q, want %q", got, want)
	}
}
