package tokenizer

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestFilesWithByteOrderMark: tokenizer files saved with a UTF-8 byte order
// mark (tokenizer.json, vocab.txt, vocab.json and merges.txt, the JSON
// configs) give the tokenizer they give without it. A marked vocab.txt
// used to make the first token "\ufeff[PAD]".
func TestFilesWithByteOrderMark(t *testing.T) {
	texts := []string{"Who wrote the Iliad?", "[CLS] paris", "hello world"}
	for _, fixture := range []string{"bert", "cross-encoder-1", "bart"} {
		src := filepath.Join("../testdata/hf", fixture, "safetensors")
		dir := t.TempDir()
		ents, err := os.ReadDir(src)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			ext := filepath.Ext(e.Name())
			if ext != ".json" && ext != ".txt" {
				continue
			}
			b, err := os.ReadFile(filepath.Join(src, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, e.Name()), append([]byte("\xef\xbb\xbf"), b...), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := Load(src)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Load(dir)
		if err != nil {
			t.Errorf("%s with marks: %v", fixture, err)
			continue
		}
		for _, s := range texts {
			if a, b := got.Encode(s).IDs, want.Encode(s).IDs; !reflect.DeepEqual(a, b) {
				t.Errorf("%s with marks: %q gives %v, without %v", fixture, s, a, b)
			}
		}
		if a, b := got.VocabSize(), want.VocabSize(); a != b {
			t.Errorf("%s with marks: vocabulary %d, without %d", fixture, a, b)
		}
		pa, oka := got.PadID()
		pb, okb := want.PadID()
		if pa != pb || oka != okb {
			t.Errorf("%s with marks: pad %d %v, without %d %v", fixture, pa, oka, pb, okb)
		}
	}
}
