package main

import (
	"fmt"
	"os"

	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/kilt"
	"github.com/re2g/re2g/train"
	"github.com/urfave/cli/v2"
)

func init() {
	subcommand("data", "convert and split data sets", &cli.Command{
		Name:  "squad-kilt",
		Usage: "turn a SQuAD v1.1 file into a KILT task file (passage-level provenance), optionally one split of it",
		Description: `Each question becomes {"id","input","output":[{"answer"},...,{"provenance":[{"wikipedia_id":
PASSAGE_ID,"title"}]}]} where PASSAGE_ID is the question's own paragraph as re2g index names it
("<title>#<n>"); evaluate predictions of re2g run --provenance passage against it.
--split train|dev keeps one side of the split by article that re2g train uses (--dev-articles, --seed).`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "in", Required: true, Usage: "SQuAD v1.1 JSON"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "KILT task file (written atomically)"},
			&cli.StringFlag{Name: "split", Value: "all", Usage: "all, train or dev"},
			&cli.IntFlag{Name: "dev-articles", Value: train.SmallConfig().DevArticles, Usage: "articles held out for dev"},
			&cli.Uint64Flag{Name: "seed", Value: train.SmallConfig().Seed, Usage: "split seed"},
			&cli.IntFlag{Name: "limit", Usage: "keep the first N questions (0: all)"},
		},
		Action: func(c *cli.Context) error {
			sq, err := data.LoadSQuAD(c.String("in"), &data.Report{})
			if err != nil {
				return err
			}
			d, err := train.SplitSQuAD(sq, c.Int("dev-articles"), c.Uint64("seed"))
			if err != nil {
				return err
			}
			var qs []train.Question
			switch c.String("split") {
			case "all":
				qs = append(append(qs, d.Train...), d.Dev...)
			case "train":
				qs = d.Train
			case "dev":
				qs = d.Dev
			default:
				return fmt.Errorf("--split %q: want all, train or dev", c.String("split"))
			}
			titles := map[string]string{}
			for _, p := range sq.Passages {
				titles[p.ID] = p.Title
			}
			if n := c.Int("limit"); n > 0 && n < len(qs) {
				qs = qs[:n]
			}
			recs := make([]kilt.Record, 0, len(qs))
			for _, q := range qs {
				prov := make([]kilt.Provenance, 0, len(q.Gold))
				for _, g := range q.Gold {
					prov = append(prov, kilt.Provenance{"wikipedia_id": g, "title": titles[g]})
				}
				recs = append(recs, kilt.NewGold(q.ID, q.Text, q.Answers, prov))
			}
			if err := kilt.WriteFile(c.String("out"), recs); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "%d questions (%s split) -> %s\n", len(recs), c.String("split"), c.String("out"))
			return nil
		},
	})
}
