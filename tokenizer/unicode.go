package tokenizer

import (
	"sort"
	"unicode"
)

//go:generate sh -c "cd .. && go run ./tokenizer/internal/unigen"

// ranges is a sorted list of inclusive code point ranges.
type ranges [][2]rune

func (rs ranges) contains(r rune) bool {
	i := sort.Search(len(rs), func(i int) bool { return rs[i][1] >= r })
	return i < len(rs) && rs[i][0] <= r
}

// lowerRune appends the lower case of r as Rust's char::to_lowercase gives it.
func lowerRune(b []byte, r rune) []byte {
	if r < 0x80 {
		if r >= 'A' && r <= 'Z' {
			r += 'a' - 'A'
		}
		return append(b, byte(r))
	}
	if r == 0x130 {
		return append(b, "i\u0307"...)
	}
	if s, ok := lowerExceptions[r]; ok {
		return append(b, s...)
	}
	return appendRune(b, unicode.ToLower(r))
}
