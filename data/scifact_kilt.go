package data

import (
	"slices"
	"strings"
)

// SciFactClaim is one claim of the SciFact export with its verdict: Label is
// SUPPORT or CONTRADICT with the documents holding the evidence, or "" (not
// enough information: no evidence document).
type SciFactClaim struct {
	ID       string
	Claim    string
	Label    string
	Evidence []string // doc_ids with evidence, each once, in file order
	Cited    []string // doc_ids the claim cites
}

// Verdicts reads claims_<split>.csv, one SciFactClaim per claim id in file
// order (the file has a row per claim and evidence sentence set). Rows without
// id or claim text, and a label other than SUPPORT, CONTRADICT or empty, are
// malformed; a claim with both labels is malformed (SciFact has none).
func (s *SciFact) Verdicts(split string, rep *Report) ([]SciFactClaim, error) {
	member := "claims_" + split + ".csv"
	name := s.path + ":" + member
	var out []SciFactClaim
	at := map[string]int{}
	bad := map[string]bool{}
	err := s.csv(member, func(rec []string, line int, col map[string]int) error {
		if rec == nil {
			return rep.skip(name, line, "wrong number of columns")
		}
		field := func(k string) string {
			if c, ok := col[k]; ok {
				return strings.TrimSpace(rec[c])
			}
			return ""
		}
		id := field("id")
		if why := validID(id); why != "" {
			return rep.skip(name, line, "%s", why)
		}
		if bad[id] {
			return nil
		}
		label := field("evidence_label")
		if label != "" && label != "SUPPORT" && label != "CONTRADICT" {
			return rep.skip(name, line, "claim %s: label %q", id, label)
		}
		j, ok := at[id]
		if !ok {
			if field("claim") == "" {
				return rep.skip(name, line, "claim %s has no text", id)
			}
			j = len(out)
			at[id] = j
			c := SciFactClaim{ID: id, Claim: rec[col["claim"]]}
			for _, d := range strings.Fields(strings.Trim(field("cited_doc_ids"), "[] ")) {
				c.Cited = append(c.Cited, strings.Trim(d, ","))
			}
			out = append(out, c)
		}
		c := &out[j]
		if label != "" {
			if c.Label != "" && c.Label != label {
				bad[id] = true
				return rep.skip(name, line, "claim %s is both %s and %s", id, c.Label, label)
			}
			c.Label = label
			if d := field("evidence_doc_id"); d != "" && !slices.Contains(c.Evidence, d) {
				c.Evidence = append(c.Evidence, d)
			}
		}
		return nil
	})
	if len(bad) > 0 {
		kept := out[:0]
		for _, c := range out {
			if !bad[c.ID] {
				kept = append(kept, c)
			}
		}
		out = kept
	}
	return out, err
}
