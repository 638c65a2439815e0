package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/re2g/re2g/kilt"
	"github.com/urfave/cli/v2"
)

func init() {
	subcommand("eval", "evaluate retrieval and answers", &cli.Command{
		Name:  "kilt",
		Usage: "score KILT predictions against gold: R-Precision, recall@k, EM, F1, accuracy, ROUGE-L and the KILT variants",
		Description: "Computes the metrics of KILT's eval_retrieval.py and eval_downstream.py. Prints a table to\n" +
			"stderr and, as the last line of stdout, one JSON object of the metrics. The downstream metrics\n" +
			"are computed when the predictions carry answers; the KILT variants count them only where\n" +
			"R-Precision (under --rank-keys) is 1.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "gold", Required: true, Usage: "gold KILT `FILE` (JSON lines)"},
			&cli.StringFlag{Name: "pred", Required: true, Usage: "predictions KILT `FILE` (JSON lines)"},
			&cli.StringFlag{Name: "ks", Value: "1,5", Usage: "comma-separated cut-offs k for precision@k, recall@k (k>1), success_rate@k (k>1)"},
			&cli.StringFlag{Name: "rank-keys", Value: "wikipedia_id", Usage: "comma-separated provenance keys that identify evidence: wikipedia_id (page level), or e.g. wikipedia_id,start_paragraph_id (passage level)"},
			&cli.BoolFlag{Name: "retrieval-only", Usage: "skip the downstream metrics"},
			&cli.BoolFlag{Name: "allow-missing", Usage: "score gold ids without a prediction as empty predictions instead of failing (KILT's scripts fail)"},
		},
		Action: func(c *cli.Context) error {
			ks, err := parseKs(c.String("ks"))
			if err != nil {
				return err
			}
			var keys []string
			for _, k := range strings.Split(c.String("rank-keys"), ",") {
				if k = strings.TrimSpace(k); k != "" {
					keys = append(keys, k)
				}
			}
			if len(keys) == 0 {
				return fmt.Errorf("--rank-keys: no key given")
			}
			gold, err := kilt.ReadFile(c.String("gold"))
			if err != nil {
				return fmt.Errorf("--gold: %w", err)
			}
			pred, err := kilt.ReadFile(c.String("pred"))
			if err != nil {
				return fmt.Errorf("--pred: %w", err)
			}
			res, err := kilt.Evaluate(gold, pred, kilt.Options{
				Ks: ks, RankKeys: keys, RetrievalOnly: c.Bool("retrieval-only"), AllowMissing: c.Bool("allow-missing"),
			})
			if err != nil {
				return fmt.Errorf("eval kilt: %w", err)
			}
			printKILTTable(c.App.ErrWriter, res)
			b, err := json.Marshal(res)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(c.App.Writer, string(b))
			return err
		},
	})
}

func parseKs(s string) ([]int, error) {
	var ks []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		k, err := strconv.Atoi(f)
		if err != nil || k <= 0 {
			return nil, fmt.Errorf("--ks: %q is not a positive integer", f)
		}
		ks = append(ks, k)
	}
	if len(ks) == 0 {
		return nil, fmt.Errorf("--ks: no cut-off given")
	}
	return ks, nil
}

// printKILTTable writes the metrics as a table, the headline ones first.
func printKILTTable(w io.Writer, r *kilt.Result) {
	fmt.Fprintf(w, "KILT evaluation: %d datapoints, rank keys %s", r.Count, strings.Join(r.RankKeys, "+"))
	if r.Missing > 0 {
		fmt.Fprintf(w, ", %d without prediction (scored empty)", r.Missing)
	}
	if r.Unmatched > 0 {
		fmt.Fprintf(w, ", %d predictions not in the gold (ignored)", r.Unmatched)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "group\tmetric\tvalue\t")
	row := func(group, name string, v float64) { fmt.Fprintf(tw, "%s\t%s\t%.4f\t\n", group, name, v) }
	head := []string{"Rprec"}
	for _, k := range r.Ks {
		if k > 1 {
			head = append(head, fmt.Sprintf("recall@%d", k))
		}
	}
	for _, k := range r.Ks {
		head = append(head, fmt.Sprintf("precision@%d", k))
	}
	for _, k := range r.Ks {
		if k > 1 {
			head = append(head, fmt.Sprintf("success_rate@%d", k))
		}
	}
	done := map[string]bool{}
	for _, m := range head {
		row("retrieval", m, r.Retrieval[m])
		done[m] = true
	}
	var rest []string
	for m := range r.Retrieval {
		if !done[m] {
			rest = append(rest, m)
		}
	}
	sort.Strings(rest)
	for _, m := range rest {
		row("retrieval", m, r.Retrieval[m])
	}
	if r.Downstream == nil {
		fmt.Fprintln(tw, "downstream\t(no answers: not computed)\t\t")
	} else {
		for _, m := range []string{"em", "f1", "accuracy", "rougel"} {
			row("downstream", m, r.Downstream[m])
		}
		for _, m := range []string{"KILT-em", "KILT-f1", "KILT-accuracy", "KILT-rougel"} {
			row("kilt", m, r.KILT[m])
		}
	}
	tw.Flush()
}
