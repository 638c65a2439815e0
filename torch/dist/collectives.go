package dist

/*
#include <stdlib.h>
#include "re2g_torch.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unsafe"

	"github.com/re2g/re2g/torch"
)

// ReduceOp is how AllReduce combines the ranks' values.
type ReduceOp int

// The reductions.
const (
	Sum     ReduceOp = C.RE2G_DIST_SUM
	Average ReduceOp = C.RE2G_DIST_AVG // the sum divided by the world size (floating-point tensors)
	Max     ReduceOp = C.RE2G_DIST_MAX
	Min     ReduceOp = C.RE2G_DIST_MIN
)

func (op ReduceOp) String() string {
	switch op {
	case Sum:
		return "sum"
	case Average:
		return "average"
	case Max:
		return "max"
	case Min:
		return "min"
	}
	return fmt.Sprintf("ReduceOp(%d)", int(op))
}

// waitSlice is how long one native wait lasts before Go looks at the
// context again.
const waitSlice = 100 * time.Millisecond

// begin takes the group's lock for one collective and returns how long it
// may wait; the caller unlocks.
func (g *Group) begin(ctx context.Context, op string) (deadline time.Time, byCtx bool, err error) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return time.Time{}, false, &Error{Op: op, Rank: g.rank, Size: g.size, Msg: "the group is closed", Kind: ErrClosed}
	}
	if err := ctx.Err(); err != nil {
		g.mu.Unlock()
		return time.Time{}, false, &Error{Op: op, Rank: g.rank, Size: g.size, Msg: "not started: " + err.Error(), Cause: err}
	}
	deadline = time.Now().Add(g.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline, byCtx = d, true
	}
	return deadline, byCtx, nil
}

// inPlace runs one collective whose result is in its own tensors: it takes
// the group (begin), runs the work start starts to its end (run), and
// frees it.
func (g *Group) inPlace(ctx context.Context, op string, start func(ms C.int64_t, w *C.re2g_work_t) C.re2g_err) error {
	deadline, byCtx, err := g.begin(ctx, op)
	if err != nil {
		return err
	}
	defer g.mu.Unlock()
	w, err := g.run(ctx, op, deadline, byCtx, start)
	if err == nil {
		C.re2g_work_free(w)
	}
	return err
}

func msUntil(deadline time.Time) C.int64_t {
	return C.int64_t(max(time.Until(deadline).Milliseconds(), 1))
}

// run starts one collective (start returns the work or an error) and waits
// for it in slices, looking at the context between them. g.mu is held.
func (g *Group) run(ctx context.Context, op string, deadline time.Time, byCtx bool, start func(ms C.int64_t, w *C.re2g_work_t) C.re2g_err) (C.re2g_work_t, error) {
	t0 := time.Now()
	var w C.re2g_work_t
	if e := start(msUntil(deadline), &w); e != nil {
		return nil, g.classify(op, errString(e), time.Since(t0))
	}
	for {
		left := time.Until(deadline)
		if left <= 0 {
			// The native work may still be queued (libtorch 1.13's Gloo keeps
			// the group's timeout whatever the deadline): given up, as on cancel.
			C.re2g_work_free(w)
			g.abandoned = true
			e := &Error{Op: op, Rank: g.rank, Size: g.size, Kind: ErrTimeout,
				Msg: fmt.Sprintf("timed out after %v waiting for the other ranks", time.Since(t0).Round(time.Millisecond))}
			if byCtx {
				e.Cause = context.DeadlineExceeded
			}
			g.fail(e.Error())
			return nil, e
		}
		var done C.int
		if e := C.re2g_work_wait(w, C.int64_t(max(min(left, waitSlice).Milliseconds(), 1)), &done); e != nil {
			C.re2g_work_free(w)
			return nil, g.classify(op, errString(e), time.Since(t0))
		}
		if done != 0 {
			return w, nil
		}
		if err := ctx.Err(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			// Cancelled: give up now; the native work stays queued in the
			// backend, with its own references to the tensors.
			C.re2g_work_free(w)
			g.abandoned = true
			e := &Error{Op: op, Rank: g.rank, Size: g.size, Msg: "cancelled: " + err.Error(), Cause: err}
			g.fail(e.Error())
			return nil, e
		}
	}
}

// fail marks the process group failed: later collectives are refused.
func (g *Group) fail(why string) {
	if g.pg != nil {
		c := C.CString(why)
		C.re2g_pg_fail(g.pg, c)
		C.free(unsafe.Pointer(c))
	}
}

// handles returns ts' native handles, or an error naming the invalid one.
func handles(op string, ts []*torch.Tensor) ([]C.re2g_t, error) {
	hs := make([]C.re2g_t, len(ts))
	for i, t := range ts {
		if !t.Valid() {
			return nil, fmt.Errorf("dist: %s: tensor %d: %w", op, i, torch.ErrFreed)
		}
		hs[i] = C.re2g_t(torch.NativeHandle(t))
	}
	return hs, nil
}

// AllReduce replaces each tensor with the reduction of its values over all
// ranks, in place. Several tensors travel packed in buffers of at most
// Options.BucketBytes, one collective per buffer; bfloat16 is carried in
// float32 by Gloo. Alone, it leaves them as they are.
func (g *Group) AllReduce(ctx context.Context, op ReduceOp, ts ...*torch.Tensor) error {
	hs, err := handles("all_reduce", ts)
	if err != nil || len(hs) == 0 {
		return err
	}
	if op < Sum || op > Min {
		return fmt.Errorf("dist: all_reduce: unknown reduce op %d", int(op))
	}
	if g.single() {
		if op == Average {
			for i, t := range ts {
				if !t.DType().IsFloat() {
					return fmt.Errorf("dist: all_reduce: tensor %d: average of %v (want a floating-point type)", i, t.DType())
				}
			}
		}
		return nil
	}
	return g.inPlace(ctx, "all_reduce", func(ms C.int64_t, w *C.re2g_work_t) C.re2g_err {
		return C.re2g_pg_allreduce(g.pg, &hs[0], C.int(len(hs)), C.int(op), C.int64_t(g.bucket), ms, w)
	})
}

// Broadcast overwrites each tensor, on every rank, with root's values.
func (g *Group) Broadcast(ctx context.Context, root int, ts ...*torch.Tensor) error {
	hs, err := handles("broadcast", ts)
	if err != nil || len(hs) == 0 {
		return err
	}
	if root < 0 || root >= g.Size() {
		return fmt.Errorf("dist: broadcast: root %d out of range (world size %d)", root, g.Size())
	}
	if g.single() {
		return nil
	}
	return g.inPlace(ctx, "broadcast", func(ms C.int64_t, w *C.re2g_work_t) C.re2g_err {
		return C.re2g_pg_broadcast(g.pg, &hs[0], C.int(len(hs)), C.int(root), C.int64_t(g.bucket), ms, w)
	})
}

// Barrier returns once every rank has called it.
func (g *Group) Barrier(ctx context.Context) error {
	if g.single() {
		return nil
	}
	s := torch.NewScope().NoGrad()
	defer s.Close()
	one := s.Ones(torch.Float32, g.device, 1)
	if err := s.Err(); err != nil {
		return fmt.Errorf("dist: barrier: %w", err)
	}
	err := g.AllReduce(ctx, Sum, one)
	var e *Error
	if errors.As(err, &e) {
		e.Op = "barrier"
	}
	return err
}

// Counts are the rows each rank contributed to an all-gather, by rank.
type Counts []int64

// Offset is the first row of rank r's part of the gathered tensor.
func (c Counts) Offset(r int) int64 {
	var n int64
	for i := 0; i < r && i < len(c); i++ {
		n += c[i]
	}
	return n
}

// Total is the number of rows gathered.
func (c Counts) Total() int64 { return c.Offset(len(c)) }

// maxGatherDims is the most dimensions an all-gathered tensor may have.
const maxGatherDims = 8

// AllGather concatenates t from every rank along its first dimension, in
// rank order, into a new tensor owned by s; ranks may give different numbers
// of rows (the rest of the shape, the type and the device must agree: a
// mismatch is an error on every rank). Counts says how many rows came from
// each rank. The result records no autograd history; AllGatherGrad does.
func (g *Group) AllGather(ctx context.Context, s *torch.Scope, t *torch.Tensor) (*torch.Tensor, Counts, error) {
	return g.allGather(ctx, s, t, false)
}

// AllGatherGrad is AllGather for training: the result is recorded by
// autograd (in s's grad mode), and its backward pass sums the incoming
// gradient over all ranks and passes this rank's rows of the sum to t. So,
// with every rank's loss computed over its own examples against all ranks'
// rows (DPR's in-batch negatives across ranks) and the parameters'
// gradients then averaged over ranks (AllReduceGrads), each rank gets the
// gradient a single process would compute for the whole batch with a loss
// averaged over ranks. Every rank's loss must use the result, since the
// backward pass is a collective (an all-reduce inside Scope.Backward,
// bounded by the group's timeout; its error is Backward's, and it fails the
// group). Under autocast the result has t's type.
func (g *Group) AllGatherGrad(ctx context.Context, s *torch.Scope, t *torch.Tensor) (*torch.Tensor, Counts, error) {
	return g.allGather(ctx, s, t, true)
}

func (g *Group) allGather(ctx context.Context, s *torch.Scope, t *torch.Tensor, grad bool) (*torch.Tensor, Counts, error) {
	op := "all_gather"
	if s == nil {
		return nil, nil, fmt.Errorf("dist: %s: nil scope", op)
	}
	if err := s.Err(); err != nil {
		return nil, nil, err
	}
	if !t.Valid() {
		return nil, nil, fmt.Errorf("dist: %s: %w", op, torch.ErrFreed)
	}
	shape := t.Shape()
	if len(shape) == 0 || len(shape) > maxGatherDims {
		return nil, nil, fmt.Errorf("dist: %s: want 1 to %d dimensions, got shape %v", op, maxGatherDims, shape)
	}
	if g.single() {
		var out *torch.Tensor
		if grad {
			out = s.Contiguous(t)
		} else {
			c := s.NoGrad()
			out = c.Clone(t)
			c.Keep(out)
		}
		if err := s.Err(); err != nil {
			return nil, nil, err
		}
		return out, Counts{shape[0]}, nil
	}
	// Every rank's shape and type, so that a mismatch is the same error everywhere.
	hdr := make([]int64, 2+maxGatherDims)
	hdr[0], hdr[1] = int64(t.DType()), int64(len(shape))
	copy(hdr[2:], shape)
	tmp := torch.NewScope().NoGrad()
	defer tmp.Close()
	h := tmp.To(tmp.FromInt64(hdr, 1, int64(len(hdr))), g.device)
	if err := tmp.Err(); err != nil {
		return nil, nil, fmt.Errorf("dist: %s: %w", op, err)
	}
	ones := make(Counts, g.size)
	for i := range ones {
		ones[i] = 1
	}
	all, err := g.gatherRows(ctx, op+" (shapes)", tmp, h, ones)
	if err != nil {
		return nil, nil, err
	}
	hv, err := all.Int64s()
	if err != nil {
		return nil, nil, fmt.Errorf("dist: %s: %w", op, err)
	}
	counts := make(Counts, g.size)
	for r := 0; r < g.size; r++ {
		row := hv[r*len(hdr) : (r+1)*len(hdr)]
		counts[r] = row[2]
		same := row[0] == hdr[0] && row[1] == hdr[1]
		for d := 3; d < len(hdr) && same; d++ {
			same = row[d] == hdr[d]
		}
		if !same {
			return nil, nil, &Error{Op: op, Rank: g.rank, Size: g.size,
				Msg: fmt.Sprintf("rank %d gives %v %v, rank %d %v %v: all but the first dimension, and the type, must agree",
					g.rank, torch.DType(hdr[0]), shape, r, torch.DType(row[0]), row[2:2+row[1]])}
		}
	}
	out, err := g.gatherRows(ctx, op, s, t, counts)
	if err != nil || !grad {
		return out, counts, err
	}
	var res C.re2g_t
	if e := C.re2g_dist_gather_grad(C.int(s.NativeFlags()), g.pg, C.re2g_t(torch.NativeHandle(t)), C.re2g_t(torch.NativeHandle(out)),
		C.int64_t(counts.Offset(g.rank)), C.int64_t(max(g.timeout.Milliseconds(), 1)), &res); e != nil {
		return nil, nil, fmt.Errorf("dist: %s: %s", op, errString(e))
	}
	out.Free()
	return s.WrapNative(unsafe.Pointer(res)), counts, nil
}

// gatherRows runs one all-gather of t's rows (counts by rank) into a tensor owned by s.
func (g *Group) gatherRows(ctx context.Context, op string, s *torch.Scope, t *torch.Tensor, counts Counts) (*torch.Tensor, error) {
	deadline, byCtx, err := g.begin(ctx, op)
	if err != nil {
		return nil, err
	}
	defer g.mu.Unlock()
	h := C.re2g_t(torch.NativeHandle(t))
	w, err := g.run(ctx, op, deadline, byCtx, func(ms C.int64_t, w *C.re2g_work_t) C.re2g_err {
		return C.re2g_pg_allgather(g.pg, h, (*C.int64_t)(unsafe.Pointer(&counts[0])), ms, w)
	})
	if err != nil {
		return nil, err
	}
	defer C.re2g_work_free(w)
	var res C.re2g_t
	if e := C.re2g_work_result(w, &res); e != nil {
		return nil, fmt.Errorf("dist: %s: %s", op, errString(e))
	}
	return s.WrapNative(unsafe.Pointer(res)), nil
}

// AllReduceGrads averages the gradients of params over all ranks, as
// DistributedDataParallel does after backward: the gradients are packed into
// buffers of at most Options.BucketBytes (by type and device, in the order
// given), each all-reduced and divided by the world size, and copied back.
//
// Every rank must pass the same parameters in the same order (the same
// model); the call first checks that every rank has the same number of
// parameters and elements, an error on all ranks otherwise. A parameter
// without a gradient on every rank (unused this step) is skipped
// everywhere and keeps no gradient; one with a gradient on some ranks only
// is reduced with zeros for the others, which then get the average as
// their gradient, so that all ranks call the same collectives and end with
// the same gradients. That agreement costs two small collectives per call.
func (g *Group) AllReduceGrads(ctx context.Context, params []*torch.Tensor) error {
	const op = "all_reduce_grads"
	hs, err := handles(op, params)
	if err != nil || g.single() {
		return err
	}
	s := torch.NewScope().NoGrad()
	defer s.Close()
	var numel int64
	present := make([]int64, len(params))
	for i, p := range params {
		numel += p.Numel()
		if gr := s.Grad(p); gr != nil {
			present[i] = 1
		}
	}
	hdr := s.To(s.FromInt64([]int64{int64(len(params)), numel}, 1, 2), g.device)
	if err := s.Err(); err != nil {
		return fmt.Errorf("dist: %s: %w", op, err)
	}
	ones := make(Counts, g.size)
	for i := range ones {
		ones[i] = 1
	}
	all, err := g.gatherRows(ctx, op+" (check)", s, hdr, ones)
	if err != nil {
		return err
	}
	hv, err := all.Int64s()
	if err != nil {
		return fmt.Errorf("dist: %s: %w", op, err)
	}
	for r := 0; r < g.size; r++ {
		if hv[2*r] != int64(len(params)) || hv[2*r+1] != numel {
			return &Error{Op: op, Rank: g.rank, Size: g.size, Msg: fmt.Sprintf(
				"rank %d has %d parameters of %d elements, rank %d %d of %d: every rank must pass the same parameters",
				g.rank, len(params), numel, r, hv[2*r], hv[2*r+1])}
		}
	}
	if len(params) == 0 {
		return nil
	}
	mask := s.To(s.FromInt64(present, int64(len(present))), g.device)
	if err := s.Err(); err != nil {
		return fmt.Errorf("dist: %s: %w", op, err)
	}
	if err := g.AllReduce(ctx, Max, mask); err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.Op = op + " (presence)"
		}
		return err
	}
	anyGrad, err := mask.Int64s()
	if err != nil {
		return fmt.Errorf("dist: %s: %w", op, err)
	}
	flags := make([]C.uint8_t, len(params))
	for i, v := range anyGrad {
		if v != 0 {
			flags[i] = 1
		}
	}
	return g.inPlace(ctx, op, func(ms C.int64_t, w *C.re2g_work_t) C.re2g_err {
		return C.re2g_pg_allreduce_grads(g.pg, &hs[0], &flags[0], C.int(len(hs)), C.int64_t(g.bucket), ms, w)
	})
}
