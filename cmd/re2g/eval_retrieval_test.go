package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/re2g/re2g/bm25"
)

// runCLI runs the re2g command line in-process and returns its stdout.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() {
		var b bytes.Buffer
		io.Copy(&b, r)
		done <- b.String()
	}()
	app := &cli.App{Name: "re2g", Commands: commands}
	err = app.RunContext(context.Background(), append([]string{"re2g"}, args...))
	w.Close()
	os.Stdout = old
	return <-done, err
}

func TestEvalRetrievalCLI(t *testing.T) {
	dir := t.TempDir()
	put := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	corpus := put("corpus.jsonl", `{"_id": "d1", "title": "Cats", "text": "cats purr and sleep"}
{"_id": "d2", "title": "Dogs", "text": "dogs bark at cats"}
{"_id": "d3", "title": "Fish", "text": "fish swim"}
`)
	queries := put("queries.tsv", "q1\tsleeping cats\nq2\tswimming fish\nq3\tunjudged query\n")
	qrels := put("qrels.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t2\n")
	runOut := filepath.Join(dir, "run.trec")
	index := filepath.Join(dir, "index")
	for _, reuse := range []bool{false, true} {
		out, err := runCLI(t, "eval", "retrieval", "--corpus", corpus, "--queries", queries, "--qrels", qrels,
			"--index", index, "--run-out", runOut, "--threads", "2")
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		var res map[string]any
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
			t.Fatalf("last stdout line is not JSON: %q", out)
		}
		for _, k := range []string{"ndcg@10", "recall@100", "recall@1000", "map", "mrr@10"} {
			if res[k] != 1.0 {
				t.Errorf("%s = %v, want 1", k, res[k])
			}
		}
		if res["queries"] != 2.0 || res["index_built"] != !reuse {
			t.Errorf("queries %v, index_built %v (reuse %v)", res["queries"], res["index_built"], reuse)
		}
	}
	run, err := os.ReadFile(runOut)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(run), "q1 Q0 d1 1 ") || !strings.Contains(string(run), "\nq2 Q0 d3 1 ") {
		t.Errorf("run file:\n%s", run)
	}
	// The query's own document removed.
	out, err := runCLI(t, "eval", "retrieval", "--corpus", corpus, "--queries", put("q2.tsv", "d1\tcats\n"),
		"--qrels", put("qr2.txt", "d1 0 d2 1\n"), "--remove-query-id")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"mrr@10":1`) {
		t.Errorf("remove-query-id: %s", out)
	}
	// Qrels from another collection: an error, not zeros.
	if _, err := runCLI(t, "eval", "retrieval", "--corpus", corpus, "--queries", queries, "--qrels", put("other.txt", "x 0 d1 1\n")); err == nil {
		t.Error("no judged query: no error")
	}
	if _, err := runCLI(t, "eval", "retrieval", "--corpus", corpus, "--queries", queries, "--qrels", qrels, "--retriever", "dpr"); err == nil {
		t.Error("unknown retriever: no error")
	}
}

// TestEvalRetrievalInputHygiene: files with a UTF-8 byte order mark give
// the metrics they give without it (the first corpus record used to be
// skipped), and an empty corpus, query set, qrels or index is an error
// naming it, not all-zero metrics with exit status 0.
func TestEvalRetrievalInputHygiene(t *testing.T) {
	dir := t.TempDir()
	put := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const corpus = `{"_id": "d1", "title": "Cats", "text": "cats purr and sleep"}
{"_id": "d2", "title": "Dogs", "text": "dogs bark"}
`
	const queries, qrels = "q1\tsleeping cats\n", "q1 0 d1 1\n"
	last := func(out string) string {
		lines := strings.Split(strings.TrimSpace(out), "\n")
		return lines[len(lines)-1]
	}
	want, err := runCLI(t, "eval", "retrieval", "--corpus", put("c.jsonl", corpus), "--queries", put("q.tsv", queries), "--qrels", put("r.txt", qrels))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(last(want), `"ndcg@10":1`) {
		t.Fatalf("without marks: %s", last(want))
	}
	const mark = "\xef\xbb\xbf"
	got, err := runCLI(t, "eval", "retrieval", "--corpus", put("mc.jsonl", mark+corpus), "--queries", put("mq.tsv", mark+queries), "--qrels", put("mr.txt", mark+qrels))
	if err != nil || last(got) != last(want) {
		t.Errorf("with marks: %v\n%s\nwithout:\n%s", err, last(got), last(want))
	}
	for what, args := range map[string][]string{
		"empty corpus":  {"--corpus", put("empty.jsonl", ""), "--queries", put("q.tsv", queries), "--qrels", put("r.txt", qrels)},
		"empty queries": {"--corpus", put("c.jsonl", corpus), "--queries", put("eq.tsv", "\n"), "--qrels", put("r.txt", qrels)},
		"empty qrels":   {"--corpus", put("c.jsonl", corpus), "--queries", put("q.tsv", queries), "--qrels", put("er.txt", "")},
	} {
		_, err := runCLI(t, append([]string{"eval", "retrieval"}, args...)...)
		name := map[string]string{"empty corpus": "empty.jsonl", "empty queries": "eq.tsv", "empty qrels": "er.txt"}[what]
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, name)) {
			t.Errorf("%s: %v", what, err)
		}
	}
	// an existing index without passages
	empty := filepath.Join(dir, "empty-index")
	ix, err := bm25.Create(empty, bm25.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ix.Close()
	if _, err := runCLI(t, "eval", "retrieval", "--index", empty, "--queries", put("q.tsv", queries), "--qrels", put("r.txt", qrels)); err == nil ||
		!strings.Contains(err.Error(), empty) || !strings.Contains(err.Error(), "no passages") {
		t.Errorf("empty index: %v", err)
	}
}

func TestDataConvertCLI(t *testing.T) {
	dir := t.TempDir()
	topics := filepath.Join(dir, "topics.txt")
	os.WriteFile(topics, []byte("<DOC>\n<DOCNO> 1 </DOCNO>\nfirst topic\n</DOC>\n<DOC>\n<DOCNO> 2 </DOCNO>\n</DOC>\n"), 0o644)
	out := filepath.Join(dir, "out")
	if _, err := runCLI(t, "data", "convert", "--from", "trec", "--topics", topics, "--out", out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "queries.jsonl"))
	if err != nil || string(b) != `{"_id":"1","text":"first topic"}`+"\n" {
		t.Errorf("queries.jsonl = %q, %v", b, err)
	}
	if _, err := runCLI(t, "data", "convert", "--from", "trec", "--topics", topics, "--out", out, "--strict"); err == nil {
		t.Error("--strict with a malformed topic: no error")
	}
	if _, err := runCLI(t, "data", "convert", "--from", "nosuch", "--out", out); err == nil {
		t.Error("unknown format: no error")
	}
}
