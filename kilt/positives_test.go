package kilt

import (
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/re2g/re2g/data"
)

// handMap is a corpus of ids built by hand; the half-paragraph intervals are
// in the comments.
func handMap(t *testing.T) *PassageMap {
	t.Helper()
	ids := []string{
		"A::[4,5]", // [8,12): the last passage of A, overlapping the one before
		"A::[0,1]", // [0,4)
		"A::[2,2)", // [4,6): paragraph 2 cut short, all there is of it
		"A::[3,4]", // [6,10)
		"B::[0,1)", // [0,3): the beginning of paragraph 1
		"B::[1,1)", // [2,4)
		"B::(1,2]", // [3,6): the end of paragraph 1
		"P::[0,7]", // [0,16): a page of one passage
		"K_0",      // [0,2): one paragraph a passage (page K from pageOf)
		"K_2",      // [4,6)
		"Sq_Art#3", // page "Sq Art", no range: the whole page
		"u1", "u2", // page U, no range
		"doc9", // no page
	}
	pages := map[string]string{"K_0": "K", "K_2": "K", "Sq_Art#3": "Sq Art", "u1": "U", "u2": "U", "doc9": "doc9"}
	m, err := NewPassageMap(ids, func(id string) string { return pages[id] })
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func ev(page string, rng ...int) Evidence {
	if len(rng) == 0 {
		return Evidence{Page: page}
	}
	return Evidence{Page: page, Start: rng[0], End: rng[1], Paragraphs: true}
}

func TestPassageMapHandWorked(t *testing.T) {
	m := handMap(t)
	if m.Len() != 14 || m.Pages() != 6 || m.Unranged() != 3 || m.Unpaged() != 1 {
		t.Errorf("len %d pages %d unranged %d unpaged %d", m.Len(), m.Pages(), m.Unranged(), m.Unpaged())
	}
	if got := m.PagePassages("A"); !reflect.DeepEqual(got, []string{"A::[0,1]", "A::[2,2)", "A::[3,4]", "A::[4,5]"}) {
		t.Errorf("PagePassages(A) = %v", got)
	}
	if m.PagePassages("doc9") != nil || m.PagePassages("Z") != nil {
		t.Error("doc9 and Z are not pages")
	}
	cases := []struct {
		name      string
		ev        []Evidence
		matches   []Match
		positives []string // with MinOverlap 0.75
		all       []string // with MinOverlap 0
	}{
		{"the cut single paragraph; neighbours only touch it", []Evidence{ev("A", 2, 2)},
			[]Match{{"A::[2,2)", 1}}, []string{"A::[2,2)"}, []string{"A::[2,2)"}},
		{"two passages hold paragraph 4", []Evidence{ev("A", 4, 4)},
			[]Match{{"A::[3,4]", 1}, {"A::[4,5]", 1}}, []string{"A::[3,4]", "A::[4,5]"}, nil},
		{"paragraphs 1..3: a third each, the best there is", []Evidence{ev("A", 1, 3)},
			[]Match{{"A::[0,1]", 1.0 / 3}, {"A::[2,2)", 1.0 / 3}, {"A::[3,4]", 1.0 / 3}},
			[]string{"A::[0,1]", "A::[2,2)", "A::[3,4]"}, nil},
		{"cut paragraph 1 of B counts half in the passages that cut it", []Evidence{ev("B", 1, 1)},
			[]Match{{"B::[0,1)", 0.5}, {"B::[1,1)", 1}, {"B::(1,2]", 0.5}},
			[]string{"B::[1,1)"}, []string{"B::[0,1)", "B::[1,1)", "B::(1,2]"}},
		{"paragraph 0 of B", []Evidence{ev("B", 0, 0)},
			[]Match{{"B::[0,1)", 1}}, []string{"B::[0,1)"}, nil},
		{"paragraph 2 of B: only its cut-at-the-start passage", []Evidence{ev("B", 2, 2)},
			[]Match{{"B::(1,2]", 1}}, []string{"B::(1,2]"}, nil},
		{"a page of one passage", []Evidence{ev("P", 3, 5)},
			[]Match{{"P::[0,7]", 1}}, []string{"P::[0,7]"}, nil},
		{"paragraphs past the page's end", []Evidence{ev("P", 9, 9)}, nil, nil, nil},
		{"<page>_<i> passages: paragraph 1 is in none", []Evidence{ev("K", 1, 1)}, nil, nil, nil},
		{"<page>_<i> passages: half of 1..2", []Evidence{ev("K", 1, 2)},
			[]Match{{"K_2", 0.5}}, []string{"K_2"}, nil},
		{"passage-level provenance", []Evidence{ev("Sq_Art#3", 0, 0)},
			[]Match{{"Sq_Art#3", 1}}, []string{"Sq_Art#3"}, nil},
		{"a passage without a page", []Evidence{ev("doc9")}, []Match{{"doc9", 1}}, []string{"doc9"}, nil},
		{"a page absent from the corpus", []Evidence{ev("Z", 0, 3), ev("Z")}, nil, nil, nil},
		{"no paragraph ids: the whole page", []Evidence{ev("A")},
			[]Match{{"A::[0,1]", 1}, {"A::[2,2)", 1}, {"A::[3,4]", 1}, {"A::[4,5]", 1}},
			[]string{"A::[0,1]", "A::[2,2)", "A::[3,4]", "A::[4,5]"}, nil},
		{"passages without a range cover their page", []Evidence{ev("U", 5, 6), ev("Sq Art", 0, 0)},
			[]Match{{"u1", 1}, {"u2", 1}, {"Sq_Art#3", 1}}, []string{"u1", "u2", "Sq_Art#3"}, nil},
		{"several entries: the best overlap of each passage, the threshold over all",
			[]Evidence{ev("A", 1, 3), ev("A", 4, 4), ev("Z", 1, 1)},
			[]Match{{"A::[0,1]", 1.0 / 3}, {"A::[2,2)", 1.0 / 3}, {"A::[3,4]", 1}, {"A::[4,5]", 1}},
			[]string{"A::[3,4]", "A::[4,5]"}, []string{"A::[0,1]", "A::[2,2)", "A::[3,4]", "A::[4,5]"}},
	}
	for _, c := range cases {
		got, err := m.Matches(c.ev)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !reflect.DeepEqual(got, c.matches) {
			t.Errorf("%s: matches\n got %v\nwant %v", c.name, got, c.matches)
		}
		m.MinOverlap = DefaultMinOverlap
		pos, _ := m.Positives(c.ev)
		if !reflect.DeepEqual(pos, c.positives) {
			t.Errorf("%s: positives %v, want %v", c.name, pos, c.positives)
		}
		if c.all == nil {
			c.all = c.positives
		}
		m.MinOverlap = 0
		if pos, _ := m.Positives(c.ev); !reflect.DeepEqual(pos, c.all) {
			t.Errorf("%s: with MinOverlap 0, positives %v, want %v", c.name, pos, c.all)
		}
	}
	for _, bad := range [][]Evidence{{ev("A", -1, 0)}, {ev("A", 3, 2)}, {ev("A", 0, 1), ev("", 0, 0)}} {
		if got, err := m.Positives(bad); err == nil {
			t.Errorf("%v: positives %v, want an error", bad, got)
		}
	}
}

func TestNewPassageMapErrorsAndPages(t *testing.T) {
	if _, err := NewPassageMap([]string{"A::[0,1]", "x", "A::[0,1]"}, nil); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Errorf("duplicate ids: err = %v", err)
	}
	if _, err := NewPassageMap([]string{"x", ""}, nil); err == nil {
		t.Error("empty id: no error")
	}
	m, err := NewPassageMap(nil, nil)
	if err != nil || m.Len() != 0 || m.Pages() != 0 {
		t.Fatalf("empty map: %v", err)
	}
	if pos, err := m.Positives([]Evidence{ev("A", 0, 0)}); err != nil || pos != nil {
		t.Errorf("empty map: %v %v", pos, err)
	}
	// Without pageOf, "wid::" ids give their page and "_<i>" ids are not
	// taken apart; a pageOf that disagrees with the id's page keeps the
	// passage on its page but drops the range.
	m, err = NewPassageMap([]string{"7::[0,0]", "7_1", "8::[0,2]"}, func(id string) string {
		if id == "8::[0,2]" {
			return "9"
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	if pos, _ := m.Positives([]Evidence{ev("7", 1, 1)}); pos != nil {
		t.Errorf("7 paragraph 1: %v", pos)
	}
	if pos, _ := m.Positives([]Evidence{ev("7", 0, 0), ev("9", 5, 5)}); !reflect.DeepEqual(pos, []string{"7::[0,0]", "8::[0,2]"}) {
		t.Errorf("7 and 9: %v", pos)
	}
	if m.Unranged() != 1 || m.Unpaged() != 1 {
		t.Errorf("unranged %d unpaged %d", m.Unranged(), m.Unpaged())
	}
	m, err = NewPassageMapPages([]string{"K_0", "K_1", "x"}, []string{"K", "K", "x"})
	if err != nil || m.Pages() != 1 || m.Unpaged() != 1 || m.Unranged() != 0 {
		t.Fatalf("NewPassageMapPages: %v", err)
	}
	if pos, _ := m.Positives([]Evidence{ev("K", 1, 1), ev("x", 0, 0)}); !reflect.DeepEqual(pos, []string{"K_1", "x"}) {
		t.Errorf("NewPassageMapPages: %v", pos)
	}
	if _, err := NewPassageMapPages([]string{"a"}, nil); err == nil {
		t.Error("pages of another length: no error")
	}
}

func TestEvidenceOf(t *testing.T) {
	recs, err := Read(strings.NewReader(
		`{"id": 1, "input": "q", "output": [{"answer": "a"}, {"provenance": [{"wikipedia_id": 12, "start_paragraph_id": 3, "end_paragraph_id": 4}, {"wikipedia_id": "13", "title": "T"}]}]}
{"id": 2, "input": "q", "output": [{"provenance": [{"wikipedia_id": "1", "start_paragraph_id": 2.0, "end_paragraph_id": 2}]}]}
{"id": 3, "input": "q", "output": [{"provenance": [{"wikipedia_id": "1", "start_paragraph_id": 2}]}]}
{"id": 4, "input": "q", "output": [{"provenance": [{"wikipedia_id": "1", "start_paragraph_id": 1.5, "end_paragraph_id": 2}]}]}
{"id": 5, "input": "q", "output": [{"provenance": [{"title": "no id"}]}]}
{"id": 6, "input": "q", "output": [{"provenance": [{"wikipedia_id": "1", "start_paragraph_id": 3, "end_paragraph_id": 1}]}]}
{"id": 7, "input": "q", "output": [{"provenance": [{"wikipedia_id": "1", "start_paragraph_id": "3", "end_paragraph_id": 3}]}]}
`), "mem")
	if err != nil {
		t.Fatal(err)
	}
	got, err := RecordEvidence(recs[0])
	if err != nil || !reflect.DeepEqual(got, []Evidence{ev("12", 3, 4), ev("13")}) {
		t.Errorf("record 1: %v %v", got, err)
	}
	if got, err := RecordEvidence(recs[1]); err != nil || !reflect.DeepEqual(got, []Evidence{ev("1", 2, 2)}) {
		t.Errorf("record 2: %v %v", got, err)
	}
	for _, r := range recs[2:] {
		if got, err := RecordEvidence(r); err == nil {
			t.Errorf("record %s: %v, want an error", r.ID, got)
		}
	}
	if e := EvidenceFromData(data.KILTProvenance{WikipediaID: "5", StartParagraph: 1, EndParagraph: 2}); e != ev("5", 1, 2) {
		t.Errorf("EvidenceFromData: %+v", e)
	}
	if _, err := EvidenceOf(Provenance{"wikipedia_id": "5", "start_paragraph_id": 1, "end_paragraph_id": int64(1)}); err != nil {
		t.Errorf("Go ints: %v", err)
	}
}

// TestPassageMapAgainstBruteForce compares the map with a plain scan over
// the passages of randomly split pages.
func TestPassageMapAgainstBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var ids []string
	for p := range 3000 {
		pg := data.KILTPage{WikipediaID: strconv.Itoa(p)}
		for range rng.IntN(12) {
			pg.Text = append(pg.Text, strings.Repeat("w ", 1+rng.IntN(150)))
		}
		data.SplitKILTPage(pg, data.DefaultSplitOptions(), nil, func(sp data.SplitPassage) error {
			ids = append(ids, sp.PID)
			return nil
		})
	}
	rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	m, err := NewPassageMap(ids, nil)
	if err != nil {
		t.Fatal(err)
	}
	brute := func(ev []Evidence) map[string]float64 {
		out := map[string]float64{}
		for _, id := range ids {
			r, _ := data.ParsePassageID(id)
			lo, hi := float64(r.First), float64(r.Last)+1
			if r.CutFirst {
				lo += 0.5
			}
			if r.CutLast && float64(r.Last) > lo {
				hi -= 0.5
			}
			for _, e := range ev {
				a, b := float64(e.Start), float64(e.End)+1
				if r.Page == e.Page && lo < b && hi > a {
					out[id] = max(out[id], (min(hi, b)-max(lo, a))/(b-a))
				}
			}
		}
		return out
	}
	for range 300 {
		var es []Evidence
		for range 1 + rng.IntN(3) {
			s := rng.IntN(13)
			es = append(es, ev(strconv.Itoa(rng.IntN(3100)), s, s+rng.IntN(3)))
		}
		ms, err := m.Matches(es)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, x := range ms {
			got[x.ID] = x.Overlap
		}
		if want := brute(es); !reflect.DeepEqual(got, want) {
			t.Fatalf("%v: got %v, want %v", es, got, want)
		}
	}
}
