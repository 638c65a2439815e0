package pipeline

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/re2g/re2g/data"
)

// Corpus is a passage collection with, for KILT knowledge sources, the page
// (wikipedia_id) of each passage.
type Corpus struct {
	Passages []data.Passage
	Pages    map[string]string // passage id -> page id, when the source has pages
	Report   *data.Report
}

// LoadCorpus reads a corpus in any of the formats re2g knows, told apart by
// content: SQuAD v1.1 JSON (each paragraph a passage, its article the page),
// KILT knowledge-source passages ({id, wikipedia_id, title, text} lines, or
// {pid, title, text} lines as re2g data kilt-passages and IBM's reference
// write them, the page of "<wikipedia_id>::[a,b]" being <wikipedia_id>) or
// BEIR corpus lines ({_id, title, text}), optionally gzipped.
func LoadCorpus(path string) (*Corpus, error) {
	kind, err := sniff(path)
	if err != nil {
		return nil, err
	}
	rep := &data.Report{}
	c := &Corpus{Report: rep}
	switch kind {
	case "squad":
		sq, err := data.LoadSQuAD(path, rep)
		if err != nil {
			return nil, err
		}
		c.Passages = sq.Passages
		c.Pages = map[string]string{}
		for _, p := range sq.Passages {
			c.Pages[p.ID] = p.Title
		}
	case "kilt":
		kp, err := data.LoadKILTPassages(path, rep)
		if err != nil {
			return nil, err
		}
		c.Pages = make(map[string]string, len(kp))
		for _, p := range kp {
			c.Passages = append(c.Passages, p.Passage)
			c.Pages[p.ID] = p.WikipediaID
		}
	default:
		ps, err := data.LoadCorpus(path, rep)
		if err != nil {
			return nil, err
		}
		c.Passages = ps
	}
	if len(c.Passages) == 0 {
		return nil, fmt.Errorf("corpus %s: no passages (%s)", path, rep.Summary())
	}
	seen := make(map[string]bool, len(c.Passages))
	for i, p := range c.Passages {
		if seen[p.ID] {
			return nil, fmt.Errorf("corpus %s: passage %d: duplicate id %q", path, i+1, p.ID)
		}
		seen[p.ID] = true
	}
	return c, nil
}

// sniff tells the corpus format from the first non-blank bytes.
func sniff(path string) (string, error) {
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
			return "kilt", nil
		}
		if _, ok := probe["pid"]; ok {
			if _, beir := probe["_id"]; !beir {
				return "kilt", nil
			}
		}
		if _, ok := probe["data"]; ok {
			return "squad", nil
		}
		return "beir", nil
	}
	if strings.HasPrefix(line, "{") {
		return "squad", nil // a multi-line JSON document
	}
	return "", fmt.Errorf("corpus %s: not JSON lines nor a SQuAD JSON file", path)
}
