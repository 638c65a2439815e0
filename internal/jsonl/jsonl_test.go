package jsonl

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

type rec struct {
	ID   int    `json:"id"`
	Text string `json:"text"`
}

// TestMapByteOrderMark: an input starting with a UTF-8 byte order mark is
// read as without it (it used to fail with "invalid character 'ï'").
func TestMapByteOrderMark(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	if err := os.WriteFile(in, []byte("\xef\xbb\xbf{\"id\": 1, \"text\": \"a\"}\n\n{\"id\": 2, \"text\": \"b\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.jsonl")
	var seen []rec
	n, err := Map(context.Background(), in, out, 1, "test", func(_ context.Context, rs []rec) ([]rec, error) {
		seen = append(seen, rs...)
		return rs, nil
	})
	if err != nil || n != 2 || len(seen) != 2 || seen[0] != (rec{1, "a"}) || seen[1] != (rec{2, "b"}) {
		t.Fatalf("n %d, %v, read %+v", n, err, seen)
	}
	b, err := os.ReadFile(out)
	if err != nil || string(b) != "{\"id\":1,\"text\":\"a\"}\n{\"id\":2,\"text\":\"b\"}\n" {
		t.Fatalf("output %q, %v", b, err)
	}
}
