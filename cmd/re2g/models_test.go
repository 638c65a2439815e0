package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/re2g/re2g/torch"
)

// tinyModelDir copies a parity checkpoint and gives it a WordPiece vocabulary
// of the first 1,000 bert-base-uncased tokens (the tiny models' vocabulary size).
func tinyModelDir(t *testing.T, fixture string) string {
	t.Helper()
	tokPath := "../../../shared/data/tokenizers/bert-base-uncased/tokenizer.json"
	raw, err := os.ReadFile(tokPath)
	if err != nil {
		t.Skipf("shared data not available: %v", err)
	}
	var tj struct {
		Model struct {
			Vocab map[string]int `json:"vocab"`
		} `json:"model"`
	}
	if err := json.Unmarshal(raw, &tj); err != nil {
		t.Fatal(err)
	}
	toks := make([]string, 0, len(tj.Model.Vocab))
	for k := range tj.Model.Vocab {
		toks = append(toks, k)
	}
	sort.Slice(toks, func(i, j int) bool { return tj.Model.Vocab[toks[i]] < tj.Model.Vocab[toks[j]] })
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "vocab.txt"), []byte(strings.Join(toks[:1000], "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join("../../testdata/parity", fixture)
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644)
	}
	return dir
}

func readLines[T any](t *testing.T, path string) []T {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func TestEncodeAndRerankCommands(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	os.WriteFile(in, []byte(`{"id": "p1", "title": "a", "text": "! # $ %"}
{"id": 2, "text": "& ' ( )"}
{"id": "p3", "title": "", "text": ""}
`), 0o644)
	out := filepath.Join(dir, "out.jsonl")
	ctx := tinyModelDir(t, "dpr-ctx")
	if err := newApp().Run([]string{"re2g", "encode", "--model", ctx, "--in", in, "--out", out, "--batch-size", "2"}); err != nil {
		t.Fatal(err)
	}
	vs := readLines[encodeOut](t, out)
	if len(vs) != 3 || string(vs[1].ID) != "2" || len(vs[0].Vector) != 16 {
		t.Fatalf("encode output: %d lines, id %s, dim %d", len(vs), vs[1].ID, len(vs[0].Vector))
	}
	if vs[0].Vector[0] == vs[1].Vector[0] {
		t.Fatal("different passages got the same vector")
	}

	rin := filepath.Join(dir, "rin.jsonl")
	os.WriteFile(rin, []byte(`{"id": 1, "query": "! #", "passage": "$ % & ' ( ) * +"}
{"id": 2, "query": "! #", "passage": "`+strings.Repeat("$ ", 500)+`"}
`), 0o644)
	rout := filepath.Join(dir, "rout.jsonl")
	ce := tinyModelDir(t, "cross-encoder-2")
	if err := newApp().Run([]string{"re2g", "rerank", "--model", ce, "--in", rin, "--out", rout, "--max-length", "32"}); err != nil {
		t.Fatal(err)
	}
	sc := readLines[rerankOut](t, rout)
	if len(sc) != 2 || sc[0].Score == sc[1].Score {
		t.Fatalf("rerank output %+v", sc)
	}

	// malformed input names the file and line, and writes nothing
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte("{\"id\": 1, \"text\": \"x\"}\n{\"id\": 2, \"text\": \n"), 0o644)
	badOut := filepath.Join(dir, "bad-out.jsonl")
	err := newApp().Run([]string{"re2g", "encode", "--model", ctx, "--in", bad, "--out", badOut})
	if err == nil || !strings.Contains(err.Error(), "bad.jsonl:2") {
		t.Fatalf("malformed line: %v", err)
	}
	if _, err := os.Stat(badOut); !os.IsNotExist(err) {
		t.Fatal("output written despite the error")
	}
	missing := filepath.Join(dir, "missing.jsonl")
	os.WriteFile(missing, []byte("{\"id\": 1}\n"), 0o644)
	if err := newApp().Run([]string{"re2g", "encode", "--model", ctx, "--in", missing, "--out", badOut}); err == nil || !strings.Contains(err.Error(), `missing "text"`) {
		t.Fatalf("missing text: %v", err)
	}
	if err := newApp().Run([]string{"re2g", "encode", "--model", dir, "--in", in, "--out", badOut}); err == nil {
		t.Fatal("a directory without a model loaded")
	}
}

// TestModelCommandsInputHygiene: an input with a UTF-8 byte order mark is
// read as without it (it used to fail with "invalid character 'ï'"); a
// model directory that does not exist, and a CUDA device libtorch does not
// see, are said to be so.
func TestModelCommandsInputHygiene(t *testing.T) {
	dir := t.TempDir()
	const lines = `{"id": "p1", "title": "a", "text": "! # $ %"}` + "\n" + `{"id": 2, "text": "& ' ( )"}` + "\n"
	plain, marked := filepath.Join(dir, "plain.jsonl"), filepath.Join(dir, "marked.jsonl")
	os.WriteFile(plain, []byte(lines), 0o644)
	os.WriteFile(marked, []byte("\xef\xbb\xbf"+lines), 0o644)
	ctx := tinyModelDir(t, "dpr-ctx")
	outs := map[string]string{}
	for _, in := range []string{plain, marked} {
		out := in + ".out"
		if err := newApp().Run([]string{"re2g", "encode", "--model", ctx, "--in", in, "--out", out}); err != nil {
			t.Fatalf("%s: %v", filepath.Base(in), err)
		}
		b, _ := os.ReadFile(out)
		outs[in] = string(b)
	}
	if outs[plain] == "" || outs[plain] != outs[marked] {
		t.Errorf("with a mark:\n%s\nwithout:\n%s", outs[marked], outs[plain])
	}
	missing := filepath.Join(dir, "no-such-model")
	err := newApp().Run([]string{"re2g", "encode", "--model", missing, "--in", plain, "--out", filepath.Join(dir, "x.jsonl")})
	if err == nil || !strings.Contains(err.Error(), missing+" does not exist") {
		t.Errorf("missing model directory: %v", err)
	}
	n := 0
	if torch.CUDAAvailable() {
		n = torch.CUDADeviceCount()
	}
	dev := fmt.Sprintf("cuda:%d", n) // one past the last device
	err = newApp().Run([]string{"re2g", "encode", "--model", ctx, "--device", dev, "--in", plain, "--out", filepath.Join(dir, "x.jsonl")})
	if err == nil || !strings.Contains(err.Error(), "--device") || !strings.Contains(err.Error(), dev) || strings.Contains(err.Error(), "missing") {
		t.Errorf("--device %s: %v", dev, err)
	}
}
