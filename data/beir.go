package data

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// LoadCorpus reads a BEIR corpus.jsonl file (optionally gzipped): one
// {"_id", "title", "text"} object a line. Lines with bad JSON, a missing or
// duplicate id, or neither title nor text are malformed. A record without a
// "text" field is an error even with a report (see missingText).
func LoadCorpus(path string, rep *Report) ([]Passage, error) {
	f, err := Open(path)
	if err != nil {
		return nil, fmt.Errorf("corpus: %w", err)
	}
	defer f.Close()
	return ReadCorpus(f, path, rep)
}

// ReadCorpus is LoadCorpus on a reader; name is used in messages.
func ReadCorpus(r io.Reader, name string, rep *Report) ([]Passage, error) {
	var out []Passage
	seen := map[string]bool{}
	err := EachCorpusPassage(r, name, rep, func(p Passage, n int) error {
		if seen[p.ID] {
			return rep.skip(name, n, "duplicate id")
		}
		seen[p.ID] = true
		out = append(out, p)
		return nil
	})
	return out, err
}

// EachCorpusPassage streams a BEIR corpus: fn gets every passage of r, in
// order, with its 1-based line number. Malformed lines are as LoadCorpus
// has them, except that repeated ids are not looked for (that would take a
// set of every id): fn sees them.
func EachCorpusPassage(r io.Reader, name string, rep *Report, fn func(p Passage, line int) error) error {
	return eachLine(r, name, func(line []byte, n int) error {
		if len(bytes.TrimSpace(line)) == 0 {
			return nil
		}
		var rec struct {
			ID    *flexString `json:"_id"`
			Title string      `json:"title"`
			Text  *string     `json:"text"`
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			return rep.skip(name, n, "bad JSON: %v", err)
		}
		if rec.Text == nil {
			return missingText(name, n, `{"_id", "title", "text"}`)
		}
		if rec.ID == nil {
			return rep.skip(name, n, "no _id")
		}
		id := string(*rec.ID)
		if why := validID(id); why != "" {
			return rep.skip(name, n, "%s", why)
		}
		if strings.TrimSpace(rec.Title) == "" && strings.TrimSpace(*rec.Text) == "" {
			return rep.skip(name, n, "empty title and text")
		}
		return fn(Passage{ID: id, Title: rec.Title, Text: *rec.Text}, n)
	})
}

// LoadQueries reads queries from a BEIR queries.jsonl ({"_id", "text"} a
// line) or an id<TAB>text TSV file, either optionally gzipped; the format is
// told by the first non-blank line.
func LoadQueries(path string, rep *Report) ([]Query, error) {
	f, err := Open(path)
	if err != nil {
		return nil, fmt.Errorf("queries: %w", err)
	}
	defer f.Close()
	return ReadQueries(f, path, rep)
}

// ReadQueries is LoadQueries on a reader; name is used in messages.
func ReadQueries(r io.Reader, name string, rep *Report) ([]Query, error) {
	var out []Query
	seen := map[string]bool{}
	jsonl := -1
	err := eachLine(r, name, func(line []byte, n int) error {
		t := bytes.TrimSpace(line)
		if len(t) == 0 {
			return nil
		}
		if jsonl < 0 {
			jsonl = 0
			if t[0] == '{' {
				jsonl = 1
			}
		}
		var q Query
		if jsonl == 1 {
			var rec struct {
				ID   *flexString `json:"_id"`
				Text string      `json:"text"`
			}
			if err := json.Unmarshal(line, &rec); err != nil {
				return rep.skip(name, n, "bad JSON: %v", err)
			}
			if rec.ID == nil {
				return rep.skip(name, n, "no _id")
			}
			q = Query{ID: string(*rec.ID), Text: rec.Text}
		} else {
			id, text, ok := strings.Cut(string(line), "\t")
			if !ok {
				return rep.skip(name, n, "no TAB between id and text")
			}
			q = Query{ID: strings.TrimSpace(id), Text: text}
		}
		if why := validID(q.ID); why != "" {
			return rep.skip(name, n, "%s", why)
		}
		if seen[q.ID] {
			return rep.skip(name, n, "duplicate query id")
		}
		if strings.TrimSpace(q.Text) == "" {
			return rep.skip(name, n, "empty query text")
		}
		seen[q.ID] = true
		out = append(out, q)
		return nil
	})
	return out, err
}

// LoadQrels reads relevance judgements in TREC form (qid iter docid rel,
// white-space separated) or BEIR TSV form (query-id, corpus-id, score, with
// or without its header line), optionally gzipped. A judgement repeated for
// the same pair keeps the last grade, as trec_eval does.
func LoadQrels(path string, rep *Report) (Qrels, error) {
	f, err := Open(path)
	if err != nil {
		return nil, fmt.Errorf("qrels: %w", err)
	}
	defer f.Close()
	return ReadQrels(f, path, rep)
}

// ReadQrels is LoadQrels on a reader; name is used in messages.
func ReadQrels(r io.Reader, name string, rep *Report) (Qrels, error) {
	q := Qrels{}
	first := true
	err := eachLine(r, name, func(line []byte, n int) error {
		fields := strings.Fields(string(line))
		if len(fields) == 0 {
			return nil
		}
		wasFirst := first
		first = false
		var qid, doc, rel string
		switch len(fields) {
		case 4:
			qid, doc, rel = fields[0], fields[2], fields[3]
		case 3:
			qid, doc, rel = fields[0], fields[1], fields[2]
		default:
			return rep.skip(name, n, "want 3 (BEIR) or 4 (TREC) fields, got %d", len(fields))
		}
		g, err := strconv.Atoi(rel)
		if err != nil {
			if wasFirst {
				return nil // header line: query-id corpus-id score
			}
			return rep.skip(name, n, "relevance %q is not an integer", rel)
		}
		q.Add(qid, doc, g)
		return nil
	})
	return q, err
}

// WriteCorpus writes passages as BEIR jsonl.
func WriteCorpus(w io.Writer, ps []Passage) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for _, p := range ps {
		if err := enc.Encode(p); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// WriteQueries writes queries as BEIR jsonl.
func WriteQueries(w io.Writer, qs []Query) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for _, q := range qs {
		if err := enc.Encode(q); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// WriteQrels writes qrels in TREC form (qid 0 docid rel), sorted.
func WriteQrels(w io.Writer, q Qrels) error {
	bw := bufio.NewWriter(w)
	for _, qid := range sortedKeys(q) {
		for _, d := range sortedKeys(q[qid]) {
			if _, err := fmt.Fprintf(bw, "%s 0 %s %d\n", qid, d, q[qid][d]); err != nil {
				return err
			}
		}
	}
	return bw.Flush()
}
