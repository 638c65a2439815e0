package train

import (
	"context"
	"os"
	"testing"

	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/model/bert"
	"github.com/re2g/re2g/torch"
)

const squadPath = "../../shared/data/squadshifts/new_wiki_v1.0.json"

func loadSQuAD(t *testing.T) *data.SQuAD {
	t.Helper()
	if _, err := os.Stat(squadPath); err != nil {
		t.Skip("no ../shared/data SQuADShifts: ", err)
	}
	sq, err := data.LoadSQuAD(squadPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	return sq
}

// TestSplitByArticle: the split is deterministic and no dev question's
// article has a training passage or question.
func TestSplitByArticle(t *testing.T) {
	sq := loadSQuAD(t)
	a, err := SplitSQuAD(sq, 8, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := SplitSQuAD(sq, 8, 1)
	if len(a.Dev) != len(b.Dev) || a.Dev[0].ID != b.Dev[0].ID {
		t.Fatal("split is not deterministic")
	}
	trainArt := map[string]bool{}
	for i, p := range a.Passages {
		if a.TrainPassages[i] {
			trainArt[article(p.ID)] = true
		}
	}
	for _, q := range a.Train {
		if !trainArt[article(q.Gold[0])] {
			t.Fatalf("training question %s is outside the training articles", q.ID)
		}
	}
	devArt := map[string]bool{}
	for _, q := range a.Dev {
		devArt[article(q.Gold[0])] = true
		if trainArt[article(q.Gold[0])] {
			t.Fatalf("dev question %s belongs to a training article", q.ID)
		}
	}
	if len(devArt) != 8 || len(a.Train)+len(a.Dev) != len(sq.Questions) {
		t.Fatalf("%d dev articles, %d+%d of %d questions", len(devArt), len(a.Train), len(a.Dev), len(sq.Questions))
	}
	if _, err := SplitSQuAD(sq, 0, 1); err == nil {
		t.Error("0 dev articles: no error")
	}
}

// TestShortRealTraining trains DPR stage 1 for 100 updates on 32 real
// SQuADShifts questions with BM25 hard negatives: the loss must fall.
func TestShortRealTraining(t *testing.T) {
	needTokenizer(t)
	sq := loadSQuAD(t)
	d, err := SplitSQuAD(sq, 8, 1)
	if err != nil {
		t.Fatal(err)
	}
	cfg := tinyConfig(t.TempDir())
	cfg.BERT = Shape{Hidden: 32, Layers: 1, Heads: 2, FFN: 64, MaxPos: 64}
	cfg.MaxTrain, cfg.MaxDev = 32, 16
	e, err := newEnv(context.Background(), cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	defer e.close()
	ctx := context.Background()
	neg, err := e.bm25Negatives(ctx)
	if err != nil {
		t.Fatal(err)
	}
	torch.ManualSeed(1)
	q, _ := bert.NewDPR(e.bertConfig(0), true, e.dev)
	defer q.Close()
	c, _ := bert.NewDPR(e.bertConfig(0), false, e.dev)
	defer c.Close()
	task, err := e.dprTask("dpr", q, c, neg)
	if err != nil {
		t.Fatal(err)
	}
	task.Eval = nil
	r, err := Run(ctx, task, Opt{MaxSteps: 100, BatchSize: 8, Accum: 1, LR: 5e-3, Warmup: 0.1, ClipNorm: 1}, 1, cfg.Out, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mean := func(ps []Point) float64 {
		s := 0.0
		for _, p := range ps {
			s += p.Value
		}
		return s / float64(len(ps))
	}
	first, last := mean(r.Loss[:5]), mean(r.Loss[len(r.Loss)-5:])
	t.Logf("loss: first 5 updates %.3f, last 5 %.3f; %.1f examples/s", first, last, r.Throughput)
	if !(last < 0.85*first) {
		t.Errorf("loss did not fall: first 5 updates %.3f, last 5 %.3f", first, last)
	}
}

// TestConfigChecks: bad settings are errors naming the field.
func TestConfigChecks(t *testing.T) {
	if err := SmallConfig().Check(); err != nil {
		t.Fatal(err)
	}
	if err := LargeConfig().Check(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(c *Config){
		"query_encoder": func(c *Config) { c.E2E.QueryEncoder = "both" },
		"objective":     func(c *Config) { c.Generator.Objective = "tokens" },
		"bert":          func(c *Config) { c.BERT.Heads = 3 },
		"temperature":   func(c *Config) { c.E2E.Temperature = 0 },
		"lr":            func(c *Config) { c.Reranker.LR = 0 },
		"max_positions": func(c *Config) { c.PassageLen = 1000 },
	} {
		c := SmallConfig()
		mut(c)
		if err := c.Check(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	p := t.TempDir() + "/bad.json"
	os.WriteFile(p, []byte(`{"dpr": [}`), 0o644)
	if _, err := LoadConfig(p, nil); err == nil {
		t.Error("malformed config: no error")
	}
}
