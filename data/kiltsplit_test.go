package data

import (
	"reflect"
	"strings"
	"testing"
)

func split(t *testing.T, p KILTPage, opt SplitOptions) ([]SplitPassage, SplitStats) {
	t.Helper()
	var out []SplitPassage
	var st SplitStats
	if err := SplitKILTPage(p, opt, &st, func(sp SplitPassage) error { out = append(out, sp); return nil }); err != nil {
		t.Fatal(err)
	}
	return out, st
}

// TestSplitKILTPageHandWorked follows the reference's rule by hand with 3..5
// words a passage.
func TestSplitKILTPageHandWorked(t *testing.T) {
	opt := SplitOptions{MinWords: 3, MaxWords: 5}
	// Words: 1, 2, 7, 2, 3, 1.
	// From 0: paragraphs 0..2 hold 10 > 5 words and 0..1 hold 3 >= 3: [0,1].
	// From 2: paragraph 2 alone holds 7 > 5: its first 5 words, [2,2); next from 3.
	// From 3: 3..4 hold exactly 5: [3,4]. From 5: the page ends with 1 < 3
	// words, so paragraph 4 is taken in again: [4,5] (overlapping [3,4]).
	a := KILTPage{WikipediaID: "A", Title: "Page A", Text: []string{
		"Title\n", "Section::::History.\n", "a b c\td e  f g", " h\n i ", "j k l", "m",
	}}
	got, st := split(t, a, opt)
	want := []SplitPassage{
		{"A::[0,1]", "Page A", "Title Section: History."},
		{"A::[2,2)", "Page A", "a b c d e"},
		{"A::[3,4]", "Page A", "h i j k l"},
		{"A::[4,5]", "Page A", "j k l m"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("page A:\n got %v\nwant %v", got, want)
	}
	if st != (SplitStats{Pages: 1, Paragraphs: 6, LongParagraphs: 1, Passages: 4, CutEnd: 1}) {
		t.Errorf("page A stats %+v", st)
	}

	// Words: 2, 6, 1. From 0: 0..1 hold 8 and 0 alone 2 < 3: cut to 5 words,
	// [0,1); the next starts again at 1, which alone holds 6: [1,1); from 2,
	// the last paragraph (1 word) takes paragraph 1 back in, 7 words, cut at
	// the start to the last 5: (1,2].
	b := KILTPage{WikipediaID: "B", Title: "B", Text: []string{"x1 x2", "y1 y2 y3 y4 y5 y6", "z1"}}
	got, st = split(t, b, opt)
	want = []SplitPassage{
		{"B::[0,1)", "B", "x1 x2 y1 y2 y3"},
		{"B::[1,1)", "B", "y1 y2 y3 y4 y5"},
		{"B::(1,2]", "B", "y3 y4 y5 y6 z1"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("page B:\n got %v\nwant %v", got, want)
	}
	if st.CutEnd != 2 || st.CutStart != 1 || st.LongParagraphs != 1 {
		t.Errorf("page B stats %+v", st)
	}

	// A page shorter than MinWords is one short passage; an empty paragraph
	// counts as one empty word (the reference's "".split(" ") == [""]).
	got, st = split(t, KILTPage{WikipediaID: "C", Text: []string{"Just two"}}, opt)
	if !reflect.DeepEqual(got, []SplitPassage{{"C::[0,0]", "", "Just two"}}) || st.ShortPages != 1 {
		t.Errorf("page C: %v %+v", got, st)
	}
	got, _ = split(t, KILTPage{WikipediaID: "D", Text: []string{"one two three", " \n", "four"}}, opt)
	if !reflect.DeepEqual(got, []SplitPassage{{"D::[0,2]", "", "one two three  four"}}) {
		t.Errorf("page D: %q", got)
	}
	got, st = split(t, KILTPage{WikipediaID: "E"}, opt)
	if len(got) != 0 || st.EmptyPages != 1 {
		t.Errorf("page E: %v %+v", got, st)
	}
	if err := SplitKILTPage(a, SplitOptions{MinWords: 6, MaxWords: 5}, nil, nil); err == nil {
		t.Error("min > max: no error")
	}
}

func TestCleanKILTParagraph(t *testing.T) {
	for in, want := range map[string]string{
		"Section::::Early life.\n":      "Section: Early life.",
		"BULLET::::- item":              "BULLET: - item",
		" a\u00a0\u2003b\x1cc\u200bd  ": "a b c\u200bd", // U+200B is not white space in Python
		"\n\t ":                         "",
	} {
		if got := CleanKILTParagraph(in); got != want {
			t.Errorf("CleanKILTParagraph(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParsePassageID(t *testing.T) {
	for id, want := range map[string]PassageRange{
		"12::[0,3]":    {Page: "12", First: 0, Last: 3},
		"12::[4,4)":    {Page: "12", First: 4, Last: 4, CutLast: true},
		"12::(2,5]":    {Page: "12", First: 2, Last: 5, CutFirst: true},
		"a::b::[1,10]": {Page: "a::b", First: 1, Last: 10},
	} {
		got, ok := ParsePassageID(id)
		if !ok || got != want {
			t.Errorf("ParsePassageID(%q) = %+v, %v; want %+v", id, got, ok, want)
		}
		if got.String() != id {
			t.Errorf("%+v formats as %q, want %q", got, got.String(), id)
		}
	}
	for _, id := range []string{"12", "12_3", "::[0,1]", "12::[1,0]", "12::[-1,2]", "12::[1,2", "12::{1,2}", "12::[a,2]", "12::[1;2]", "12::[+1,2]", "12::[1,9999999999]"} {
		if r, ok := ParsePassageID(id); ok {
			t.Errorf("ParsePassageID(%q) = %+v, want not ok", id, r)
		}
	}
	if PassagePage("7::(1,2]") != "7" || PassagePage("7_1") != "" {
		t.Error("PassagePage")
	}
}

func TestSplitKILTSourceAndLoad(t *testing.T) {
	src := `{"_id": "1", "wikipedia_id": "1", "wikipedia_title": "One", "text": ["One\n", "Section::::A.\n", "w w w w w w"]}
{"wikipedia_id": 2, "wikipedia_title": "Two", "text": ["Two words"]}
{"wikipedia_title": "no id", "text": ["x"]}
not json
{"_id": "3 4", "text": ["x"]}
`
	rep := &Report{}
	var got []SplitPassage
	pages := 0
	st, err := SplitKILTSource(strings.NewReader(src), "ks", SplitOptions{MinWords: 3, MaxWords: 5}, rep,
		func(*SplitStats) { pages++ }, func(p SplitPassage) error { got = append(got, p); return nil })
	if err != nil {
		t.Fatal(err)
	}
	want := []SplitPassage{{"1::[0,1]", "One", "One Section: A."}, {"1::[2,2)", "One", "w w w w w"}, {"2::[0,0]", "Two", "Two words"}}
	if !reflect.DeepEqual(got, want) || st.Pages != 2 || pages != 2 {
		t.Errorf("got %v, %+v", got, st)
	}
	if len(rep.Skips) != 3 {
		t.Errorf("skips: %s", rep.Summary())
	}
	if _, err := SplitKILTSource(strings.NewReader(src), "ks", DefaultSplitOptions(), nil, nil,
		func(SplitPassage) error { return nil }); err == nil || !strings.Contains(err.Error(), "ks:3") {
		t.Errorf("strict: err = %v", err)
	}

	// LoadKILTPassages and LoadPassageIDs read the {"pid","title","text"}
	// lines, the page of "wid::[a,b]" being wid.
	p := write(t, "passages.jsonl", `{"pid": "1::[0,1]", "title": "One", "text": "One Section: A."}
{"pid": "1::[2,2)", "title": "One", "text": "w w w w w"}
{"pid": "solo", "title": "S", "text": "own page"}
`)
	ps, err := LoadKILTPassages(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantP := []KILTPassage{
		{Passage{"1::[0,1]", "One", "One Section: A."}, "1"},
		{Passage{"1::[2,2)", "One", "w w w w w"}, "1"},
		{Passage{"solo", "S", "own page"}, "solo"},
	}
	if !reflect.DeepEqual(ps, wantP) {
		t.Errorf("LoadKILTPassages: %v", ps)
	}
	ids, pgs, err := LoadPassageIDs(p, nil)
	if err != nil || !reflect.DeepEqual(ids, []string{"1::[0,1]", "1::[2,2)", "solo"}) || !reflect.DeepEqual(pgs, []string{"1", "1", ""}) {
		t.Errorf("LoadPassageIDs: %v %v %v", ids, pgs, err)
	}
	ks := write(t, "ks.jsonl", `{"_id": "7", "wikipedia_title": "Page", "text": ["Page\n", "  ", "Second."]}
{"id": "100", "wikipedia_id": "42", "text": "x"}
{"_id": "b1", "title": "BEIR", "text": "y"}
{"id": "100", "text": "dup"}
`)
	rep = &Report{}
	ids, pgs, err = LoadPassageIDs(ks, rep)
	if err != nil || !reflect.DeepEqual(ids, []string{"7_0", "7_2", "100", "b1"}) || !reflect.DeepEqual(pgs, []string{"7", "7", "42", ""}) {
		t.Errorf("LoadPassageIDs pages: %v %v %v", ids, pgs, err)
	}
	wantSkips(t, rep, "4: duplicate id 100")
}

func TestSQuADPages(t *testing.T) {
	sq := &SQuAD{Passages: []Passage{
		{ID: "New_York#0", Title: "New York", Text: "p0"},
		{ID: "New_York#2", Title: "New York", Text: "p2"},
		{ID: "C#Sharp#0", Title: "C#Sharp", Text: "c"},
	}}
	pages, err := sq.Pages()
	if err != nil {
		t.Fatal(err)
	}
	want := []KILTPage{
		{WikipediaID: "New_York", Title: "New York", Text: []string{"p0", "", "p2"}},
		{WikipediaID: "C#Sharp", Title: "C#Sharp", Text: []string{"c"}},
	}
	if !reflect.DeepEqual(pages, want) {
		t.Errorf("got %+v", pages)
	}
	sq.Passages = append(sq.Passages, Passage{ID: "New_York#3", Title: "New York"})
	if _, err := sq.Pages(); err == nil {
		t.Error("an article twice: no error")
	}
	if w, i, ok := SQuADParagraph("A#B#12"); !ok || w != "A#B" || i != 12 {
		t.Errorf("SQuADParagraph: %q %d %v", w, i, ok)
	}
	for _, id := range []string{"A", "#1", "A#", "A#-1", "A#01"} {
		if _, _, ok := SQuADParagraph(id); ok {
			t.Errorf("SQuADParagraph(%q) ok", id)
		}
	}
}
