package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// ErrQueueFull is returned by Submit when a stage's queue is full.
var ErrQueueFull = errors.New("queue full")

// errStopped is returned by Submit once the batcher has stopped.
var errStopped = errors.New("server shutting down")

// batchFunc runs one batch: len(out) must equal len(in).
type batchFunc[In, Out any] func(ctx context.Context, in []In) ([]Out, error)

// job is one request's items waiting for a batch.
type job[In, Out any] struct {
	ctx  context.Context
	in   []In
	done chan result[Out] // buffered: the worker never blocks on it
}

type result[Out any] struct {
	out []Out
	err error
}

// batcher coalesces concurrent requests into batches of at most maxBatch
// items, waiting at most maxWait for a batch to fill once its first request
// is in. Requests wait in a bounded queue (Submit fails with ErrQueueFull
// when it is full). A request whose context ends leaves at once; a batch is
// only cancelled when every request in it has left, so that one client
// going away never breaks the others' answers.
//
// With batching off (maxBatch 1 and direct set), Submit runs the function in
// the caller's goroutine, at most queue at a time: the plain server that
// batching is measured against.
type batcher[In, Out any] struct {
	name     string
	run      batchFunc[In, Out]
	maxBatch int
	maxWait  time.Duration
	direct   bool
	queue    chan *job[In, Out]
	slots    chan struct{} // direct mode: running requests
	m        *metrics

	base    context.Context // cancelled when the server stops hard
	stop    chan struct{}
	stopped atomic.Bool
	wg      sync.WaitGroup

	busy    atomic.Int64  // items in the batch being run
	avgNano atomic.Int64  // moving average of a batch's duration
	pending atomic.Int64  // items taken from the queue but not yet running
	waiting atomic.Int64  // items in the queue
	inDirec atomic.Int64  // direct mode: requests running
	drained chan struct{} // closed when every worker has returned
}

type batcherConfig struct {
	MaxBatch int
	MaxWait  time.Duration
	Queue    int
	Workers  int
	Direct   bool // no batching: each request runs alone, in its own goroutine
}

func newBatcher[In, Out any](base context.Context, name string, cfg batcherConfig, m *metrics, run batchFunc[In, Out]) *batcher[In, Out] {
	b := &batcher[In, Out]{name: name, run: run, maxBatch: max(1, cfg.MaxBatch), maxWait: cfg.MaxWait, direct: cfg.Direct,
		m: m, base: base, stop: make(chan struct{}), drained: make(chan struct{})}
	q := max(1, cfg.Queue)
	if b.direct {
		b.slots = make(chan struct{}, q)
		close(b.drained)
		return b
	}
	b.queue = make(chan *job[In, Out], q)
	for range max(1, cfg.Workers) {
		b.wg.Add(1)
		go b.worker()
	}
	go func() { b.wg.Wait(); close(b.drained) }()
	return b
}

// Name is the stage's name, as in the metrics' stage label.
func (b *batcher[In, Out]) Name() string { return b.name }

// Depth is the number of items waiting for a batch.
func (b *batcher[In, Out]) Depth() int64 {
	if b.direct {
		return 0
	}
	return b.waiting.Load() + b.pending.Load()
}

// Running is the number of items being computed.
func (b *batcher[In, Out]) Running() int64 {
	if b.direct {
		return b.inDirec.Load()
	}
	return b.busy.Load()
}

// RetryAfter estimates how long until the queue has room, in whole seconds.
func (b *batcher[In, Out]) RetryAfter() int {
	avg := time.Duration(b.avgNano.Load())
	batches := float64(b.Depth())/float64(b.maxBatch) + 1
	return max(1, int(math.Ceil(batches*avg.Seconds())))
}

// Submit queues in and waits for its outputs, or for ctx to end.
func (b *batcher[In, Out]) Submit(ctx context.Context, in []In) ([]Out, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if b.stopped.Load() {
		return nil, errStopped
	}
	if b.direct {
		select {
		case b.slots <- struct{}{}:
		default:
			b.m.rejected.WithLabelValues(b.name).Inc()
			return nil, ErrQueueFull
		}
		defer func() { <-b.slots }()
		b.inDirec.Add(int64(len(in)))
		defer b.inDirec.Add(-int64(len(in)))
		sctx, span := startBatch(ctx, b.name, []context.Context{ctx}, len(in), false)
		out, err := b.runBatch(sctx, in)
		endBatch(span, err)
		return out, err
	}
	j := &job[In, Out]{ctx: ctx, in: in, done: make(chan result[Out], 1)}
	b.waiting.Add(int64(len(in)))
	select {
	case b.queue <- j:
	default:
		b.waiting.Add(-int64(len(in)))
		b.m.rejected.WithLabelValues(b.name).Inc()
		return nil, ErrQueueFull
	}
	select {
	case r := <-j.done:
		return r.out, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.drained:
		// the workers are gone: take a result delivered just before, if any
		select {
		case r := <-j.done:
			return r.out, r.err
		default:
			return nil, errStopped
		}
	}
}

// Close stops the workers after the batch in progress (queued requests get
// errStopped) and waits for them.
func (b *batcher[In, Out]) Close() {
	if b.stopped.CompareAndSwap(false, true) {
		close(b.stop)
	}
	<-b.drained
}

func (b *batcher[In, Out]) worker() {
	defer b.wg.Done()
	var carry *job[In, Out] // a job that did not fit the previous batch
	for {
		first := carry
		carry = nil
		if first == nil {
			select {
			case first = <-b.queue:
				b.took(first)
			case <-b.stop:
				b.failQueued()
				return
			}
		}
		batch := []*job[In, Out]{first}
		n := len(first.in)
		if n < b.maxBatch {
			timer := time.NewTimer(b.maxWait)
		fill:
			for n < b.maxBatch {
				select {
				case j := <-b.queue:
					b.took(j)
					if n+len(j.in) > b.maxBatch {
						carry = j
						break fill
					}
					batch = append(batch, j)
					n += len(j.in)
				case <-timer.C:
					break fill
				case <-b.stop:
					break fill
				}
			}
			timer.Stop()
		}
		b.runJobs(batch) // a carried job stays counted as pending until its batch
	}
}

// took moves a job's items from the queue count to the pending count.
func (b *batcher[In, Out]) took(j *job[In, Out]) {
	b.waiting.Add(-int64(len(j.in)))
	b.pending.Add(int64(len(j.in)))
}

// failQueued answers every queued request with errStopped.
func (b *batcher[In, Out]) failQueued() {
	for {
		select {
		case j := <-b.queue:
			b.waiting.Add(-int64(len(j.in)))
			j.done <- result[Out]{err: errStopped}
		default:
			return
		}
	}
}

// runJobs runs one batch of jobs and hands each its outputs.
func (b *batcher[In, Out]) runJobs(batch []*job[In, Out]) {
	live := batch[:0:0]
	for _, j := range batch {
		b.pending.Add(-int64(len(j.in)))
		if j.ctx.Err() != nil {
			continue // its client has left: skip the work
		}
		live = append(live, j)
	}
	if len(live) == 0 {
		return
	}
	var in []In
	for _, j := range live {
		in = append(in, j.in...)
	}
	// The batch's context ends when every request in it has ended, or when
	// the server stops hard.
	ctx, cancel := context.WithCancel(b.base)
	defer cancel()
	left := atomic.Int64{}
	left.Store(int64(len(live)))
	for _, j := range live {
		stop := context.AfterFunc(j.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
		defer stop()
	}
	reqs := make([]context.Context, len(live))
	for i, j := range live {
		reqs[i] = j.ctx
	}
	sctx, span := startBatch(ctx, b.name, reqs, len(in), false)
	b.busy.Store(int64(len(in)))
	start := time.Now()
	out, err := b.runBatch(sctx, in)
	b.busy.Store(0)
	endBatch(span, err)
	d := time.Since(start)
	b.m.batchSize.WithLabelValues(b.name).Observe(float64(len(in)))
	b.m.batchSeconds.WithLabelValues(b.name).Observe(d.Seconds())
	if old := b.avgNano.Load(); old == 0 {
		b.avgNano.Store(int64(d))
	} else {
		b.avgNano.Store(old + (int64(d)-old)/8)
	}
	if err != nil && len(live) > 1 && ctx.Err() == nil {
		// One bad request must not fail the others: run each alone.
		for _, j := range live {
			if j.ctx.Err() != nil {
				continue
			}
			o, e := b.runAlone(j)
			j.done <- result[Out]{out: o, err: e}
		}
		return
	}
	off := 0
	for _, j := range live {
		r := result[Out]{err: err}
		if err == nil {
			r.out = out[off : off+len(j.in) : off+len(j.in)]
		}
		off += len(j.in)
		j.done <- r
	}
}

// runAlone runs one job by itself, stopping when it ends or the server stops hard.
func (b *batcher[In, Out]) runAlone(j *job[In, Out]) ([]Out, error) {
	ctx, cancel := context.WithCancel(j.ctx)
	defer cancel()
	stop := context.AfterFunc(b.base, cancel)
	defer stop()
	ctx, span := startBatch(ctx, b.name, []context.Context{j.ctx}, len(j.in), true)
	out, err := b.runBatch(ctx, j.in)
	endBatch(span, err)
	return out, err
}

// runBatch calls run, turning a panic into an error and checking the output length.
func (b *batcher[In, Out]) runBatch(ctx context.Context, in []In) (out []Out, err error) {
	defer func() {
		if p := recover(); p != nil {
			b.m.panics.WithLabelValues(b.name).Inc()
			out, err = nil, fmt.Errorf("%s: internal panic: %v", b.name, p)
		}
	}()
	out, err = b.run(ctx, in)
	if err == nil && len(out) != len(in) {
		return nil, fmt.Errorf("%s: %d outputs for %d inputs", b.name, len(out), len(in))
	}
	return out, err
}
