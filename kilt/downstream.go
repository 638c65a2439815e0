package kilt

import (
	"fmt"
	"strings"
)

// ExactMatch reports whether prediction and gold are equal after
// NormalizeAnswer.
func ExactMatch(prediction, gold string) bool {
	return NormalizeAnswer(prediction) == NormalizeAnswer(gold)
}

// F1 is the token-level F1 of the normalised prediction against the
// normalised gold answer (tokens counted with multiplicity), 0 when they share
// no token.
func F1(prediction, gold string) float64 {
	p := strings.Fields(NormalizeAnswer(prediction)) // normalised text has single ASCII spaces
	g := strings.Fields(NormalizeAnswer(gold))
	counts := make(map[string]int, len(g))
	for _, t := range g {
		counts[t]++
	}
	same := 0
	for _, t := range p {
		if counts[t] > 0 {
			counts[t]--
			same++
		}
	}
	if same == 0 {
		return 0
	}
	precision := 1.0 * float64(same) / float64(len(p))
	recall := 1.0 * float64(same) / float64(len(g))
	return (2 * precision * recall) / (precision + recall)
}

// MaxRougeCells bounds the longest-common-subsequence table of one ROUGE-L
// comparison (words of a reference sentence times words of a hypothesis
// sentence).
const MaxRougeCells = 1 << 24

// RougeL is the ROUGE-L F score that KILT takes from the rouge package
// (pltrdy/rouge 1.0.1, Rouge().get_scores(prediction, gold)["rouge-l"]["f"]):
// no normalisation; both texts are split into sentences at every ".", the
// white space of each sentence collapsed; the score is summary-level ROUGE-L
// over distinct words: the union of the words of the reconstructed longest
// common subsequences of every (reference sentence, hypothesis sentence) pair,
// against the distinct words of each side, F = 2PR/(P+R+1e-8). A side with no
// sentence scores 0, as KILT's scorer catches the package's ValueError.
func RougeL(prediction, gold string) (float64, error) {
	hyp := rougeSentences(prediction)
	ref := rougeSentences(gold)
	if len(hyp) == 0 || len(ref) == 0 {
		return 0, nil
	}
	m := len(distinct(ref))
	n := len(distinct(hyp))
	union := map[string]struct{}{}
	for _, rw := range ref {
		for _, hw := range hyp {
			if err := reconLCS(rw, hw, union); err != nil {
				return 0, err
			}
		}
	}
	llcs := len(union)
	r := float64(llcs) / float64(m)
	p := float64(llcs) / float64(n)
	return 2.0 * ((p * r) / (p + r + 1e-8)), nil
}

// rougeSentences splits s as the rouge package does: at ".", keeping the
// non-empty pieces, each with its white space collapsed, then into words at
// single spaces.
func rougeSentences(s string) [][]string {
	var out [][]string
	for _, piece := range strings.Split(s, ".") {
		if piece == "" {
			continue
		}
		out = append(out, strings.Split(strings.Join(pyFields(piece), " "), " "))
	}
	return out
}

func distinct(sents [][]string) map[string]struct{} {
	set := map[string]struct{}{}
	for _, s := range sents {
		for _, w := range s {
			set[w] = struct{}{}
		}
	}
	return set
}

// reconLCS adds to union the words of the longest common subsequence of x and
// y that the rouge package reconstructs: from the end, take a match, else step
// back in x when that keeps a strictly longer subsequence, else in y.
func reconLCS(x, y []string, union map[string]struct{}) error {
	if (len(x)+1)*(len(y)+1) > MaxRougeCells {
		return fmt.Errorf("ROUGE-L: sentences of %d and %d words are too long to compare", len(x), len(y))
	}
	w := len(y) + 1
	t := make([]int32, (len(x)+1)*w)
	for i := 1; i <= len(x); i++ {
		for j := 1; j <= len(y); j++ {
			switch {
			case x[i-1] == y[j-1]:
				t[i*w+j] = t[(i-1)*w+j-1] + 1
			case t[(i-1)*w+j] >= t[i*w+j-1]:
				t[i*w+j] = t[(i-1)*w+j]
			default:
				t[i*w+j] = t[i*w+j-1]
			}
		}
	}
	for i, j := len(x), len(y); i > 0 && j > 0; {
		switch {
		case x[i-1] == y[j-1]:
			union[x[i-1]] = struct{}{}
			i--
			j--
		case t[(i-1)*w+j] > t[i*w+j-1]:
			i--
		default:
			j--
		}
	}
	return nil
}
