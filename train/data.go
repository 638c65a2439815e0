package train

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/re2g/re2g/data"
)

// Question is one training or dev example: its input (a question, a claim,
// the turns of a dialogue), reference outputs (answers, labels, responses)
// and gold provenance as passage ids of the index.
type Question struct {
	ID      string
	Text    string
	Answers []string
	Gold    []string
}

// Positives maps a KILT example's provenance to the ids of the corpus
// passages that are its positives (kilt.PassageMap.Positives); an error is
// a malformed provenance entry.
type Positives func(prov []data.KILTProvenance) ([]string, error)

// TaskStats counts what became of a task file's examples.
type TaskStats struct {
	File       string `json:"file"`
	Read       int    `json:"read"`
	Used       int    `json:"used"`
	NoPositive int    `json:"no_positive"` // provenance matched no passage of the corpus (left out)
	NoAnswer   int    `json:"no_answer"`   // kept, but the generator phases skip them
	Malformed  int    `json:"malformed"`   // lines the reader skipped
}

// LoadTask reads a KILT task file (jsonl, optionally gzipped) into
// questions whose gold passages come from their provenance through pos.
// Examples without a usable positive are counted and left out; a file
// with none left is an error.
func LoadTask(path string, pos Positives) ([]Question, TaskStats, error) {
	st := TaskStats{File: path}
	rep := &data.Report{}
	exs, err := data.LoadKILTTask(path, rep)
	if err != nil {
		return nil, st, err
	}
	st.Read, st.Malformed = len(exs), len(rep.Skips)
	out := make([]Question, 0, len(exs))
	for _, ex := range exs {
		q := Question{ID: ex.ID, Text: ex.Input}
		var prov []data.KILTProvenance
		seenA := map[string]bool{}
		for _, o := range ex.Output {
			if a := strings.TrimSpace(o.Answer); a != "" && !seenA[a] {
				seenA[a] = true
				q.Answers = append(q.Answers, a)
			}
			prov = append(prov, o.Provenance...)
		}
		gold, err := pos(prov)
		if err != nil {
			st.Malformed++
			slog.Warn("malformed provenance", "file", path, "example", ex.ID, "err", err)
			continue
		}
		seen := map[string]bool{}
		for _, id := range gold {
			if !seen[id] {
				seen[id] = true
				q.Gold = append(q.Gold, id)
			}
		}
		if len(q.Gold) == 0 {
			st.NoPositive++
			continue
		}
		if len(q.Answers) == 0 {
			st.NoAnswer++
		}
		out = append(out, q)
	}
	st.Used = len(out)
	if len(out) == 0 {
		return nil, st, fmt.Errorf("task %s: none of its %d examples has a positive passage in the corpus (%d malformed lines)", path, st.Read, st.Malformed)
	}
	if st.NoPositive > 0 || st.Malformed > 0 {
		slog.Warn("task examples left out", "file", path, "read", st.Read, "no_positive", st.NoPositive, "malformed", st.Malformed)
	}
	return out, st, nil
}

// Dataset is what the phases train and evaluate on.
type Dataset struct {
	Train, Dev []Question
	Stats      []TaskStats
}

// LoadDataset reads the training and dev task files, with positives from pos.
func LoadDataset(ctx context.Context, trainPath, devPath string, pos Positives) (*Dataset, error) {
	if trainPath == "" || devPath == "" {
		return nil, fmt.Errorf("train: a training and a dev task file are needed (--train, --dev)")
	}
	ds := &Dataset{}
	for _, x := range []struct {
		path string
		dst  *[]Question
	}{{trainPath, &ds.Train}, {devPath, &ds.Dev}} {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		qs, st, err := LoadTask(x.path, pos)
		if err != nil {
			return nil, err
		}
		*x.dst = qs
		ds.Stats = append(ds.Stats, st)
	}
	return ds, nil
}

// withAnswers are the questions that have a reference output.
func withAnswers(qs []Question) []Question {
	var out []Question
	for _, q := range qs {
		if len(q.Answers) > 0 {
			out = append(out, q)
		}
	}
	return out
}

// sample picks n of qs by a seeded shuffle, in their original order.
func sample(qs []Question, n int, seed uint64) []Question {
	if n <= 0 || n >= len(qs) {
		return qs
	}
	idx := rand.New(rand.NewPCG(seed, 0x5a3)).Perm(len(qs))[:n]
	sort.Ints(idx)
	out := make([]Question, n)
	for i, j := range idx {
		out[i] = qs[j]
	}
	return out
}

func (q Question) isGold(id string) bool {
	for _, g := range q.Gold {
		if g == id {
			return true
		}
	}
	return false
}
