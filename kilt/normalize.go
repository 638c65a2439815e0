package kilt

import (
	"strings"
	"unicode"
)

// isPunct reports whether r is in Python's string.punctuation (ASCII only).
func isPunct(r rune) bool {
	return r < 0x80 && strings.ContainsRune("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", r)
}

// isWord is Python re's \w for str patterns: letters, numbers and '_'.
func isWord(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r)
}

// NormalizeAnswer is KILT's (and SQuAD's) answer normalisation: lower-case,
// drop ASCII punctuation, replace the articles a/an/the by a space, and
// collapse white space.
func NormalizeAnswer(s string) string {
	s = pyLower(s)
	// remove_punc
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if !isPunct(r) {
			b.WriteRune(r)
		}
	}
	s = b.String()
	// remove_articles: re.sub(r"\b(a|an|the)\b", " ", s) replaces exactly the
	// maximal runs of word characters that are "a", "an" or "the".
	rs := []rune(s)
	b.Reset()
	for i := 0; i < len(rs); {
		if !isWord(rs[i]) {
			b.WriteRune(rs[i])
			i++
			continue
		}
		j := i
		for j < len(rs) && isWord(rs[j]) {
			j++
		}
		switch w := string(rs[i:j]); w {
		case "a", "an", "the":
			b.WriteByte(' ')
		default:
			b.WriteString(w)
		}
		i = j
	}
	// white_space_fix
	return strings.Join(pyFields(b.String()), " ")
}
