package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/internal/atomicfile"
)

func init() {
	subcommand("data", "load and convert test collections", &cli.Command{
		Name:  "convert",
		Usage: "convert a collection to BEIR layout: corpus.jsonl, queries.jsonl, qrels.txt (TREC)",
		Description: "--from beir:          --in corpus.jsonl[.gz] [--queries FILE] [--qrels FILE]\n" +
			"--from squad:         --in squad-v1.1.json (paragraphs → corpus, questions → queries + questions.jsonl with answers)\n" +
			"--from scifact:       --in scifact_hf_csv.zip [--split validation]\n" +
			"--from cacm:          --in cacm.tar.gz [--topics topics.cacm.txt] [--qrels qrels.cacm.txt]\n" +
			"--from trec:          --topics FILE [--qrels FILE]\n" +
			"--from kilt-passages: --in knowledge-source.jsonl (corpus.jsonl keeps wikipedia_id)\n" +
			"--from kilt-task:     --in task.jsonl (queries; qrels.txt judges provenance wikipedia_ids)\n" +
			"Malformed records are skipped and counted on stderr; --strict makes the first one an error.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "from", Required: true, Usage: "beir, squad, scifact, cacm, trec, kilt-passages or kilt-task"},
			&cli.StringFlag{Name: "in", Usage: "input file"},
			&cli.StringFlag{Name: "queries", Usage: "queries file (beir)"},
			&cli.StringFlag{Name: "topics", Usage: "TREC topics file (cacm, trec)"},
			&cli.StringFlag{Name: "qrels", Usage: "qrels file (beir, cacm, trec)"},
			&cli.StringFlag{Name: "split", Value: "validation", Usage: "SciFact claims split: train, validation or test"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "output directory"},
			&cli.BoolFlag{Name: "strict", Usage: "fail on the first malformed record"},
		},
		Action: dataConvert,
	})
}

func dataConvert(c *cli.Context) error {
	var rep *data.Report
	if !c.Bool("strict") {
		rep = &data.Report{}
	}
	need := func(flag string) (string, error) {
		if v := c.String(flag); v != "" {
			return v, nil
		}
		return "", fmt.Errorf("--from %s needs --%s", c.String("from"), flag)
	}
	var (
		corpus  any // []data.Passage or []data.KILTPassage
		queries []data.Query
		qrels   data.Qrels
		extra   func(dir string) error
		err     error
	)
	optQueries := func(flag string, load func(string, *data.Report) ([]data.Query, error)) error {
		if p := c.String(flag); p != "" {
			queries, err = load(p, rep)
		}
		return err
	}
	optQrels := func() error {
		if p := c.String("qrels"); p != "" {
			qrels, err = data.LoadQrels(p, rep)
		}
		return err
	}
	in := func() (string, error) { return need("in") }
	switch c.String("from") {
	case "beir":
		p, err := in()
		if err != nil {
			return err
		}
		if corpus, err = data.LoadCorpus(p, rep); err != nil {
			return err
		}
		if err := optQueries("queries", data.LoadQueries); err != nil {
			return err
		}
		if err := optQrels(); err != nil {
			return err
		}
	case "squad":
		p, err := in()
		if err != nil {
			return err
		}
		sq, err := data.LoadSQuAD(p, rep)
		if err != nil {
			return err
		}
		corpus, queries, qrels = sq.Passages, sq.Queries(), sq.Qrels()
		extra = func(dir string) error {
			return writeJSONL(filepath.Join(dir, "questions.jsonl"), len(sq.Questions), func(i int) any { return sq.Questions[i] })
		}
	case "scifact":
		p, err := in()
		if err != nil {
			return err
		}
		sf, err := data.OpenSciFact(p)
		if err != nil {
			return err
		}
		defer sf.Close()
		if corpus, err = sf.Corpus(rep); err != nil {
			return err
		}
		if queries, qrels, err = sf.Claims(c.String("split"), rep); err != nil {
			return err
		}
	case "cacm":
		p, err := in()
		if err != nil {
			return err
		}
		if corpus, err = data.LoadCACM(p, rep); err != nil {
			return err
		}
		if err := optQueries("topics", data.LoadTopics); err != nil {
			return err
		}
		if err := optQrels(); err != nil {
			return err
		}
	case "trec":
		t, err := need("topics")
		if err != nil {
			return err
		}
		if queries, err = data.LoadTopics(t, rep); err != nil {
			return err
		}
		if err := optQrels(); err != nil {
			return err
		}
	case "kilt-passages":
		p, err := in()
		if err != nil {
			return err
		}
		if corpus, err = data.LoadKILTPassages(p, rep); err != nil {
			return err
		}
	case "kilt-task":
		p, err := in()
		if err != nil {
			return err
		}
		exs, err := data.LoadKILTTask(p, rep)
		if err != nil {
			return err
		}
		qrels = data.Qrels{}
		for _, e := range exs {
			queries = append(queries, e.Query())
			for _, o := range e.Output {
				for _, pv := range o.Provenance {
					qrels.Add(e.ID, pv.WikipediaID, 1)
				}
			}
		}
		if qrels.Len() == 0 {
			qrels = nil
		}
	default:
		return fmt.Errorf("--from %q: want beir, squad, scifact, cacm, trec, kilt-passages or kilt-task", c.String("from"))
	}

	dir := c.String("out")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	var wrote []string
	switch ps := corpus.(type) {
	case []data.Passage:
		if err := writeJSONL(filepath.Join(dir, "corpus.jsonl"), len(ps), func(i int) any { return ps[i] }); err != nil {
			return err
		}
		wrote = append(wrote, fmt.Sprintf("corpus.jsonl (%d passages)", len(ps)))
	case []data.KILTPassage:
		if err := writeJSONL(filepath.Join(dir, "corpus.jsonl"), len(ps), func(i int) any { return ps[i] }); err != nil {
			return err
		}
		wrote = append(wrote, fmt.Sprintf("corpus.jsonl (%d passages)", len(ps)))
	}
	if queries != nil {
		if err := atomicfile.Write(filepath.Join(dir, "queries.jsonl"), 0o644, func(w io.Writer) error { return data.WriteQueries(w, queries) }); err != nil {
			return err
		}
		wrote = append(wrote, fmt.Sprintf("queries.jsonl (%d queries)", len(queries)))
	}
	if qrels != nil {
		if err := atomicfile.Write(filepath.Join(dir, "qrels.txt"), 0o644, func(w io.Writer) error { return data.WriteQrels(w, qrels) }); err != nil {
			return err
		}
		wrote = append(wrote, fmt.Sprintf("qrels.txt (%d judgements, %d queries)", qrels.Len(), len(qrels)))
	}
	if extra != nil {
		if err := extra(dir); err != nil {
			return err
		}
		wrote = append(wrote, "questions.jsonl")
	}
	if s := rep.Summary(); s != "" {
		fmt.Fprintln(os.Stderr, s)
	} else {
		fmt.Fprintln(os.Stderr, "skipped 0 records")
	}
	for _, w := range wrote {
		fmt.Fprintf(os.Stderr, "wrote %s/%s\n", dir, w)
	}
	return nil
}

func writeJSONL(path string, n int, item func(int) any) error {
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		bw := bufio.NewWriter(w)
		enc := json.NewEncoder(bw)
		enc.SetEscapeHTML(false)
		for i := range n {
			if err := enc.Encode(item(i)); err != nil {
				return err
			}
		}
		return bw.Flush()
	})
}
