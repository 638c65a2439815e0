package neural

import "fmt"

// Bounds of Options.Check.
const (
	MaxBatchSize  = 4096    // sequences per forward pass
	MaxSortWindow = 4096    // batches sorted together
	MaxLength     = 1 << 16 // tokens per input (longer than a model's limit is cut to it)
)

// Check reports a numeric option out of range, naming it. Zero is each
// option's default.
func (o Options) Check() error {
	for _, r := range []struct {
		name  string
		v, hi int
	}{{"batch size", o.BatchSize, MaxBatchSize}, {"sort window", o.SortWindow, MaxSortWindow}, {"max length", o.MaxLength, MaxLength}} {
		if r.v < 0 || r.v > r.hi {
			return fmt.Errorf("neural options: %s %d: want 0 (the default) to %d", r.name, r.v, r.hi)
		}
	}
	return nil
}
