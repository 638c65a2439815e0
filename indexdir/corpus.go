package indexdir

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/indexdir/pstore"
)

// Passage is one passage of a corpus: as ReadCorpus streams it, and as the
// index's passage store returns it.
type Passage = pstore.Passage

// Corpus formats, as Sniff tells them.
const (
	FormatSQuAD = "squad" // SQuAD v1.1 JSON: each paragraph a passage, its article the page
	FormatKILT  = "kilt"  // KILT knowledge-source passages or pages, with pages
	FormatBEIR  = "beir"  // BEIR corpus lines, without pages
)

// Sniff tells a corpus file's format from its first non-blank line: SQuAD
// v1.1 JSON, KILT knowledge-source passages ({id, wikipedia_id, title,
// text} lines, or {pid, title, text} lines as re2g data kilt-passages and
// IBM's reference write them, or KILT pages, whose text is a list of
// paragraphs) or BEIR corpus lines ({_id, title, text}),
// any of them optionally gzipped, with or without a byte order mark.
func Sniff(path string) (string, error) {
	rc, err := data.Open(path)
	if err != nil {
		return "", fmt.Errorf("corpus %s: %w", path, err)
	}
	defer rc.Close()
	br := bufio.NewReader(io.LimitReader(rc, 1<<20))
	line, err := br.ReadString('\n')
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("corpus %s: %w", path, err)
	}
	line = strings.TrimSpace(line)
	if line == "" {
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("corpus %s: %w", path, err)
		}
		return "", fmt.Errorf("corpus %s: empty first line", path)
	}
	var probe map[string]json.RawMessage
	if json.Unmarshal([]byte(line), &probe) == nil {
		if _, ok := probe["wikipedia_id"]; ok {
			return FormatKILT, nil
		}
		if _, ok := probe["pid"]; ok {
			if _, beir := probe["_id"]; !beir {
				return FormatKILT, nil
			}
		}
		if _, ok := probe["data"]; ok {
			return FormatSQuAD, nil
		}
		if t := strings.TrimSpace(string(probe["text"])); strings.HasPrefix(t, "[") {
			return FormatKILT, nil // a KILT page: its paragraphs
		}
		return FormatBEIR, nil
	}
	if strings.HasPrefix(line, "{") {
		return FormatSQuAD, nil // a multi-line JSON document
	}
	return "", fmt.Errorf("corpus %s: not JSON lines nor a SQuAD JSON file", path)
}

// ReadCorpus streams the corpus at path (any format Sniff tells) to fn, one
// passage at a time in corpus order, with its page (KILT: the wikipedia_id
// or the page of a "page::[a,b]" id; SQuAD: the article title; BEIR: none)
// and corpus line. Only SQuAD, one JSON document, is read whole. Malformed
// records are skipped into rep (see package data); repeated ids reach fn,
// which is where the passage store finds them. It returns the format.
func ReadCorpus(ctx context.Context, path string, rep *data.Report, fn func(Passage) error) (string, error) {
	format, err := Sniff(path)
	if err != nil {
		return "", err
	}
	n := 0
	each := func(p Passage) error {
		if n++; n&1023 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		return fn(p)
	}
	if format == FormatSQuAD {
		sq, err := data.LoadSQuAD(path, rep)
		if err != nil {
			return format, err
		}
		for _, p := range sq.Passages {
			if err := each(Passage{ID: p.ID, Page: p.Title, Title: p.Title, Text: p.Text}); err != nil {
				return format, err
			}
		}
		return format, ctx.Err()
	}
	f, err := data.Open(path)
	if err != nil {
		return format, fmt.Errorf("corpus %s: %w", path, err)
	}
	defer f.Close()
	if format == FormatKILT {
		err = data.EachKILTPassage(f, path, rep, func(p data.KILTPassage, line int) error {
			return each(Passage{Line: line, ID: p.ID, Page: p.WikipediaID, Title: p.Title, Text: p.Text})
		})
	} else {
		err = data.EachCorpusPassage(f, path, rep, func(p data.Passage, line int) error {
			return each(Passage{Line: line, ID: p.ID, Title: p.Title, Text: p.Text})
		})
	}
	if err == nil {
		err = ctx.Err()
	}
	return format, err
}

// Corpus is a whole corpus in memory, for corpora small enough to hold
// (tests, tools that look at every passage); Build streams instead.
type Corpus struct {
	Passages []data.Passage
	Pages    map[string]string // passage id -> page id, when the source has pages
	Report   *data.Report
}

// LoadCorpus reads a corpus (see ReadCorpus) into memory. A repeated
// passage id is an error naming its line.
func LoadCorpus(path string) (*Corpus, error) {
	rep := &data.Report{}
	c := &Corpus{Report: rep}
	type at struct{ row, line int }
	seen := map[string]at{}
	format, err := ReadCorpus(context.Background(), path, rep, func(p Passage) error {
		if first, dup := seen[p.ID]; dup {
			return fmt.Errorf("corpus %s: %w", path, &pstore.DuplicateError{ID: p.ID, Row: len(c.Passages), FirstRow: first.row, Line: p.Line, FirstLine: first.line})
		}
		seen[p.ID] = at{len(c.Passages), p.Line}
		c.Passages = append(c.Passages, p.DataPassage())
		if p.Page != "" {
			if c.Pages == nil {
				c.Pages = map[string]string{}
			}
			c.Pages[p.ID] = p.Page
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if format != FormatBEIR && c.Pages == nil {
		c.Pages = map[string]string{}
	}
	if len(c.Passages) == 0 {
		return nil, fmt.Errorf("corpus %s: no passages (%s)", path, rep.Summary())
	}
	return c, nil
}
