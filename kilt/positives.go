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

type strtabBuilder struct {
	b   strings.Builder
	off []uint32
}

func (b *strtabBuilder) add(s string) error {
	if b.off == nil {
		b.off = []uint32{0}
	}
	if uint64(b.b.Len())+uint64(len(s)) > math.MaxUint32 {
		return fmt.Errorf("passage map: more than 4 GiB of ids")
	}
	b.b.WriteString(s)
	b.off = append(b.off, uint32(b.b.Len()))
	return nil
}

func (b *strtabBuilder) done() strtab {
	if b.off == nil {
		b.off = []uint32{0}
	}
	return strtab{s: b.b.String(), off: b.off}
}

// PassageMap finds the passages of a corpus that KILT provenance points to.
// It holds passage ids, pages and paragraph ranges only (no texts), packed:
// about the ids' bytes plus 16 bytes a passage and 8 plus the id's bytes a
// page.
type PassageMap struct {
	// MinOverlap is the share of a provenance entry a passage must cover to
	// be a positive, unless no passage covers that much (see the comment at
	// the top of this file); NewPassageMap sets DefaultMinOverlap.
	MinOverlap float64

	ids     strtab   // passage ids in map order: by page, then by range
	lo, hi  []int32  // half-paragraph interval [lo, hi); lo < 0: no range
	pages   strtab   // page ids, sorted
	first   []uint32 // the passages of page k are [first[k], first[k+1])
	byID    []uint32 // map positions sorted by passage id
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
	n := len(ids)
	if n > math.MaxUint32-1 {
		return nil, fmt.Errorf("passage map: %d passages is too many", n)
	}
	m := &PassageMap{MinOverlap: DefaultMinOverlap}
	page := make([]string, n)
	lo := make([]int32, n)
	hi := make([]int32, n)
	for i, id := range ids {
		if id == "" {
			return nil, fmt.Errorf("passage map: passage %d has an empty id", i)
		}
		p := ""
		if pageOf != nil {
			if p = pageOf(id); p == id {
				p = ""
			}
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
		page[i] = p
		if p == "" {
			m.noPage++
		} else if lo[i] < 0 {
			m.noRange++
		}
	}
	order := make([]uint32, n)
	for i := range order {
		order[i] = uint32(i)
	}
	slices.SortFunc(order, func(a, b uint32) int {
		if c := strings.Compare(page[a], page[b]); c != 0 {
			return c
		}
		if lo[a] != lo[b] {
			return int(lo[a]) - int(lo[b])
		}
		if hi[a] != hi[b] {
			return int(hi[a]) - int(hi[b])
		}
		return strings.Compare(ids[a], ids[b])
	})
	var idb, pgb strtabBuilder
	m.lo = make([]int32, n)
	m.hi = make([]int32, n)
	prev := ""
	for k, i := range order {
		if err := idb.add(ids[i]); err != nil {
			return nil, err
		}
		m.lo[k], m.hi[k] = lo[i], hi[i]
		if p := page[i]; p != "" && p != prev { // the passages without a page sort first
			if err := pgb.add(p); err != nil {
				return nil, err
			}
			m.first = append(m.first, uint32(k))
			prev = p
		}
	}
	m.first = append(m.first, uint32(n))
	m.ids, m.pages = idb.done(), pgb.done()
	page, lo, hi = nil, nil, nil
	m.byID = make([]uint32, n)
	for k := range m.byID {
		m.byID[k] = uint32(k)
	}
	slices.SortFunc(m.byID, func(a, b uint32) int { return strings.Compare(m.ids.at(int(a)), m.ids.at(int(b))) })
	for k := 1; k < n; k++ {
		if a := m.ids.at(int(m.byID[k])); a == m.ids.at(int(m.byID[k-1])) {
			return nil, fmt.Errorf("passage map: duplicate passage id %q", a)
		}
	}
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
func (m *PassageMap) passage(id string) (int, bool) {
	k, ok := slices.BinarySearchFunc(m.byID, id, func(e uint32, t string) int { return strings.Compare(m.ids.at(int(e)), t) })
	if !ok {
		return 0, false
	}
	return int(m.byID[k]), true
}

// page is the index of a page.
func (m *PassageMap) page(id string) (int, bool) {
	lo, hi := 0, m.pages.len()
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if m.pages.at(mid) < id {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, lo < m.pages.len() && m.pages.at(lo) == id
}

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
