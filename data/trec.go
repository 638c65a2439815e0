package data

import (
	"cmp"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
)

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, cmp.Compare[string])
	return ks
}

var (
	topRE   = regexp.MustCompile(`(?is)<top>(.*?)</top>`)
	docRE   = regexp.MustCompile(`(?is)<doc>(.*?)</doc>`)
	numRE   = regexp.MustCompile(`(?is)<num>\s*(?:number:)?\s*(\S+)`)
	docnoRE = regexp.MustCompile(`(?is)<docno>\s*(.*?)\s*</docno>`)
	tagRE   = regexp.MustCompile(`(?is)<(title|desc|narr)>\s*(?:description:|narrative:|topic:)?(.*?)(?:<(?:/?title|/?desc|/?narr|/top)>|$)`)
)

// LoadTopics reads TREC topics, optionally gzipped, in either the classic
// <top><num><title><desc><narr></top> form (the query text is the title, or
// the description when there is no title) or the <DOC><DOCNO>n</DOCNO>
// text</DOC> form of the old collections such as CACM (the text is the
// query). A topic with no id or no text is malformed; its line is the line
// where the topic starts.
func LoadTopics(path string, rep *Report) ([]Query, error) {
	f, err := Open(path)
	if err != nil {
		return nil, fmt.Errorf("topics: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("topics: %s: %w", path, err)
	}
	return ParseTopics(string(b), path, rep)
}

// ParseTopics is LoadTopics on the file's text; name is used in messages.
func ParseTopics(s, name string, rep *Report) ([]Query, error) {
	lineAt := func(off int) int { return 1 + strings.Count(s[:off], "\n") }
	var out []Query
	seen := map[string]bool{}
	add := func(off int, id, text string) error {
		text = strings.Join(strings.Fields(text), " ")
		switch {
		case id == "":
			return rep.skip(name, lineAt(off), "topic without a number")
		case text == "":
			return rep.skip(name, lineAt(off), "topic %s has no text", id)
		case seen[id]:
			return rep.skip(name, lineAt(off), "duplicate topic %s", id)
		}
		seen[id] = true
		out = append(out, Query{ID: id, Text: text})
		return nil
	}
	tops := topRE.FindAllStringSubmatchIndex(s, -1)
	for _, m := range tops {
		body := s[m[2]:m[3]]
		var id string
		if n := numRE.FindStringSubmatch(body); n != nil {
			id = n[1]
		}
		parts := map[string]string{}
		for _, t := range tagRE.FindAllStringSubmatch(body, -1) {
			parts[strings.ToLower(t[1])] = t[2]
		}
		text := parts["title"]
		if strings.TrimSpace(text) == "" {
			text = parts["desc"]
		}
		if err := add(m[0], id, text); err != nil {
			return nil, err
		}
	}
	if len(tops) == 0 {
		for _, m := range docRE.FindAllStringSubmatchIndex(s, -1) {
			body := s[m[2]:m[3]]
			var id string
			if n := docnoRE.FindStringSubmatchIndex(body); n != nil {
				id = body[n[2]:n[3]]
				body = body[:n[0]] + body[n[1]:]
			}
			if err := add(m[0], id, body); err != nil {
				return nil, err
			}
		}
	}
	if len(out) == 0 && (rep == nil || len(rep.Skips) == 0) {
		return nil, fmt.Errorf("%s: no <top> or <DOC> topics found", name)
	}
	return out, nil
}
