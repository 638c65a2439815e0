package kilt

// Positive passages from KILT provenance, as IBM's reference implementation
// of Re2G finds them (kgi-slot-filling, branch re2g, dpr/kilt2positive_pids.py).
//
// A KILT provenance entry names a page (wikipedia_id) and a paragraph range
// start_paragraph_id..end_paragraph_id (inclusive); the passages of a split
// corpus name a page and the paragraphs they hold. Both are measured in
// half paragraphs, on the page's paragraph axis:
//
//   - provenance a..b covers [a, b+1);
//   - passage "wid::[a,b]" covers [a, b+1);
//   - passage "wid::[a,b)" (the beginning of paragraph b only) covers
//     [a, b+½) when b > a, and [a, a+1) when b == a (a single paragraph cut
//     short: the passage is all there is of it);
//   - passage "wid::(a,b]" (the end of paragraph a only) covers [a+½, b+1);
//   - passage "<wid>_<i>" (one paragraph a passage, as data.LoadKILTPassages
//     makes them from pages) covers [i, i+1);
//   - a passage of a page whose id tells no range covers the whole page.
//
// A cut paragraph thus counts half: a passage that holds only the beginning
// of the evidence paragraph overlaps it by ½, and the passage that starts
// with that paragraph (the split starts the next passage there) by 1.
//
// A passage overlaps a provenance entry when their intervals intersect; the
// overlap is the share of the provenance covered, |P ∩ E| / |E|. An
// example's positives are the passages whose overlap with one of its
// provenance entries (of all its outputs) is at least
// min(MinOverlap, the best overlap any passage reaches): with the reference's
// 0.75, the passages that hold most of the evidence, or failing any, the ones
// that hold the most of it. MinOverlap 0 makes every overlapping passage a
// positive.
//
// Two cases the reference does not have: provenance that names a passage of
// the corpus (passage-level provenance, as re2g data squad-kilt writes by
// default) makes that passage the positive, overlap 1, whatever its
// paragraph range; provenance without paragraph ids makes every passage of
// the page a positive, overlap 1. A negative or inverted paragraph range is
// an error (the reference divides by zero or finds nothing). A page absent
// from the corpus gives no positive: callers count the examples left without.

import (
	"encoding/json"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/re2g/re2g/data"
)

// maxParagraph bounds paragraph indices, so that half-paragraph positions
// fit in an int32.
const maxParagraph = 1 << 29

// DefaultMinOverlap is the reference's min_overlap.
const DefaultMinOverlap = 0.75

// Evidence is a provenance entry as positives need it.
type Evidence struct {
	Page string // wikipedia_id: a page, or a passage for passage-level provenance
	// Start and End are the paragraph range, both ends included, when
	// Paragraphs is set; without it the evidence is the whole page.
	Start, End int
	Paragraphs bool
}

func (e Evidence) check() error {
	if e.Page == "" {
		return fmt.Errorf("provenance without wikipedia_id")
	}
	if e.Paragraphs && (e.Start < 0 || e.End < e.Start || e.End >= maxParagraph) {
		return fmt.Errorf("provenance %s: paragraphs %d..%d: want 0 <= start <= end < %d", e.Page, e.Start, e.End, maxParagraph)
	}
	return nil
}

// EvidenceOf reads a provenance entry: "wikipedia_id" (a string or a
// number, as Python's str() renders it) and, if present,
// "start_paragraph_id" and "end_paragraph_id" (integers; both or neither).
func EvidenceOf(p Provenance) (Evidence, error) {
	id, ok, err := p.Value("wikipedia_id")
	if err != nil {
		return Evidence{}, err
	}
	if !ok || id == "" {
		return Evidence{}, fmt.Errorf("provenance without wikipedia_id")
	}
	e := Evidence{Page: id}
	start, hasStart, err := intValue(p, "start_paragraph_id")
	if err != nil {
		return Evidence{}, fmt.Errorf("provenance %s: %w", id, err)
	}
	end, hasEnd, err := intValue(p, "end_paragraph_id")
	if err != nil {
		return Evidence{}, fmt.Errorf("provenance %s: %w", id, err)
	}
	if hasStart != hasEnd {
		return Evidence{}, fmt.Errorf("provenance %s: start_paragraph_id and end_paragraph_id must come together", id)
	}
	if hasStart {
		e.Start, e.End, e.Paragraphs = start, end, true
	}
	return e, e.check()
}

// EvidenceFromData converts the provenance of data.LoadKILTTask. Its
// paragraph ids read 0 when absent, so the evidence always has a paragraph
// range (0..0 for provenance without one): use EvidenceOf on records read
// with Read or ReadFile to tell whole-page provenance apart.
func EvidenceFromData(p data.KILTProvenance) Evidence {
	return Evidence{Page: p.WikipediaID, Start: p.StartParagraph, End: p.EndParagraph, Paragraphs: true}
}

// RecordEvidence is the evidence of every provenance entry of every output
// of a record, in order.
func RecordEvidence(r Record) ([]Evidence, error) {
	var out []Evidence
	for oi, o := range r.Output {
		for pi, p := range o.Provenance {
			e, err := EvidenceOf(p)
			if err != nil {
				return nil, fmt.Errorf("record %s output %d provenance %d: %w", r.ID, oi, pi, err)
			}
			out = append(out, e)
		}
	}
	return out, nil
}

func intValue(p Provenance, key string) (int, bool, error) {
	v, ok := p[key]
	if !ok || v == nil {
		return 0, false, nil
	}
	var f float64
	switch x := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return int(i), true, nil
		}
		var err error
		if f, err = x.Float64(); err != nil {
			return 0, true, fmt.Errorf("%s: %q is not a number", key, x)
		}
	case float64:
		f = x
	case int:
		return x, true, nil
	case int64:
		return int(x), true, nil
	default:
		return 0, true, fmt.Errorf("%s: %v is not a number", key, v)
	}
	if f != math.Trunc(f) || math.Abs(f) > 1<<31 {
		return 0, true, fmt.Errorf("%s: %v is not a paragraph index", key, f)
	}
	return int(f), true, nil
}

// strtab is a list of strings packed into one.
type strtab struct {
	s   string
	off []uint32 // string i is s[off[i]:off[i+1]]
}

func (t *strtab) at(i int) string { return t.s[t.off[i]:t.off[i+1]] }
func (t *strtab) len() int        { return len(t.off) - 1 }

// newStrtab packs n strings; size is their total length.
func newStrtab(n, size int, str func(i int) string) (strtab, error) {
	if uint64(size) > math.MaxUint32 {
		return strtab{}, fmt.Errorf("passage map: more than 4 GiB of ids")
	}
	var b strings.Builder
	b.Grow(size)
	off := make([]uint32, n+1)
	for i := range n {
		b.WriteString(str(i))
		off[i+1] = uint32(b.Len())
	}
	return strtab{s: b.String(), off: off}, nil
}

// strIndex finds strings of a strtab by value: open addressing with linear
// probing, at most 2/3 full, 5 bytes a slot (the string index and 8 bits of
// its hash, so that probing seldom compares strings).
type strIndex struct {
	seed  maphash.Seed
	slots []uint32 // string index + 1; 0: empty
	tags  []uint8  // the hash's top 8 bits
}

// newStrIndex indexes the strings of t; dup is the index of a string that
// appears twice (the second time), or -1.
func newStrIndex(t *strtab) (x strIndex, dup int) {
	n := t.len()
	size := 4
	for size < n+n/2+1 {
		size *= 2
	}
	x = strIndex{seed: maphash.MakeSeed(), slots: make([]uint32, size), tags: make([]uint8, size)}
	mask := uint64(size - 1)
	for i := range n {
		s := t.at(i)
		hash := maphash.String(x.seed, s)
		tag := uint8(hash >> 56)
		h := hash & mask
		for ; x.slots[h] != 0; h = (h + 1) & mask {
			if x.tags[h] == tag && t.at(int(x.slots[h]-1)) == s {
				return x, i
			}
		}
		x.slots[h], x.tags[h] = uint32(i+1), tag
	}
	return x, -1
}

func (x *strIndex) find(t *strtab, s string) (int, bool) {
	if len(x.slots) == 0 {
		return 0, false
	}
	mask := uint64(len(x.slots) - 1)
	hash := maphash.String(x.seed, s)
	tag := uint8(hash >> 56)
	for h := hash & mask; x.slots[h] != 0; h = (h + 1) & mask {
		if k := int(x.slots[h] - 1); x.tags[h] == tag && t.at(k) == s {
			return k, true
		}
	}
	return 0, false
}

// PassageMap finds the passages of a corpus that KILT provenance points to.
// It holds passage ids, pages and paragraph ranges only (no texts), packed:
// the ids' bytes plus about 24 bytes a passage, the page ids' bytes plus
// about 16 bytes a page.
type PassageMap struct {
	// MinOverlap is the share of a provenance entry a passage must cover to
	// be a positive, unless no passage covers that much (see the comment at
	// the top of this file); NewPassageMap sets DefaultMinOverlap.
	MinOverlap float64

	ids     strtab   // passage ids in map order: by page, then by range
	lo, hi  []int32  // half-paragraph interval [lo, hi); lo < 0: no range
	byID    strIndex // passage id -> map position
	pages   strtab   // page ids, in the order the passages first name them
	byPage  strIndex // page id -> page index
	first   []uint32 // the passages of page k are [first[k], first[k+1]); those without a page come last
	noPage  int
	noRange int
}

// NewPassageMap builds the map of a corpus from its passage ids and, if
// pageOf is not nil, the page of each (pageOf returning "" or the id itself:
// none). A passage's page is pageOf's, else the page its id names
// ("wid::[a,b]"); its range comes from its id, "wid::[a,b]" (and the cut
// forms) or "<page>_<i>". A passage without a page is found only by its own
// id. Duplicate ids are an error.
func NewPassageMap(ids []string, pageOf func(string) string) (*PassageMap, error) {
	return newPassageMap(len(ids), func(i int) (string, string) {
		if pageOf == nil {
			return ids[i], ""
		}
		return ids[i], pageOf(ids[i])
	}, func(i int) string { return ids[i] })
}

// NewPassageMapPages is NewPassageMap with the pages given as a list:
// pages[i] is the page of ids[i] ("" or the id itself: none), as
// data.LoadPassageIDs returns them.
func NewPassageMapPages(ids, pages []string) (*PassageMap, error) {
	if len(pages) != len(ids) {
		return nil, fmt.Errorf("passage map: %d ids but %d pages", len(ids), len(pages))
	}
	return newPassageMap(len(ids), func(i int) (string, string) { return ids[i], pages[i] }, func(i int) string { return ids[i] })
}

// NewPassageMapRows is NewPassageMap for a corpus of n passages read by
// position, e.g. from an index's passage store, with no list of every id
// in memory (at 22M passages that list is about a gigabyte; the map keeps
// its own packed copy): at returns the id of passage i and its page (""
// or the id itself: none). It is called more than once for some i; its
// first error is returned.
func NewPassageMapRows(n int, at func(i int) (id, page string, err error)) (*PassageMap, error) {
	var first error
	row := func(i int) (string, string) {
		id, page, err := at(i)
		if err != nil && first == nil {
			first = err
		}
		return id, page
	}
	m, err := newPassageMap(n, row, func(i int) string { id, _ := row(i); return id })
	if first != nil {
		return nil, first
	}
	return m, err
}

// newPassageMap builds the map of n passages: row gives the id and page
// of passage i, id its id alone.
func newPassageMap(n int, row func(i int) (id, page string), idAt func(i int) string) (*PassageMap, error) {
	if n >= math.MaxUint32-1 {
		return nil, fmt.Errorf("passage map: %d passages is too many", n)
	}
	m := &PassageMap{MinOverlap: DefaultMinOverlap}
	const none = math.MaxUint32
	pageIdx := make([]uint32, n) // page index of each passage, none without
	lo := make([]int32, n)
	hi := make([]int32, n)
	pageAt := map[string]uint32{}
	lastPage, lastPageID := uint32(0), "" // passages of a page mostly come together
	var pageIDs []string
	pageBytes, idBytes := 0, 0
	for i := range n {
		id, p := row(i)
		if id == "" {
			return nil, fmt.Errorf("passage map: passage %d has an empty id", i)
		}
		idBytes += len(id)
		if p == id {
			p = ""
		}
		lo[i], hi[i] = -1, -1
		if r, ok := data.ParsePassageID(id); ok {
			if p == "" {
				p = r.Page
			}
			if p == r.Page {
				lo[i], hi[i] = halfRange(r)
			}
		} else if p != "" && len(id) > len(p)+1 && strings.HasPrefix(id, p) && id[len(p)] == '_' {
			if k, err := strconv.Atoi(id[len(p)+1:]); err == nil && k >= 0 && k < maxParagraph && strconv.Itoa(k) == id[len(p)+1:] {
				lo[i], hi[i] = int32(2*k), int32(2*k+2)
			}
		}
		if p == "" {
			pageIdx[i] = none
			m.noPage++
			continue
		}
		if lo[i] < 0 {
			m.noRange++
		}
		k, ok := lastPage, p == lastPageID && i > 0
		if !ok {
			k, ok = pageAt[p]
		}
		if !ok {
			k = uint32(len(pageIDs))
			pageAt[p] = k
			pageIDs = append(pageIDs, p)
			pageBytes += len(p)
		}
		pageIdx[i] = k
		lastPage, lastPageID = k, p
	}
	pageAt = nil
	var err error
	if m.pages, err = newStrtab(len(pageIDs), pageBytes, func(k int) string { return pageIDs[k] }); err != nil {
		return nil, err
	}
	pageIDs = nil
	// Counting sort by page (stable), then by range within a page.
	np := m.pages.len()
	m.first = make([]uint32, np+2)
	for _, k := range pageIdx {
		if k == none {
			k = uint32(np)
		}
		m.first[k+1]++
	}
	for k := 1; k < len(m.first); k++ {
		m.first[k] += m.first[k-1]
	}
	order := make([]uint32, n)
	next := slices.Clone(m.first[:np+1])
	for i, k := range pageIdx {
		if k == none {
			k = uint32(np)
		}
		order[next[k]] = uint32(i)
		next[k]++
	}
	pageIdx, next = nil, nil
	byRange := func(a, b uint32) int {
		if lo[a] != lo[b] {
			return int(lo[a]) - int(lo[b])
		}
		if hi[a] != hi[b] {
			return int(hi[a]) - int(hi[b])
		}
		return strings.Compare(idAt(int(a)), idAt(int(b)))
	}
	for k := range np {
		if seg := order[m.first[k]:m.first[k+1]]; !slices.IsSortedFunc(seg, byRange) {
			slices.SortFunc(seg, byRange)
		}
	}
	m.first = m.first[:np+1]
	if m.ids, err = newStrtab(n, idBytes, func(k int) string { return idAt(int(order[k])) }); err != nil {
		return nil, err
	}
	m.lo, m.hi = make([]int32, n), make([]int32, n)
	for k, i := range order {
		m.lo[k], m.hi[k] = lo[i], hi[i]
	}
	order, lo, hi = nil, nil, nil
	var dup int
	if m.byID, dup = newStrIndex(&m.ids); dup >= 0 {
		return nil, fmt.Errorf("passage map: duplicate passage id %q", m.ids.at(dup))
	}
	m.byPage, _ = newStrIndex(&m.pages)
	return m, nil
}

// halfRange is a passage's interval in half paragraphs, as the reference
// reads it: "(" starts half a paragraph later; ")" ends half a paragraph
// earlier unless that leaves nothing of the last paragraph.
func halfRange(r data.PassageRange) (lo, hi int32) {
	lo = int32(2 * r.First)
	if r.CutFirst {
		lo++
	}
	hi = int32(2*r.Last + 2)
	if r.CutLast && int32(2*r.Last) > lo {
		hi--
	}
	return lo, hi
}

// Len is the number of passages.
func (m *PassageMap) Len() int { return m.ids.len() }

// Pages is the number of pages.
func (m *PassageMap) Pages() int { return m.pages.len() }

// Unranged counts the passages that have a page but no paragraph range
// (they cover their whole page), and Unpaged those without a page.
func (m *PassageMap) Unranged() int { return m.noRange }

// Unpaged counts the passages without a page.
func (m *PassageMap) Unpaged() int { return m.noPage }

// passage is the map position of the passage with this id.
func (m *PassageMap) passage(id string) (int, bool) { return m.byID.find(&m.ids, id) }

// page is the index of a page.
func (m *PassageMap) page(id string) (int, bool) { return m.byPage.find(&m.pages, id) }

// PagePassages lists the passages of a page, in paragraph order (nil for a
// page the map does not know).
func (m *PassageMap) PagePassages(page string) []string {
	p, ok := m.page(page)
	if !ok {
		return nil
	}
	var out []string
	for k := m.first[p]; k < m.first[p+1]; k++ {
		out = append(out, m.ids.at(int(k)))
	}
	return out
}

// Match is a passage that overlaps an example's provenance, with the
// largest share of one provenance entry it covers.
type Match struct {
	ID      string  `json:"pid"`
	Overlap float64 `json:"overlap"`
}

// Matches lists the passages that overlap the evidence, each once with its
// largest overlap, in the order of the evidence and, within a page, of the
// paragraphs. An invalid entry (no page, a negative or inverted range) is an
// error.
func (m *PassageMap) Matches(ev []Evidence) ([]Match, error) {
	var out []Match
	at := map[int]int{} // map position -> index in out
	add := func(k int, ov float64) {
		if j, ok := at[k]; ok {
			out[j].Overlap = max(out[j].Overlap, ov)
			return
		}
		at[k] = len(out)
		out = append(out, Match{ID: m.ids.at(k), Overlap: ov})
	}
	for _, e := range ev {
		if err := e.check(); err != nil {
			return nil, err
		}
		if k, ok := m.passage(e.Page); ok {
			add(k, 1)
			continue
		}
		p, ok := m.page(e.Page)
		if !ok {
			continue
		}
		s, t := int64(2*e.Start), int64(2*e.End+2)
		for k := int(m.first[p]); k < int(m.first[p+1]); k++ {
			lo, hi := int64(m.lo[k]), int64(m.hi[k])
			switch {
			case !e.Paragraphs || lo < 0:
				add(k, 1)
			case lo < t && hi > s:
				add(k, float64(min(hi, t)-max(lo, s))/float64(t-s))
			}
		}
	}
	return out, nil
}

// Positives are the ids of the passages that overlap the evidence by at
// least min(MinOverlap, the best overlap), in the order of Matches; none when
// no passage of the corpus overlaps it.
func (m *PassageMap) Positives(ev []Evidence) ([]string, error) {
	ms, err := m.Matches(ev)
	if err != nil {
		return nil, err
	}
	return PositivesOf(ms, m.MinOverlap), nil
}

// PositivesOf keeps the matches whose overlap reaches min(minOverlap, the
// best overlap among them).
func PositivesOf(ms []Match, minOverlap float64) []string {
	best := 0.0
	for _, x := range ms {
		best = max(best, x.Overlap)
	}
	th := min(minOverlap, best)
	var out []string
	for _, x := range ms {
		if x.Overlap >= th {
			out = append(out, x.ID)
		}
	}
	return out
}
