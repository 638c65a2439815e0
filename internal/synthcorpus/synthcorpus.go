// Package synthcorpus writes large synthetic KILT knowledge sources for
// scale tests and benchmarks: passages of about 100 words made of sentences
// drawn from real collections (ArguAna's arguments and SQuADShifts New Wiki
// paragraphs, in the shared data folder), five passages a page, ids
// "<wikipedia_id>::[k,k]", deterministic from a seed.
package synthcorpus

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strings"

	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/internal/atomicfile"
)

// Sentences are what passages are made of.
type Sentences struct {
	Sentences []string
	Titles    []string
}

// Load reads the sentences of ArguAna's corpus and of the SQuADShifts New
// Wiki paragraphs, and the SQuADShifts article titles, from the shared data
// folder dir.
func Load(dir string) (*Sentences, error) {
	s := &Sentences{}
	arg, err := data.LoadCorpus(filepath.Join(dir, "arguana", "corpus.jsonl.gz"), &data.Report{})
	if err != nil {
		return nil, fmt.Errorf("synthetic corpus: %w", err)
	}
	for _, p := range arg {
		s.Sentences = append(s.Sentences, split(p.Text)...)
	}
	sq, err := data.LoadSQuAD(filepath.Join(dir, "squadshifts", "new_wiki_v1.0.json"), &data.Report{})
	if err != nil {
		return nil, fmt.Errorf("synthetic corpus: %w", err)
	}
	seen := map[string]bool{}
	for _, p := range sq.Passages {
		s.Sentences = append(s.Sentences, split(p.Text)...)
		if !seen[p.Title] {
			seen[p.Title] = true
			s.Titles = append(s.Titles, p.Title)
		}
	}
	if len(s.Sentences) == 0 || len(s.Titles) == 0 {
		return nil, fmt.Errorf("synthetic corpus: no sentences in %s", dir)
	}
	return s, nil
}

// split cuts text after '.', '!' or '?' followed by a space, keeping the
// pieces of 20 to 600 bytes.
func split(text string) []string {
	var out []string
	keep := func(s string) {
		if s = strings.TrimSpace(s); len(s) >= 20 && len(s) <= 600 {
			out = append(out, s)
		}
	}
	start := 0
	for i := 0; i+1 < len(text); i++ {
		if (text[i] == '.' || text[i] == '!' || text[i] == '?') && text[i+1] == ' ' {
			keep(text[start : i+1])
			start = i + 2
		}
	}
	keep(text[start:])
	return out
}

// Words is the length of a passage, in words, at least.
const Words = 100

// PerPage is the number of passages a page has.
const PerPage = 5

// Write writes n passages, gzipped, to path (atomically), from seed, and
// returns the size of the uncompressed JSON lines.
func Write(path string, n int, seed uint64, s *Sentences) (int64, error) {
	return WriteFrom(path, 0, n, seed, s)
}

// WriteFrom is Write with the pages numbered from firstPage: corpora with
// page ranges apart have no id in common (passages to add to an index).
func WriteFrom(path string, firstPage, n int, seed uint64, s *Sentences) (int64, error) {
	var size int64
	err := atomicfile.Write(path, 0o644, func(w io.Writer) error {
		zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
		if err != nil {
			return err
		}
		cw := &counter{w: zw}
		bw := bufio.NewWriterSize(cw, 1<<20)
		if err := generate(bw, firstPage, n, seed, s); err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		size = cw.n
		return zw.Close()
	})
	if err != nil {
		return 0, fmt.Errorf("synthetic corpus: %w", err)
	}
	return size, nil
}

// Generate writes n passages as KILT JSON lines ({id, wikipedia_id, title,
// text}) to w.
func Generate(w io.Writer, n int, seed uint64, s *Sentences) error {
	return generate(w, 0, n, seed, s)
}

func generate(w io.Writer, firstPage, n int, seed uint64, s *Sentences) error {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	var title string
	var text strings.Builder
	for i := range n {
		page, k := i/PerPage, i%PerPage
		if k == 0 {
			title = s.Titles[rng.IntN(len(s.Titles))]
		}
		text.Reset()
		for words := 0; words < Words; {
			sent := s.Sentences[rng.IntN(len(s.Sentences))]
			if text.Len() > 0 {
				text.WriteByte(' ')
			}
			text.WriteString(sent)
			words += len(strings.Fields(sent))
		}
		wid := fmt.Sprint(1_000_000 + firstPage + page)
		rec := struct {
			ID     string `json:"id"`
			WikiID string `json:"wikipedia_id"`
			Title  string `json:"title"`
			Text   string `json:"text"`
		}{fmt.Sprintf("%s::[%d,%d]", wid, k, k), wid, title, text.String()}
		if err := enc.Encode(rec); err != nil {
			return err
		}
	}
	return nil
}

type counter struct {
	w io.Writer
	n int64
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
