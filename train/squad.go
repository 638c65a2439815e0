package train

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/re2g/re2g/data"
)

// Data is a SQuAD file split by article: its passages, and training and
// dev questions (re2g data squad-kilt writes them as KILT task files).
// TrainPassages marks the passages of the training articles.
type Data struct {
	Passages      []data.Passage
	TrainPassages []bool
	Train, Dev    []Question
}

// article is the article of a SQuAD passage id "<title>#<paragraph>".
func article(pid string) string {
	if i := strings.LastIndexByte(pid, '#'); i >= 0 {
		return pid[:i]
	}
	return pid
}

// SplitSQuAD splits a SQuAD file by article: devArticles articles, chosen
// by a seeded shuffle of the sorted titles, give the dev questions; the
// rest train. The split depends only on the titles and the seed.
func SplitSQuAD(sq *data.SQuAD, devArticles int, seed uint64) (*Data, error) {
	seen := map[string]bool{}
	var titles []string
	for _, p := range sq.Passages {
		a := article(p.ID)
		if !seen[a] {
			seen[a] = true
			titles = append(titles, a)
		}
	}
	if devArticles <= 0 || devArticles >= len(titles) {
		return nil, fmt.Errorf("split: %d dev articles of %d: want at least one each side", devArticles, len(titles))
	}
	sort.Strings(titles)
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	r.Shuffle(len(titles), func(i, j int) { titles[i], titles[j] = titles[j], titles[i] })
	dev := map[string]bool{}
	for _, t := range titles[:devArticles] {
		dev[t] = true
	}
	d := &Data{Passages: sq.Passages, TrainPassages: make([]bool, len(sq.Passages))}
	for i, p := range sq.Passages {
		d.TrainPassages[i] = !dev[article(p.ID)]
	}
	for _, q := range sq.Questions {
		x := Question{ID: q.ID, Text: q.Question, Answers: q.Answers, Gold: []string{q.PassageID}}
		if dev[article(q.PassageID)] {
			d.Dev = append(d.Dev, x)
		} else {
			d.Train = append(d.Train, x)
		}
	}
	return d, nil
}

// DefaultDevArticles is how many SQuADShifts articles are held out for dev.
const DefaultDevArticles = 8
