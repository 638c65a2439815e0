package neural

import (
	"context"
	"sort"

	"github.com/re2g/re2g/tokenizer"
)

// defaultSortWindow is how many batches are tokenized and sorted by length
// together when Options.SortWindow is 0.
const defaultSortWindow = 32

func (o Options) sortWindow() int {
	if o.SortWindow == 0 {
		return defaultSortWindow
	}
	return max(1, o.SortWindow)
}

// lengthBatch is one forward pass: encodings and the input positions they
// came from.
type lengthBatch struct {
	pos  []int
	encs []tokenizer.Encoding
	err  error
}

// byLength cuts the encodings of inputs lo, lo+1, … into batches of at most
// size. With sorted, the window is ordered by token count, longest first
// (stable, so equal lengths keep input order), and every batch pads only to
// lengths close to its own: the first batch is the longest, which also
// shows at once whether the largest batch fits in memory.
func byLength(encs []tokenizer.Encoding, lo, size int, sorted bool) []lengthBatch {
	order := make([]int, len(encs))
	for i := range order {
		order[i] = i
	}
	if sorted {
		sort.SliceStable(order, func(a, b int) bool { return len(encs[order[a]].IDs) > len(encs[order[b]].IDs) })
	}
	var out []lengthBatch
	for st := 0; st < len(order); st += size {
		part := order[st:min(len(order), st+size)]
		b := lengthBatch{pos: make([]int, len(part)), encs: make([]tokenizer.Encoding, len(part))}
		for i, j := range part {
			b.pos[i], b.encs[i] = lo+j, encs[j]
		}
		out = append(out, b)
	}
	return out
}

// runByLength computes n inputs in batches of size: tokenize(lo, hi)
// encodes inputs [lo, hi) a window of SortWindow batches at a time, on its
// own goroutine so that tokenizing overlaps the forward passes; each window
// is sorted by length before it is cut into batches; forward returns one
// result per encoding, and the results come back in input order.
func runByLength[R any](ctx context.Context, n int, opt Options, tokenize func(ctx context.Context, lo, hi int) ([]tokenizer.Encoding, error), forward func([]tokenizer.Encoding) ([]R, error)) ([]R, error) {
	size, window := opt.batch(), opt.sortWindow()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan lengthBatch, 2)
	go func() {
		defer close(ch)
		step := size * window
		for lo := 0; lo < n; lo += step {
			hi := min(n, lo+step)
			encs, err := tokenize(ctx, lo, hi)
			if err != nil {
				select {
				case ch <- lengthBatch{err: err}:
				case <-ctx.Done():
				}
				return
			}
			for _, b := range byLength(encs, lo, size, window > 1) {
				select {
				case ch <- b:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	out := make([]R, n)
	done := 0
	for b := range ch {
		if b.err != nil {
			return nil, b.err
		}
		rs, err := forward(b.encs)
		if err != nil {
			return nil, err
		}
		for i, p := range b.pos {
			out[p] = rs[i]
		}
		done += len(b.pos)
	}
	if done < n {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// PaddedTokens is how many token positions batches of size compute for
// encs, in input order or sorted by length as runByLength sorts one window:
// what a forward pass costs, padding included.
func PaddedTokens(encs []tokenizer.Encoding, size int, sorted bool) int {
	n := 0
	for _, b := range byLength(encs, 0, size, sorted) {
		l := 0
		for _, e := range b.encs {
			l = max(l, len(e.IDs))
		}
		n += l * len(b.encs)
	}
	return n
}
