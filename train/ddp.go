package train

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/re2g/re2g/torch"
	"github.com/re2g/re2g/torch/dist"
)

// Data-parallel training (RunOptions.Group with more than one rank).
//
// Every rank holds the whole dataset and the same models. The loop draws
// the same global micro-batch on every rank (batchAt) and each rank takes a
// contiguous slice of it (sliceOf: rank r of W gets [r·n/W, (r+1)·n/W), so
// uneven slices are allowed); the config's batch_size × grad_accum stays the
// examples of one update, whatever the world size, and the data order is
// the single process's.
//
// Losses combine exactly: a phase's Loss returns the mean over the n
// examples of its slice that contribute; the loop all-reduces (n, n·mean)
// per micro-batch and back-propagates mean·n·W/(N·accum), N being the
// global count, so that AllReduceGrads' average is the gradient of the mean
// over every rank's contributing examples, as one process computes it. A
// rank whose slice contributes nothing still takes part in every
// collective (AllReduceGrads gives it the average).
//
// Work outside the loop that must be done once (checkpoints, models, plots,
// dev evaluation, building an index, mining negatives, candidate lists) is
// done by rank 0 while the others wait on the store (onRoot), up to
// rootWait: not a collective, whose timeout is short.

// rootWait bounds how long the other ranks wait for rank 0's work outside
// the collectives: building an index of a large corpus, a dev evaluation.
// A rank 0 that dies ends the wait at once (its store goes, or the
// launcher stops the job).
const rootWait = 48 * time.Hour

// readyWait bounds storeBarrier: how far apart the ranks may reach the
// start of a phase's loop (each loads the data and the models on its own).
const readyWait = time.Hour

// barriers numbers each group's storeBarrier calls.
var barriers sync.Map // *dist.Group → *atomic.Int64

// storeBarrier returns once every rank has called it (the n-th call of
// each), waiting on the store for at most readyWait: before a phase's first
// collective, so that ranks that prepared at different speeds do not run
// into the collective timeout.
func storeBarrier(ctx context.Context, g *dist.Group, what string) error {
	if g.Size() == 1 {
		return nil
	}
	v, _ := barriers.LoadOrStore(g, new(atomic.Int64))
	key := fmt.Sprintf("ready/%d/", v.(*atomic.Int64).Add(1))
	st := g.Store()
	if err := st.Set(ctx, key+strconv.Itoa(g.Rank()), []byte{1}); err != nil {
		return fmt.Errorf("train: %s: %w", what, err)
	}
	keys := make([]string, g.Size())
	for r := range keys {
		keys[r] = key + strconv.Itoa(r)
	}
	wctx, cancel := context.WithTimeout(ctx, readyWait)
	defer cancel()
	if err := st.Wait(wctx, keys...); err != nil {
		return fmt.Errorf("train: waiting for every rank to be ready (%s): %w", what, err)
	}
	return nil
}

// Batch is one micro-batch as a rank sees it.
type Batch struct {
	Idx    []int // this rank's examples: its contiguous slice of Global
	Global []int // the micro-batch of every rank, in rank order (Idx when alone)
}

// sliceOf is rank r's contiguous part of n items shared by w ranks.
func sliceOf(n, r, w int) (lo, hi int) {
	return n * r / w, n * (r + 1) / w
}

// onRoot runs f on rank 0 only and gives every rank its result (through
// JSON) or its error; the other ranks wait for it through the store, at
// most rootWait. Every rank calls it, in the same order. Alone, it is f.
func onRoot[T any](ctx context.Context, g *dist.Group, what string, f func() (T, error)) (T, error) {
	var zero T
	if g.Size() == 1 {
		return f()
	}
	type msg struct {
		Err string `json:"err,omitempty"`
		V   T      `json:"v"`
	}
	if g.Rank() == 0 {
		v, err := f()
		m := msg{V: v}
		if err != nil {
			m = msg{Err: err.Error()}
		}
		b, merr := json.Marshal(m)
		if merr != nil {
			b, _ = json.Marshal(msg{Err: fmt.Sprintf("%s: the result does not encode: %v", what, merr)})
			if err == nil {
				err = merr
			}
		}
		if _, berr := g.BroadcastBytes(ctx, 0, b); berr != nil && err == nil {
			err = berr
		}
		return v, err
	}
	wctx, cancel := context.WithTimeout(ctx, rootWait)
	defer cancel()
	b, err := g.BroadcastBytes(wctx, 0, nil)
	if err != nil {
		return zero, fmt.Errorf("waiting for rank 0 (%s): %w", what, err)
	}
	var m msg
	if err := json.Unmarshal(b, &m); err != nil {
		return zero, fmt.Errorf("rank 0's result (%s): %w", what, err)
	}
	if m.Err != "" {
		return zero, fmt.Errorf("rank 0 failed (%s): %s", what, m.Err)
	}
	return m.V, nil
}

// doOnRoot is onRoot for work without a result.
func doOnRoot(ctx context.Context, g *dist.Group, what string, f func() error) error {
	_, err := onRoot(ctx, g, what, func() (struct{}, error) { return struct{}{}, f() })
	return err
}

// dropoutSeed seeds libtorch's generator for an update: a function of
// (seed, step, rank), rank 0's being the single process's.
func dropoutSeed(seed uint64, step, rank int) uint64 {
	return seed*1_000_003 + uint64(step) + uint64(rank)*0x9E3779B97F4A7C15
}

// tensorsOf are the tensors of ps.
func tensorsOf(ps []torch.Param) []*torch.Tensor {
	ts := make([]*torch.Tensor, len(ps))
	for i, p := range ps {
		ts[i] = p.Tensor
	}
	return ts
}

// syncStart makes every rank start where rank 0 does: with resume, rank 0
// loads the checkpoint and sends its loop state (with the world size check)
// and AdamW's moments; then rank 0's parameters, trainable and frozen, are
// broadcast, so that every rank starts from the same bits whatever each
// initialised or loaded. It reports whether a checkpoint was resumed.
func syncStart(ctx context.Context, g *dist.Group, name, ck string, resume bool, all, params []torch.Param, opt optimizers, st *State) (bool, error) {
	w := g.Size()
	if err := storeBarrier(ctx, g, name); err != nil {
		return false, err
	}
	type resumed struct {
		OK    bool  `json:"ok"`
		State State `json:"state"`
	}
	r := resumed{}
	if resume {
		var err error
		r, err = onRoot(ctx, g, "loading the checkpoint", func() (resumed, error) {
			ok, err := loadCheckpoint(ck, all, opt, st)
			if err != nil {
				return resumed{}, fmt.Errorf("train %s: resume: %w", name, err)
			}
			if ok {
				if ws := max(st.WorldSize, 1); ws != w {
					return resumed{}, fmt.Errorf("train %s: checkpoint %s was written by a run of %d rank(s); this run has %d: resume with the same world size (or start afresh without --resume)", name, ck, ws, w)
				}
			}
			return resumed{OK: ok, State: *st}, nil
		})
		if err != nil {
			return false, err
		}
	}
	if w == 1 {
		return r.OK, nil
	}
	if r.OK && g.Rank() != 0 {
		*st = r.State
		if st.Metrics == nil {
			st.Metrics = map[string][]Point{}
		}
	}
	if r.OK && len(st.AdamSteps) > 0 {
		// AdamW's moments: rank 0's, in the order of params, into fresh
		// tensors elsewhere.
		s := torch.NewScope().NoGrad()
		defer s.Close()
		var have map[string]*torch.Tensor
		if g.Rank() == 0 {
			var err error
			if have, _, err = opt.state(s); err != nil {
				return false, err
			}
		}
		ts := map[string]*torch.Tensor{}
		var order []*torch.Tensor
		for _, p := range params {
			if _, ok := st.AdamSteps[p.Name]; !ok {
				continue
			}
			for _, suf := range []string{".exp_avg", ".exp_avg_sq"} {
				t := have[p.Name+suf]
				if g.Rank() != 0 {
					t = s.Zeros(p.Tensor.DType(), p.Tensor.Device(), p.Tensor.Shape()...)
				}
				if t == nil {
					return false, fmt.Errorf("train %s: resume: no optimizer state %s on rank 0", name, p.Name+suf)
				}
				ts[p.Name+suf] = t
				order = append(order, t)
			}
		}
		if err := s.Err(); err != nil {
			return false, err
		}
		if err := g.Broadcast(ctx, 0, order...); err != nil {
			return false, fmt.Errorf("train %s: resume: optimizer state: %w", name, err)
		}
		if g.Rank() != 0 {
			if err := opt.loadState(ts, st.AdamSteps); err != nil {
				return false, fmt.Errorf("train %s: resume: %w", name, err)
			}
		}
	}
	if err := g.Broadcast(ctx, 0, tensorsOf(all)...); err != nil {
		return false, fmt.Errorf("train %s: parameters from rank 0: %w", name, err)
	}
	return r.OK, nil
}

// microStats all-reduces a micro-batch's contributing examples and loss sum
// over the ranks: (N, Σ n·mean).
func microStats(ctx context.Context, g *dist.Group, n int, sum float64) (float64, float64, error) {
	s := torch.NewScope().NoGrad()
	defer s.Close()
	t := s.To(s.FromFloat64([]float64{float64(n), sum}, 2), g.Device())
	if err := s.Err(); err != nil {
		return 0, 0, err
	}
	if err := g.AllReduce(ctx, dist.Sum, t); err != nil {
		return 0, 0, err
	}
	v, err := s.To(t, torch.CPUDevice).Float64s()
	if err != nil {
		return 0, 0, err
	}
	return v[0], v[1], nil
}

// TraceRecord is one update as one rank saw it (RunOptions.Trace): tests
// compare the data order, the losses and the gradients of runs.
type TraceRecord struct {
	Rank   int     `json:"rank"`
	Step   int     `json:"step"` // the update, from 1
	Global [][]int `json:"global"`
	Local  [][]int `json:"local"`
	// Loss is the update's loss as logged: the mean over the micro-batches
	// of each one's mean over every rank's contributing examples.
	Loss float64 `json:"loss"`
	// GradNorm is the L2 norm of the (all-reduced) gradient before
	// clipping; GroupNorms the same by parameter group (model).
	GradNorm   float64            `json:"grad_norm"`
	GroupNorms map[string]float64 `json:"group_norms"`
	// ParamHash is a SHA-256 of every trainable parameter after the update.
	ParamHash string `json:"param_hash"`
}

// gradNorm is the L2 norm of ts' gradients (0 without any).
func gradNorm(ts []*torch.Tensor) (float64, error) {
	s := torch.NewScope().NoGrad()
	defer s.Close()
	sum := 0.0
	for _, t := range ts {
		gr := s.Grad(t)
		if gr == nil {
			continue
		}
		v, err := s.Sum(s.Mul(s.ToDType(gr, torch.Float64), s.ToDType(gr, torch.Float64)), false).Item()
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return math.Sqrt(sum), s.Err()
}

// paramHash hashes ts' bytes.
func paramHash(ts []*torch.Tensor) (string, error) {
	h := sha256.New()
	for _, t := range ts {
		b, err := t.Bytes()
		if err != nil {
			return "", err
		}
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// minOverRanks is the smallest of every rank's n (n alone).
func (e *env) minOverRanks(ctx context.Context, n int) (int, error) {
	if e.g.Size() == 1 {
		return n, nil
	}
	s := torch.NewScope().NoGrad()
	defer s.Close()
	t := s.To(s.FromInt64([]int64{int64(n)}, 1), e.g.Device())
	if err := s.Err(); err != nil {
		return 0, err
	}
	if err := e.g.AllReduce(ctx, dist.Min, t); err != nil {
		return 0, err
	}
	v, err := s.To(t, torch.CPUDevice).Int64s()
	if err != nil {
		return 0, err
	}
	return int(v[0]), nil
}
