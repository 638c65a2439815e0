package neural

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/re2g/re2g/model/bart"
)

// TestHFBeamEarlyStoppingFalse: with early_stopping false (RAG's and many
// BART checkpoints' setting) beam search returns what transformers 5's
// generate() returns, whose search stops when the best running beam cannot
// beat the worst finished hypothesis (scripts/make_beam_fixture.py; the
// older rule, the best candidate including finished ones, returns other
// hypotheses on these sources).
func TestHFBeamEarlyStoppingFalse(t *testing.T) {
	checkBeamFixture(t, "beam_early_stopping_false.json")
}

// TestHFBeamLengthLimit: beam 4 with 4 returned and max_new_tokens 4 to 8,
// where hypotheses end at and one to three tokens before the limit, under
// each early_stopping mode, length_penalty 0.5, 1 and 2, min_length,
// no_repeat_ngram_size and forced EOS on and off, returns exactly
// transformers 5.12's sequences and scores (scripts/make_beam_fixture.py).
func TestHFBeamLengthLimit(t *testing.T) {
	checkBeamFixture(t, "beam_length_limit.json")
}

// beamCase is one generate() call of a fixture: its kwargs as transformers
// got them (absent ones come from generation_config.json) and its outputs.
type beamCase struct {
	Kwargs    map[string]json.RawMessage `json:"kwargs"`
	Sequences [][][]int64                `json:"sequences"`
	Scores    [][]float64                `json:"scores"`
}

// apply sets cfg from the case's kwargs, as generate(**kwargs) overrides the
// model's generation config.
func (c *beamCase) apply(t *testing.T, cfg *bart.GenerationConfig) {
	t.Helper()
	for k, v := range c.Kwargs {
		var err error
		switch k {
		case "num_beams":
			err = json.Unmarshal(v, &cfg.NumBeams)
		case "num_return_sequences":
			err = json.Unmarshal(v, &cfg.NumReturnSequences)
		case "max_length":
			err = json.Unmarshal(v, &cfg.MaxLength)
		case "max_new_tokens":
			err = json.Unmarshal(v, &cfg.MaxNewTokens)
		case "min_length":
			err = json.Unmarshal(v, &cfg.MinLength)
		case "no_repeat_ngram_size":
			err = json.Unmarshal(v, &cfg.NoRepeatNgramSize)
		case "length_penalty":
			err = json.Unmarshal(v, &cfg.LengthPenalty)
		case "early_stopping":
			err = json.Unmarshal(v, &cfg.EarlyStopping)
		case "forced_eos_token_id":
			cfg.ForcedEOSTokenID = nil
			err = json.Unmarshal(v, &cfg.ForcedEOSTokenID)
		default:
			t.Fatalf("fixture kwarg %q is not handled by the test", k)
		}
		if err != nil {
			t.Fatalf("fixture kwarg %s=%s: %v", k, v, err)
		}
	}
	if _, ok := c.Kwargs["max_new_tokens"]; !ok {
		cfg.MaxNewTokens = 0
	}
}

func checkBeamFixture(t *testing.T, file string) {
	b, err := os.ReadFile(filepath.Join(fixtures, "bart", file))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Version string              `json:"transformers_version"`
		Sources []string            `json:"sources"`
		Cases   map[string]beamCase `json:"cases"`
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	if len(ref.Cases) == 0 || len(ref.Sources) == 0 {
		t.Fatal("empty fixture")
	}
	g, err := LoadGenerator(filepath.Join(fixtures, "bart", "safetensors"), Options{MaxLength: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	names := make([]string, 0, len(ref.Cases))
	for name := range ref.Cases {
		names = append(names, name)
	}
	sort.Strings(names)
	var seqs, bad int
	maxDiff := 0.0
	for _, name := range names {
		c := ref.Cases[name]
		cfg := *g.Config
		c.apply(t, &cfg)
		outs, err := g.Generate(context.Background(), ref.Sources, &cfg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i, per := range outs {
			if len(per) != len(c.Sequences[i]) {
				t.Fatalf("%s source %d: %d sequences, transformers %d", name, i, len(per), len(c.Sequences[i]))
			}
			for k, o := range per {
				seqs++
				want := trimPad(c.Sequences[i][k], g.Config.PadTokenID)
				d := math.Abs(o.Score - c.Scores[i][k])
				maxDiff = math.Max(maxDiff, d)
				if !slices.Equal(o.IDs, want) || d > 1e-4 {
					bad++
					t.Errorf("%s source %d sequence %d: %v score %.6f, transformers %s %v score %.6f", name, i, k, o.IDs, o.Score, ref.Version, want, c.Scores[i][k])
				}
			}
		}
	}
	t.Logf("%s: %d cases, %d sequences, %d differ; max score difference %.2g", file, len(names), seqs, bad, maxDiff)
}
