package ireval

import (
	"bytes"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/re2g/re2g/data"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// Hand-computed: q1 judges d1=2, d2=1, d3=0, d4=1 (three relevant, gains
// 2,1,1). Its run ranks d3, d1, then d5 and d2 tied at 3 (trec_eval puts the
// larger id first: d5), then d6.
//
//	nDCG@3  = (2/log2 3) / (2 + 1/log2 3 + 1/log2 4)          = 0.4030303
//	nDCG@10 = (2/log2 3 + 1/log2 5) / (2 + 1/log2 3 + 1/log2 4)
//	AP      = (1/2 + 2/4) / 3 = 1/3
//	R@2 = 1/3, R@5 = 2/3, P@5 = 2/5, RR@10 = 1/2, RR@1 = 0.
func fixture() (Run, data.Qrels) {
	qrels := data.Qrels{
		"q1": {"d1": 2, "d2": 1, "d3": 0, "d4": 1},
		"q2": {"d9": 1},
		"q4": {"d1": 0},
	}
	run := Run{
		"q1": {{"d6", 1}, {"d2", 3}, {"d3", 5}, {"d5", 3}, {"d1", 4}},
		"q3": {{"d1", 1}},
		"q4": {{"d1", 1}},
	}
	return run, qrels
}

func TestEvaluateHandComputed(t *testing.T) {
	run, qrels := fixture()
	ms := []Metric{"ndcg@3", "ndcg@10", "map", "recall@2", "recall@5", "p@5", "mrr@10", "mrr@1"}
	res, err := Evaluate(run, qrels, []string{"q1"}, ms)
	if err != nil {
		t.Fatal(err)
	}
	idcg := 2 + 1/math.Log2(3) + 0.5
	want := map[Metric]float64{
		"ndcg@3":   (2 / math.Log2(3)) / idcg,
		"ndcg@10":  (2/math.Log2(3) + 1/math.Log2(5)) / idcg,
		"map":      1.0 / 3,
		"recall@2": 1.0 / 3,
		"recall@5": 2.0 / 3,
		"p@5":      0.4,
		"mrr@10":   0.5,
		"mrr@1":    0,
	}
	// The same two values worked out on a calculator.
	if math.Abs(res.Mean["ndcg@3"]-0.4030303) > 1e-7 || math.Abs(res.Mean["ndcg@10"]-0.5405858) > 1e-7 {
		t.Errorf("ndcg@3, @10 = %.7f, %.7f; want 0.4030303, 0.5405858", res.Mean["ndcg@3"], res.Mean["ndcg@10"])
	}
	for m, w := range want {
		if !near(res.Mean[m], w) {
			t.Errorf("%s = %.6f, want %.6f", m, res.Mean[m], w)
		}
	}
	if res.Queries != 1 {
		t.Errorf("queries = %d", res.Queries)
	}
}

func TestEvaluateQuerySelection(t *testing.T) {
	run, qrels := fixture()
	// trec_eval default: queries in both run and qrels (q1, q4; q4 has no
	// relevant document and scores 0).
	res, err := Evaluate(run, qrels, nil, []Metric{"map"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Queries != 2 || !near(res.Mean["map"], (1.0/3)/2) {
		t.Errorf("default: %d queries, map %.6f", res.Queries, res.Mean["map"])
	}
	// With the query list (trec_eval -c): q2 has judgements but no run and
	// counts as 0; q3 has no judgements and is skipped.
	res, err = Evaluate(run, qrels, []string{"q1", "q2", "q3"}, []Metric{"map", "recall@1000"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Queries != 2 || !near(res.Mean["map"], 1.0/6) || !near(res.Mean["recall@1000"], 1.0/3) {
		t.Errorf("-c: %d queries, %v", res.Queries, res.Mean)
	}
	if _, ok := res.PerQuery["q3"]; ok {
		t.Error("unjudged q3 evaluated")
	}
	// The run itself is left in its order.
	if run["q1"][0].DocID != "d6" {
		t.Error("Evaluate reordered the run")
	}
}

func TestBadMetric(t *testing.T) {
	for _, m := range []Metric{"ndcg@0", "map@10", "bpref", "recall@x"} {
		if _, err := Evaluate(Run{}, data.Qrels{}, nil, []Metric{m}); err == nil {
			t.Errorf("%s: no error", m)
		}
	}
}

func TestRunFile(t *testing.T) {
	run, _ := fixture()
	var b bytes.Buffer
	if err := WriteRun(&b, Run{"q1": run["q1"]}, nil, "tag"); err != nil {
		t.Fatal(err)
	}
	want := "q1 Q0 d3 1 5.000000 tag\nq1 Q0 d1 2 4.000000 tag\nq1 Q0 d5 3 3.000000 tag\nq1 Q0 d2 4 3.000000 tag\nq1 Q0 d6 5 1.000000 tag\n"
	if b.String() != want {
		t.Errorf("run file:\n%s\nwant:\n%s", b.String(), want)
	}
	got, err := ReadRun(strings.NewReader(b.String()), "mem")
	if err != nil {
		t.Fatal(err)
	}
	sorted := append([]Hit(nil), run["q1"]...)
	SortHits(sorted)
	if !reflect.DeepEqual(got["q1"], sorted) {
		t.Errorf("read back %v, want %v", got["q1"], sorted)
	}
	if _, err := ReadRun(strings.NewReader("q1 Q0 d1 1 x tag\n"), "f"); err == nil || !strings.Contains(err.Error(), "f:1") {
		t.Errorf("bad score: %v", err)
	}
	if _, err := ReadRun(strings.NewReader("q1 d1 1\n"), "f"); err == nil {
		t.Error("short line: no error")
	}
}

// TestRunFileByteOrderMark: a run file saved with a UTF-8 byte order mark
// reads as without it (the first query id used to carry the mark).
func TestRunFileByteOrderMark(t *testing.T) {
	const run = "q1 Q0 d1 1 2.5 tag\nq2 Q0 d2 1 1.0 tag\n"
	want, err := ReadRun(strings.NewReader(run), "plain")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadRun(strings.NewReader("\xef\xbb\xbf"+run), "marked")
	if err != nil || !reflect.DeepEqual(got, want) || len(got["q1"]) != 1 {
		t.Fatalf("with a mark: %v, %v; want %v", got, err, want)
	}
}
