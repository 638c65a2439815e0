package data

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// SQuADQuestion is one SQuAD question with its reference answers and the id
// of its own paragraph, its gold provenance.
type SQuADQuestion struct {
	ID        string   `json:"id"`
	Question  string   `json:"question"`
	Answers   []string `json:"answers"`
	PassageID string   `json:"passage_id"`
}

// SQuAD is a SQuAD v1.1 file as a passage corpus: every paragraph a passage
// (id "<title>#<paragraph index>", spaces in the title replaced by "_"),
// every question a query judged relevant to its own paragraph only.
type SQuAD struct {
	Passages  []Passage
	Questions []SQuADQuestion
}

// Queries returns the questions as queries.
func (s *SQuAD) Queries() []Query {
	qs := make([]Query, len(s.Questions))
	for i, q := range s.Questions {
		qs[i] = Query{ID: q.ID, Text: q.Question}
	}
	return qs
}

// Qrels judges each question's own paragraph relevant (1).
func (s *SQuAD) Qrels() Qrels {
	q := Qrels{}
	for _, x := range s.Questions {
		q.Add(x.ID, x.PassageID, 1)
	}
	return q
}

// LoadSQuAD reads a SQuAD v1.1 JSON file. Paragraphs without context and
// questions without id or text are malformed; their "line" is the 1-based
// article number, since the file is one JSON document.
func LoadSQuAD(path string, rep *Report) (*SQuAD, error) {
	f, err := Open(path)
	if err != nil {
		return nil, fmt.Errorf("squad: %w", err)
	}
	b, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("squad: %s: %w", path, err)
	}
	var doc struct {
		Data []struct {
			Title      string `json:"title"`
			Paragraphs []struct {
				Context string `json:"context"`
				QAs     []struct {
					ID       flexString `json:"id"`
					Question string     `json:"question"`
					Answers  []struct {
						Text string `json:"text"`
					} `json:"answers"`
				} `json:"qas"`
			} `json:"paragraphs"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("squad: %s: %w", path, err)
	}
	if len(doc.Data) == 0 {
		return nil, fmt.Errorf("squad: %s: no data[] articles", path)
	}
	out := &SQuAD{}
	seenQ := map[string]bool{}
	for ai, art := range doc.Data {
		title := strings.Join(strings.Fields(art.Title), "_")
		if title == "" {
			title = fmt.Sprintf("article%d", ai)
		}
		for pi, p := range art.Paragraphs {
			if strings.TrimSpace(p.Context) == "" {
				if err := rep.skip(path, ai+1, "article %q paragraph %d has no context", art.Title, pi); err != nil {
					return nil, err
				}
				continue
			}
			pid := fmt.Sprintf("%s#%d", title, pi)
			out.Passages = append(out.Passages, Passage{ID: pid, Title: art.Title, Text: p.Context})
			for qi, qa := range p.QAs {
				id := string(qa.ID)
				var why string
				switch {
				case validID(id) != "":
					why = validID(id)
				case seenQ[id]:
					why = "duplicate question id " + id
				case strings.TrimSpace(qa.Question) == "":
					why = "question " + id + " has no text"
				}
				if why != "" {
					if err := rep.skip(path, ai+1, "article %q paragraph %d question %d: %s", art.Title, pi, qi, why); err != nil {
						return nil, err
					}
					continue
				}
				seenQ[id] = true
				q := SQuADQuestion{ID: id, Question: qa.Question, PassageID: pid}
				for _, a := range qa.Answers {
					q.Answers = append(q.Answers, a.Text)
				}
				out.Questions = append(out.Questions, q)
			}
		}
	}
	return out, nil
}
