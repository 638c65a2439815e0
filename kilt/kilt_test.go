package kilt

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNormalizeAnswer(t *testing.T) {
	for in, want := range map[string]string{
		"The Eiffel Tower!":    "eiffel tower",
		"  a  An the  ":        "",
		"theater and a theme":  "theater and theme",
		"the_end of The day":   "theend of day", // '_' is punctuation, removed before articles
		"U.S.A., 1,000":        "usa 1000",
		"ΟΔΟΣ":                 "οδος",           // Python's final sigma
		"Σ":                    "σ",              // no cased letter before it
		"İstanbul":             "i\u0307stanbul", // full lower-case mapping
		"x\x1cy\u00a0z\tw":     "x y z w",        // Python white space
		"an\u0301 apple":       "\u0301 apple",   // a mark is not \w: "an" is a word
		"anö thé":              "anö thé",        // letters are \w
		"l'été, c'est   the x": "lété cest x",
	} {
		if got := NormalizeAnswer(in); got != want {
			t.Errorf("NormalizeAnswer(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestExactMatchAndF1(t *testing.T) {
	if !ExactMatch("The Paris!", "paris") || ExactMatch("Paris France", "paris") {
		t.Error("ExactMatch")
	}
	// "the cat sat" -> [cat sat]; "a cat sat down" -> [cat sat down]: 2 shared,
	// P = 1, R = 2/3, F1 = 2·1·(2/3)/(1+2/3) = 0.8.
	if got := F1("the cat sat", "a cat sat down"); math.Abs(got-0.8) > 1e-15 {
		t.Errorf("F1 = %v, want 0.8", got)
	}
	// tokens count with multiplicity: [cat cat] vs [cat]: 1 shared, P=1/2, R=1.
	if got := F1("cat cat", "cat"); math.Abs(got-2.0/3) > 1e-15 {
		t.Errorf("F1 = %v, want 2/3", got)
	}
	if got := F1("the", "a"); got != 0 {
		t.Errorf("F1 of empty token lists = %v, want 0", got)
	}
}

func TestRougeL(t *testing.T) {
	f := func(p, r float64) float64 { return 2.0 * ((p * r) / (p + r + 1e-8)) }
	cases := []struct {
		pred, gold string
		want       float64
	}{
		// LCS "the cat on the mat" has 4 distinct words; each side 5 distinct.
		{"the cat sat on the mat", "the cat is on the mat", f(4.0/5, 4.0/5)},
		// sentences split at ".": "a b" and "c d" each match whole: 4 of 4.
		{"a b. c d", "c d. a b", f(1, 1)},
		// one sentence each: the LCS is only "c d" (or "a b"): 2 of 4.
		{"a b c d", "c d a b", f(0.5, 0.5)},
		// ties: the package reconstructs "a a" (1 distinct word), not "a b".
		{"a a b", "a b a", f(0.5, 0.5)},
		// "a. " has a second, blank sentence: the word "" counts in n.
		{"a. ", "a", f(0.5, 1)},
		// no normalisation: case matters.
		{"paris.", "Paris", 0},
		// an empty side scores 0.
		{".", "x", 0},
		{"x", "...", 0},
	}
	for _, c := range cases {
		got, err := RougeL(c.pred, c.gold)
		if err != nil || got != c.want {
			t.Errorf("RougeL(%q, %q) = %v, %v; want %v", c.pred, c.gold, got, err, c.want)
		}
	}
	long := strings.Repeat("w ", 5000)
	if _, err := RougeL(long, long); err == nil {
		t.Error("RougeL of two 5,000-word sentences: want a too-long error")
	}
}

func TestPyStr(t *testing.T) {
	for lit, want := range map[string]string{
		`12`: "12", `-0`: "0", `1.0`: "1.0", `1e16`: "1e+16", `1.5e-5`: "1.5e-05", `0.0001`: "0.0001",
		`123456789012345680.0`: "1.2345678901234568e+17", `1E5`: "100000.0", `-2.5`: "-2.5",
		`"x "`: "x ", `true`: "True", `null`: "None",
	} {
		var v any
		if err := decodeNumber([]byte(lit), &v); err != nil {
			t.Fatal(err)
		}
		got, err := pyStr(v)
		if err != nil || got != want {
			t.Errorf("pyStr(%s) = %q, %v; want %q", lit, got, err, want)
		}
	}
	if _, err := pyStr([]any{1}); err == nil {
		t.Error("pyStr of a list: want an error")
	}
}

func prov(id any, extra ...any) Provenance {
	p := Provenance{"wikipedia_id": id}
	for i := 0; i+1 < len(extra); i += 2 {
		p[extra[i].(string)] = extra[i+1]
	}
	return p
}

func TestRetrievalMetrics(t *testing.T) {
	// Gold: evidence set {A, B} (one output) or {C} (another).
	gold := []Output{
		{HasAnswer: true, Answer: "x", HasProvenance: true, Provenance: []Provenance{prov("A"), prov("B")}},
		{HasAnswer: true, Answer: "y", HasProvenance: true, Provenance: []Provenance{prov("C")}},
	}
	goldIDs, err := idsList(gold, []string{"wikipedia_id"})
	if err != nil {
		t.Fatal(err)
	}
	// Guesses C, X, A, B: R-Prec of {C} is 1/1.
	// Rank: C completes {C} (hit), X misses, A half-fills {A,B}, B completes
	// it (the partial point moves to B's place): [hit, miss, hit].
	guess := []string{"C", "X", "A", "B"}
	if got := RPrecision(guess, goldIDs); got != 1 {
		t.Errorf("RPrecision = %v, want 1", got)
	}
	r, n, err := rank(guess, gold, []string{"wikipedia_id"})
	if err != nil || n != 2 || len(r) != 3 || r[0] != rankHit || r[1] != rankMiss || r[2] != rankHit {
		t.Fatalf("rank = %v, %d, %v", r, n, err)
	}
	for k, want := range map[int]int{1: 1, 2: 1, 3: 2, 5: 2} {
		if got := hitsAt(r, k); got != want {
			t.Errorf("hits@%d = %d, want %d", k, got, want)
		}
	}
	// Guesses A, X: R-Prec of {A,B} is 1/2, of {C} 0; A only half-fills.
	guess = []string{"A", "X"}
	if got := RPrecision(guess, goldIDs); got != 0.5 {
		t.Errorf("RPrecision = %v, want 0.5", got)
	}
	r, _, _ = rank(guess, gold, []string{"wikipedia_id"})
	if len(r) != 2 || r[0] != 0 || r[1] != rankMiss || hitsAt(r, 2) != 0 {
		t.Errorf("rank = %v", r)
	}
}

func rec(id any, input string, outs ...Output) Record {
	raw, _ := json.Marshal(id)
	var v any
	_ = decodeNumber(raw, &v)
	s, _ := pyStr(v)
	return Record{ID: s, rawID: raw, Input: input, hasInput: true, Output: outs}
}

func out(answer string, ps ...Provenance) Output {
	return Output{Answer: answer, HasAnswer: true, Provenance: ps, HasProvenance: true}
}

func TestEvaluateHandWorked(t *testing.T) {
	gold := []Record{
		rec(1, "capital of France?", out("Paris", prov("10", "title", "Paris"))),
		rec("q2", "who was president?", out("Barack Obama", prov("20")), out("Obama", prov("20"))),
		rec(3, "anything", out("yes", prov("30"))),
	}
	pred := []Record{
		rec("q2", "", out("Obama", prov(21), prov("20"))), // right answer, gold page 2nd: R-Prec 0
		rec(" 1 ", "", out("paris.", prov(10))),           // EM but not strict; page right (int id)
		rec(3, "", out("  ", prov("30"))),                 // empty answer: counted as 0
	}
	res, err := Evaluate(gold, pred, Options{Ks: []int{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	f := func(p, r float64) float64 { return 2.0 * ((p * r) / (p + r + 1e-8)) }
	want := map[string]float64{
		"retrieval/Rprec":           (1.0 + 0 + 1) / 3,
		"retrieval/precision@1":     (1.0 + 0 + 1) / 3,
		"retrieval/precision@2":     (0.5 + 0.5 + 0.5) / 3,
		"retrieval/recall@2":        (1.0 + 1 + 1) / 3,
		"retrieval/success_rate@2":  1,
		"retrieval/entity_in_input": 0,       // the only gold title, "Paris", is in no input
		"downstream/accuracy":       1.0 / 3, // only "Obama" is a gold answer verbatim
		"downstream/em":             2.0 / 3,
		"downstream/f1":             2.0 / 3,
		"downstream/rougel":         (0 + f(1, 1) + 0) / 3, // "paris." vs "Paris": case differs
		"kilt/KILT-accuracy":        0,
		"kilt/KILT-em":              1.0 / 3,
		"kilt/KILT-f1":              1.0 / 3,
		"kilt/KILT-rougel":          0,
	}
	got := map[string]float64{}
	for k, v := range res.Retrieval {
		got["retrieval/"+k] = v
	}
	for k, v := range res.Downstream {
		got["downstream/"+k] = v
	}
	for k, v := range res.KILT {
		got["kilt/"+k] = v
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || math.Abs(g-w) > 1e-15 {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, w)
		}
	}
	if res.Count != 3 {
		t.Errorf("count = %d", res.Count)
	}
}

func TestEvaluatePassageLevelAndContext(t *testing.T) {
	gold := []Record{rec(1, "where is the Louvre?", out("Paris",
		prov("7", "start_paragraph_id", 3, "title", "Louvre")))}
	pred := []Record{rec(1, "", out("Paris",
		prov("7", "start_paragraph_id", "4", "text", "The Louvre is a museum."),
		prov("7", "start_paragraph_id", 3, "text", "The Louvre is in Paris.")))}
	page, err := Evaluate(gold, pred, Options{Ks: []int{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	passage, err := Evaluate(gold, pred, Options{Ks: []int{1, 2}, RankKeys: []string{"wikipedia_id", "start_paragraph_id"}})
	if err != nil {
		t.Fatal(err)
	}
	// Page level: page 7 first (duplicates count once). Passage level: "7+4"
	// misses, "7+3" hits second, so R-Prec 0 and the KILT variants drop.
	if page.Retrieval["Rprec"] != 1 || page.KILT["KILT-em"] != 1 {
		t.Errorf("page level: %v %v", page.Retrieval, page.KILT)
	}
	if passage.Retrieval["Rprec"] != 0 || passage.Retrieval["recall@2"] != 1 || passage.KILT["KILT-em"] != 0 {
		t.Errorf("passage level: %v %v", passage.Retrieval, passage.KILT)
	}
	// The answer is in the second text only; the title in both; the input
	// holds the title.
	r := page.Retrieval
	if r["answer_in_context@1"] != 0 || r["answer_in_context@2"] != 1 || r["entity_in_context@1"] != 1 ||
		r["answer_and_ent_in_context@2"] != 1 || r["entity_in_input"] != 1 {
		t.Errorf("context metrics: %v", r)
	}
}

func TestEvaluateRetrievalOnlyAndMissing(t *testing.T) {
	gold := []Record{rec(1, "q", out("a", prov("1"))), rec(2, "q", out("b", prov("2")))}
	retr := NewPrediction("1", "q", "", false, []Provenance{Page("1", "t", 3.5)})
	res, err := Evaluate(gold, []Record{retr}, Options{AllowMissing: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Downstream != nil || res.Missing != 1 || res.Retrieval["Rprec"] != 0.5 {
		t.Errorf("retrieval-only with a missing prediction: %+v", res)
	}
	if _, err := Evaluate(gold, []Record{retr}, Options{}); err == nil || !strings.Contains(err.Error(), `no prediction for id "2"`) {
		t.Errorf("missing prediction: err = %v", err)
	}
	dup := []Record{rec(1, "q", out("a")), rec(1, "q", out("a"))}
	if _, err := Evaluate(dup, dup, Options{}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("duplicate ids: err = %v", err)
	}
	two := rec(1, "", out("a"), out("b"))
	if _, err := Evaluate(gold[:1], []Record{two}, Options{}); err == nil {
		t.Error("a prediction with two answers: want an error")
	}
	if _, err := Evaluate(gold, []Record{retr}, Options{Ks: []int{0}, AllowMissing: true}); err == nil {
		t.Error("k = 0: want an error")
	}
}

func TestReadWrite(t *testing.T) {
	in := `{"id": 7, "input": "q", "output": [{"answer": "a", "provenance": [{"wikipedia_id": 12, "title": "T", "start_paragraph_id": 3}], "meta": {"x": 1}}, {"provenance": []}], "meta": {"m": "v"}}` + "\n\n" +
		`{"id": "b", "input": "q2", "output": [{"answer": "z"}]}` + "\n"
	recs, err := Read(strings.NewReader(in), "in.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].ID != "7" || recs[1].Line != 3 || !recs[0].Output[1].HasProvenance ||
		recs[0].Output[1].HasAnswer || recs[1].Output[0].HasProvenance {
		t.Fatalf("read: %+v", recs)
	}
	if v, ok, _ := recs[0].Output[0].Provenance[0].Value("wikipedia_id"); !ok || v != "12" {
		t.Errorf("wikipedia_id = %q", v)
	}
	path := filepath.Join(t.TempDir(), "out.jsonl")
	if err := WriteFile(path, recs); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	first := strings.SplitN(string(data), "\n", 2)[0]
	want := `{"id":7,"input":"q","output":[{"answer":"a","provenance":[{"start_paragraph_id":3,"title":"T","wikipedia_id":12}],"meta":{"x":1}},{"provenance":[]}],"meta":{"m":"v"}}`
	if first != want {
		t.Errorf("written:\n%s\nwant\n%s", first, want)
	}
	again, err := ReadFile(path)
	if err != nil || len(again) != 2 {
		t.Fatalf("read back: %v", err)
	}

	// Predictions as the pipeline writes them.
	var buf bytes.Buffer
	p := NewPrediction("q1", "who?", "Obama", true, []Provenance{Page("p9", "Obama", 2.25)})
	if err := Write(&buf, []Record{p}); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != `{"id":"q1","input":"who?","output":[{"answer":"Obama","provenance":[{"score":2.25,"title":"Obama","wikipedia_id":"p9"}]}]}`+"\n" {
		t.Errorf("prediction line: %s", got)
	}

	for _, bad := range []string{
		`{"id": 1, "output": [{"answer": 5}]}`,
		`{"id": 1, "output": [{"answer": null}]}`,
		`{"id": 1, "output": [{"provenance": {}}]}`,
		`{"id": 1, "output": [{"provenance": [3]}]}`,
		`{"output": []}`,
		`{"id": [1]}`,
		`{"id": 1, "input": 3}`,
		`{"id": 1, "input": null}`,
		`[1, 2]`,
		`{"id": 1`,
	} {
		_, err := Read(strings.NewReader("{\"id\": 0}\n"+bad+"\n"), "bad.jsonl")
		if err == nil || !strings.Contains(err.Error(), "bad.jsonl:2") {
			t.Errorf("%s: err = %v, want one naming bad.jsonl:2", bad, err)
		}
	}
	if _, err := ReadFile(filepath.Join(t.TempDir(), "absent.jsonl")); err == nil {
		t.Error("absent file: want an error")
	}
}

// TestReadByteOrderMark: a KILT file with a UTF-8 byte order mark reads as
// without it, from a reader and from a file.
func TestReadByteOrderMark(t *testing.T) {
	const in = `{"id": "a", "input": "q", "output": [{"answer": "x"}]}` + "\n" + `{"id": "b", "input": "q2"}` + "\n"
	recs, err := Read(strings.NewReader("\xef\xbb\xbf"+in), "in.jsonl")
	if err != nil || len(recs) != 2 || recs[0].ID != "a" || recs[0].Line != 1 {
		t.Fatalf("read: %+v, %v", recs, err)
	}
	path := filepath.Join(t.TempDir(), "marked.jsonl")
	if err := os.WriteFile(path, []byte("\xef\xbb\xbf"+in), 0o644); err != nil {
		t.Fatal(err)
	}
	if recs, err := ReadFile(path); err != nil || len(recs) != 2 || recs[0].ID != "a" {
		t.Fatalf("read file: %+v, %v", recs, err)
	}
}
