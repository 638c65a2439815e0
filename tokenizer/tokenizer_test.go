package tokenizer

import (
	"context"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func bertTok(t testing.TB) *Tokenizer {
	return loadOrSkip(t, filepath.Join(dataDir, "tokenizers/bert-base-uncased/tokenizer.json"))
}

func gpt2Tok(t testing.TB) *Tokenizer {
	return loadOrSkip(t, filepath.Join(dataDir, "tokenizers/gpt2-bpe"))
}

func TestBertTemplateAndTypeIDs(t *testing.T) {
	tok := bertTok(t)
	e := tok.EncodePair("Hello world", "Good bye")
	cls, _ := tok.TokenToID("[CLS]")
	sep, _ := tok.TokenToID("[SEP]")
	if e.IDs[0] != cls || e.IDs[3] != sep || e.IDs[len(e.IDs)-1] != sep {
		t.Fatalf("ids %v", e.IDs)
	}
	if !slices.Equal(e.TypeIDs, []int{0, 0, 0, 0, 1, 1, 1}) {
		t.Fatalf("type ids %v", e.TypeIDs)
	}
	if !slices.Equal(e.SpecialTokensMask, []int{1, 0, 0, 1, 0, 0, 1}) {
		t.Fatalf("special mask %v", e.SpecialTokensMask)
	}
	s, err := tok.Decode(e.IDs, true)
	if err != nil || s != "hello world good bye" {
		t.Fatalf("decode %q %v", s, err)
	}
}

func TestTruncationStrategies(t *testing.T) {
	tok := bertTok(t)
	long := strings.Repeat("word ", 50)
	e, err := tok.EncodeWith("short question", long, true, Options{MaxLength: 16, Truncation: OnlySecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(e.IDs) != 16 || e.IDs[1] != mustID(t, tok, "short") {
		t.Fatalf("only_second: %v", e.IDs)
	}
	// only_second cannot cut enough when the first text alone is too long
	if _, err := tok.EncodeWith(long, "x", true, Options{MaxLength: 16, Truncation: OnlySecond}); err == nil {
		t.Fatal("only_second with a long first text: want an error")
	}
	e, err = tok.EncodeWith(long, long, true, Options{MaxLength: 21})
	if err != nil {
		t.Fatal(err)
	}
	var a, b int
	for i, ty := range e.TypeIDs {
		if e.SpecialTokensMask[i] == 0 {
			if ty == 0 {
				a++
			} else {
				b++
			}
		}
	}
	if len(e.IDs) != 21 || a != 9 || b != 9 {
		t.Fatalf("longest_first: %d tokens, %d + %d", len(e.IDs), a, b)
	}
	if _, err := tok.EncodeWith("a", "b", true, Options{MaxLength: 2}); err == nil {
		t.Fatal("max length below the special tokens: want an error")
	}
	if _, err := tok.EncodeWith("a", "", false, Options{MaxLength: 5, Truncation: "bogus"}); err != nil {
		t.Fatal("no truncation needed: no error expected")
	}
	if _, err := tok.EncodeWith(long, "", false, Options{MaxLength: 5, Truncation: "bogus"}); err == nil {
		t.Fatal("unknown strategy: want an error")
	}
	e, _ = tok.EncodeWith(long, "", false, Options{MaxLength: 8})
	if len(e.IDs) != 8 || e.IDs[7] != mustID(t, tok, "[SEP]") {
		t.Fatalf("single truncation: %v", e.IDs)
	}
}

func mustID(t *testing.T, tok *Tokenizer, s string) int {
	id, ok := tok.TokenToID(s)
	if !ok {
		t.Fatalf("no token %q", s)
	}
	return id
}

func TestBatchPadding(t *testing.T) {
	tok := bertTok(t)
	ins := []Input{{A: "one"}, {A: "a somewhat longer text here"}, {A: "q", B: "passage text", Pair: true}}
	for i := 0; i < 100; i++ {
		ins = append(ins, Input{A: strings.Repeat("x ", i%13)})
	}
	out, err := tok.EncodeBatch(context.Background(), ins, Options{Padding: PadLongest})
	if err != nil {
		t.Fatal(err)
	}
	n := len(out[0].IDs)
	for i, e := range out {
		if len(e.IDs) != n || len(e.AttentionMask) != n || len(e.TypeIDs) != n {
			t.Fatalf("%d: lengths differ", i)
		}
		single, _ := tok.EncodeWith(ins[i].A, ins[i].B, ins[i].Pair, Options{})
		k := len(single.IDs)
		if !slices.Equal(e.IDs[:k], single.IDs) {
			t.Fatalf("%d: batch %v != single %v", i, e.IDs, single.IDs)
		}
		for j := range e.IDs {
			if want := 1; j >= k {
				want = 0
				if e.IDs[j] != 0 || e.AttentionMask[j] != want {
					t.Fatalf("%d: padding %v %v", i, e.IDs, e.AttentionMask)
				}
			} else if e.AttentionMask[j] != want {
				t.Fatalf("%d: mask %v", i, e.AttentionMask)
			}
		}
	}
	out, err = tok.EncodeBatch(context.Background(), ins[:2], Options{Padding: PadMaxLength, MaxLength: 32})
	if err != nil || len(out[0].IDs) != 32 || len(out[1].IDs) != 32 {
		t.Fatalf("pad to max length: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tok.EncodeBatch(ctx, ins, Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	if _, err := gpt2Tok(t).EncodeBatch(context.Background(), ins[:2], Options{Padding: PadLongest}); err == nil {
		t.Fatal("GPT-2 has no pad token: want an error")
	}
}

func TestDecodeUnknownID(t *testing.T) {
	tok := bertTok(t)
	if _, err := tok.Decode([]int{101, 1 << 30}, false); !errors.Is(err, ErrUnknownID) {
		t.Fatalf("err %v", err)
	}
	if _, err := tok.Decode([]int{-1}, false); !errors.Is(err, ErrUnknownID) {
		t.Fatalf("err %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing path")
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "no tokenizer.json") {
		t.Fatalf("empty folder: %v", err)
	}
	bad := filepath.Join(dir, "tokenizer.json")
	for _, c := range []string{`{`, `{"model": null}`, `{"model": {"type": "Unigram", "vocab": []}}`,
		`{"normalizer": {"type": "Precompiled"}, "model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": {"[UNK]": 0}}}`,
		`{"model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": {"a": 0}}}`,
		`{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}`} {
		if err := os.WriteFile(bad, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(bad); err == nil {
			t.Errorf("%s: want an error", c)
		}
	}
	os.Remove(bad)
	if err := os.WriteFile(filepath.Join(dir, "vocab.json"), []byte(`{"a":0,"b":1,"ab":2}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "merges.txt"), []byte("#version: 0.2\na b c\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "merges.txt:2") {
		t.Fatalf("bad merges: %v", err)
	}
}

// TestBPEHeapMatchesQuadratic checks the heap merge against the simple loop.
func TestBPEHeapMatchesQuadratic(t *testing.T) {
	tok := gpt2Tok(t)
	m := tok.model.(*bpe)
	rng := rand.New(rand.NewSource(1))
	letters := []rune("abcdefghijklmnopqrstuvwxyz eé")
	for n := 0; n < 300; n++ {
		var sb strings.Builder
		for i := 0; i < 2+rng.Intn(200); i++ {
			sb.WriteRune(letters[rng.Intn(len(letters))])
		}
		word := string(byteMapped(sb.String(), nil))
		var syms []int
		for _, r := range word {
			syms = append(syms, m.vocab[string(r)])
		}
		heap := m.mergeHeap(slices.Clone(syms))
		// quadratic reference
		for len(syms) > 1 {
			best, bestRank, bestID := -1, int32(1<<31-1), int32(0)
			for i := 0; i+1 < len(syms); i++ {
				if mg, ok := m.merges[uint64(syms[i])<<32|uint64(uint32(syms[i+1]))]; ok && mg.rank < bestRank {
					best, bestRank, bestID = i, mg.rank, mg.id
				}
			}
			if best < 0 {
				break
			}
			syms[best] = int(bestID)
			syms = append(syms[:best+1], syms[best+2:]...)
		}
		if !slices.Equal(heap, syms) {
			t.Fatalf("%q: heap %v, loop %v", word, heap, syms)
		}
	}
}

func TestLossyUTF8(t *testing.T) {
	for in, want := range map[string]string{
		"a\xe2\x82b":     "a\ufffdb",
		"\xf0\x9f\x98":   "\ufffd",
		"\xff\xfe":       "\ufffd\ufffd",
		"\xed\xa0\x80":   "\ufffd\ufffd\ufffd",
		"ok\xc3":         "ok\ufffd",
		"\xe0\x80\xaf":   "\ufffd\ufffd\ufffd",
		"x\xf4\x90\x80y": "x\ufffd\ufffd\ufffdy",
	} {
		if got := lossyUTF8([]byte(in)); got != want {
			t.Errorf("%q: got %q want %q", in, got, want)
		}
	}
}

func TestModelMaxLengthFromConfig(t *testing.T) {
	src := filepath.Join(dataDir, "tokenizers/bert-base-uncased/tokenizer.json")
	b, err := os.ReadFile(src)
	if err != nil {
		t.Skipf("shared data not available: %v", err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tokenizer.json"), b, 0o644)
	os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(`{"model_max_length": 512, "do_lower_case": true}`), 0o644)
	tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if tok.ModelMaxLength != 512 {
		t.Fatalf("model max length %d", tok.ModelMaxLength)
	}
	if tok.DefaultTruncation == nil || tok.DefaultTruncation.MaxLength != 128 {
		t.Fatalf("default truncation %+v", tok.DefaultTruncation)
	}
	if id, ok := tok.PadID(); !ok || id != 0 {
		t.Fatalf("pad id %d %v", id, ok)
	}
}
