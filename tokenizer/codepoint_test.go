package tokenizer

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"golang.org/x/text/unicode/norm"
)

// codepointRuns are the per-code-point reference tables written by
// scripts/tokenizer_reference.js: [first, last, value] runs.
type codepointRuns map[string][][3]any

func loadCodepoints(t *testing.T) codepointRuns {
	f, err := os.Open("../testdata/tokenizer/codepoints.json.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var r codepointRuns
	if err := json.NewDecoder(zr).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r
}

func eachCodepoint(t *testing.T, runs [][3]any, check func(r rune, want string) bool) {
	t.Helper()
	bad := 0
	for _, run := range runs {
		lo, hi, v := rune(run[0].(float64)), rune(run[1].(float64)), run[2].(string)
		for r := lo; r <= hi; r++ {
			if !check(r, v) {
				bad++
				if bad <= 20 {
					t.Errorf("U+%04X %q: want %q", r, string(r), v)
				}
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d code points differ", bad)
	}
}

// TestCodepointsBertNormalizer checks the BERT normalizer on every code point.
func TestCodepointsBertNormalizer(t *testing.T) {
	runs := loadCodepoints(t)
	for _, c := range []struct {
		name string
		n    *bertNormalizer
	}{
		{"bert_uncased", &bertNormalizer{cleanText: true, chinese: true, stripAccents: true, lowercase: true}},
		{"bert_cased", &bertNormalizer{cleanText: true, chinese: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			eachCodepoint(t, runs[c.name], func(r rune, v string) bool {
				ch := string(r)
				got := c.n.normalize(ch)
				var want string
				switch {
				case v == "=":
					want = ch
				case v == "C":
					want = " " + ch + " "
				case v == "D":
					want = norm.NFD.String(ch)
				default:
					want = v[1:]
				}
				if got != want {
					t.Logf("U+%04X: got %q want %q", r, got, want)
				}
				return got == want
			})
		})
	}
}

// TestCodepointsBertPreTokenizer checks whitespace and punctuation classes.
func TestCodepointsBertPreTokenizer(t *testing.T) {
	runs := loadCodepoints(t)
	eachCodepoint(t, runs["bert_punct"], func(r rune, v string) bool {
		n := 0
		bertPreTokenizer{}.split("a"+string(r)+"b", func(string) { n++ })
		got := map[int]string{3: "P", 2: "S", 1: "-"}[n]
		return got == v
	})
}

// TestCodepointsByteLevel checks the letter/number/space/other classes of the
// GPT-2 split pattern.
func TestCodepointsByteLevel(t *testing.T) {
	runs := loadCodepoints(t)
	pieces := func(s string) int {
		n := 0
		splitGPT2(s, func(string) { n++ })
		return n
	}
	eachCodepoint(t, runs["bytelevel_class"], func(r rune, v string) bool {
		ch := string(r)
		got := "S"
		switch {
		case pieces("a"+ch) == 1:
			got = "L"
		case pieces("1"+ch) == 1:
			got = "N"
		case pieces("!"+ch) == 1:
			got = "O"
		}
		if got != v {
			t.Logf("%s", fmt.Sprintf("U+%04X got %s want %s", r, got, v))
		}
		return got == v
	})
}
