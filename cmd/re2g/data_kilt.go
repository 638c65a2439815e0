package main

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/internal/atomicfile"
	"github.com/re2g/re2g/internal/progress"
	"github.com/re2g/re2g/kilt"
)

func init() {
	def := data.DefaultSplitOptions()
	subcommand("data", "convert and split data sets", &cli.Command{
		Name:  "kilt-passages",
		Usage: "split a KILT knowledge source (pages) into passages of 50-100 words, as IBM's Re2G reference does",
		Description: `Reads kilt_knowledgesource.json[.gz] (one page a line: {"wikipedia_id" or "_id", "wikipedia_title",
"text": [paragraphs]}) and writes {"pid","title","text"} lines, pid "<wikipedia_id>::[first,last]"
(paragraph indices; "[first,last)" when the end of paragraph last was cut off, "(first,last]" when the
beginning of paragraph first was), split along paragraph boundaries as kgi-slot-filling's
kilt_passage_corpus.py does. re2g index --corpus reads the output (the page of a passage is the part of
its pid before "::"). --out ending in .gz is gzipped. Streams: the source is never held in memory.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "in", Required: true, Usage: "KILT knowledge source, one page a line (optionally gzipped)"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "passages jsonl (written atomically; .gz: gzipped)"},
			&cli.IntFlag{Name: "min-words", Value: def.MinWords, Usage: "fewest words of a passage (unless its page is shorter)"},
			&cli.IntFlag{Name: "max-words", Value: def.MaxWords, Usage: "most words of a passage"},
			&cli.StringFlag{Name: "ids", Usage: "also write the passage ids, one a line (the reference's passage_ids.txt)"},
			&cli.BoolFlag{Name: "strict", Usage: "fail on the first malformed page"},
		},
		Action: dataKILTPassages,
	})
	subcommand("data", "convert and split data sets", &cli.Command{
		Name:  "kilt-positives",
		Usage: "find the positive passages of KILT examples from their provenance, as IBM's Re2G reference does",
		Description: `For every example of --task, the passages of --corpus that its provenance points to (see
kilt/positives.go): the passages of the provenance's page whose paragraph range covers at least
--min-overlap of a provenance entry's paragraphs (or, when none does, the ones covering the most), or the
passage itself for passage-level provenance. Writes {"id","query","answers","positive_pids",
"overlap_pids":[[pid, overlap], ...]} lines, like kgi-slot-filling's kilt2positive_pids.py; examples with
no overlapping passage are left out and counted on stderr. The corpus is read for its ids only (any
format re2g index reads except SQuAD JSON).`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "corpus", Required: true, Usage: "passages (re2g data kilt-passages output, KILT passages or pages, BEIR)"},
			&cli.StringFlag{Name: "task", Required: true, Usage: "KILT task file with provenance"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "positives jsonl (written atomically)"},
			&cli.Float64Flag{Name: "min-overlap", Value: kilt.DefaultMinOverlap, Usage: "share of a provenance entry a positive covers (0: every overlapping passage)"},
		},
		Action: dataKILTPositives,
	})
	subcommand("data", "convert and split data sets", &cli.Command{
		Name:  "scifact-kilt",
		Usage: "turn SciFact claims into a KILT fact-checking task (answers SUPPORTS / REFUTES, provenance the evidence abstracts)",
		Description: `Each claim with evidence becomes {"id","input":CLAIM,"output":[{"answer":"SUPPORTS"|"REFUTES",
"provenance":[{"wikipedia_id":DOC_ID,"title"},...]}]}, as KILT's FEVER; claims without evidence (SciFact's
"not enough info", KILT's FEVER has none) are left out and counted. The provenance ids are the corpus
doc_ids, which are passage ids of the corpus re2g data convert --from scifact writes.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "in", Required: true, Usage: "scifact_hf_csv.zip"},
			&cli.StringFlag{Name: "split", Value: "validation", Usage: "claims split: train, validation or test"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "KILT task file (written atomically)"},
		},
		Action: dataSciFactKILT,
	})
}

// writeMaybeGzip writes path atomically, gzipped when it ends in .gz.
func writeMaybeGzip(path string, fill func(w io.Writer) error) error {
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		var zw *gzip.Writer
		if strings.HasSuffix(path, ".gz") {
			zw = gzip.NewWriter(w)
			w = zw
		}
		bw := bufio.NewWriterSize(w, 1<<20)
		if err := fill(bw); err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		if zw != nil {
			return zw.Close()
		}
		return nil
	})
}

func dataKILTPassages(c *cli.Context) error {
	opt := data.SplitOptions{MinWords: c.Int("min-words"), MaxWords: c.Int("max-words")}
	var rep *data.Report
	if !c.Bool("strict") {
		rep = &data.Report{}
	}
	in, out := c.String("in"), c.String("out")
	f, err := data.Open(in)
	if err != nil {
		return fmt.Errorf("--in: %w", err)
	}
	defer f.Close()
	errw := c.App.ErrWriter
	if errw == nil {
		errw = os.Stderr
	}
	var idw *bufio.Writer
	var idFile *os.File
	if p := c.String("ids"); p != "" {
		// written beside the passages, renamed into place when they are done
		if idFile, err = os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".tmp-*"); err != nil {
			return fmt.Errorf("--ids: %w", err)
		}
		defer func() {
			idFile.Close()
			os.Remove(idFile.Name())
		}()
		idw = bufio.NewWriterSize(idFile, 1<<20)
	}
	bar := progress.NewWith(-1, "kilt-passages", "pages", progress.Options{Writer: errw})
	defer bar.Finish()
	var st data.SplitStats
	err = writeMaybeGzip(out, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		var err error
		st, err = data.SplitKILTSource(f, in, opt, rep, func(st *data.SplitStats) {
			if st.Pages%1024 == 0 {
				bar.Describe(fmt.Sprintf("%d passages", st.Passages))
			}
			bar.Set(st.Pages)
		}, func(p data.SplitPassage) error {
			if idw != nil {
				idw.WriteString(p.PID)
				idw.WriteByte('\n')
			}
			return enc.Encode(p)
		})
		return err
	})
	if err != nil {
		return err
	}
	bar.Finish()
	if idw != nil {
		if err := idw.Flush(); err != nil {
			return fmt.Errorf("--ids: %w", err)
		}
		if err := idFile.Sync(); err != nil {
			return fmt.Errorf("--ids: %w", err)
		}
		if err := idFile.Chmod(0o644); err != nil {
			return fmt.Errorf("--ids: %w", err)
		}
		if err := atomicfile.Rename(idFile.Name(), c.String("ids")); err != nil {
			return err
		}
	}
	if s := rep.Summary(); s != "" {
		fmt.Fprintln(errw, s)
	}
	fmt.Fprintf(errw, "%d pages (%d without text, %d shorter than %d words), %d paragraphs (%d longer than %d words) -> %d passages (%d cut at the end, %d at the start) in %s\n",
		st.Pages, st.EmptyPages, st.ShortPages, opt.MinWords, st.Paragraphs, st.LongParagraphs, opt.MaxWords,
		st.Passages, st.CutEnd, st.CutStart, out)
	return nil
}

// positiveLine is one line of kilt-positives' output.
type positiveLine struct {
	ID        string   `json:"id"`
	Query     string   `json:"query"`
	Answers   []string `json:"answers"`
	Positives []string `json:"positive_pids"`
	Overlaps  [][2]any `json:"overlap_pids"`
}

func dataKILTPositives(c *cli.Context) error {
	errw := c.App.ErrWriter
	if errw == nil {
		errw = os.Stderr
	}
	rep := &data.Report{}
	ids, pages, err := data.LoadPassageIDs(c.String("corpus"), rep)
	if err != nil {
		return err
	}
	if s := rep.Summary(); s != "" {
		fmt.Fprintln(errw, s)
	}
	m, err := kilt.NewPassageMapPages(ids, pages)
	if err != nil {
		return err
	}
	ids, pages = nil, nil
	m.MinOverlap = c.Float64("min-overlap")
	recs, err := kilt.ReadFile(c.String("task"))
	if err != nil {
		return err
	}
	var lines []positiveLine
	none, bad := 0, 0
	var dist [6]int
	for _, r := range recs {
		ev, err := kilt.RecordEvidence(r)
		var ms []kilt.Match
		if err == nil {
			ms, err = m.Matches(ev)
		}
		if err != nil {
			bad++
			if bad <= 3 {
				fmt.Fprintf(errw, "%s:%d: %v\n", c.String("task"), r.Line, err)
			}
			continue
		}
		pos := kilt.PositivesOf(ms, m.MinOverlap)
		dist[min(len(pos), len(dist)-1)]++
		if len(ms) == 0 {
			none++
			continue
		}
		l := positiveLine{ID: r.ID, Query: r.Input, Answers: []string{}, Positives: pos}
		for _, o := range r.Output {
			if o.HasAnswer {
				l.Answers = append(l.Answers, o.Answer)
			}
		}
		for _, x := range ms {
			l.Overlaps = append(l.Overlaps, [2]any{x.ID, x.Overlap})
		}
		lines = append(lines, l)
	}
	if err := writeJSONL(c.String("out"), len(lines), func(i int) any { return lines[i] }); err != nil {
		return err
	}
	fmt.Fprintf(errw, "corpus: %d passages on %d pages (%d without a paragraph range, %d without a page)\n",
		m.Len(), m.Pages(), m.Unranged(), m.Unpaged())
	var parts []string
	for k, n := range dist {
		label := fmt.Sprint(k)
		if k == len(dist)-1 {
			label = ">=" + label
		}
		parts = append(parts, fmt.Sprintf("%s: %d", label, n))
	}
	fmt.Fprintf(errw, "%d examples: %d with positives -> %s, %d without any passage, %d with bad provenance; positives per example %s\n",
		len(recs), len(lines), c.String("out"), none, bad, strings.Join(parts, ", "))
	return nil
}

func dataSciFactKILT(c *cli.Context) error {
	errw := c.App.ErrWriter
	if errw == nil {
		errw = os.Stderr
	}
	sf, err := data.OpenSciFact(c.String("in"))
	if err != nil {
		return err
	}
	defer sf.Close()
	rep := &data.Report{}
	docs, err := sf.Corpus(rep)
	if err != nil {
		return err
	}
	titles := make(map[string]string, len(docs))
	for _, d := range docs {
		titles[d.ID] = d.Title
	}
	claims, err := sf.Verdicts(c.String("split"), rep)
	if err != nil {
		return err
	}
	var recs []kilt.Record
	nei, missing := 0, 0
	for _, cl := range claims {
		if cl.Label == "" {
			nei++
			continue
		}
		answer := map[string]string{"SUPPORT": "SUPPORTS", "CONTRADICT": "REFUTES"}[cl.Label]
		prov := make([]kilt.Provenance, 0, len(cl.Evidence))
		for _, d := range cl.Evidence {
			t, ok := titles[d]
			if !ok {
				missing++
			}
			prov = append(prov, kilt.Provenance{"wikipedia_id": d, "title": t})
		}
		r := kilt.NewGold(cl.ID, cl.Claim, nil, nil)
		r.Output = []kilt.Output{{Answer: answer, HasAnswer: true, Provenance: prov, HasProvenance: true}}
		recs = append(recs, r)
	}
	if err := kilt.WriteFile(c.String("out"), recs); err != nil {
		return err
	}
	if s := rep.Summary(); s != "" {
		fmt.Fprintln(errw, s)
	}
	fmt.Fprintf(errw, "%d claims (%s): %d -> %s, %d without evidence left out; %d evidence documents not in the corpus\n",
		len(claims), c.String("split"), len(recs), c.String("out"), nei, missing)
	return nil
}
