package neural

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadRejectsOptionsOutOfRange: every loader, RAG directories included,
// refuses a negative or huge numeric option with an error naming it, where
// before a negative batch size or sort window silently meant the default.
func TestLoadRejectsOptionsOutOfRange(t *testing.T) {
	dirs := map[string]func(dir string, o Options) error{
		"dpr-question/safetensors": func(d string, o Options) error {
			m, err := LoadEncoder(d, o)
			if err == nil {
				m.Close()
			}
			return err
		},
		"rag-token/bin": func(d string, o Options) error {
			m, err := LoadEncoder(d, o)
			if err == nil {
				m.Close()
			}
			return err
		},
		"cross-encoder-1/safetensors": func(d string, o Options) error {
			m, err := LoadReranker(d, o)
			if err == nil {
				m.Close()
			}
			return err
		},
		"bart/safetensors": func(d string, o Options) error {
			m, err := LoadGenerator(d, o)
			if err == nil {
				m.Close()
			}
			return err
		},
	}
	bad := []struct {
		o    Options
		want string
	}{
		{Options{BatchSize: -1}, "batch size -1"},
		{Options{BatchSize: MaxBatchSize + 1}, "batch size"},
		{Options{SortWindow: -3}, "sort window -3"},
		{Options{MaxLength: -1}, "max length -1"},
	}
	for dir, load := range dirs {
		for _, b := range bad {
			err := load(filepath.Join(fixtures, dir), b.o)
			if err == nil || !strings.Contains(err.Error(), b.want) {
				t.Errorf("%s with %+v: %v, want an error with %q", dir, b.o, err, b.want)
			}
		}
		if err := load(filepath.Join(fixtures, dir), Options{BatchSize: 4}); err != nil {
			t.Errorf("%s with batch size 4: %v", dir, err)
		}
	}
}
