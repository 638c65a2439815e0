package neural

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/re2g/re2g/model/bart"
	"github.com/re2g/re2g/torch"
)

// The fixtures of testdata/hf (scripts/make_hf_fixtures.py) through the
// wrappers users call: text in, transformers' numbers and text out. These
// check tokenizers and models together.

const fixtures = "../testdata/hf"

var formats = []string{"safetensors", "bin"}

type tensorRef struct {
	Shape []int64   `json:"shape"`
	Data  []float64 `json:"data"`
}

type genCase struct {
	Kwargs    map[string]any `json:"kwargs"`
	Sequences [][]int64      `json:"sequences"`
}

type fixtureRef struct {
	Texts struct {
		Queries      []string      `json:"queries"`
		Titles       []string      `json:"titles"`
		Texts        []string      `json:"texts"`
		Passages     []string      `json:"passages"`
		Sources      []string      `json:"sources"`
		InputStrings []string      `json:"input_strings"`
		Docs         [][][2]string `json:"docs"`
	} `json:"texts"`
	Inputs   map[string]json.RawMessage `json:"inputs"`
	Outputs  map[string]tensorRef       `json:"outputs"`
	Generate map[string]genCase         `json:"generate"`
	Decoded  map[string][]string        `json:"decoded"`
	RAG      *struct {
		TitleSep string `json:"title_sep"`
		DocSep   string `json:"doc_sep"`
	} `json:"rag"`
}

func readFixture(t *testing.T, name string) *fixtureRef {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, name, "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r fixtureRef
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

func (r *fixtureRef) ids(t *testing.T, name string) [][]int64 {
	t.Helper()
	var v [][]int64
	if err := json.Unmarshal(r.Inputs[name], &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// rows are want's rows [i, j, :] (the CLS row of hidden states when
// last is false: [i, 0, :]).
func vecDiff(t *testing.T, got [][]float32, want tensorRef) float64 {
	t.Helper()
	n := int(want.Shape[0])
	if len(got) != n {
		t.Fatalf("%d vectors, reference %d", len(got), n)
	}
	stride := len(want.Data) / n
	d := 0.0
	for i, v := range got {
		for j, x := range v {
			d = math.Max(d, math.Abs(float64(x)-want.Data[i*stride+j]))
		}
	}
	return d
}

func TestHFEncoders(t *testing.T) {
	for _, name := range []string{"dpr-question", "dpr-ctx", "bert", "rag-token", "rag-sequence"} {
		r := readFixture(t, name)
		for _, f := range formats {
			t.Run(name+"/"+f, func(t *testing.T) {
				e, err := LoadEncoder(filepath.Join(fixtures, name, f), Options{})
				if err != nil {
					t.Fatal(err)
				}
				defer e.Close()
				var got [][]float32
				out := "pooler_output"
				switch name {
				case "dpr-ctx":
					ps := make([]Passage, len(r.Texts.Titles))
					for i := range ps {
						ps[i] = Passage{Title: r.Texts.Titles[i], Text: r.Texts.Texts[i]}
					}
					got, err = e.EncodePassages(context.Background(), ps)
				default:
					got, err = e.EncodeQueries(context.Background(), r.Texts.Queries)
				}
				if err != nil {
					t.Fatal(err)
				}
				switch name {
				case "bert":
					out = "last_hidden_state"
				case "rag-token", "rag-sequence":
					out = "question_encoder_pooler_output"
					if !e.Question {
						t.Error("a RAG question encoder not marked as one")
					}
				}
				d := vecDiff(t, got, r.Outputs[out])
				t.Logf("%d texts, max |diff| %.3g", len(got), d)
				if d > 1e-5 {
					t.Errorf("differs from transformers by %g", d)
				}
			})
		}
	}
}

func TestHFRerankers(t *testing.T) {
	for _, name := range []string{"cross-encoder-1", "cross-encoder-2"} {
		r := readFixture(t, name)
		for _, f := range formats {
			t.Run(name+"/"+f, func(t *testing.T) {
				rr, err := LoadReranker(filepath.Join(fixtures, name, f), Options{})
				if err != nil {
					t.Fatal(err)
				}
				defer rr.Close()
				pairs := make([]Pair, len(r.Texts.Queries))
				for i := range pairs {
					pairs[i] = Pair{Query: r.Texts.Queries[i], Passage: r.Texts.Passages[i]}
				}
				sc, err := rr.Score(context.Background(), pairs)
				if err != nil {
					t.Fatal(err)
				}
				lg := r.Outputs["logits"]
				labels := int(lg.Shape[1])
				d := 0.0
				for i, s := range sc {
					d = math.Max(d, math.Abs(s-lg.Data[i*labels+labels-1]))
				}
				t.Logf("%d pairs (vocab.txt + tokenizer_config.json), max |diff| %.3g", len(sc), d)
				if d > 1e-5 {
					t.Errorf("differs from transformers by %g", d)
				}
			})
		}
	}
}

func unpadded(row, mask []int64) []int {
	var out []int
	for i, id := range row {
		if mask[i] != 0 {
			out = append(out, int(id))
		}
	}
	return out
}

func trimPad(ids []int64, pad int64) []int64 {
	for len(ids) > 1 && ids[len(ids)-1] == pad {
		ids = ids[:len(ids)-1]
	}
	return ids
}

// checkGenerated compares Generate's outputs (per source, best first) with
// a recorded case: ids and decoded text.
func checkGenerated(t *testing.T, outs [][]Output, c genCase, texts []string, pad int64) {
	t.Helper()
	k := 0
	for _, per := range outs {
		for _, o := range per {
			if k >= len(c.Sequences) {
				t.Fatalf("more sequences than transformers' %d", len(c.Sequences))
			}
			if want := trimPad(c.Sequences[k], pad); !slices.Equal(o.IDs, want) {
				t.Errorf("sequence %d: %v, transformers %v", k, o.IDs, want)
			}
			if o.Text != texts[k] {
				t.Errorf("sequence %d text %q, transformers %q", k, o.Text, texts[k])
			}
			k++
		}
	}
	if k != len(c.Sequences) {
		t.Errorf("%d sequences, transformers %d", k, len(c.Sequences))
	}
}

func TestHFGeneratorBART(t *testing.T) {
	r := readFixture(t, "bart")
	for _, f := range formats {
		t.Run(f, func(t *testing.T) {
			g, err := LoadGenerator(filepath.Join(fixtures, "bart", f), Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			if g.Format != DefaultSourceFormat() || g.SourceQuery("Who? É") != "Who? É" {
				t.Errorf("a BART directory's format %+v", g.Format)
			}
			checkTokenized(t, g, r.Texts.Sources, r.ids(t, "input_ids"), r.ids(t, "attention_mask"))
			// beam3_lp2_min6 is early_stopping false with a length penalty:
			// transformers 5's stopping rule (the best running beam against
			// the worst finished one).
			for _, name := range []string{"greedy", "greedy_no_repeat_2", "beam4", "beam3_lp2_min6"} {
				c := r.Generate[name]
				cfg := *g.Config
				num := func(k string, def float64) float64 {
					if v, ok := c.Kwargs[k].(float64); ok {
						return v
					}
					return def
				}
				cfg.NumBeams, cfg.NumReturnSequences = int(num("num_beams", 1)), int(num("num_return_sequences", 1))
				cfg.MaxLength, cfg.EarlyStopping = int(num("max_length", 20)), bart.EarlyStopFalse
				if c.Kwargs["early_stopping"] == true {
					cfg.EarlyStopping = bart.EarlyStopTrue
				}
				cfg.NoRepeatNgramSize, cfg.MinLength, cfg.LengthPenalty = int(num("no_repeat_ngram_size", 0)), int(num("min_length", 0)), num("length_penalty", 1)
				outs, err := g.Generate(context.Background(), r.Texts.Sources, &cfg)
				if err != nil {
					t.Fatal(err)
				}
				checkGenerated(t, outs, c, r.Decoded[name], g.Config.PadTokenID)
			}
		})
	}
}

func checkTokenized(t *testing.T, g *Generator, sources []string, ids, mask [][]int64) {
	t.Helper()
	s := torch.NewScope().NoGrad()
	defer s.Close()
	gotIDs, gotMask, err := g.Tokenize(context.Background(), s, sources)
	if err != nil {
		t.Fatal(err)
	}
	gi, _ := gotIDs.Int64s()
	gm, _ := gotMask.Int64s()
	w := int(gotIDs.Size(1))
	for i := range sources {
		got := unpadded(gi[i*w:(i+1)*w], gm[i*w:(i+1)*w])
		if want := unpadded(ids[i], mask[i]); !slices.Equal(got, want) {
			t.Errorf("source %d tokenized as %v, transformers %v", i, got, want)
		}
	}
}

// TestHFGeneratorRAG: a RAG directory's generator lays its sources out as
// RagRetriever.postprocess_docs does (passage first, the RagConfig's
// separators, the query as the question encoder's tokenizer decodes it),
// tokenizes them as transformers (max_combined_length) and generates with
// the directory's own generation settings what transformers generates.
func TestHFGeneratorRAG(t *testing.T) {
	for _, name := range []string{"rag-token", "rag-sequence"} {
		r := readFixture(t, name)
		for _, f := range formats {
			t.Run(name+"/"+f, func(t *testing.T) {
				g, err := LoadGenerator(filepath.Join(fixtures, name, f), Options{})
				if err != nil {
					t.Fatal(err)
				}
				defer g.Close()
				want := SourceFormat{Layout: PassageFirst, TitleSep: r.RAG.TitleSep, DocSep: r.RAG.DocSep}
				if g.Format != want {
					t.Errorf("format %+v, want %+v", g.Format, want)
				}
				k := 0
				for i, q := range r.Texts.Queries {
					if got := g.SourceQuery(q); got != r.Texts.InputStrings[i] {
						t.Errorf("query %q as the sources hold it: %q, transformers %q", q, got, r.Texts.InputStrings[i])
					}
					for _, d := range r.Texts.Docs[i] {
						if got := g.Source(q, d[0], d[1]); got != r.Texts.Sources[k] {
							t.Errorf("source %d:\n%q\ntransformers\n%q", k, got, r.Texts.Sources[k])
						}
						k++
					}
				}
				checkTokenized(t, g, r.Texts.Sources, r.ids(t, "context_input_ids"), r.ids(t, "context_attention_mask"))
				outs, err := g.Generate(context.Background(), r.Texts.Sources, nil)
				if err != nil {
					t.Fatal(err)
				}
				checkGenerated(t, outs, r.Generate["dir_config"], r.Decoded["dir_config"], g.Config.PadTokenID)
			})
		}
	}
}
