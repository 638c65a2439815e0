package data

import (
	"hash/fnv"
	"sort"
	"strings"
)

// SplitByArticle splits a SQuAD collection by article (the passage id's
// title part), so that no dev passage or question is seen in training: an
// article goes to dev when the FNV-1a hash of its title, with seed, falls in
// the first devPercent of 100 buckets. Deterministic, and stable when
// articles are added or removed.
func (s *SQuAD) SplitByArticle(devPercent int, seed string) (train, dev *SQuAD) {
	isDev := func(passageID string) bool {
		title := passageID
		if i := strings.LastIndexByte(passageID, '#'); i >= 0 {
			title = passageID[:i]
		}
		h := fnv.New32a()
		h.Write([]byte(seed))
		h.Write([]byte(title))
		return int(h.Sum32()%100) < devPercent
	}
	train, dev = &SQuAD{}, &SQuAD{}
	for _, p := range s.Passages {
		if isDev(p.ID) {
			dev.Passages = append(dev.Passages, p)
		} else {
			train.Passages = append(train.Passages, p)
		}
	}
	for _, q := range s.Questions {
		if isDev(q.PassageID) {
			dev.Questions = append(dev.Questions, q)
		} else {
			train.Questions = append(train.Questions, q)
		}
	}
	return train, dev
}

// Articles lists the article titles of the collection, sorted.
func (s *SQuAD) Articles() []string {
	seen := map[string]bool{}
	for _, p := range s.Passages {
		seen[p.Title] = true
	}
	out := make([]string, 0, len(seen))
	for t := range seen {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}
