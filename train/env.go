package train

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/re2g/re2g/bm25"
	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/internal/atomicfile"
	"github.com/re2g/re2g/tokenizer"
	"github.com/re2g/re2g/torch"
)

// Question is one training or dev question: its text, reference answers and
// gold provenance (passage ids).
type Question struct {
	ID      string
	Text    string
	Answers []string
	Gold    []string
}

// Data is what the phases train on: one passage corpus, training questions
// and dev questions. TrainPassages marks the passages training may see
// (hard negatives, the training index); dev evaluation searches them all.
type Data struct {
	Passages      []data.Passage
	TrainPassages []bool // nil: all
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
// by a seeded shuffle of the sorted titles, give the dev questions and are
// excluded from TrainPassages; the rest train. The split depends only on the
// titles and the seed.
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

// LoadData reads the SQuAD file of cfg and splits it.
func LoadData(cfg *Config) (*Data, error) {
	sq, err := data.LoadSQuAD(cfg.Data, nil)
	if err != nil {
		return nil, err
	}
	return SplitSQuAD(sq, cfg.DevArticles, cfg.Seed)
}

// env is what every phase shares: data, tokenizer, device, BM25 indexes.
type env struct {
	cfg     *Config
	d       *Data
	dev     torch.Device
	tok     *tokenizer.Tokenizer
	tokPath string
	pidx    map[string]int
	train   []int // indices of the training passages
	trainQ  []Question
	devQ    []Question // the dev questions evaluated during training
	finalQ  []Question // the dev questions of the final table
	bmTrain *bm25.Index
	bmAll   *bm25.Index
}

func newEnv(ctx context.Context, cfg *Config, d *Data) (*env, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if len(d.Passages) == 0 || len(d.Train) == 0 || len(d.Dev) == 0 {
		return nil, fmt.Errorf("train: need passages (%d), training (%d) and dev (%d) questions", len(d.Passages), len(d.Train), len(d.Dev))
	}
	dev, err := torch.ParseDevice(cfg.Device)
	if err != nil {
		return nil, fmt.Errorf("train config: device: %w", err)
	}
	tokPath := cfg.Tokenizer
	if st, err := os.Stat(tokPath); err == nil && st.IsDir() {
		tokPath = filepath.Join(tokPath, "tokenizer.json")
	}
	tok, err := tokenizer.Load(tokPath)
	if err != nil {
		return nil, fmt.Errorf("train: tokenizer: %w", err)
	}
	for _, sp := range []string{"[CLS]", "[SEP]", "[PAD]"} {
		if _, ok := tok.TokenToID(sp); !ok {
			return nil, fmt.Errorf("train: tokenizer %s has no %s: a BERT WordPiece tokenizer is needed", tokPath, sp)
		}
	}
	e := &env{cfg: cfg, d: d, dev: dev, tok: tok, tokPath: tokPath, pidx: map[string]int{}}
	for i, p := range d.Passages {
		if _, dup := e.pidx[p.ID]; dup {
			return nil, fmt.Errorf("train: passage id %q appears twice", p.ID)
		}
		e.pidx[p.ID] = i
		if d.TrainPassages == nil || d.TrainPassages[i] {
			e.train = append(e.train, i)
		}
	}
	check := func(qs []Question, what string) error {
		for _, q := range qs {
			if len(q.Gold) == 0 {
				return fmt.Errorf("train: %s question %s has no gold passage", what, q.ID)
			}
			for _, g := range q.Gold {
				if _, ok := e.pidx[g]; !ok {
					return fmt.Errorf("train: %s question %s: unknown gold passage %q", what, q.ID, g)
				}
			}
		}
		return nil
	}
	if err := check(d.Train, "training"); err != nil {
		return nil, err
	}
	if err := check(d.Dev, "dev"); err != nil {
		return nil, err
	}
	e.trainQ = d.Train
	if cfg.MaxTrain > 0 && cfg.MaxTrain < len(e.trainQ) {
		e.trainQ = sample(d.Train, cfg.MaxTrain, cfg.Seed)
	}
	e.devQ = d.Dev
	if cfg.MaxDev > 0 && cfg.MaxDev < len(d.Dev) {
		e.devQ = sample(d.Dev, cfg.MaxDev, cfg.Seed+1)
	}
	e.finalQ = d.Dev
	if cfg.MaxDevFinal > 0 && cfg.MaxDevFinal < len(d.Dev) {
		e.finalQ = sample(d.Dev, cfg.MaxDevFinal, cfg.Seed+2)
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if e.bmAll, err = e.bm25(ctx, "bm25-all", nil); err != nil {
		return nil, err
	}
	if e.bmTrain, err = e.bm25(ctx, "bm25-train", e.train); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

// sample picks n of qs by a seeded shuffle, in their original order.
func sample(qs []Question, n int, seed uint64) []Question {
	idx := rand.New(rand.NewPCG(seed, 0x5a3)).Perm(len(qs))[:n]
	sort.Ints(idx)
	out := make([]Question, n)
	for i, j := range idx {
		out[i] = qs[j]
	}
	return out
}

func (e *env) close() {
	if e.bmAll != nil {
		e.bmAll.Close()
	}
	if e.bmTrain != nil {
		e.bmTrain.Close()
	}
}

// corpusKey fingerprints the passages an index holds.
func (e *env) corpusKey(which []int) string {
	h := fnv.New64a()
	n := len(e.d.Passages)
	if which != nil {
		n = len(which)
	}
	for i := 0; i < n; i++ {
		j := i
		if which != nil {
			j = which[i]
		}
		p := e.d.Passages[j]
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00", p.ID, p.Title, p.Text)
	}
	return fmt.Sprintf("%016x", h.Sum64())
}

// bm25 opens (or builds) the BM25 index of the given passages (nil: all),
// rebuilt when the corpus changed.
func (e *env) bm25(ctx context.Context, name string, which []int) (*bm25.Index, error) {
	dir := filepath.Join(e.cfg.Out, name)
	key := e.corpusKey(which)
	stamp := filepath.Join(e.cfg.Out, name+".key")
	if b, err := os.ReadFile(stamp); err == nil && string(b) == key {
		if ix, err := bm25.Open(dir); err == nil {
			return ix, nil
		}
	}
	os.RemoveAll(dir)
	ix, err := bm25.Create(dir, bm25.Options{})
	if err != nil {
		return nil, fmt.Errorf("train: bm25 %s: %w", dir, err)
	}
	var ps []data.Passage
	if which == nil {
		ps = e.d.Passages
	} else {
		for _, i := range which {
			ps = append(ps, e.d.Passages[i])
		}
	}
	if err := ix.Add(ctx, ps, nil); err != nil {
		ix.Close()
		return nil, fmt.Errorf("train: bm25 %s: %w", dir, err)
	}
	if err := atomicfile.WriteFile(stamp, []byte(key), 0o644); err != nil {
		ix.Close()
		return nil, err
	}
	return ix, nil
}

// search returns the passage indices of BM25's top k for each question.
func (e *env) search(ctx context.Context, ix *bm25.Index, qs []Question, k int) ([][]int, [][]float64, error) {
	ids := make([][]int, len(qs))
	scores := make([][]float64, len(qs))
	for i, q := range qs {
		hits, err := ix.Search(ctx, q.Text, k, bm25.Params{})
		if err != nil {
			return nil, nil, fmt.Errorf("train: bm25 search for %s: %w", q.ID, err)
		}
		for _, h := range hits {
			j, ok := e.pidx[h.ID]
			if !ok {
				return nil, nil, fmt.Errorf("train: bm25 returned unknown passage %q", h.ID)
			}
			ids[i] = append(ids[i], j)
			scores[i] = append(scores[i], h.Score)
		}
	}
	return ids, scores, nil
}

// isGold reports whether passage index j is gold for q.
func (e *env) isGold(q Question, j int) bool {
	id := e.d.Passages[j].ID
	for _, g := range q.Gold {
		if g == id {
			return true
		}
	}
	return false
}

// ids turns passage indices into ids.
func (e *env) ids(js []int) []string {
	out := make([]string, len(js))
	for i, j := range js {
		out[i] = e.d.Passages[j].ID
	}
	return out
}
