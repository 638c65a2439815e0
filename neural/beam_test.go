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
)

// TestHFBeamEarlyStoppingFalse: with early_stopping false (RAG's and many
// BART checkpoints' setting) beam search returns what transformers 5's
// generate() returns, whose search stops when the best running beam cannot
// beat the worst finished hypothesis (scripts/make_beam_fixture.py; the
// older rule, the best candidate including finished ones, returns other
// hypotheses on these sources).
func TestHFBeamEarlyStoppingFalse(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(fixtures, "bart", "beam_early_stopping_false.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Sources []string `json:"sources"`
		Cases   map[string]struct {
			Kwargs struct {
				NumBeams      int     `json:"num_beams"`
				NumReturn     int     `json:"num_return_sequences"`
				MaxLength     int     `json:"max_length"`
				LengthPenalty float64 `json:"length_penalty"`
			} `json:"kwargs"`
			Sequences [][][]int64 `json:"sequences"`
			Scores    [][]float64 `json:"scores"`
		} `json:"cases"`
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
	for name, c := range ref.Cases {
		cfg := *g.Config
		cfg.NumBeams, cfg.NumReturnSequences, cfg.MaxLength = c.Kwargs.NumBeams, c.Kwargs.NumReturn, c.Kwargs.MaxLength
		cfg.LengthPenalty, cfg.EarlyStopping, cfg.MinLength, cfg.NoRepeatNgramSize = c.Kwargs.LengthPenalty, bart.EarlyStopFalse, 0, 0
		outs, err := g.Generate(context.Background(), ref.Sources, &cfg)
		if err != nil {
			t.Fatal(err)
		}
		for i, per := range outs {
			if len(per) != len(c.Sequences[i]) {
				t.Fatalf("%s source %d: %d sequences, transformers %d", name, i, len(per), len(c.Sequences[i]))
			}
			for k, o := range per {
				if want := trimPad(c.Sequences[i][k], g.Config.PadTokenID); !slices.Equal(o.IDs, want) {
					t.Errorf("%s source %d sequence %d: %v, transformers %v", name, i, k, o.IDs, want)
				}
				if d := math.Abs(o.Score - c.Scores[i][k]); d > 1e-4 {
					t.Errorf("%s source %d sequence %d: score %.6f, transformers %.6f", name, i, k, o.Score, c.Scores[i][k])
				}
			}
		}
	}
}
