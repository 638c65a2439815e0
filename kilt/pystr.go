package kilt

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The KILT scripts are Python: these helpers reproduce the Python string
// operations they rely on (str.isspace, str.split, str.strip, str.lower and
// str() of a JSON value), so that Go sees the same tokens and ids.

// pyIsSpace reports whether Python's str.isspace holds for r: Go's
// unicode.IsSpace plus the ASCII separators U+001C..U+001F.
func pyIsSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// pyFields is Python's s.split() with no argument.
func pyFields(s string) []string { return strings.FieldsFunc(s, pyIsSpace) }

// pyStrip is Python's s.strip() with no argument.
func pyStrip(s string) string { return strings.TrimFunc(s, pyIsSpace) }

// pyIsCased is Python's notion of a cased character (Lu, Ll, Lt,
// Other_Lowercase, Other_Uppercase).
func pyIsCased(r rune) bool {
	return unicode.IsUpper(r) || unicode.IsLower(r) || unicode.IsTitle(r) ||
		unicode.Is(unicode.Other_Lowercase, r) || unicode.Is(unicode.Other_Uppercase, r)
}

// pyIsCaseIgnorable approximates Unicode's Case_Ignorable property, which
// Python uses for the final-sigma rule: Mn, Me, Cf, Lm, Sk and the word-break
// classes MidLetter, MidNumLet and Single_Quote.
func pyIsCaseIgnorable(r rune) bool {
	switch r {
	case '\'', '.', ':', 0x00B7, 0x0387, 0x055F, 0x05F4, 0x2018, 0x2019, 0x2024, 0x2027,
		0xFE13, 0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A:
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}

// pyLower is Python's str.lower: the full lower-case mapping (U+0130 becomes
// "i" + U+0307) and the final-sigma rule for U+03A3, else unicode.ToLower.
func pyLower(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(s)
	}
	rs := []rune(s)
	var b strings.Builder
	b.Grow(len(s))
	for i, r := range rs {
		switch r {
		case 0x0130:
			b.WriteString("i\u0307")
		case 0x03A3:
			b.WriteRune(finalSigma(rs, i))
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// finalSigma lower-cases the capital sigma at rs[i] as CPython does: ς when a
// cased letter precedes it and none follows (skipping case-ignorables), else σ.
func finalSigma(rs []rune, i int) rune {
	j := i - 1
	for j >= 0 && pyIsCaseIgnorable(rs[j]) {
		j--
	}
	final := j >= 0 && pyIsCased(rs[j])
	if final && i+1 < len(rs) {
		j = i + 1
		for j < len(rs) && pyIsCaseIgnorable(rs[j]) {
			j++
		}
		final = j == len(rs) || !pyIsCased(rs[j])
	}
	if final {
		return 0x03C2
	}
	return 0x03C3
}

// pyStr renders a JSON value decoded with UseNumber as Python's str() renders
// the value json.loads makes of it: strings as they are, integers in decimal,
// floats as repr, true/false/null as True/False/None. Objects and arrays are
// refused: no KILT id or rank key holds one. Go numbers (values set in code)
// render as their JSON form would read back.
func pyStr(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		return pyNumber(string(x))
	case bool:
		if x {
			return "True", nil
		}
		return "False", nil
	case nil:
		return "None", nil
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		// a value set in Go: render what its JSON form would read back as
		b, err := json.Marshal(x)
		if err != nil {
			return "", err
		}
		return pyNumber(string(b))
	default:
		return "", fmt.Errorf("unsupported JSON value %T (want a string or a number)", v)
	}
}

// pyNumber renders a JSON number literal as Python's str(json.loads(lit)).
func pyNumber(lit string) (string, error) {
	if !strings.ContainsAny(lit, ".eE") { // a Python int: the literal itself
		if lit == "-0" {
			return "0", nil
		}
		return lit, nil
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil && !math.IsInf(f, 0) {
		return "", fmt.Errorf("bad number %q: %w", lit, err)
	}
	return pyFloatRepr(f), nil
}

// pyFloatRepr is Python's repr of a float: the shortest round-tripping digits,
// positional when the decimal exponent is in [-4, 16), else scientific.
func pyFloatRepr(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±XX
	sign := ""
	if e[0] == '-' {
		sign, e = "-", e[1:]
	}
	mant, expStr, _ := strings.Cut(e, "e")
	exp, _ := strconv.Atoi(expStr)
	digits := strings.Replace(mant, ".", "", 1)
	if exp >= -4 && exp < 16 {
		var s string
		if exp < 0 {
			s = "0." + strings.Repeat("0", -exp-1) + digits
		} else if len(digits) <= exp+1 {
			s = digits + strings.Repeat("0", exp+1-len(digits)) + ".0"
		} else {
			s = digits[:exp+1] + "." + digits[exp+1:]
		}
		return sign + s
	}
	m := digits[:1]
	if len(digits) > 1 {
		m += "." + digits[1:]
	}
	es := "+"
	if exp < 0 {
		es, exp = "-", -exp
	}
	return fmt.Sprintf("%s%se%s%02d", sign, m, es, exp)
}
