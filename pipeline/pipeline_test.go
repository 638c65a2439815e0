package pipeline

import (
	"context"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/indexdir"
	"github.com/re2g/re2g/model/bart"
	"github.com/re2g/re2g/model/bert"
	"github.com/re2g/re2g/neural"
	"github.com/re2g/re2g/torch"
)

const shared = "../../shared/data"

func tokenizerJSON(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(shared, "tokenizers/bert-base-uncased/tokenizer.json"))
	if err != nil {
		t.Skipf("shared data not available: %v", err)
	}
	return b
}

func tinyBert() *bert.Config {
	return &bert.Config{ModelType: "bert", VocabSize: 30522, HiddenSize: 32, NumHiddenLayers: 2, NumAttentionHeads: 4,
		IntermediateSize: 64, HiddenAct: "gelu", MaxPositionEmbeddings: 128, TypeVocabSize: 2, LayerNormEps: 1e-12,
		ID2Label: map[string]string{"0": "LABEL_0"}}
}

// tinyModels writes random tiny models (with the real bert-base-uncased
// tokenizer) and returns their directories.
func tinyModels(t *testing.T) (q, ctx, rr, gen string) {
	t.Helper()
	tok := tokenizerJSON(t)
	dir := t.TempDir()
	save := func(name string, f func(string) error) string {
		p := filepath.Join(dir, name)
		if err := f(p); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p, "tokenizer.json"), tok, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	torch.ManualSeed(11)
	for _, question := range []bool{true, false} {
		d, err := bert.NewDPR(tinyBert(), question, torch.CPUDevice)
		if err != nil {
			t.Fatal(err)
		}
		if question {
			q = save("q", d.Save)
		} else {
			ctx = save("ctx", d.Save)
		}
		d.Close()
	}
	ce, err := bert.NewCrossEncoder(tinyBert(), torch.CPUDevice)
	if err != nil {
		t.Fatal(err)
	}
	rr = save("rr", ce.Save)
	ce.Close()
	bc := &bart.Config{ModelType: "bart", VocabSize: 30522, DModel: 16, EncoderLayers: 1, DecoderLayers: 1,
		EncoderAttentionHeads: 2, DecoderAttentionHeads: 2, EncoderFFNDim: 32, DecoderFFNDim: 32, ActivationFunction: "gelu",
		MaxPositionEmbeddings: 256, PadTokenID: 0, BOSTokenID: 101, EOSTokenID: 102, DecoderStartTokenID: 102, InitStd: 0.5}
	m, err := bart.New(bc, torch.CPUDevice)
	if err != nil {
		t.Fatal(err)
	}
	g := bart.DefaultGenerationConfig(bc)
	gen = save("gen", func(p string) error { return m.Save(p, g) })
	m.Close()
	return
}

func tinyCorpus(t *testing.T, n int) (string, []data.Passage) {
	t.Helper()
	sq, err := data.LoadSQuAD(filepath.Join(shared, "squadshifts/new_wiki_v1.0.json"), &data.Report{})
	if err != nil {
		t.Skipf("shared data not available: %v", err)
	}
	ps := sq.Passages[:n]
	p := filepath.Join(t.TempDir(), "corpus.jsonl")
	f, _ := os.Create(p)
	if err := data.WriteCorpus(f, ps); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p, ps
}

func TestTinyEndToEnd(t *testing.T) {
	qDir, ctxDir, rrDir, genDir := tinyModels(t)
	corpusPath, ps := tinyCorpus(t, 40)
	enc, err := neural.LoadEncoder(ctxDir, neural.Options{MaxLength: 64})
	if err != nil {
		t.Fatal(err)
	}
	idx := filepath.Join(t.TempDir(), "index")
	if _, err := indexdir.Build(context.Background(), corpusPath, indexdir.Options{Out: idx, Encoder: enc, Progress: io.Discard}); err != nil {
		t.Fatal(err)
	}
	enc.Close()
	p, err := New(Config{Index: idx, QueryEncoder: qDir, Reranker: rrDir, Generator: genDir, MaxNewTokens: 6,
		Models: neural.Options{MaxLength: 96}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	base := torch.LiveTensors()
	res, err := p.AnswerBatch(context.Background(), []string{"Where is " + ps[3].Title + "?", "who elects delegates"})
	if err != nil {
		t.Fatal(err)
	}
	if torch.LiveTensors() != base {
		t.Fatalf("answering leaked %d tensors", torch.LiveTensors()-base)
	}
	for _, r := range res {
		if len(r.Provenance) != 5 {
			t.Fatalf("%d passages kept, want 5", len(r.Provenance))
		}
		sum := 0.0
		for i, pv := range r.Provenance {
			sum += pv.Prob
			if i > 0 && pv.RerankScore > r.Provenance[i-1].RerankScore {
				t.Fatal("provenance not sorted by reranker score")
			}
		}
		if math.Abs(sum-1) > 1e-9 {
			t.Fatalf("passage probabilities sum to %v", sum)
		}
		if len(r.Answers) == 0 || r.Score <= 0 || r.Score > 1 {
			t.Fatalf("answers %v score %v", r.Answers, r.Score)
		}
		total := 0.0
		for _, a := range r.Answers {
			total += a.Prob
		}
		if total > 1+1e-9 {
			t.Fatalf("answer probabilities sum to %v > 1", total)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Answer(ctx, "who elects delegates"); err == nil {
		t.Fatal("a cancelled context was answered")
	}
	// readers share the index: a second pipeline on it opens at once
	other, err := New(Config{Index: idx})
	if err != nil {
		t.Fatalf("a second pipeline on the same index: %v", err)
	}
	if _, err := other.Retrieve(context.Background(), "who elects delegates"); err != nil {
		t.Fatal(err)
	}
	other.Close()
	p.Close()
	// retrieval only, BM25 only
	p2, err := New(Config{Index: idx})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	r2, err := p2.Answer(context.Background(), "delegates")
	if err != nil || r2.Answer != "" || len(r2.Provenance) == 0 {
		t.Fatalf("retrieval only: %+v %v", r2, err)
	}
	if _, err := p2.Answer(context.Background(), "   "); err == nil {
		t.Fatal("an empty query was answered")
	}
}
