package data

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// KILTPassage is a passage of a KILT knowledge source, with the Wikipedia
// page it comes from (KILT's provenance is judged by page).
type KILTPassage struct {
	Passage
	WikipediaID string `json:"wikipedia_id"`
}

// LoadKILTPassages reads a KILT knowledge source, optionally gzipped, one
// JSON object a line, in either of its two shapes:
//   - passages: {"id", "wikipedia_id", "title", "text": "..."}, or as IBM's
//     reference (and re2g data kilt-passages) writes them, {"pid", "title",
//     "text"} with pid "<wikipedia_id>::[first,last]" (see ParsePassageID):
//     a passage without wikipedia_id takes its page from such an id (a pid
//     of another form is its own page);
//   - pages (kilt_knowledgesource.json): {"_id" or "wikipedia_id",
//     "wikipedia_title", "text": ["paragraph", ...]}, which gives one passage
//     per non-empty paragraph, id "<wikipedia_id>_<paragraph index>".
func LoadKILTPassages(path string, rep *Report) ([]KILTPassage, error) {
	f, err := Open(path)
	if err != nil {
		return nil, fmt.Errorf("kilt knowledge source: %w", err)
	}
	defer f.Close()
	var out []KILTPassage
	seen := map[string]bool{}
	err = EachKILTPassage(f, path, rep, func(p KILTPassage, n int) error {
		if seen[p.ID] {
			return rep.skip(path, n, "duplicate id %s", p.ID)
		}
		seen[p.ID] = true
		out = append(out, p)
		return nil
	})
	return out, err
}

// EachKILTPassage streams a KILT knowledge source (either shape, see
// LoadKILTPassages) read from r, named path in messages: fn gets every passage, in order, with the
// 1-based number of its line (a page's passages share theirs). Malformed
// lines are as LoadKILTPassages has them, except that repeated ids are not
// looked for (that would take a set of every id): fn sees them.
func EachKILTPassage(r io.Reader, path string, rep *Report, fn func(p KILTPassage, line int) error) error {
	return eachLine(r, path, func(line []byte, n int) error {
		if len(bytes.TrimSpace(line)) == 0 {
			return nil
		}
		var rec struct {
			ID        *flexString     `json:"id"`
			PID       *flexString     `json:"pid"`
			UID       *flexString     `json:"_id"`
			WikiID    *flexString     `json:"wikipedia_id"`
			Title     string          `json:"title"`
			WikiTitle string          `json:"wikipedia_title"`
			Text      json.RawMessage `json:"text"`
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			return rep.skip(path, n, "bad JSON: %v", err)
		}
		wid := ""
		if rec.WikiID != nil {
			wid = string(*rec.WikiID)
		} else if rec.UID != nil {
			wid = string(*rec.UID)
		}
		fromPID := rec.ID == nil && rec.PID != nil
		if fromPID {
			rec.ID = rec.PID
		}
		title := rec.Title
		if title == "" {
			title = rec.WikiTitle
		}
		add := func(id, text string) error {
			if why := validID(id); why != "" {
				return rep.skip(path, n, "%s", why)
			}
			return fn(KILTPassage{Passage: Passage{ID: id, Title: title, Text: text}, WikipediaID: wid}, n)
		}
		t := bytes.TrimSpace(rec.Text)
		switch {
		case len(t) == 0 || string(t) == "null":
			return missingText(path, n, `{"id", "wikipedia_id", "title", "text"}, {"pid", "title", "text"} or KILT pages`)
		case t[0] == '"':
			var s string
			if err := json.Unmarshal(t, &s); err != nil {
				return rep.skip(path, n, "text: %v", err)
			}
			if rec.ID == nil {
				return rep.skip(path, n, "passage without id")
			}
			if wid == "" {
				wid = PassagePage(string(*rec.ID))
			}
			if wid == "" && fromPID {
				wid = string(*rec.ID) // a passage that is its own page
			}
			if wid == "" {
				return rep.skip(path, n, "passage without wikipedia_id")
			}
			if strings.TrimSpace(s) == "" {
				return rep.skip(path, n, "empty text")
			}
			return add(string(*rec.ID), s)
		case t[0] == '[':
			var paras []string
			if err := json.Unmarshal(t, &paras); err != nil {
				return rep.skip(path, n, "text: %v", err)
			}
			if wid == "" {
				return rep.skip(path, n, "page without wikipedia_id or _id")
			}
			for i, p := range paras {
				if strings.TrimSpace(p) == "" {
					continue
				}
				if err := add(fmt.Sprintf("%s_%d", wid, i), strings.TrimSpace(p)); err != nil {
					return err
				}
			}
			return nil
		default:
			return rep.skip(path, n, "text is neither a string nor a list of strings")
		}
	})
}

// KILTProvenance is one piece of evidence for a KILT answer.
type KILTProvenance struct {
	WikipediaID    string  `json:"wikipedia_id"`
	Title          string  `json:"title,omitempty"`
	StartParagraph int     `json:"start_paragraph_id,omitempty"`
	EndParagraph   int     `json:"end_paragraph_id,omitempty"`
	StartCharacter int     `json:"start_character,omitempty"`
	EndCharacter   int     `json:"end_character,omitempty"`
	BLEU           float64 `json:"bleu_score,omitempty"`
	Section        string  `json:"section,omitempty"`
}

// KILTOutput is one reference output of a KILT example.
type KILTOutput struct {
	Answer     string           `json:"answer,omitempty"`
	Provenance []KILTProvenance `json:"provenance,omitempty"`
}

// KILTExample is one line of a KILT task file.
type KILTExample struct {
	ID     string       `json:"id"`
	Input  string       `json:"input"`
	Output []KILTOutput `json:"output,omitempty"`
}

// Query returns the example as a query.
func (e KILTExample) Query() Query { return Query{ID: e.ID, Text: e.Input} }

// LoadKILTTask reads a KILT task file (jsonl, optionally gzipped): {"id",
// "input", "output": [{"answer", "provenance": [{"wikipedia_id", ...}]}]}.
// Test files have no output. Lines with bad JSON, no id, a duplicate id or
// no input are malformed; provenance without a wikipedia_id is malformed.
func LoadKILTTask(path string, rep *Report) ([]KILTExample, error) {
	f, err := Open(path)
	if err != nil {
		return nil, fmt.Errorf("kilt task: %w", err)
	}
	defer f.Close()
	var out []KILTExample
	seen := map[string]bool{}
	err = eachLine(f, path, func(line []byte, n int) error {
		if len(bytes.TrimSpace(line)) == 0 {
			return nil
		}
		var rec struct {
			ID     *flexString `json:"id"`
			Input  string      `json:"input"`
			Output []struct {
				Answer     string `json:"answer"`
				Provenance []struct {
					KILTProvenance
					WikipediaID *flexString `json:"wikipedia_id"`
				} `json:"provenance"`
			} `json:"output"`
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			return rep.skip(path, n, "bad JSON: %v", err)
		}
		if rec.ID == nil || string(*rec.ID) == "" {
			return rep.skip(path, n, "no id")
		}
		id := string(*rec.ID)
		if seen[id] {
			return rep.skip(path, n, "duplicate id %s", id)
		}
		if strings.TrimSpace(rec.Input) == "" {
			return rep.skip(path, n, "example %s has no input", id)
		}
		ex := KILTExample{ID: id, Input: rec.Input}
		for oi, o := range rec.Output {
			ko := KILTOutput{Answer: o.Answer}
			for pi, p := range o.Provenance {
				if p.WikipediaID == nil || string(*p.WikipediaID) == "" {
					return rep.skip(path, n, "example %s output %d provenance %d has no wikipedia_id", id, oi, pi)
				}
				kp := p.KILTProvenance
				kp.WikipediaID = string(*p.WikipediaID)
				ko.Provenance = append(ko.Provenance, kp)
			}
			ex.Output = append(ex.Output, ko)
		}
		seen[id] = true
		out = append(out, ex)
		return nil
	})
	return out, err
}
