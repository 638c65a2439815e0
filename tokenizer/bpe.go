package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// byteToChar is GPT-2's reversible map from bytes to printable characters.
var byteToChar, charToByte = func() ([256]string, map[rune]byte) {
	var enc [256]string
	dec := map[rune]byte{}
	n := 0
	for b := 0; b < 256; b++ {
		r := rune(b)
		if !((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) {
			r = rune(256 + n)
			n++
		}
		enc[b] = string(r)
		dec[r] = byte(b)
	}
	return enc, dec
}()

// byteLevelPreTokenizer splits with GPT-2's pattern
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// (hand-written, Go's regexp has no look-ahead) and maps each piece's bytes to
// GPT-2's byte characters.
type byteLevelPreTokenizer struct {
	addPrefixSpace bool
	useRegex       bool
}

const (
	clsOther = iota
	clsLetter
	clsNumber
	clsSpace
)

func runeClass(r rune) int {
	if r < utf8.RuneSelf {
		switch {
		case r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z':
			return clsLetter
		case r >= '0' && r <= '9':
			return clsNumber
		case r == ' ' || r >= '\t' && r <= '\r':
			return clsSpace
		}
		return clsOther
	}
	switch {
	case gpt2Letter.contains(r):
		return clsLetter
	case gpt2Number.contains(r):
		return clsNumber
	case gpt2Space.contains(r):
		return clsSpace
	}
	return clsOther
}

func decodeAt(s string, i int) (rune, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

// splitGPT2 calls emit with the pattern's matches, which cover s.
func splitGPT2(s string, emit func(string)) {
	i := 0
	for i < len(s) {
		start := i
		c := s[i]
		if c == '\'' && i+1 < len(s) {
			if n := contraction(s[i+1:]); n > 0 {
				emit(s[i : i+1+n])
				i += 1 + n
				continue
			}
		}
		j := i
		if c == ' ' && i+1 < len(s) {
			j = i + 1
		}
		r, size := decodeAt(s, j)
		cls := runeClass(r)
		if j > i && cls == clsSpace {
			// " " followed by whitespace: no optional-space alternative applies.
			j = i
			r, size = decodeAt(s, j)
			cls = clsSpace
		}
		switch cls {
		case clsLetter, clsNumber, clsOther:
			if j > i || true {
				k := j + size
				for k < len(s) {
					r2, s2 := decodeAt(s, k)
					if runeClass(r2) != cls {
						break
					}
					k += s2
				}
				emit(s[start:k])
				i = k
				continue
			}
		}
		// whitespace run starting at i
		k := i
		last := i
		for k < len(s) {
			r2, s2 := decodeAt(s, k)
			if runeClass(r2) != clsSpace {
				break
			}
			last = k
			k += s2
		}
		if k < len(s) && last > i {
			// \s+(?!\S): leave the last whitespace character for the next match
			emit(s[i:last])
			i = last
			continue
		}
		emit(s[i:k])
		i = k
	}
}

func contraction(s string) int {
	if len(s) >= 2 {
		switch s[:2] {
		case "re", "ve", "ll":
			return 2
		}
	}
	switch s[0] {
	case 's', 't', 'm', 'd':
		return 1
	}
	return 0
}

func (p byteLevelPreTokenizer) split(s string, emit func(string)) {
	if p.addPrefixSpace && s != "" && s[0] != ' ' {
		s = " " + s
	}
	if !p.useRegex {
		emit(s)
		return
	}
	splitGPT2(s, emit)
}

// byteMapped returns s with every byte replaced by its GPT-2 byte character.
func byteMapped(s string, buf []byte) []byte {
	buf = buf[:0]
	for i := 0; i < len(s); i++ {
		buf = append(buf, byteToChar[s[i]]...)
	}
	return buf
}

// bpe is byte-pair encoding with merges applied by rank.
type bpe struct {
	vocab   map[string]int
	idToTok []string
	merges  map[uint64]merge // (left id, right id) -> merge
	unk     int              // -1 when none
	byteIDs [256]int         // id of each byte character, -1 if absent
}

type merge struct{ rank, id int32 }

func newBPE(vocab map[string]int, merges [][2]string, unk string) (*bpe, error) {
	m := &bpe{vocab: vocab, idToTok: invert(vocab), merges: make(map[uint64]merge, len(merges)), unk: -1}
	if unk != "" {
		id, ok := vocab[unk]
		if !ok {
			return nil, errorf("bpe: unknown token %q not in vocabulary", unk)
		}
		m.unk = id
	}
	for rank, mg := range merges {
		a, okA := vocab[mg[0]]
		b, okB := vocab[mg[1]]
		c, okC := vocab[mg[0]+mg[1]]
		if !okA || !okB || !okC {
			return nil, errorf("bpe: merge %d %q %q uses tokens missing from the vocabulary", rank+1, mg[0], mg[1])
		}
		key := uint64(a)<<32 | uint64(uint32(b))
		if _, dup := m.merges[key]; !dup {
			m.merges[key] = merge{int32(rank), int32(c)}
		}
	}
	for b := 0; b < 256; b++ {
		m.byteIDs[b] = -1
		if id, ok := vocab[byteToChar[b]]; ok {
			m.byteIDs[b] = id
		}
	}
	return m, nil
}

// tokenize encodes one pre-token (already byte-mapped).
func (m *bpe) tokenize(word string, out []int) []int {
	if id, ok := m.vocab[word]; ok {
		return append(out, id)
	}
	var stack [64]int
	syms := stack[:0]
	for _, r := range word {
		id, ok := m.vocab[string(r)]
		if !ok {
			if m.unk >= 0 {
				id = m.unk
			} else {
				continue
			}
		}
		syms = append(syms, id)
	}
	if len(syms) > 48 {
		return append(out, m.mergeHeap(syms)...)
	}
	for len(syms) > 1 {
		best, bestRank, bestID := -1, int32(1<<31-1), int32(0)
		for i := 0; i+1 < len(syms); i++ {
			if mg, ok := m.merges[uint64(syms[i])<<32|uint64(uint32(syms[i+1]))]; ok && mg.rank < bestRank {
				best, bestRank, bestID = i, mg.rank, mg.id
			}
		}
		if best < 0 {
			break
		}
		syms[best] = int(bestID)
		syms = append(syms[:best+1], syms[best+2:]...)
	}
	return append(out, syms...)
}

// mergeHeap applies the merges in rank order (leftmost first among equal
// ranks) with a heap over a linked list: O(n log n) for long words.
func (m *bpe) mergeHeap(syms []int) []int {
	n := len(syms)
	prev := make([]int, n)
	next := make([]int, n)
	for i := range syms {
		prev[i], next[i] = i-1, i+1
	}
	next[n-1] = -1
	h := &mergeHeap{}
	push := func(i int) {
		j := next[i]
		if i < 0 || j < 0 {
			return
		}
		if mg, ok := m.merges[uint64(syms[i])<<32|uint64(uint32(syms[j]))]; ok {
			h.push(heapItem{rank: mg.rank, pos: int32(i), left: int32(syms[i]), right: int32(syms[j]), id: mg.id})
		}
	}
	for i := 0; i+1 < n; i++ {
		push(i)
	}
	alive := make([]bool, n)
	for i := range alive {
		alive[i] = true
	}
	for h.len() > 0 {
		it := h.pop()
		i := int(it.pos)
		j := next[i]
		if !alive[i] || j < 0 || int32(syms[i]) != it.left || int32(syms[j]) != it.right {
			continue
		}
		syms[i] = int(it.id)
		alive[j] = false
		next[i] = next[j]
		if next[j] >= 0 {
			prev[next[j]] = i
		}
		if prev[i] >= 0 {
			push(prev[i])
		}
		push(i)
	}
	out := syms[:0]
	for i := 0; i >= 0 && i < n; i = next[i] {
		out = append(out, syms[i])
	}
	return out
}

type heapItem struct {
	rank, pos, left, right, id int32
}

// mergeHeap is a binary min-heap ordered by (rank, pos).
type mergeHeap struct{ items []heapItem }

func (h *mergeHeap) len() int { return len(h.items) }

func (h *mergeHeap) less(a, b int) bool {
	x, y := h.items[a], h.items[b]
	return x.rank < y.rank || (x.rank == y.rank && x.pos < y.pos)
}

func (h *mergeHeap) push(it heapItem) {
	h.items = append(h.items, it)
	i := len(h.items) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		h.items[i], h.items[p] = h.items[p], h.items[i]
		i = p
	}
}

func (h *mergeHeap) pop() heapItem {
	top := h.items[0]
	last := len(h.items) - 1
	h.items[0] = h.items[last]
	h.items = h.items[:last]
	i := 0
	for {
		l, r, small := 2*i+1, 2*i+2, i
		if l < last && h.less(l, small) {
			small = l
		}
		if r < last && h.less(r, small) {
			small = r
		}
		if small == i {
			break
		}
		h.items[i], h.items[small] = h.items[small], h.items[i]
		i = small
	}
	return top
}

func (m *bpe) idToToken(id int) (string, bool) {
	if id < 0 || id >= len(m.idToTok) || m.idToTok[id] == "" {
		return "", false
	}
	return m.idToTok[id], true
}

func (m *bpe) tokenToID(t string) (int, bool) { id, ok := m.vocab[t]; return id, ok }
func (m *bpe) size() int                      { return len(m.vocab) }

// byteLevelDecoder maps GPT-2 byte characters back to bytes and decodes them
// as UTF-8, replacing invalid sequences as Rust's from_utf8_lossy does.
type byteLevelDecoder struct{}

func (byteLevelDecoder) decode(tokens []string) string {
	var buf []byte
	for _, t := range tokens {
		start := len(buf)
		ok := true
		for _, r := range t {
			b, found := charToByte[r]
			if !found {
				ok = false
				break
			}
			buf = append(buf, b)
		}
		if !ok {
			buf = append(buf[:start], t...)
		}
	}
	return lossyUTF8(buf)
}

// lossyUTF8 replaces each maximal invalid subpart with U+FFFD.
func lossyUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || size > 1 {
			sb.Write(b[i : i+size])
			i += size
			continue
		}
		sb.WriteRune(utf8.RuneError)
		i += invalidPrefix(b[i:])
	}
	return sb.String()
}

// invalidPrefix is the length of the maximal prefix of b that could start a
// valid UTF-8 sequence (at least 1).
func invalidPrefix(b []byte) int {
	c := b[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c >= 0xE1 && c <= 0xEC || c == 0xEE || c == 0xEF:
		need = 2
	case c == 0xED:
		need, hi = 2, 0x9F
	case c == 0xF0:
		need, lo = 3, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	case c == 0xF4:
		need, hi = 3, 0x8F
	default:
		return 1
	}
	n := 1
	for k := 0; k < need && n < len(b); k++ {
		x := b[n]
		if k == 0 {
			if x < lo || x > hi {
				return n
			}
		} else if x < 0x80 || x > 0xBF {
			return n
		}
		n++
	}
	return n
}
