package jsonl

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/re2g/re2g/internal/progress"
)

// TestMapProgressCountsWrittenLines: progress counts the bytes of lines
// whose batch is done, not what the scanner has read ahead, so the job is
// reported finished only after its last batch; and with stderr not a
// terminal it is a log line, without carriage returns.
func TestMapProgressCountsWrittenLines(t *testing.T) {
	var logs bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	defer slog.SetDefault(old)
	defer progress.SetMode(progress.CurrentMode())
	progress.SetMode(progress.Log)

	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	var b bytes.Buffer
	for i := 0; i < 10; i++ {
		fmt.Fprintf(&b, "{\"n\": %d}\r\n", i) // CRLF: the scanner drops the \r
	}
	b.WriteString("\n\n")
	if err := os.WriteFile(in, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	type rec struct{ N int }
	batches := 0
	n, err := Map(context.Background(), in, filepath.Join(dir, "out.jsonl"), 3, "test", func(_ context.Context, in []rec) ([]rec, error) {
		batches++
		if strings.Contains(logs.String(), "progress finished") {
			t.Errorf("batch %d: progress reported finished before it ran", batches)
		}
		return in, nil
	})
	if err != nil || n != 10 || batches != 4 {
		t.Fatalf("Map: %d lines in %d batches, %v", n, batches, err)
	}
	want := fmt.Sprintf(`done="%d B" total="%d B"`, b.Len(), b.Len())
	if c := strings.Count(logs.String(), `msg="progress finished" task=test`); c != 1 || !strings.Contains(logs.String(), want) {
		t.Errorf("want one finishing line with %s, got:\n%s", want, logs.String())
	}
	if strings.Contains(logs.String(), "\r") {
		t.Errorf("carriage return in %q", logs.String())
	}
}

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
