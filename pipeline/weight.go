package pipeline

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/re2g/re2g/indexdir"
	"github.com/re2g/re2g/kilt"
)

// This file holds the pure arithmetic of Re2G inference (RE2G.md, steps 3 and
// 5): merging the dense and sparse candidate lists, the softmax over reranker
// logits, and RAG-Sequence marginalisation of the generated sequences.

// Hit is one passage a retriever returned, with the retriever's score.
type Hit = indexdir.Hit

// Candidate is one passage of the merged list: which retriever(s) found it,
// with their scores, and the reranker's logit once it has been scored.
type Candidate struct {
	ID          string  `json:"id"`
	Title       string  `json:"title"`
	Text        string  `json:"text"`
	DenseScore  float64 `json:"dense_score,omitempty"` // meaningful when FromDense
	SparseScore float64 `json:"bm25_score,omitempty"`  // meaningful when FromSparse
	FromDense   bool    `json:"from_dense,omitempty"`
	FromSparse  bool    `json:"from_bm25,omitempty"`
	RerankScore float64 `json:"rerank_score"` // the reranker's logit
}

// Merge concatenates the dense (DPR) and sparse (BM25) hits as Re2G does: all
// dense hits in their order, then the sparse hits whose id is not among them.
// A passage both found keeps its dense position and carries both scores.
// Repeated ids within one list keep their first occurrence.
func Merge(dense, sparse []Hit) []Candidate {
	out := make([]Candidate, 0, len(dense)+len(sparse))
	at := make(map[string]int, len(dense)+len(sparse))
	for _, h := range dense {
		if _, dup := at[h.ID]; dup {
			continue
		}
		at[h.ID] = len(out)
		out = append(out, Candidate{ID: h.ID, Title: h.Title, Text: h.Text, DenseScore: h.Score, FromDense: true})
	}
	for _, h := range sparse {
		if i, ok := at[h.ID]; ok {
			if !out[i].FromSparse {
				out[i].SparseScore, out[i].FromSparse = h.Score, true
			}
			continue
		}
		at[h.ID] = len(out)
		out = append(out, Candidate{ID: h.ID, Title: h.Title, Text: h.Text, SparseScore: h.Score, FromSparse: true})
	}
	return out
}

// TopByRerank returns the k candidates with the highest RerankScore, best
// first; ties keep the merged order. k <= 0 or k >= len keeps all.
func TopByRerank(c []Candidate, k int) []Candidate {
	out := append([]Candidate(nil), c...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].RerankScore > out[j].RerankScore })
	if k > 0 && k < len(out) {
		out = out[:k]
	}
	return out
}

// Softmax turns logits into probabilities, exp(l_i - max) / Σ_j exp(l_j - max).
// A -Inf logit gets probability 0; NaN, +Inf or all -Inf logits are an error.
func Softmax(logits []float64) ([]float64, error) {
	if len(logits) == 0 {
		return nil, nil
	}
	m := math.Inf(-1)
	for i, l := range logits {
		if math.IsNaN(l) || math.IsInf(l, 1) {
			return nil, fmt.Errorf("softmax: logit %d is %v", i, l)
		}
		m = math.Max(m, l)
	}
	if math.IsInf(m, -1) {
		return nil, errors.New("softmax: every logit is -Inf")
	}
	p := make([]float64, len(logits))
	sum := 0.0
	for i, l := range logits {
		p[i] = math.Exp(l - m)
		sum += p[i]
	}
	for i := range p {
		p[i] /= sum
	}
	return p, nil
}

// Generation is one sequence the generator returned for one passage.
type Generation struct {
	Passage int    // index of the passage (into the probabilities given to Marginalize)
	Text    string // the decoded sequence
	// Score is the beam search's score of the sequence. Hugging Face's
	// sequence_scores are length-normalised: Σ log p(token) / Length^lp.
	Score float64
	// Length is the length the beam search divided by (Hugging Face: the
	// tokens of the hypothesis, decoder start token included in the versions
	// that count it). Needed only by ScoreLengthNormalised with lp != 0.
	Length int
}

// ScoreMode says how a Generation's Score becomes log p(y|x,z).
type ScoreMode int

const (
	// ScoreLengthNormalised undoes the beam search's length normalisation:
	// log p(y|x,z) = Score · Length^LengthPenalty, the sequence's true
	// log-probability, as RAG-Sequence marginalises (Hugging Face's
	// RagSequenceForGeneration rescores with full sequence log-likelihoods).
	// With LengthPenalty 0 the score is taken as already un-normalised. The
	// default.
	ScoreLengthNormalised ScoreMode = iota
	// ScoreAsLogProb takes the score as it comes: log p(y|x,z) = Score. With
	// length-normalised scores this is the geometric mean per token, which
	// favours longer answers less than the true probability penalises them.
	ScoreAsLogProb
)

// WeightConfig sets how sequences are weighted and grouped.
type WeightConfig struct {
	Mode ScoreMode
	// LengthPenalty is the exponent the beam search normalised with
	// (Hugging Face's length_penalty; its default is 1.0). Used by
	// ScoreLengthNormalised.
	LengthPenalty float64
	// Normalize maps a sequence to its answer: sequences with the same
	// normalised text are one answer. Nil means kilt.NormalizeAnswer (lower
	// case, no punctuation or articles, white space collapsed).
	Normalize func(string) string
}

// DefaultWeightConfig undoes Hugging Face's default length normalisation
// (lp = 1) and groups answers by KILT's normalisation.
func DefaultWeightConfig() WeightConfig {
	return WeightConfig{Mode: ScoreLengthNormalised, LengthPenalty: 1}
}

// Support is one passage's share of an answer's probability.
type Support struct {
	Passage     int     `json:"passage"`
	PassageProb float64 `json:"passage_prob"` // p(z|x)
	SeqProb     float64 `json:"seq_prob"`     // p(y|x,z), summed over the answer's sequences from this passage
	Joint       float64 `json:"joint"`        // p(z|x) · p(y|x,z)
}

// Answer is one distinct answer with its marginal probability.
type Answer struct {
	Text    string    `json:"text"`     // the surface form with the largest single contribution
	Key     string    `json:"-"`        // the normalised text that groups sequences into this answer
	Prob    float64   `json:"prob"`     // p(y|x) = Σ_z p(z|x) · p(y|x,z)
	LogProb float64   `json:"log_prob"` // log p(y|x), finite even where Prob underflows
	Support []Support `json:"support"`  // the passages that generated it, largest Joint first
}

// Marginalize weights the generated sequences by their passages'
// probabilities and sums them per distinct answer, as RAG-Sequence does:
// p(y|x) = Σ_z p(z|x) · p(y|x,z), where p(y|x,z) sums the probabilities of
// the passage's sequences that normalise to y, and a passage whose beams did
// not produce y contributes 0. passageProbs are p(z|x) (the softmax of the
// reranker logits); they must be finite and non-negative. The answers come
// sorted by probability, best first (ties: first generated first).
func Marginalize(passageProbs []float64, gens []Generation, cfg WeightConfig) ([]Answer, error) {
	for i, p := range passageProbs {
		if math.IsNaN(p) || math.IsInf(p, 0) || p < 0 {
			return nil, fmt.Errorf("marginalize: passage %d has probability %v", i, p)
		}
	}
	norm := cfg.Normalize
	if norm == nil {
		norm = kilt.NormalizeAnswer
	}
	type term struct {
		passage int
		logp    float64 // log p(z|x) + log p(s|x,z)
		seqLogp float64
	}
	type group struct {
		ans   Answer
		best  float64
		terms []term
	}
	var groups []*group
	byKey := map[string]*group{}
	for gi, g := range gens {
		if g.Passage < 0 || g.Passage >= len(passageProbs) {
			return nil, fmt.Errorf("marginalize: generation %d names passage %d of %d", gi, g.Passage, len(passageProbs))
		}
		seq, err := seqLogProb(g, cfg)
		if err != nil {
			return nil, fmt.Errorf("marginalize: generation %d: %w", gi, err)
		}
		lp := math.Log(passageProbs[g.Passage]) + seq
		key := norm(g.Text)
		gr, ok := byKey[key]
		if !ok {
			gr = &group{ans: Answer{Key: key, Text: g.Text}, best: lp}
			byKey[key] = gr
			groups = append(groups, gr)
		} else if lp > gr.best {
			gr.ans.Text, gr.best = g.Text, lp
		}
		gr.terms = append(gr.terms, term{g.Passage, lp, seq})
	}
	out := make([]Answer, 0, len(groups))
	for _, gr := range groups {
		var all []float64
		seqBy := map[int][]float64{}
		var order []int
		for _, t := range gr.terms {
			all = append(all, t.logp)
			if _, ok := seqBy[t.passage]; !ok {
				order = append(order, t.passage)
			}
			seqBy[t.passage] = append(seqBy[t.passage], t.seqLogp)
		}
		a := gr.ans
		a.LogProb = logSumExp(all)
		a.Prob = math.Exp(a.LogProb)
		for _, z := range order {
			sp := math.Exp(logSumExp(seqBy[z]))
			pz := passageProbs[z]
			a.Support = append(a.Support, Support{Passage: z, PassageProb: pz, SeqProb: sp, Joint: pz * sp})
		}
		sort.SliceStable(a.Support, func(i, j int) bool { return a.Support[i].Joint > a.Support[j].Joint })
		out = append(out, a)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].LogProb > out[j].LogProb })
	return out, nil
}

// seqLogProb is log p(y|x,z) of one generation under cfg.
func seqLogProb(g Generation, cfg WeightConfig) (float64, error) {
	if math.IsNaN(g.Score) || math.IsInf(g.Score, 1) {
		return 0, fmt.Errorf("score is %v", g.Score)
	}
	switch cfg.Mode {
	case ScoreAsLogProb:
		return g.Score, nil
	case ScoreLengthNormalised:
		if cfg.LengthPenalty == 0 {
			return g.Score, nil
		}
		if g.Length <= 0 {
			return 0, fmt.Errorf("length %d: un-normalising a score needs the sequence length", g.Length)
		}
		return g.Score * math.Pow(float64(g.Length), cfg.LengthPenalty), nil
	default:
		return 0, fmt.Errorf("unknown score mode %d", cfg.Mode)
	}
}

// logSumExp is log Σ exp(x_i), stable for large negative x.
func logSumExp(xs []float64) float64 {
	m := math.Inf(-1)
	for _, x := range xs {
		m = math.Max(m, x)
	}
	if math.IsInf(m, -1) {
		return m
	}
	s := 0.0
	for _, x := range xs {
		s += math.Exp(x - m)
	}
	return m + math.Log(s)
}
