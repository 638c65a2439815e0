package main

import (
	"fmt"
	"os"

	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/kilt"
	"github.com/urfave/cli/v2"
)

func init() {
	subcommand("data", "convert and split data sets", &cli.Command{
		Name:  "squad-kilt",
		Usage: "turn a SQuAD v1.1 file into a KILT task file (passage-level provenance), optionally one split of it",
		Description: `Each question becomes {"id","input","output":[{"answer"},...,{"provenance":[{"wikipedia_id":
PASSAGE_ID,"title"}]}]} where PASSAGE_ID is the question's own paragraph as re2g index names it
("<title>#<n>"); evaluate predictions of re2g run --provenance passage against it.
--split train|dev keeps one side of the split by article (--dev-percent, --seed), as training uses.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "in", Required: true, Usage: "SQuAD v1.1 JSON"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "KILT task file (written atomically)"},
			&cli.StringFlag{Name: "split", Value: "all", Usage: "all, train or dev"},
			&cli.IntFlag{Name: "dev-percent", Value: 20, Usage: "share of articles in dev"},
			&cli.StringFlag{Name: "seed", Value: "re2g", Usage: "split seed"},
			&cli.IntFlag{Name: "limit", Usage: "keep the first N questions (0: all)"},
		},
		Action: func(c *cli.Context) error {
			rep := &data.Report{}
			sq, err := data.LoadSQuAD(c.String("in"), rep)
			if err != nil {
				return err
			}
			train, dev := sq.SplitByArticle(c.Int("dev-percent"), c.String("seed"))
			switch c.String("split") {
			case "all":
			case "train":
				sq = train
			case "dev":
				sq = dev
			default:
				return fmt.Errorf("--split %q: want all, train or dev", c.String("split"))
			}
			titles := map[string]string{}
			for _, p := range sq.Passages {
				titles[p.ID] = p.Title
			}
			qs := sq.Questions
			if n := c.Int("limit"); n > 0 && n < len(qs) {
				qs = qs[:n]
			}
			recs := make([]kilt.Record, 0, len(qs))
			for _, q := range qs {
				r := kilt.NewGold(q.ID, q.Question, q.Answers, []kilt.Provenance{{"wikipedia_id": q.PassageID, "title": titles[q.PassageID]}})
				recs = append(recs, r)
			}
			if err := kilt.WriteFile(c.String("out"), recs); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "%d questions over %d passages (%s split) -> %s\n", len(recs), len(sq.Passages), c.String("split"), c.String("out"))
			return nil
		},
	})
}
