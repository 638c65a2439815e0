package tokenizer

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// bertNormalizer is HF's BertNormalizer: control-character removal and
// whitespace folding, spaces around CJK ideographs, accent stripping (NFD then
// dropping non-spacing marks) and lower-casing, in that order.
type bertNormalizer struct {
	cleanText, chinese, stripAccents, lowercase bool
}

func (n *bertNormalizer) normalize(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return n.normalizeASCII(s)
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for _, r := range s {
		if n.cleanText {
			if r == 0 || r == utf8.RuneError || isBertControl(r) {
				continue
			}
			if isBertWhitespace(r) {
				b.WriteByte(' ')
				continue
			}
		}
		if n.chinese && isChineseChar(r) {
			b.WriteByte(' ')
			b.WriteRune(r)
			b.WriteByte(' ')
			continue
		}
		b.WriteRune(r)
	}
	out := b.String()
	if n.stripAccents {
		out = stripAccents(out)
	}
	if n.lowercase {
		out = lowerRunes(out)
	}
	return out
}

// normalizeASCII is the same transformation for pure-ASCII input.
func (n *bertNormalizer) normalizeASCII(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (n.cleanText && (c < 0x20 || c == 0x7f) && c != ' ') || (n.lowercase && c >= 'A' && c <= 'Z') {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if n.cleanText {
			switch {
			case c == '\t' || c == '\n' || c == '\r':
				c = ' '
			case c < 0x20 || c == 0x7f: // other controls, \v and \f included
				continue
			}
		}
		if n.lowercase && c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return string(b)
}

func stripAccents(s string) string {
	if strings.ContainsRune(s, noDecompose) {
		parts := strings.Split(s, string(noDecompose))
		for i, p := range parts {
			parts[i] = dropMn(norm.NFD.String(p))
		}
		return strings.Join(parts, string(noDecompose))
	}
	return dropMn(norm.NFD.String(s))
}

// noDecompose (DIVES AKURU VOWEL SIGN O, Unicode 13) has a canonical
// decomposition in Go's tables but not in the normalization tables of the
// reference, the only such code point (see TestCodepointsBertNormalizer).
const noDecompose rune = 0x11938

// lowerRunes lower-cases rune by rune as Rust's char::to_lowercase does (no
// context-dependent final sigma; U+0130 becomes "i̇").
func lowerRunes(s string) string {
	b := make([]byte, 0, len(s)+4)
	for _, r := range s {
		b = lowerRune(b, r)
	}
	return string(b)
}

// isBertWhitespace: folded to a space by clean_text (tab, newline, carriage
// return and White_Space characters that are not controls).
func isBertWhitespace(r rune) bool { return bertSpace.contains(r) }

// isBertControl: removed by clean_text (HF's is_control: Cc, Cf, Co in the
// reference's Unicode tables, except tab, newline and carriage return).
func isBertControl(r rune) bool { return bertControl.contains(r) }

func isChineseChar(r rune) bool {
	return (r >= 0x4E00 && r <= 0x9FFF) || (r >= 0x3400 && r <= 0x4DBF) || (r >= 0x20000 && r <= 0x2A6DF) ||
		(r >= 0x2A700 && r <= 0x2B73F) || (r >= 0x2B740 && r <= 0x2B81F) || (r >= 0x2B920 && r <= 0x2CEAF) ||
		(r >= 0xF900 && r <= 0xFAFF) || (r >= 0x2F800 && r <= 0x2FA1F)
}

func isBertPunct(r rune) bool {
	if r < utf8.RuneSelf {
		return (r >= 33 && r <= 47) || (r >= 58 && r <= 64) || (r >= 91 && r <= 96) || (r >= 123 && r <= 126)
	}
	return bertPunct.contains(r)
}

// bertPreTokenizer splits on whitespace (dropped) and isolates each
// punctuation character.
type bertPreTokenizer struct{}

func (bertPreTokenizer) split(s string, emit func(string)) {
	start := -1
	for i := 0; i < len(s); {
		c := s[i]
		var r rune
		size := 1
		if c < utf8.RuneSelf {
			r = rune(c)
		} else {
			r, size = utf8.DecodeRuneInString(s[i:])
		}
		var ws, punct bool
		if r < utf8.RuneSelf {
			ws = c == ' ' || (c >= '\t' && c <= '\r')
			punct = !ws && isBertPunct(r)
		} else {
			ws = bertSplitWS.contains(r)
			punct = !ws && isBertPunct(r)
		}
		if ws || punct {
			if start >= 0 {
				emit(s[start:i])
				start = -1
			}
			if punct {
				emit(s[i : i+size])
			}
		} else if start < 0 {
			start = i
		}
		i += size
	}
	if start >= 0 {
		emit(s[start:])
	}
}

// wordPiece is greedy longest-match-first subword tokenization.
type wordPiece struct {
	vocab    map[string]int // whole vocabulary
	cont     map[string]int // continuation pieces, keyed without the prefix
	prefix   string
	unk      int
	maxChars int
	idToTok  []string
}

func newWordPiece(vocab map[string]int, unk, prefix string, maxChars int) (*wordPiece, error) {
	w := &wordPiece{vocab: vocab, cont: map[string]int{}, prefix: prefix, maxChars: maxChars}
	id, ok := vocab[unk]
	if !ok {
		return nil, errorf("wordpiece: unknown token %q not in vocabulary", unk)
	}
	w.unk = id
	for tok, id := range vocab {
		if prefix != "" && strings.HasPrefix(tok, prefix) {
			w.cont[tok[len(prefix):]] = id
		}
	}
	w.idToTok = invert(vocab)
	return w, nil
}

func (w *wordPiece) tokenize(word string, out []int) []int {
	if utf8.RuneCountInString(word) > w.maxChars {
		return append(out, w.unk)
	}
	if id, ok := w.vocab[word]; ok {
		return append(out, id)
	}
	n0 := len(out)
	start := 0
	for start < len(word) {
		end := len(word)
		found := -1
		for end > start {
			var id int
			var ok bool
			if start == 0 {
				id, ok = w.vocab[word[start:end]]
			} else {
				id, ok = w.cont[word[start:end]]
			}
			if ok {
				found = id
				break
			}
			// step back one rune
			end--
			for end > start && !utf8.RuneStart(word[end]) {
				end--
			}
		}
		if found < 0 {
			return append(out[:n0], w.unk)
		}
		out = append(out, found)
		start = end
	}
	return out
}

func (w *wordPiece) idToToken(id int) (string, bool) {
	if id < 0 || id >= len(w.idToTok) || w.idToTok[id] == "" {
		return "", false
	}
	return w.idToTok[id], true
}

func (w *wordPiece) tokenToID(t string) (int, bool) { id, ok := w.vocab[t]; return id, ok }
func (w *wordPiece) size() int                      { return len(w.vocab) }

// wordPieceDecoder joins pieces, gluing "##" continuations and, with cleanup,
// removing the space before some punctuation and contractions.
type wordPieceDecoder struct {
	prefix  string
	cleanup bool
}

func (d wordPieceDecoder) decode(tokens []string) string {
	var b strings.Builder
	for i, t := range tokens {
		if i != 0 {
			if strings.HasPrefix(t, d.prefix) {
				t = strings.Replace(t, d.prefix, "", 1)
			} else {
				t = " " + t
			}
		}
		if d.cleanup {
			t = cleanupDecoded(t)
		}
		b.WriteString(t)
	}
	return b.String()
}

var cleanupReplacer = []([2]string){
	{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
	{" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
}

func cleanupDecoded(s string) string {
	for _, r := range cleanupReplacer {
		if strings.Contains(s, r[0]) {
			s = strings.ReplaceAll(s, r[0], r[1])
		}
	}
	return s
}

func invert(vocab map[string]int) []string {
	max := -1
	for _, id := range vocab {
		if id > max {
			max = id
		}
	}
	out := make([]string, max+1)
	for t, id := range vocab {
		if id >= 0 {
			out[id] = t
		}
	}
	return out
}

func isMn(r rune) bool { return bertMn.contains(r) }

func appendRune(b []byte, r rune) []byte { return utf8.AppendRune(b, r) }
