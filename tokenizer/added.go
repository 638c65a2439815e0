package tokenizer

import (
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// AddedToken is a token matched in the raw (or normalized) text before the
// model runs, like HF's added_tokens entries.
type AddedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

// matcher finds added tokens, leftmost-longest.
type matcher struct {
	byFirst [256][]*AddedToken // candidates by first byte, longest first
	any     bool
}

func newMatcher(tokens []*AddedToken) *matcher {
	m := &matcher{}
	for _, t := range tokens {
		if t.Content == "" {
			continue
		}
		c := t.Content[0]
		m.byFirst[c] = append(m.byFirst[c], t)
		m.any = true
	}
	for i := range m.byFirst {
		l := m.byFirst[i]
		sort.SliceStable(l, func(a, b int) bool { return len(l[a].Content) > len(l[b].Content) })
	}
	return m
}

// split calls text for the stretches between matches and token for matches.
func (m *matcher) split(s string, text func(string), token func(*AddedToken)) {
	if !m.any {
		text(s)
		return
	}
	prev := 0 // end of the previous match
	for i := 0; i < len(s); i++ {
		cands := m.byFirst[s[i]]
		if cands == nil {
			continue
		}
		for _, t := range cands {
			if !strings.HasPrefix(s[i:], t.Content) {
				continue
			}
			start, stop := i, i+len(t.Content)
			if t.SingleWord && !singleWordOK(s, start, stop) {
				continue
			}
			if t.LStrip {
				for start > prev {
					r, size := utf8.DecodeLastRuneInString(s[prev:start])
					if !unicode.Is(unicode.White_Space, r) {
						break
					}
					start -= size
				}
			}
			if t.RStrip {
				for stop < len(s) {
					r, size := utf8.DecodeRuneInString(s[stop:])
					if !unicode.Is(unicode.White_Space, r) {
						break
					}
					stop += size
				}
			}
			if start > prev {
				text(s[prev:start])
			}
			token(t)
			prev = stop
			i = stop - 1
			break
		}
	}
	if prev < len(s) {
		text(s[prev:])
	}
}

func isWordChar(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }

func singleWordOK(s string, start, stop int) bool {
	if start > 0 {
		if r, _ := utf8.DecodeLastRuneInString(s[:start]); isWordChar(r) {
			return false
		}
	}
	if stop < len(s) {
		if r, _ := utf8.DecodeRuneInString(s[stop:]); isWordChar(r) {
			return false
		}
	}
	return true
}
