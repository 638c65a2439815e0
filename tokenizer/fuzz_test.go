package tokenizer

import (
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

var (
	fuzzOnce           sync.Once
	fuzzBert, fuzzGPT2 *Tokenizer
)

func fuzzTokenizers(t *testing.T) (*Tokenizer, *Tokenizer) {
	fuzzOnce.Do(func() {
		fuzzBert, _ = Load(dataDir + "/tokenizers/bert-base-uncased/tokenizer.json")
		fuzzGPT2, _ = Load(dataDir + "/tokenizers/gpt2-bpe")
	})
	if fuzzBert == nil || fuzzGPT2 == nil {
		t.Skip("shared tokenizers not available")
	}
	return fuzzBert, fuzzGPT2
}

// FuzzGPT2 checks that byte-level BPE never fails and that decoding gives the
// input back byte for byte (for valid UTF-8).
func FuzzGPT2(f *testing.F) {
	f.Add("Hello, world! <|endoftext|> 's 're   \n\t x")
	f.Fuzz(func(t *testing.T, s string) {
		_, tok := fuzzTokenizers(t)
		e := tok.Encode(s)
		checkShape(t, e)
		dec, err := tok.Decode(e.IDs, false)
		if err != nil {
			t.Fatal(err)
		}
		if utf8.ValidString(s) && dec != s {
			t.Fatalf("decode(encode(%q)) = %q", s, dec)
		}
		if !utf8.ValidString(dec) {
			t.Fatalf("decoded text is not UTF-8: %q", dec)
		}
		pair, err := tok.EncodeWith(s, s, true, Options{MaxLength: 9})
		if err != nil {
			t.Fatal(err)
		}
		checkShape(t, pair)
		if len(pair.IDs) > 9 {
			t.Fatalf("truncated pair has %d tokens", len(pair.IDs))
		}
	})
}

// FuzzBert checks that WordPiece never fails, that the template is applied,
// and that decoding keeps the normalized characters (spacing aside).
func FuzzBert(f *testing.F) {
	f.Add("Héllo, WORLD! 你好 [SEP] don't")
	f.Fuzz(func(t *testing.T, s string) {
		tok, _ := fuzzTokenizers(t)
		e := tok.Encode(s)
		checkShape(t, e)
		if len(e.IDs) < 2 || e.IDs[0] != 101 || e.IDs[len(e.IDs)-1] != 102 {
			t.Fatalf("template not applied: %v", e.IDs)
		}
		dec, err := tok.Decode(e.IDs, true)
		if err != nil {
			t.Fatal(err)
		}
		if !utf8.ValidString(dec) {
			t.Fatalf("decoded text is not UTF-8: %q", dec)
		}
		if strings.Contains(s, "[") || !utf8.ValidString(s) || containsID(e.IDs, 100) {
			return
		}
		squash := func(x string) string {
			var b strings.Builder
			for _, r := range x {
				if r != ' ' && !bertSplitWS.contains(r) {
					b.WriteRune(r)
				}
			}
			return strings.ReplaceAll(b.String(), "don't", "donot")
		}
		want := squash(tok.normalizer.normalize(s))
		if got := squash(dec); got != want {
			t.Fatalf("decode(encode(%q)) = %q: %q != %q", s, dec, got, want)
		}
		pair, err := tok.EncodeWith(s, s, true, Options{MaxLength: 11})
		if err != nil {
			t.Fatal(err)
		}
		checkShape(t, pair)
	})
}

func containsID(ids []int, id int) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func checkShape(t *testing.T, e Encoding) {
	t.Helper()
	n := len(e.IDs)
	if len(e.TypeIDs) != n || len(e.AttentionMask) != n || len(e.SpecialTokensMask) != n {
		t.Fatalf("lengths differ: %d %d %d %d", n, len(e.TypeIDs), len(e.AttentionMask), len(e.SpecialTokensMask))
	}
}
