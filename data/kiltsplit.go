package data

// Splitting a KILT knowledge source into passages, as IBM's reference
// implementation of Re2G does (kgi-slot-filling, branch re2g,
// corpus/kilt_passage_corpus.py), so that passage ids, and therefore
// positives computed from KILT provenance, agree with the reference.
//
// Every page is split along paragraph boundaries into passages of
// MinWords..MaxWords words, where a paragraph is cleaned first ("::::", as in
// "Section::::History." and "BULLET::::- item", becomes ": ", runs of white
// space become one space, the ends are trimmed) and its words are the pieces
// between single spaces. From a start paragraph s:
//
//  1. paragraphs s, s+1, ... are taken until they hold MaxWords words or the
//     page ends; the last one is given back if the passage then holds more
//     than MaxWords and still holds MinWords without it;
//  2. when this reaches the end of the page, earlier paragraphs are added in
//     front until the passage holds MinWords (or the page starts);
//  3. a passage of MinWords..MaxWords words (or a whole page that is shorter)
//     is written whole, id "wid::[first,last]"; a longer one is cut to
//     MaxWords words: at its end when it still starts at s, id
//     "wid::[first,last)" (only the beginning of paragraph last is kept, and
//     the next passage starts again at paragraph last), otherwise at its start
//     (step 2 went back), id "wid::(first,last]" (only the end of paragraph
//     first is kept);
//  4. the next passage starts at the first paragraph not yet written whole
//     (at least s+1).
//
// A single paragraph longer than MaxWords thus gives one passage of its first
// MaxWords words, id "wid::[i,i)", and the rest of it is in no passage; the
// last passages of a page may overlap the ones before. One quirk is kept for
// the sake of identical ids: a paragraph that is empty after cleaning counts
// as one (empty) word, as Python's "".split(" ") == [""] makes it.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// KILTPage is one page of a KILT knowledge source (kilt_knowledgesource.json):
// text[i] is paragraph i (in KILT's Wikipedia, paragraph 0 is the title).
type KILTPage struct {
	WikipediaID string   `json:"wikipedia_id"`
	Title       string   `json:"wikipedia_title"`
	Text        []string `json:"text"`
}

// SplitPassage is one passage of a split knowledge source, written as IBM's
// reference writes them: {"pid", "title", "text"}. LoadKILTPassages reads
// such lines, the page being the part of pid before "::".
type SplitPassage struct {
	PID   string `json:"pid"`
	Title string `json:"title"`
	Text  string `json:"text"`
}

// SplitOptions bounds the passage length in words.
type SplitOptions struct {
	MinWords, MaxWords int
}

// DefaultSplitOptions are the reference's bounds: 50..100 words.
func DefaultSplitOptions() SplitOptions { return SplitOptions{MinWords: 50, MaxWords: 100} }

func (o SplitOptions) check() error {
	if o.MinWords < 1 || o.MaxWords < o.MinWords {
		return fmt.Errorf("kilt split: want 1 <= min words (%d) <= max words (%d)", o.MinWords, o.MaxWords)
	}
	return nil
}

// SplitStats counts what a split saw and did.
type SplitStats struct {
	Pages          int // pages read
	EmptyPages     int // pages without paragraphs (no passage)
	Paragraphs     int
	LongParagraphs int // paragraphs of more than MaxWords words
	ShortPages     int // pages of fewer than MinWords words (one short passage)
	Passages       int
	CutEnd         int // passages "[first,last)"
	CutStart       int // passages "(first,last]"
}

// PassageRange is a passage id of a split page parsed:
// "Page::[First,Last]", with CutFirst for "(" (only the end of paragraph
// First is in the passage) and CutLast for ")" (only the beginning of
// paragraph Last).
type PassageRange struct {
	Page              string
	First, Last       int
	CutFirst, CutLast bool
}

// String formats the range as a passage id.
func (r PassageRange) String() string {
	open, close := "[", "]"
	if r.CutFirst {
		open = "("
	}
	if r.CutLast {
		close = ")"
	}
	return r.Page + "::" + open + strconv.Itoa(r.First) + "," + strconv.Itoa(r.Last) + close
}

// ParsePassageID parses a passage id "page::[a,b]", "page::[a,b)" or
// "page::(a,b]" (a, b paragraph indices, 0 <= a <= b < 2^29; "(a,b)" is
// accepted too). The page is everything before the last "::" (the reference splits at
// the first one; they differ only for page ids that contain "::", which
// Wikipedia ids do not). ok is false for any other id.
func ParsePassageID(id string) (r PassageRange, ok bool) {
	i := strings.LastIndex(id, "::")
	if i <= 0 {
		return r, false
	}
	rest := id[i+2:]
	if len(rest) < 5 {
		return r, false
	}
	open, close := rest[0], rest[len(rest)-1]
	if (open != '[' && open != '(') || (close != ']' && close != ')') {
		return r, false
	}
	a, b, found := strings.Cut(rest[1:len(rest)-1], ",")
	if !found {
		return r, false
	}
	first, err1 := parseIndex(a)
	last, err2 := parseIndex(b)
	if err1 != nil || err2 != nil || last < first {
		return r, false
	}
	return PassageRange{Page: id[:i], First: first, Last: last, CutFirst: open == '(', CutLast: close == ')'}, true
}

// parseIndex parses a paragraph index: decimal digits only, below 2^29.
func parseIndex(s string) (int, error) {
	if s == "" || len(s) > 9 || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("not an index: %q", s)
	}
	n, err := strconv.Atoi(s)
	if err == nil && n >= 1<<29 {
		return 0, fmt.Errorf("index %d too large", n)
	}
	return n, err
}

// PassagePage is the page of a passage id "page::[a,b]" (any of the range
// forms), or "" for other ids.
func PassagePage(id string) string {
	r, ok := ParsePassageID(id)
	if !ok {
		return ""
	}
	return r.Page
}

// pyIsSpace is Python's str.isspace, which is also what \s matches in a
// Python regular expression on str: Go's unicode.IsSpace plus U+001C..U+001F.
func pyIsSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// CleanKILTParagraph is the reference's clean_text: "::::" becomes ": ",
// runs of white space become one space, and the ends are trimmed.
func CleanKILTParagraph(p string) string {
	p = strings.ReplaceAll(p, "::::", ": ")
	b := make([]byte, 0, len(p))
	space := false
	for i := 0; i < len(p); {
		c := p[i]
		if c < utf8.RuneSelf {
			i++
			if c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f) {
				space = true
				continue
			}
			if space && len(b) > 0 {
				b = append(b, ' ')
			}
			space = false
			b = append(b, c)
			continue
		}
		r, n := utf8.DecodeRuneInString(p[i:])
		if pyIsSpace(r) {
			space = true
		} else {
			if space && len(b) > 0 {
				b = append(b, ' ')
			}
			space = false
			b = append(b, p[i:i+n]...)
		}
		i += n
	}
	return string(b)
}

// SplitKILTPage splits one page into passages (see the comment at the top of
// this file) and calls emit with each, in order. st, if not nil, is updated.
func SplitKILTPage(p KILTPage, opt SplitOptions, st *SplitStats, emit func(SplitPassage) error) error {
	if err := opt.check(); err != nil {
		return err
	}
	if st == nil {
		st = &SplitStats{}
	}
	n := len(p.Text)
	st.Pages++
	st.Paragraphs += n
	if n == 0 {
		st.EmptyPages++
		return nil
	}
	words := make([][]string, n)
	cum := make([]int, n+1) // cum[i] = words in paragraphs [0, i)
	for i, t := range p.Text {
		words[i] = strings.Split(CleanKILTParagraph(t), " ")
		cum[i+1] = cum[i] + len(words[i])
		if len(words[i]) > opt.MaxWords {
			st.LongParagraphs++
		}
	}
	if cum[n] < opt.MinWords {
		st.ShortPages++
	}
	sum := func(a, b int) int { // words in paragraphs [a, b)
		if b <= a {
			return 0
		}
		return cum[b] - cum[a]
	}
	for start := 0; start < n; {
		orig := start
		end := start + 1
		for end < n && sum(start, end) < opt.MaxWords {
			end++
		}
		if sum(start, end) > opt.MaxWords && sum(start, end-1) >= opt.MinWords {
			end--
		}
		if end == n {
			for start > 0 && sum(start, end) < opt.MinWords {
				start--
			}
		}
		fullEnd := end
		ws := make([]string, 0, sum(start, end))
		for _, w := range words[start:end] {
			ws = append(ws, w...)
		}
		r := PassageRange{Page: p.WikipediaID, First: start, Last: end - 1}
		if len(ws) > opt.MaxWords {
			if start == orig {
				ws = ws[:opt.MaxWords]
				r.CutLast = true
				fullEnd = end - 1
				st.CutEnd++
			} else {
				ws = ws[len(ws)-opt.MaxWords:]
				r.CutFirst = true
				st.CutStart++
			}
		}
		if err := emit(SplitPassage{PID: r.String(), Title: p.Title, Text: strings.Join(ws, " ")}); err != nil {
			return err
		}
		st.Passages++
		start = max(orig+1, fullEnd)
	}
	return nil
}

// SplitKILTSource streams a KILT knowledge source (one page a line:
// {"wikipedia_id" or "_id", "wikipedia_title", "text": [paragraphs]}) from r
// and calls emit with every passage of every page, in order; name labels
// messages. Pages that cannot be read (bad JSON, no id, an id with white
// space, text that is not a list of strings) are skipped into rep, or are an
// error when rep is nil; page is called after each page read, if not nil.
func SplitKILTSource(r io.Reader, name string, opt SplitOptions, rep *Report, page func(st *SplitStats), emit func(SplitPassage) error) (SplitStats, error) {
	var st SplitStats
	if err := opt.check(); err != nil {
		return st, err
	}
	err := eachLine(r, name, func(line []byte, n int) error {
		if len(bytes.TrimSpace(line)) == 0 {
			return nil
		}
		var rec struct {
			UID    *flexString `json:"_id"`
			WikiID *flexString `json:"wikipedia_id"`
			Title  string      `json:"wikipedia_title"`
			Text   []string    `json:"text"`
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			return rep.skip(name, n, "bad page: %v", err)
		}
		pg := KILTPage{Title: rec.Title, Text: rec.Text}
		if rec.WikiID != nil {
			pg.WikipediaID = string(*rec.WikiID)
		} else if rec.UID != nil {
			pg.WikipediaID = string(*rec.UID)
		}
		if pg.WikipediaID == "" {
			return rep.skip(name, n, "page without wikipedia_id or _id")
		}
		if why := validID(pg.WikipediaID); why != "" {
			return rep.skip(name, n, "page %s", why)
		}
		if err := SplitKILTPage(pg, opt, &st, emit); err != nil {
			return err
		}
		if page != nil {
			page(&st)
		}
		return nil
	})
	return st, err
}

// LoadPassageIDs reads the passage ids of a corpus and the page of each,
// without the texts, for corpora too large to load whole: a JSON-lines file
// (optionally gzipped) of passages with "pid", "id" or "_id" and, optionally,
// "wikipedia_id" (else the page is the one a "wid::[a,b]" id names, else "":
// none), or of KILT pages ("text" a list), each non-empty paragraph i giving
// the passage "<wikipedia_id>_<i>" as LoadKILTPassages names it. Lines that
// cannot be read, ids with white space and duplicate ids are skipped into
// rep, or are an error when rep is nil.
func LoadPassageIDs(path string, rep *Report) (ids, pages []string, err error) {
	f, err := Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("passage ids: %w", err)
	}
	defer f.Close()
	seen := map[string]struct{}{}
	add := func(n int, id, page string) error {
		if why := validID(id); why != "" {
			return rep.skip(path, n, "%s", why)
		}
		if _, dup := seen[id]; dup {
			return rep.skip(path, n, "duplicate id %s", id)
		}
		seen[id] = struct{}{}
		ids = append(ids, id)
		pages = append(pages, page)
		return nil
	}
	err = eachLine(f, path, func(line []byte, n int) error {
		if len(bytes.TrimSpace(line)) == 0 {
			return nil
		}
		var rec struct {
			PID    *flexString     `json:"pid"`
			ID     *flexString     `json:"id"`
			UID    *flexString     `json:"_id"`
			WikiID *flexString     `json:"wikipedia_id"`
			Text   json.RawMessage `json:"text"`
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			return rep.skip(path, n, "bad JSON: %v", err)
		}
		wid := ""
		if rec.WikiID != nil {
			wid = string(*rec.WikiID)
		}
		if t := bytes.TrimSpace(rec.Text); len(t) > 0 && t[0] == '[' {
			var paras []string
			if err := json.Unmarshal(t, &paras); err != nil {
				return rep.skip(path, n, "text: %v", err)
			}
			if wid == "" && rec.UID != nil {
				wid = string(*rec.UID)
			}
			if wid == "" {
				return rep.skip(path, n, "page without wikipedia_id or _id")
			}
			for i, p := range paras {
				if strings.TrimSpace(p) != "" {
					if err := add(n, wid+"_"+strconv.Itoa(i), wid); err != nil {
						return err
					}
				}
			}
			return nil
		}
		var id *flexString
		for _, c := range []*flexString{rec.PID, rec.ID, rec.UID} {
			if c != nil {
				id = c
				break
			}
		}
		if id == nil {
			return rep.skip(path, n, "no pid, id or _id")
		}
		if wid == "" {
			wid = PassagePage(string(*id))
		}
		return add(n, string(*id), wid)
	})
	return ids, pages, err
}
