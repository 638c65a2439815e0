package kilt

import (
	"fmt"
	"strings"
)

// provID joins the rank keys' values of p with "+" (each as str().strip()),
// as KILT identifies a provenance entry. all reports whether every key was
// present; when it is false the id joins only the keys present.
func provID(p Provenance, keys []string) (id string, all bool, err error) {
	parts := make([]string, 0, len(keys))
	all = true
	for _, k := range keys {
		v, ok, err := p.Value(k)
		if err != nil {
			return "", false, err
		}
		if !ok {
			all = false
			continue
		}
		parts = append(parts, pyStrip(v))
	}
	return strings.Join(parts, "+"), all, nil
}

// idsList returns, for each output, the distinct ids of its provenance entries
// that have every rank key, in order (KILT's _get_ids_list). An output without
// provenance gives an empty list.
func idsList(outputs []Output, keys []string) ([][]string, error) {
	lists := make([][]string, 0, len(outputs))
	for _, o := range outputs {
		var ids []string
		seen := map[string]bool{}
		for i, p := range o.Provenance {
			id, all, err := provID(p, keys)
			if err != nil {
				return nil, fmt.Errorf("provenance %d: %w", i, err)
			}
			if all && !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
		lists = append(lists, ids)
	}
	return lists, nil
}

// RPrecision is KILT's R-Precision of ranked guess ids against the gold
// evidence sets: for each set of R ids, the fraction of the first R guesses
// that are in it; the best set counts.
func RPrecision(guess []string, gold [][]string) float64 {
	best := 0.0
	for i, g := range gold {
		r := computeRprec(guess, g)
		if i == 0 || r > best {
			best = r
		}
	}
	return best
}

func computeRprec(guess, gold []string) float64 {
	R := len(gold)
	if R == 0 {
		return 0
	}
	in := make(map[string]bool, R)
	for _, g := range gold {
		in[g] = true
	}
	num := 0
	for i, p := range guess {
		if i >= R {
			break
		}
		if in[pyStrip(p)] {
			num++
		}
	}
	return float64(num) / float64(R)
}

// Rank entries: a complete evidence set, a guess outside every set, or a
// partial evidence set (its index, >= 0).
const (
	rankHit  = -1
	rankMiss = -2
)

// rank is KILT's get_rank: each gold evidence set counts as one point of the
// ranking, placed where its last page is retrieved; a guess outside every set
// counts as a miss. It returns the rank and the number of distinct evidence
// sets (0 when there are no guesses, as in KILT).
func rank(guess []string, gold []Output, keys []string) ([]int, int, error) {
	if len(guess) == 0 {
		return nil, 0, nil
	}
	var sets []map[string]bool
	for _, o := range gold {
		if !o.HasProvenance {
			continue
		}
		set := map[string]bool{}
		for i, p := range o.Provenance {
			id, _, err := provID(p, keys)
			if err != nil {
				return nil, 0, fmt.Errorf("gold provenance %d: %w", i, err)
			}
			set[id] = true
		}
		dup := false
		for _, s := range sets {
			if sameSet(s, set) {
				dup = true
				break
			}
		}
		if !dup {
			sets = append(sets, set)
		}
	}
	var r []int
	for _, g := range guess {
		g = pyStrip(g)
		found := false
		for idx, s := range sets {
			if !s[g] {
				continue
			}
			found = true
			for i, e := range r {
				if e == idx {
					r = append(r[:i], r[i+1:]...)
					break
				}
			}
			delete(s, g)
			if len(s) == 0 {
				r = append(r, rankHit)
			} else {
				r = append(r, idx)
			}
		}
		if !found {
			r = append(r, rankMiss)
		}
	}
	return r, len(sets), nil
}

func sameSet(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func hitsAt(r []int, k int) int {
	n := 0
	for i, e := range r {
		if i >= k {
			break
		}
		if e == rankHit {
			n++
		}
	}
	return n
}

// goldAnswers is KILT's get_gold_answers: the distinct stripped non-empty
// answers of the gold outputs.
func goldAnswers(gold Record) []string {
	var out []string
	seen := map[string]bool{}
	for _, o := range gold.Output {
		if !o.HasAnswer {
			continue
		}
		a := pyStrip(o.Answer)
		if a != "" && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// goldTitles is KILT's get_gold_titles: the distinct stripped non-empty
// titles of the gold provenance.
func goldTitles(gold Record) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, o := range gold.Output {
		for i, p := range o.Provenance {
			v, ok := p["title"]
			if !ok || v == nil {
				continue
			}
			s, isStr := v.(string)
			if !isStr {
				return nil, fmt.Errorf("gold provenance %d: title must be a string, got %v", i, v)
			}
			s = pyStrip(s)
			if s != "" && !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	return out, nil
}

// contextTexts returns the normalised "text" of the first k provenance
// entries that have one.
func contextTexts(prov []Provenance, k int) ([]string, error) {
	var out []string
	for i := 0; i < k && i < len(prov); i++ {
		v, ok := prov[i]["text"]
		if !ok {
			continue
		}
		s, isStr := v.(string)
		if !isStr {
			return nil, fmt.Errorf("provenance %d: text must be a string", i)
		}
		out = append(out, NormalizeAnswer(s))
	}
	return out, nil
}

func containsAny(text string, needles []string) bool {
	for _, n := range needles {
		if strings.Contains(text, n) {
			return true
		}
	}
	return false
}

func normalizeAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = NormalizeAnswer(s)
	}
	return out
}
