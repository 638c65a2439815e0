package indexdir

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/internal/tinymodels"
	"github.com/re2g/re2g/neural"
)

const shared = "../../shared/data"

func tokenizerJSON(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(shared, "tokenizers/bert-base-uncased/tokenizer.json"))
	if err != nil {
		t.Skipf("shared data not available: %v", err)
	}
	return b
}

// ctxEncoderDir writes a tiny random DPR context encoder (with the real
// bert-base-uncased tokenizer) and returns its directory.
func ctxEncoderDir(t testing.TB) string {
	t.Helper()
	d, err := tinymodels.Write(t.TempDir(), tokenizerJSON(t), tinymodels.Tiny, 11)
	if err != nil {
		t.Fatal(err)
	}
	return d.CtxEncoder
}

func loadEncoder(t testing.TB, dir string, batch int) *neural.Encoder {
	t.Helper()
	enc, err := neural.LoadEncoder(dir, neural.Options{BatchSize: batch, MaxLength: 64})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { enc.Close() })
	return enc
}

// squadPassages are the first n SQuADShifts New Wiki paragraphs.
func squadPassages(t testing.TB, n int) []data.Passage {
	t.Helper()
	sq, err := data.LoadSQuAD(filepath.Join(shared, "squadshifts/new_wiki_v1.0.json"), &data.Report{})
	if err != nil {
		t.Skipf("shared data not available: %v", err)
	}
	return sq.Passages[:n]
}

// tinyCorpus writes n SQuADShifts paragraphs as a BEIR corpus.
func tinyCorpus(t testing.TB, n int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "corpus.jsonl")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := data.WriteCorpus(f, squadPassages(t, n)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

// kiltCorpus writes n SQuADShifts paragraphs as KILT passages (with pages).
func kiltCorpus(t testing.TB, n int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "passages.jsonl")
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, x := range squadPassages(t, n) {
		enc.Encode(map[string]string{"id": x.ID, "wikipedia_id": "page-" + x.Title, "title": x.Title, "text": x.Text})
	}
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func build(t testing.TB, corpus string, o Options) *Manifest {
	t.Helper()
	m, err := Build(context.Background(), corpus, o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func open(t testing.TB, dir string) *Index {
	t.Helper()
	ix, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	return ix
}
