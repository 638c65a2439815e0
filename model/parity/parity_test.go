package parity

import (
	"context"
	"testing"

	"github.com/re2g/re2g/torch"
)

// TestCPU checks every fixture on the CPU in float32: embeddings and logits
// within 1e-4 of transformers, generated ids identical, scores within 1e-4.
func TestCPU(t *testing.T) {
	checks, err := Run(context.Background(), "../../testdata/parity", torch.CPUDevice, torch.Float32)
	if err != nil {
		t.Fatal(err)
	}
	if len(checks) != 18 {
		t.Fatalf("%d checks, want 18", len(checks))
	}
	for _, c := range checks {
		t.Log(c)
		if !c.Pass(torch.Float32) {
			t.Errorf("differs from transformers: %v", c)
		}
	}
}

// TestCPUBFloat16 runs every fixture in bfloat16 (weights converted on load)
// against the float32 references: the 16-bit paths compute the same function.
func TestCPUBFloat16(t *testing.T) {
	checks, err := Run(context.Background(), "../../testdata/parity", torch.CPUDevice, torch.BFloat16)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range checks {
		t.Log(c)
		if !c.Pass(torch.BFloat16) {
			t.Errorf("bfloat16 run off the float32 reference by more than %.0f%%: %v", 100*HalfTolerance, c)
		}
		if c.Total == 0 && c.Relative() < 1e-6 {
			t.Errorf("bfloat16 run equals float32 exactly (weights not converted?): %v", c)
		}
	}
}
