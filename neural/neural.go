// Package neural wraps re2g's models with their tokenizers: text in, vectors,
// relevance scores or generated sequences out, in batches, on any device.
// Every type here is safe for concurrent use: weights are only read, and
// each call works in scopes of its own.
package neural

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/re2g/re2g/model"
	"github.com/re2g/re2g/tokenizer"
	"github.com/re2g/re2g/torch"
)

// Options says where and how a model runs.
type Options struct {
	Device    torch.Device
	DType     torch.DType // float32 (zero value); bfloat16 or float16 on CUDA
	BatchSize int         // sequences per forward pass (default 32)
	// SortWindow is how many batches' inputs are tokenized together and
	// sorted by token length before batching, so that a batch pads to
	// lengths close to its own (default 32; 1 keeps input order). Results
	// always come back in input order.
	SortWindow int
	MaxLength  int    // tokens per input, special tokens included (default: the model's limit)
	Tokenizer  string // tokenizer path, when not inside the model directory
}

func (o Options) batch() int {
	if o.BatchSize <= 0 {
		return 32
	}
	return o.BatchSize
}

// checkModel is what every loader checks before reading anything else:
// that dir is a model directory, that its config.json fits one of roles
// (what, e.g. "an encoder", names them in the error), and that opt's device
// is there. It returns the config's kind.
func checkModel(dir, what string, opt Options, roles ...model.Role) (model.Kind, error) {
	if err := model.CheckDir(dir); err != nil {
		return model.Kind{}, err
	}
	k, err := model.ReadKind(dir)
	if err != nil {
		return k, err
	}
	if err := model.CheckRole(dir, k, what, roles...); err != nil {
		return k, err
	}
	if err := torch.CheckDevice(opt.Device); err != nil {
		return k, fmt.Errorf("model %s: %w", dir, err)
	}
	return k, nil
}

// loadTokenizer reads the tokenizer from opt.Tokenizer or the model directory.
func loadTokenizer(dir string, opt Options) (*tokenizer.Tokenizer, error) {
	return loadTokenizerIn(dir, dir, opt)
}

// loadTokenizerIn reads the tokenizer of model dir from opt.Tokenizer or
// from tokDir (the model directory, or a RAG directory's tokenizer subdirectory).
func loadTokenizerIn(dir, tokDir string, opt Options) (*tokenizer.Tokenizer, error) {
	if err := opt.Check(); err != nil { // every Load* passes here before reading weights
		return nil, fmt.Errorf("model %s: %w", dir, err)
	}
	p := opt.Tokenizer
	if p == "" {
		p = tokDir
		if !hasTokenizerFiles(tokDir) {
			return nil, fmt.Errorf("model %s has no tokenizer files in %s (tokenizer.json, vocab.txt, vocab.json+merges.txt): pass a tokenizer path", dir, tokDir)
		}
	}
	t, err := tokenizer.Load(p)
	if err != nil {
		return nil, fmt.Errorf("tokenizer for %s: %w", dir, err)
	}
	return t, nil
}

func hasTokenizerFiles(dir string) bool {
	for _, f := range []string{"tokenizer.json", "vocab.txt", "vocab.json", "encoder.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return true
		}
	}
	return false
}

// batchTensors pads encodings into ids, type ids and mask tensors [B, L] on dev.
func batchTensors(s *torch.Scope, encs []tokenizer.Encoding, pad int64, dev torch.Device) (ids, types, mask *torch.Tensor) {
	l := 0
	for _, e := range encs {
		l = max(l, len(e.IDs))
	}
	b := len(encs)
	iv := make([]int64, b*l)
	tv := make([]int64, b*l)
	mv := make([]int64, b*l)
	for i, e := range encs {
		for j := 0; j < l; j++ {
			k := i*l + j
			if j < len(e.IDs) {
				iv[k] = int64(e.IDs[j])
				if j < len(e.TypeIDs) {
					tv[k] = int64(e.TypeIDs[j])
				}
				mv[k] = 1
				if j < len(e.AttentionMask) {
					mv[k] = int64(e.AttentionMask[j])
				}
			} else {
				iv[k] = pad
			}
		}
	}
	shape := []int64{int64(b), int64(l)}
	return s.To(s.FromInt64(iv, shape...), dev), s.To(s.FromInt64(tv, shape...), dev), s.To(s.FromInt64(mv, shape...), dev)
}

// inBatches calls f for consecutive [lo, hi) ranges of n items.
func inBatches(ctx context.Context, n, size int, f func(lo, hi int) error) error {
	for lo := 0; lo < n; lo += size {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := f(lo, min(n, lo+size)); err != nil {
			return err
		}
	}
	return nil
}
