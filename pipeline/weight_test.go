package pipeline

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestMerge(t *testing.T) {
	dense := []Hit{{ID: "A", Score: 0.9}, {ID: "B", Score: 0.8}, {ID: "A", Score: 0.5}}
	sparse := []Hit{{ID: "C", Score: 12}, {ID: "B", Score: 10}, {ID: "D", Score: 9}, {ID: "C", Score: 1}}
	got := Merge(dense, sparse)
	want := []Candidate{
		{ID: "A", DenseScore: 0.9, FromDense: true},
		{ID: "B", DenseScore: 0.8, FromDense: true, SparseScore: 10, FromSparse: true},
		{ID: "C", SparseScore: 12, FromSparse: true},
		{ID: "D", SparseScore: 9, FromSparse: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Merge =\n%+v\nwant\n%+v", got, want)
	}
	if got := Merge(nil, []Hit{{ID: "x"}}); len(got) != 1 || got[0].FromDense || !got[0].FromSparse {
		t.Errorf("sparse only: %+v", got)
	}
	if got := Merge(nil, nil); len(got) != 0 {
		t.Errorf("empty: %+v", got)
	}
}

func TestTopByRerank(t *testing.T) {
	c := []Candidate{{ID: "a", RerankScore: 1}, {ID: "b", RerankScore: 3}, {ID: "c", RerankScore: 1}, {ID: "d", RerankScore: 2}}
	var ids []string
	for _, x := range TopByRerank(c, 3) {
		ids = append(ids, x.ID)
	}
	if strings.Join(ids, "") != "bda" { // a before c: ties keep the merged order
		t.Errorf("TopByRerank = %v", ids)
	}
	if len(TopByRerank(c, 0)) != 4 || c[0].ID != "a" {
		t.Error("k = 0 keeps all and leaves the input alone")
	}
}

func TestSoftmax(t *testing.T) {
	near := func(a, b []float64, tol ...float64) bool {
		eps := 1e-15
		if len(tol) > 0 {
			eps = tol[0]
		}
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if math.Abs(a[i]-b[i]) > eps {
				return false
			}
		}
		return true
	}
	// exp(ln 1), exp(ln 2), exp(ln 5) over their sum 8.
	p, err := Softmax([]float64{0, math.Log(2), math.Log(5)})
	if err != nil || !near(p, []float64{1.0 / 8, 2.0 / 8, 5.0 / 8}) {
		t.Errorf("Softmax = %v, %v", p, err)
	}
	// shift invariant, no overflow at large logits (1000 + ln 3 itself is
	// only good to ~1e-13).
	p, err = Softmax([]float64{1000, 1000 + math.Log(3)})
	if err != nil || !near(p, []float64{0.25, 0.75}, 1e-12) {
		t.Errorf("Softmax large = %v, %v", p, err)
	}
	p, err = Softmax([]float64{math.Inf(-1), 0})
	if err != nil || !near(p, []float64{0, 1}) {
		t.Errorf("Softmax -Inf = %v, %v", p, err)
	}
	for _, bad := range [][]float64{{math.NaN()}, {math.Inf(1), 0}, {math.Inf(-1)}} {
		if _, err := Softmax(bad); err == nil {
			t.Errorf("Softmax(%v): want an error", bad)
		}
	}
}

func TestMarginalize(t *testing.T) {
	// p(z) = 0.75, 0.25. Passage 0 generates "Paris" (0.6), "paris." (0.2),
	// "Lyon" (0.1); passage 1 "Lyon" (0.5), "The Lyon" (0.3).
	// paris: 0.75·(0.6+0.2) = 0.6; lyon: 0.75·0.1 + 0.25·(0.5+0.3) = 0.275.
	gens := []Generation{
		{Passage: 0, Text: "Paris", Score: math.Log(0.6)},
		{Passage: 0, Text: "paris.", Score: math.Log(0.2)},
		{Passage: 0, Text: "Lyon", Score: math.Log(0.1)},
		{Passage: 1, Text: "Lyon", Score: math.Log(0.5)},
		{Passage: 1, Text: "The Lyon", Score: math.Log(0.3)},
	}
	ans, err := Marginalize([]float64{0.75, 0.25}, gens, WeightConfig{Mode: ScoreAsLogProb})
	if err != nil {
		t.Fatal(err)
	}
	if len(ans) != 2 {
		t.Fatalf("answers: %+v", ans)
	}
	const eps = 1e-12
	a, b := ans[0], ans[1]
	if a.Key != "paris" || a.Text != "Paris" || math.Abs(a.Prob-0.6) > eps || math.Abs(a.LogProb-math.Log(0.6)) > eps {
		t.Errorf("first answer %+v", a)
	}
	if b.Key != "lyon" || b.Text != "Lyon" || math.Abs(b.Prob-0.275) > eps {
		t.Errorf("second answer %+v", b)
	}
	// Lyon's support: passage 1 (0.25·0.8 = 0.2) before passage 0 (0.75·0.1).
	if len(b.Support) != 2 || b.Support[0].Passage != 1 || math.Abs(b.Support[0].SeqProb-0.8) > eps ||
		math.Abs(b.Support[0].Joint-0.2) > eps || b.Support[1].Passage != 0 || math.Abs(b.Support[1].Joint-0.075) > eps {
		t.Errorf("support %+v", b.Support)
	}
}

func TestMarginalizeScoreModes(t *testing.T) {
	// "x": score -0.5 over 2 tokens; "y": score -0.2 over 10 tokens.
	// Length-normalised (lp 1): log p = -1 and -2, so x wins:
	// 0.5·e^-1 = 0.18394 against 0.5·e^-2 = 0.06767. As log-probs: 0.5·e^-0.5 =
	// 0.30327 against 0.5·e^-0.2 = 0.40937, so y wins.
	gens := []Generation{
		{Passage: 0, Text: "x", Score: -0.5, Length: 2},
		{Passage: 1, Text: "y", Score: -0.2, Length: 10},
	}
	probs := []float64{0.5, 0.5}
	ans, err := Marginalize(probs, gens, DefaultWeightConfig())
	if err != nil {
		t.Fatal(err)
	}
	if ans[0].Key != "x" || math.Abs(ans[0].Prob-0.5*math.Exp(-1)) > 1e-15 || math.Abs(ans[1].Prob-0.5*math.Exp(-2)) > 1e-15 {
		t.Errorf("length-normalised: %+v", ans)
	}
	ans, err = Marginalize(probs, gens, WeightConfig{Mode: ScoreAsLogProb})
	if err != nil {
		t.Fatal(err)
	}
	if ans[0].Key != "y" || math.Abs(ans[0].Prob-0.5*math.Exp(-0.2)) > 1e-15 {
		t.Errorf("as log-prob: %+v", ans)
	}
	// lp = 2: score -0.25 over 2 tokens is log p = -1.
	ans, err = Marginalize([]float64{1}, []Generation{{Text: "z", Score: -0.25, Length: 2}},
		WeightConfig{Mode: ScoreLengthNormalised, LengthPenalty: 2})
	if err != nil || math.Abs(ans[0].LogProb+1) > 1e-15 {
		t.Errorf("lp 2: %+v, %v", ans, err)
	}
	// Very unlikely sequences keep a finite log-probability.
	ans, err = Marginalize([]float64{1}, []Generation{{Text: "w", Score: -2000}}, WeightConfig{Mode: ScoreAsLogProb})
	if err != nil || ans[0].Prob != 0 || ans[0].LogProb != -2000 {
		t.Errorf("underflow: %+v, %v", ans, err)
	}
}

func TestMarginalizeErrors(t *testing.T) {
	cases := []struct {
		probs []float64
		gens  []Generation
		cfg   WeightConfig
	}{
		{[]float64{1}, []Generation{{Passage: 1, Score: -1, Length: 1}}, DefaultWeightConfig()},
		{[]float64{1}, []Generation{{Passage: 0, Score: -1}}, DefaultWeightConfig()}, // no length
		{[]float64{1}, []Generation{{Score: math.NaN()}}, WeightConfig{Mode: ScoreAsLogProb}},
		{[]float64{-0.1}, nil, DefaultWeightConfig()},
		{[]float64{1}, []Generation{{Score: -1}}, WeightConfig{Mode: 7}},
	}
	for i, c := range cases {
		if _, err := Marginalize(c.probs, c.gens, c.cfg); err == nil {
			t.Errorf("case %d: want an error", i)
		}
	}
}

// Reranker logits weight each passage's beams; answers are summed over the
// passages that produced them.
func ExampleMarginalize() {
	probs, _ := Softmax([]float64{2.0, 0.5}) // reranker logits of the kept passages
	gens := []Generation{                    // beam search output, Hugging Face style scores
		{Passage: 0, Text: "Paris", Score: -0.1, Length: 3},
		{Passage: 0, Text: "Lyon", Score: -1.2, Length: 3},
		{Passage: 1, Text: "paris", Score: -0.4, Length: 3},
	}
	answers, _ := Marginalize(probs, gens, DefaultWeightConfig())
	for _, a := range answers {
		fmt.Printf("%s %.4f from %d passage(s)\n", a.Text, a.Prob, len(a.Support))
	}
	// p(z) = 0.8176, 0.1824; log p(y|x,z) = score·3.
	// Paris: 0.8176·e^-0.3 + 0.1824·e^-1.2; Lyon: 0.8176·e^-3.6.

	// Output:
	// Paris 0.6606 from 2 passage(s)
	// Lyon 0.0223 from 1 passage(s)
}
