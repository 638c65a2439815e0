package kilt

import (
	"fmt"
	"sort"
)

// Options chooses what Evaluate computes.
type Options struct {
	// Ks are the cut-offs of precision@k, answer_in_context@k and the other
	// ranked metrics; recall@k and success_rate@k are reported for k > 1 only,
	// as KILT does. Default 1, 5.
	Ks []int
	// RankKeys are the provenance keys that identify a piece of evidence:
	// ["wikipedia_id"] (the default) for page level, for example
	// ["wikipedia_id", "start_paragraph_id"] for passage level. They also
	// decide R-Precision for the KILT variants (KILT's eval_downstream.py
	// always uses page level).
	RankKeys []string
	// RetrievalOnly skips the downstream metrics even if the predictions have
	// answers (as eval_retrieval.py). Without it the downstream metrics are
	// computed whenever any prediction has an answer.
	RetrievalOnly bool
	// AllowMissing scores a gold datapoint that has no prediction as an empty
	// prediction (no answer text, no provenance). KILT's scripts refuse such
	// files; with it the figures are comparable to theirs only when nothing is
	// missing.
	AllowMissing bool
}

// Result holds the metrics, keyed by the names KILT's scripts print.
type Result struct {
	Count    int      `json:"count"`
	Ks       []int    `json:"ks"`
	RankKeys []string `json:"rank_keys"`
	// Retrieval: Rprec, precision@k, recall@k, success_rate@k,
	// answer_in_context@k, answer_and_ent_in_context@k, entity_in_context@k,
	// entity_in_input.
	Retrieval map[string]float64 `json:"retrieval"`
	// Downstream: accuracy, em, f1, rougel (nil when not computed).
	Downstream map[string]float64 `json:"downstream,omitempty"`
	// KILT: KILT-accuracy, KILT-em, KILT-f1, KILT-rougel (nil when not computed).
	KILT map[string]float64 `json:"kilt,omitempty"`
	// Missing counts gold datapoints without a prediction (only with
	// AllowMissing); Unmatched counts predictions whose id is not in the gold.
	Missing   int `json:"missing"`
	Unmatched int `json:"unmatched"`
}

// Evaluate scores predictions against gold datapoints as KILT's
// eval_retrieval.py and eval_downstream.py do. Predictions are matched to the
// gold by id (str(id).strip()); every gold id needs one prediction unless
// AllowMissing. The averages run over the gold datapoints.
func Evaluate(gold, pred []Record, opt Options) (*Result, error) {
	ks := opt.Ks
	if len(ks) == 0 {
		ks = []int{1, 5}
	}
	ks = append([]int(nil), ks...)
	sort.Ints(ks)
	for _, k := range ks {
		if k <= 0 {
			return nil, fmt.Errorf("k must be a positive integer, got %d", k)
		}
	}
	keys := opt.RankKeys
	if len(keys) == 0 {
		keys = []string{"wikipedia_id"}
	}
	res := &Result{Ks: ks, RankKeys: keys}

	// validate_input: unique ids, one prediction for every gold id.
	goldIDs := map[string]bool{}
	for _, g := range gold {
		id := pyStrip(g.ID)
		if goldIDs[id] {
			return nil, fmt.Errorf("gold line %d: id %q appears twice", g.Line, id)
		}
		goldIDs[id] = true
		if len(g.Output) == 0 {
			return nil, fmt.Errorf("gold line %d (id %q): no output", g.Line, id)
		}
		if !g.hasInput {
			return nil, fmt.Errorf("gold line %d (id %q): no input", g.Line, id)
		}
	}
	byID := map[string]Record{}
	for _, p := range pred {
		id := pyStrip(p.ID)
		if _, dup := byID[id]; dup {
			return nil, fmt.Errorf("prediction line %d: id %q appears twice", p.Line, id)
		}
		byID[id] = p
		if !goldIDs[id] {
			res.Unmatched++
		}
	}
	aligned := make([]Record, len(gold))
	standIn := make([]bool, len(gold))
	for i, g := range gold {
		p, ok := byID[pyStrip(g.ID)]
		if !ok {
			if !opt.AllowMissing {
				return nil, fmt.Errorf("no prediction for id %q (gold line %d)", pyStrip(g.ID), g.Line)
			}
			res.Missing++
			standIn[i] = true
			p = NewPrediction(g.ID, g.Input, "", true, nil)
		}
		aligned[i] = p
	}

	downstream := false
	if !opt.RetrievalOnly {
		for i, p := range aligned {
			if standIn[i] {
				continue
			}
			for _, o := range p.Output {
				if o.HasAnswer {
					downstream = true
				}
			}
		}
	}

	// The output each prediction is scored on.
	sel := make([]Output, len(aligned))
	for i, p := range aligned {
		if downstream {
			if len(p.Output) != 1 || !p.Output[0].HasAnswer {
				return nil, fmt.Errorf("prediction line %d (id %q): need exactly one output, with an answer", p.Line, pyStrip(p.ID))
			}
			sel[i] = p.Output[0]
			continue
		}
		n := 0
		for _, o := range p.Output {
			if o.HasProvenance {
				sel[i] = o
				n++
			}
		}
		if n != 1 {
			return nil, fmt.Errorf("prediction line %d (id %q): need exactly one output with provenance, got %d", p.Line, pyStrip(p.ID), n)
		}
	}

	n := len(gold)
	res.Count = n
	ret := map[string]float64{"Rprec": 0, "entity_in_input": 0}
	for _, k := range ks {
		for _, name := range []string{"precision", "answer_in_context", "answer_and_ent_in_context", "entity_in_context"} {
			ret[fmt.Sprintf("%s@%d", name, k)] = 0
		}
		if k > 1 {
			ret[fmt.Sprintf("recall@%d", k)] = 0
			ret[fmt.Sprintf("success_rate@%d", k)] = 0
		}
	}
	var acc, em, f1, rl, kacc, kem, kf1, krl float64
	for i, g := range gold {
		p := sel[i]
		where := func(err error) error {
			return fmt.Errorf("id %q (gold line %d, prediction line %d): %w", pyStrip(g.ID), g.Line, aligned[i].Line, err)
		}
		guessLists, err := idsList([]Output{p}, keys)
		if err != nil {
			return nil, where(err)
		}
		guess := guessLists[0]
		goldLists, err := idsList(g.Output, keys)
		if err != nil {
			return nil, where(err)
		}
		rprec := RPrecision(guess, goldLists)
		ret["Rprec"] += rprec

		answers := goldAnswers(g)
		titles, err := goldTitles(g)
		if err != nil {
			return nil, where(err)
		}
		normAnswers := normalizeAll(answers)
		normTitles := normalizeAll(titles)
		if containsAny(NormalizeAnswer(g.Input), normTitles) {
			ret["entity_in_input"]++
		}
		r, nsets, err := rank(guess, g.Output, keys)
		if err != nil {
			return nil, where(err)
		}
		for _, k := range ks {
			if nsets > 0 {
				hits := hitsAt(r, k)
				ret[fmt.Sprintf("precision@%d", k)] += float64(hits) / float64(k)
				if k > 1 {
					ret[fmt.Sprintf("recall@%d", k)] += float64(hits) / float64(nsets)
					if hits > 0 {
						ret[fmt.Sprintf("success_rate@%d", k)]++
					}
				}
			}
			texts, err := contextTexts(p.Provenance, k)
			if err != nil {
				return nil, where(err)
			}
			ans, ansEnt, ent := 0.0, 0.0, 0.0
			for _, t := range texts {
				if containsAny(t, normAnswers) {
					ans = 1
					break
				}
			}
			for _, t := range texts {
				if containsAny(t, normAnswers) && containsAny(t, normTitles) {
					ansEnt = 1
					break
				}
			}
			for _, t := range texts {
				if containsAny(t, normTitles) {
					ent = 1
					break
				}
			}
			ret[fmt.Sprintf("answer_in_context@%d", k)] += ans
			ret[fmt.Sprintf("answer_and_ent_in_context@%d", k)] += ansEnt
			ret[fmt.Sprintf("entity_in_context@%d", k)] += ent
		}

		if !downstream {
			continue
		}
		guessAnswer := pyStrip(p.Answer)
		if guessAnswer == "" {
			continue
		}
		if len(answers) == 0 {
			return nil, where(fmt.Errorf("the gold has no answer to score the prediction against"))
		}
		var lacc, lem, lf1, lrl float64
		for j, a := range answers {
			if a == guessAnswer {
				lacc = 1
			}
			e := 0.0
			if ExactMatch(guessAnswer, a) {
				e = 1
			}
			f := F1(guessAnswer, a)
			rs, err := RougeL(guessAnswer, a)
			if err != nil {
				return nil, where(err)
			}
			if j == 0 || e > lem {
				lem = e
			}
			if j == 0 || f > lf1 {
				lf1 = f
			}
			if j == 0 || rs > lrl {
				lrl = rs
			}
		}
		acc += lacc
		em += lem
		f1 += lf1
		rl += lrl
		if rprec == 1 {
			kacc += lacc
			kem += lem
			kf1 += lf1
			krl += lrl
		}
	}
	if n > 0 {
		for k := range ret {
			ret[k] /= float64(n)
		}
		acc /= float64(n)
		em /= float64(n)
		f1 /= float64(n)
		rl /= float64(n)
		kacc /= float64(n)
		kem /= float64(n)
		kf1 /= float64(n)
		krl /= float64(n)
	}
	res.Retrieval = ret
	if downstream {
		res.Downstream = map[string]float64{"accuracy": acc, "em": em, "f1": f1, "rougel": rl}
		res.KILT = map[string]float64{"KILT-accuracy": kacc, "KILT-em": kem, "KILT-f1": kf1, "KILT-rougel": krl}
	}
	return res, nil
}
