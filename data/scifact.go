package data

import (
	"archive/zip"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/re2g/re2g/internal/bom"
)

// SciFact is the SciFact CSV export (scifact_hf_csv.zip).
type SciFact struct {
	path string
	zr   *zip.ReadCloser
}

// OpenSciFact opens the zip; Close it when done.
func OpenSciFact(path string) (*SciFact, error) {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return nil, fmt.Errorf("scifact: %w", err)
	}
	return &SciFact{path: path, zr: zr}, nil
}

// Close closes the zip.
func (s *SciFact) Close() error { return s.zr.Close() }

func (s *SciFact) csv(member string, fn func(rec []string, line int, col map[string]int) error) error {
	name := s.path + ":" + member
	f, err := s.zr.Open(member)
	if err != nil {
		return fmt.Errorf("scifact: %s: %w", name, err)
	}
	defer f.Close()
	r := csv.NewReader(bom.Reader(f))
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err != nil {
		return fmt.Errorf("scifact: %s: header: %w", name, err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.TrimSpace(h)] = i
	}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		line, _ := r.FieldPos(0)
		if err != nil {
			return fmt.Errorf("scifact: %s: %w", name, err)
		}
		if len(rec) != len(header) {
			rec = nil // reported by fn as malformed
		}
		if err := fn(rec, line, col); err != nil {
			return err
		}
	}
}

// Corpus reads corpus_train.csv (doc_id, title, abstract, structured) as BEIR
// passages: the abstract, a numpy-style list of sentence strings, is parsed
// and its sentences joined with single spaces.
func (s *SciFact) Corpus(rep *Report) ([]Passage, error) {
	name := s.path + ":corpus_train.csv"
	var out []Passage
	seen := map[string]bool{}
	err := s.csv("corpus_train.csv", func(rec []string, line int, col map[string]int) error {
		if rec == nil {
			return rep.skip(name, line, "wrong number of columns")
		}
		id := strings.TrimSpace(rec[col["doc_id"]])
		if why := validID(id); why != "" {
			return rep.skip(name, line, "%s", why)
		}
		if seen[id] {
			return rep.skip(name, line, "duplicate doc_id %s", id)
		}
		sents, err := ParsePyStrList(rec[col["abstract"]])
		if err != nil {
			return rep.skip(name, line, "abstract: %v", err)
		}
		seen[id] = true
		out = append(out, Passage{ID: id, Title: rec[col["title"]], Text: strings.Join(sents, " ")})
		return nil
	})
	return out, err
}

// Claims reads claims_<split>.csv (split: train, validation or test) as
// queries, one per claim id, and qrels: every document a claim cites or has
// evidence in, relevance 1, which is exactly BEIR's SciFact qrels.
func (s *SciFact) Claims(split string, rep *Report) ([]Query, Qrels, error) {
	member := "claims_" + split + ".csv"
	name := s.path + ":" + member
	var qs []Query
	seen := map[string]bool{}
	qrels := Qrels{}
	cited := map[string][]string{}
	err := s.csv(member, func(rec []string, line int, col map[string]int) error {
		if rec == nil {
			return rep.skip(name, line, "wrong number of columns")
		}
		id := strings.TrimSpace(rec[col["id"]])
		if why := validID(id); why != "" {
			return rep.skip(name, line, "%s", why)
		}
		if !seen[id] {
			if strings.TrimSpace(rec[col["claim"]]) == "" {
				return rep.skip(name, line, "claim %s has no text", id)
			}
			seen[id] = true
			qs = append(qs, Query{ID: id, Text: rec[col["claim"]]})
		}
		if c, ok := col["evidence_doc_id"]; ok {
			if d := strings.TrimSpace(rec[c]); d != "" {
				qrels.Add(id, d, 1)
			}
		}
		if c, ok := col["cited_doc_ids"]; ok {
			for _, d := range strings.Fields(strings.Trim(rec[c], "[] ")) {
				cited[id] = append(cited[id], strings.Trim(d, ","))
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	for _, q := range qs {
		for _, d := range cited[q.ID] {
			qrels.Add(q.ID, d, 1)
		}
	}
	return qs, qrels, nil
}

// ParsePyStrList parses a list of strings as numpy or Python print it:
// ['a' "b's" 'c\n'], items separated by white space or commas, each a
// Python string literal (single or double quoted, backslash escapes).
func ParsePyStrList(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' {
		return nil, fmt.Errorf("not a [...] list: %.40q", s)
	}
	s = s[1 : len(s)-1]
	var out []string
	for i := 0; i < len(s); {
		c := s[i]
		if c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == ',' {
			i++
			continue
		}
		if c != '\'' && c != '"' {
			return nil, fmt.Errorf("offset %d: want a quote, got %q", i, c)
		}
		str, n, err := pyString(s[i:])
		if err != nil {
			return nil, fmt.Errorf("offset %d: %w", i, err)
		}
		out = append(out, str)
		i += n
	}
	return out, nil
}

// pyString decodes the Python string literal at the start of s and returns
// it and the number of bytes it took.
func pyString(s string) (string, int, error) {
	q := s[0]
	var b strings.Builder
	for i := 1; i < len(s); {
		c := s[i]
		switch {
		case c == q:
			return b.String(), i + 1, nil
		case c == '\\' && i+1 < len(s):
			e := s[i+1]
			i += 2
			switch e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case '\\', '\'', '"':
				b.WriteByte(e)
			case 'x', 'u', 'U':
				n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[e]
				if i+n > len(s) {
					return "", 0, fmt.Errorf("short \\%c escape", e)
				}
				v, err := strconv.ParseUint(s[i:i+n], 16, 32)
				if err != nil || !utf8.ValidRune(rune(v)) {
					return "", 0, fmt.Errorf("bad \\%c escape %q", e, s[i:i+n])
				}
				b.WriteRune(rune(v))
				i += n
			default:
				b.WriteByte('\\')
				b.WriteByte(e)
			}
		default:
			b.WriteByte(c)
			i++
		}
	}
	return "", 0, fmt.Errorf("unterminated string")
}
