package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func runRe2g(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	app := &cli.App{Name: "re2g", Commands: commands, Writer: &out, ErrWriter: &errb}
	err = app.Run(append([]string{"re2g"}, args...))
	return out.String(), errb.String(), err
}

func TestEvalKILT(t *testing.T) {
	dir := t.TempDir()
	gold := filepath.Join(dir, "gold.jsonl")
	pred := filepath.Join(dir, "pred.jsonl")
	os.WriteFile(gold, []byte(
		`{"id": 1, "input": "capital of France?", "output": [{"answer": "Paris", "provenance": [{"wikipedia_id": "10", "title": "Paris"}]}]}
{"id": 2, "input": "largest planet?", "output": [{"answer": "Jupiter", "provenance": [{"wikipedia_id": "20", "title": "Jupiter"}]}]}
`), 0o644)
	// 1: right answer, right page first. 2: right page second, answer partly right.
	os.WriteFile(pred, []byte(
		`{"id": "2", "output": [{"answer": "planet Jupiter", "provenance": [{"wikipedia_id": "21"}, {"wikipedia_id": "20"}]}]}
{"id": "1", "output": [{"answer": "Paris", "provenance": [{"wikipedia_id": "10", "score": 3.2}]}]}
`), 0o644)
	stdout, stderr, err := runRe2g(t, "eval", "kilt", "--gold", gold, "--pred", pred, "--ks", "1,5")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var res struct {
		Count      int
		Retrieval  map[string]float64
		Downstream map[string]float64
		KILT       map[string]float64 `json:"kilt"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("last stdout line is not JSON: %v\n%s", err, stdout)
	}
	// R-Prec 1 and 0; recall@5 1 and 1; EM 1 and 0; F1 1 and 2·(1/2)·1/(3/2) = 2/3.
	checks := map[string][2]float64{
		"Rprec": {res.Retrieval["Rprec"], 0.5}, "recall@5": {res.Retrieval["recall@5"], 1},
		"em": {res.Downstream["em"], 0.5}, "f1": {res.Downstream["f1"], (1 + 2.0/3) / 2},
		"accuracy": {res.Downstream["accuracy"], 0.5}, "KILT-em": {res.KILT["KILT-em"], 0.5},
		"KILT-f1": {res.KILT["KILT-f1"], 0.5},
	}
	for name, c := range checks {
		if d := c[0] - c[1]; d > 1e-12 || d < -1e-12 {
			t.Errorf("%s = %v, want %v", name, c[0], c[1])
		}
	}
	if res.Count != 2 || !strings.Contains(stderr, "Rprec") || !strings.Contains(stderr, "KILT-em") {
		t.Errorf("count %d, table:\n%s", res.Count, stderr)
	}

	if _, _, err := runRe2g(t, "eval", "kilt", "--gold", filepath.Join(dir, "absent.jsonl"), "--pred", pred); err == nil ||
		!strings.Contains(err.Error(), "absent.jsonl") {
		t.Errorf("absent gold file: err = %v", err)
	}
	if _, _, err := runRe2g(t, "eval", "kilt", "--gold", gold, "--pred", pred, "--ks", "0"); err == nil {
		t.Error("--ks 0: want an error")
	}
}
