package model

import (
	"encoding/json"
	"fmt"
	"os"
)

// Reference is a reference.json of testdata/parity: inputs and outputs that
// Hugging Face transformers computed for a checkpoint (see its README).
type Reference struct {
	TransformersVersion string                     `json:"transformers_version"`
	Inputs              map[string][][]int64       `json:"inputs"`
	Outputs             map[string]RefTensor       `json:"outputs"`
	Generate            map[string]RefGenerateCase `json:"generate"`
}

// RefTensor is a float tensor, row-major.
type RefTensor struct {
	Shape []int64   `json:"shape"`
	Data  []float64 `json:"data"`
}

// RefGenerateCase is one generate() call and its result.
type RefGenerateCase struct {
	Kwargs          map[string]any `json:"kwargs"`
	Sequences       [][]int64      `json:"sequences"`
	SequencesScores *RefTensor     `json:"sequences_scores"`
}

// ReadReference reads a reference.json.
func ReadReference(path string) (*Reference, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Reference
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// Flat flattens a batch of id rows, returning the data and [rows, cols].
func Flat(rows [][]int64) ([]int64, []int64) {
	if len(rows) == 0 {
		return nil, []int64{0, 0}
	}
	out := make([]int64, 0, len(rows)*len(rows[0]))
	for _, r := range rows {
		out = append(out, r...)
	}
	return out, []int64{int64(len(rows)), int64(len(rows[0]))}
}
