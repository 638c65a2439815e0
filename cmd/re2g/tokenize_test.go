package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/re2g/re2g/tokenizer"
)

func TestTokenizeCommand(t *testing.T) {
	tokPath := "../../../shared/data/tokenizers/bert-base-uncased/tokenizer.json"
	if _, err := os.Stat(tokPath); err != nil {
		t.Skipf("shared data not available: %v", err)
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	out := filepath.Join(dir, "out.jsonl")
	lines := `{"id": 1, "text": "Hello world!"}
{"id": "q2", "text": "What is it?", "text_pair": "` + strings.Repeat("a long passage ", 20) + `"}

{"id": 3, "text": ""}
`
	if err := os.WriteFile(in, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := runTokenize(context.Background(), tokPath, in, out, 16, "only_second"); err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(tokPath)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []tokenizeOut
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var o tokenizeOut
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			t.Fatal(err)
		}
		got = append(got, o)
	}
	if len(got) != 3 || string(got[1].ID) != `"q2"` {
		t.Fatalf("got %d lines: %+v", len(got), got)
	}
	want, _ := tok.EncodeWith("What is it?", strings.Repeat("a long passage ", 20), true,
		tokenizer.Options{MaxLength: 16, Truncation: tokenizer.OnlySecond})
	if !slices.Equal(got[1].IDs, want.IDs) || !slices.Equal(got[1].TypeIDs, want.TypeIDs) || len(got[1].IDs) != 16 {
		t.Fatalf("pair: %v %v", got[1].IDs, got[1].TypeIDs)
	}
	if !slices.Equal(got[2].IDs, []int{101, 102}) {
		t.Fatalf("empty text: %v", got[2].IDs)
	}
	for _, bad := range []string{`{"id": 1}`, `{"text": "x"}`, `not json`} {
		if err := os.WriteFile(in, []byte(bad+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		err := runTokenize(context.Background(), tokPath, in, out, 0, "longest_first")
		if err == nil || !strings.Contains(err.Error(), "in.jsonl:1") {
			t.Errorf("%s: error %v should name the line", bad, err)
		}
	}
	if err := runTokenize(context.Background(), tokPath, in, out, 0, "bogus"); err == nil {
		t.Error("bad --truncation: want an error")
	}
}
