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
--pages KS.jsonl also writes the articles as a KILT knowledge source (one page a line: {"wikipedia_id":
the title with "_" for spaces, "wikipedia_title", "text": [paragraphs]}, paragraph n being "<title>#<n>")
and gives the provenance as KILT's: {"wikipedia_id": PAGE, "title", "start_paragraph_id": n,
"end_paragraph_id": n}; split the pages with re2g data kilt-passages and find positives with
re2g data kilt-positives.
--split train|dev keeps one side of the split by article that re2g train uses (--dev-articles, --seed).`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "in", Required: true, Usage: "SQuAD v1.1 JSON"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "KILT task file (written atomically)"},
			&cli.StringFlag{Name: "split", Value: "all", Usage: "all, train or dev"},
			&cli.IntFlag{Name: "dev-articles", Value: train.DefaultDevArticles, Usage: "articles held out for dev"},
			&cli.Uint64Flag{Name: "seed", Value: train.SmallConfig().Seed, Usage: "split seed"},
			&cli.IntFlag{Name: "limit", Usage: "keep the first N questions (0: all)"},
			&cli.StringFlag{Name: "pages", Usage: "also write the articles as a KILT knowledge source here, and give page + paragraph provenance"},
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
			pages := c.String("pages")
			if pages != "" {
				ps, err := sq.Pages()
				if err != nil {
					return err
				}
				if err := writeJSONL(pages, len(ps), func(i int) any { return ps[i] }); err != nil {
					return err
				}
				fmt.Fprintf(os.Stderr, "%d pages -> %s\n", len(ps), pages)
			}
			recs := make([]kilt.Record, 0, len(qs))
			for _, q := range qs {
				prov := make([]kilt.Provenance, 0, len(q.Gold))
				for _, g := range q.Gold {
					pv := kilt.Provenance{"wikipedia_id": g, "title": titles[g]}
					if pages != "" {
						wid, n, ok := data.SQuADParagraph(g)
						if !ok {
							return fmt.Errorf("question %s: gold passage %q is not <title>#<n>", q.ID, g)
						}
						pv = kilt.Provenance{"wikipedia_id": wid, "title": titles[g], "start_paragraph_id": n, "end_paragraph_id": n}
					}
					prov = append(prov, pv)
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
