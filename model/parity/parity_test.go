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
		if !c.OK(1e-4) {
			t.Errorf("differs from transformers: %v", c)
		}
	}
}
