package data

import (
	"fmt"
	"strconv"
	"strings"
)

// SQuADParagraph splits a SQuAD passage id "<title>#<i>" (as LoadSQuAD names
// paragraphs) into the article's page id <title> and the paragraph index i.
func SQuADParagraph(passageID string) (page string, para int, ok bool) {
	j := strings.LastIndexByte(passageID, '#')
	if j <= 0 {
		return "", 0, false
	}
	i, err := strconv.Atoi(passageID[j+1:])
	if err != nil || i < 0 || strconv.Itoa(i) != passageID[j+1:] {
		return "", 0, false
	}
	return passageID[:j], i, true
}

// Pages turns the articles into a KILT knowledge source, one page per
// article, in file order: wikipedia_id is the article's part of its passage
// ids (the title with white space runs as "_", a stable id without spaces),
// wikipedia_title its title, text its paragraphs, text[i] being the passage
// "<wikipedia_id>#<i>" (a paragraph LoadSQuAD left out as empty is ""). Unlike
// KILT's Wikipedia pages there is no title paragraph: paragraph 0 is the
// article's first paragraph. Two articles with the same id are an error.
func (s *SQuAD) Pages() ([]KILTPage, error) {
	var pages []KILTPage
	done := map[string]bool{}
	for _, p := range s.Passages {
		wid, i, ok := SQuADParagraph(p.ID)
		if !ok {
			return nil, fmt.Errorf("squad pages: passage id %q is not <title>#<paragraph>", p.ID)
		}
		if len(pages) == 0 || pages[len(pages)-1].WikipediaID != wid {
			if done[wid] {
				return nil, fmt.Errorf("squad pages: two articles have the id %q", wid)
			}
			done[wid] = true
			pages = append(pages, KILTPage{WikipediaID: wid, Title: p.Title})
		}
		pg := &pages[len(pages)-1]
		if i < len(pg.Text) {
			return nil, fmt.Errorf("squad pages: article %q: paragraph %d out of order", wid, i)
		}
		for len(pg.Text) < i {
			pg.Text = append(pg.Text, "")
		}
		pg.Text = append(pg.Text, p.Text)
	}
	return pages, nil
}
