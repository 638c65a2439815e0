package pipeline

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/dense"
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

func TestIndexCrashAndResumeEqualsUninterrupted(t *testing.T) {
	torch.SetNumThreads(2)
	_, ctxDir, _, _ := tinyModels(t)
	corpusPath, _ := tinyCorpus(t, 50)
	corpus, err := LoadCorpus(corpusPath)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := neural.LoadEncoder(ctxDir, neural.Options{BatchSize: 8, MaxLength: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	ctx := context.Background()
	full := filepath.Join(t.TempDir(), "full")
	if _, err := BuildIndex(ctx, corpusPath, corpus, IndexOptions{Out: full, Encoder: enc, Chunk: 8}); err != nil {
		t.Fatal(err)
	}
	// a crash after 3 of 7 chunks
	crashed := filepath.Join(t.TempDir(), "crashed")
	boom := errors.New("killed")
	_, err = BuildIndex(ctx, corpusPath, corpus, IndexOptions{Out: crashed, Encoder: enc, Chunk: 8,
		afterChunk: func(done int) error {
			if done == 3 {
				return boom
			}
			return nil
		}})
	if !errors.Is(err, boom) {
		t.Fatalf("want the simulated crash, got %v", err)
	}
	if _, err := OpenIndex(crashed); err == nil {
		t.Fatal("an unfinished index opened")
	}
	if _, err := BuildIndex(ctx, corpusPath, corpus, IndexOptions{Out: crashed, Encoder: enc, Chunk: 8}); err == nil {
		t.Fatal("rebuilding over an unfinished index without --resume succeeded")
	}
	encoded := 0
	if _, err := BuildIndex(ctx, corpusPath, corpus, IndexOptions{Out: crashed, Encoder: enc, Chunk: 8, Resume: true,
		afterChunk: func(done int) error { encoded = done; return nil }}); err != nil {
		t.Fatal(err)
	}
	if encoded != 4 {
		t.Fatalf("resume encoded %d chunks, want the 4 missing ones", encoded)
	}
	a, b := vectors(t, full), vectors(t, crashed)
	if len(a) != 50 || len(b) != 50 {
		t.Fatalf("%d and %d vectors", len(a), len(b))
	}
	for id, v := range a {
		w := b[id]
		for i := range v {
			if v[i] != w[i] {
				t.Fatalf("passage %s: resumed vector differs", id)
			}
		}
	}
}

func vectors(t *testing.T, dir string) map[string][]float32 {
	t.Helper()
	st, err := dense.Open(filepath.Join(dir, denseDir))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]float32{}
	for _, si := range st.Shards() {
		_, ids, vecs, err := st.ReadShard(context.Background(), si.Name)
		if err != nil {
			t.Fatal(err)
		}
		for i, id := range ids {
			out[id] = vecs[i*st.Dim() : (i+1)*st.Dim()]
		}
	}
	return out
}

func TestShardsMergeIntoOneIndex(t *testing.T) {
	_, ctxDir, _, _ := tinyModels(t)
	corpusPath, _ := tinyCorpus(t, 30)
	corpus, _ := LoadCorpus(corpusPath)
	enc, err := neural.LoadEncoder(ctxDir, neural.Options{MaxLength: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	ctx := context.Background()
	var dirs []string
	for i := 0; i < 3; i++ {
		d := filepath.Join(t.TempDir(), "shard")
		if _, err := BuildIndex(ctx, corpusPath, corpus, IndexOptions{Out: d, Encoder: enc, Chunk: 4, Shard: i, NumShards: 3}); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
	}
	parent := t.TempDir()
	out := filepath.Join(parent, "merged")
	if _, err := MergeShards(ctx, corpusPath, corpus, out, dirs[:2], IndexOptions{}); err == nil {
		t.Fatal("merging without a shard succeeded")
	}
	// a failed merge leaves nothing behind: no half-written dense/, no
	// temporary directory
	if ents, _ := os.ReadDir(parent); len(ents) != 0 {
		t.Fatalf("a failed merge left %v", ents)
	}
	// a directory that holds something is not merged into, nor touched
	os.MkdirAll(out, 0o755)
	os.WriteFile(filepath.Join(out, "keep"), []byte("x"), 0o644)
	if _, err := MergeShards(ctx, corpusPath, corpus, out, dirs, IndexOptions{}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("merge into a non-empty directory: %v", err)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 1 {
		t.Fatalf("the non-empty directory now holds %v", ents)
	}
	os.RemoveAll(out)
	// a damaged shard is an error naming its file
	bad := copyDir(t, dirs[1])
	vec := filepath.Join(bad, denseDir, "chunk-000001.g1.vec")
	raw, err := os.ReadFile(vec)
	if err != nil {
		t.Fatal(err)
	}
	raw[40] ^= 1
	os.WriteFile(vec, raw, 0o644)
	if _, err := MergeShards(ctx, corpusPath, corpus, out, []string{dirs[0], bad, dirs[2]}, IndexOptions{}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), vec) {
		t.Fatalf("merging a damaged shard: %v", err)
	}
	if _, err := MergeShards(ctx, corpusPath, corpus, out, dirs, IndexOptions{}); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 1 {
		t.Fatalf("after the merge the parent holds %v, want the index alone", ents)
	}
	if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o755 {
		t.Fatalf("merged index directory: %v %v", st.Mode(), err)
	}
	single := filepath.Join(t.TempDir(), "single")
	if _, err := BuildIndex(ctx, corpusPath, corpus, IndexOptions{Out: single, Encoder: enc, Chunk: 4}); err != nil {
		t.Fatal(err)
	}
	a, b := vectors(t, out), vectors(t, single)
	for id, v := range b {
		for i := range v {
			if a[id][i] != v[i] {
				t.Fatalf("passage %s differs between merged shards and one build", id)
			}
		}
	}
	ix, err := OpenIndex(out)
	if err != nil {
		t.Fatal(err)
	}
	ix.Close()
}

func TestTinyEndToEnd(t *testing.T) {
	qDir, ctxDir, rrDir, genDir := tinyModels(t)
	corpusPath, ps := tinyCorpus(t, 40)
	corpus, _ := LoadCorpus(corpusPath)
	enc, err := neural.LoadEncoder(ctxDir, neural.Options{MaxLength: 64})
	if err != nil {
		t.Fatal(err)
	}
	idx := filepath.Join(t.TempDir(), "index")
	if _, err := BuildIndex(context.Background(), corpusPath, corpus, IndexOptions{Out: idx, Encoder: enc}); err != nil {
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
