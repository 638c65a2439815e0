package server

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// These tests drive the batcher with plain functions to pin down its
// mechanics; server_test.go runs it with the real pipeline.

func TestBatcherCoalesces(t *testing.T) {
	var mu sync.Mutex
	var sizes []int
	b := newBatcher(context.Background(), "t", batcherConfig{MaxBatch: 8, MaxWait: 200 * time.Millisecond, Queue: 64}, newMetrics(),
		func(ctx context.Context, in []int) ([]int, error) {
			mu.Lock()
			sizes = append(sizes, len(in))
			mu.Unlock()
			out := make([]int, len(in))
			for i, x := range in {
				out[i] = 2 * x
			}
			return out, nil
		})
	defer b.Close()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := b.Submit(context.Background(), []int{i})
			if err != nil || len(out) != 1 || out[0] != 2*i {
				t.Errorf("item %d: %v %v", i, out, err)
			}
		}()
	}
	wg.Wait()
	total := 0
	for _, s := range sizes {
		if s > 8 {
			t.Fatalf("batch of %d over the maximum of 8", s)
		}
		total += s
	}
	if total != 20 || len(sizes) > 5 {
		t.Fatalf("batch sizes %v: want 20 items in few batches", sizes)
	}
}

func TestBatcherQueueFull(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	b := newBatcher(context.Background(), "t", batcherConfig{MaxBatch: 1, Queue: 2}, newMetrics(),
		func(ctx context.Context, in []int) ([]int, error) {
			started <- struct{}{}
			<-release
			return in, nil
		})
	defer b.Close()
	errs := make(chan error, 10)
	go func() { _, err := b.Submit(context.Background(), []int{0}); errs <- err }()
	<-started // one running
	for i := 1; i <= 2; i++ {
		go func() { _, err := b.Submit(context.Background(), []int{i}); errs <- err }()
	}
	for b.Depth() < 2 {
		time.Sleep(time.Millisecond)
	}
	if _, err := b.Submit(context.Background(), []int{9}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("a full queue took a request: %v", err)
	}
	if b.RetryAfter() < 1 {
		t.Fatal("Retry-After under a second")
	}
	close(release)
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// A request that leaves a running batch gets its context error at once;
// the batch goes on for the others, and is cancelled only when all left.
func TestBatcherCancellation(t *testing.T) {
	batchCtx := make(chan context.Context, 1)
	release := make(chan struct{})
	b := newBatcher(context.Background(), "t", batcherConfig{MaxBatch: 3, MaxWait: time.Second, Queue: 8}, newMetrics(),
		func(ctx context.Context, in []int) ([]int, error) {
			batchCtx <- ctx
			select {
			case <-release:
				return in, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		})
	defer b.Close()
	ctxs := make([]context.Context, 3)
	cancels := make([]context.CancelFunc, 3)
	errs := make([]chan error, 3)
	for i := range 3 {
		ctxs[i], cancels[i] = context.WithCancel(context.Background())
		errs[i] = make(chan error, 1)
		go func() { _, err := b.Submit(ctxs[i], []int{i}); errs[i] <- err }()
	}
	bctx := <-batchCtx
	cancels[0]()
	if err := <-errs[0]; !errors.Is(err, context.Canceled) {
		t.Fatalf("the cancelled request got %v", err)
	}
	time.Sleep(20 * time.Millisecond)
	if bctx.Err() != nil {
		t.Fatal("one request leaving cancelled the whole batch")
	}
	close(release)
	for i := 1; i < 3; i++ {
		if err := <-errs[i]; err != nil {
			t.Fatalf("request %d in the same batch failed: %v", i, err)
		}
	}

	// all leave: the batch's context ends
	release2 := make(chan struct{})
	b2 := newBatcher(context.Background(), "t", batcherConfig{MaxBatch: 2, MaxWait: time.Second, Queue: 8}, newMetrics(),
		func(ctx context.Context, in []int) ([]int, error) {
			batchCtx <- ctx
			<-ctx.Done()
			close(release2)
			return nil, ctx.Err()
		})
	defer b2.Close()
	c1, x1 := context.WithCancel(context.Background())
	c2, x2 := context.WithCancel(context.Background())
	go b2.Submit(c1, []int{1})
	go b2.Submit(c2, []int{2})
	<-batchCtx
	x1()
	x2()
	select {
	case <-release2:
	case <-time.After(5 * time.Second):
		t.Fatal("the batch went on after every request left")
	}
}

// A failing batch is retried request by request, so that one bad input
// fails only its own request; a panic becomes an error.
func TestBatcherIsolatesFailures(t *testing.T) {
	b := newBatcher(context.Background(), "t", batcherConfig{MaxBatch: 4, MaxWait: 100 * time.Millisecond, Queue: 8}, newMetrics(),
		func(ctx context.Context, in []int) ([]int, error) {
			for _, x := range in {
				if x < 0 {
					return nil, errors.New("negative")
				}
				if x == 13 {
					panic("thirteen")
				}
			}
			return in, nil
		})
	defer b.Close()
	var wg sync.WaitGroup
	res := make([]error, 4)
	for i, x := range []int{1, -1, 2, 13} {
		wg.Add(1)
		go func() { defer wg.Done(); _, res[i] = b.Submit(context.Background(), []int{x}) }()
	}
	wg.Wait()
	if res[0] != nil || res[2] != nil {
		t.Fatalf("good requests failed beside bad ones: %v", res)
	}
	if res[1] == nil || res[3] == nil || !strings.Contains(res[3].Error(), "panic") {
		t.Fatalf("bad requests: %v", res)
	}
}

func TestBatcherCloseAnswersQueued(t *testing.T) {
	release := make(chan struct{})
	b := newBatcher(context.Background(), "t", batcherConfig{MaxBatch: 1, Queue: 4}, newMetrics(),
		func(ctx context.Context, in []int) ([]int, error) { <-release; return in, nil })
	first := make(chan error, 1)
	go func() { _, err := b.Submit(context.Background(), []int{1}); first <- err }()
	for b.Running() == 0 {
		time.Sleep(time.Millisecond)
	}
	queued := make(chan error, 1)
	go func() { _, err := b.Submit(context.Background(), []int{2}); queued <- err }()
	for b.Depth() == 0 {
		time.Sleep(time.Millisecond)
	}
	closed := make(chan struct{})
	go func() { b.Close(); close(closed) }()
	time.Sleep(10 * time.Millisecond)
	close(release)
	<-closed
	if err := <-first; err != nil {
		t.Fatalf("the running request was not finished: %v", err)
	}
	if err := <-queued; err != nil && !errors.Is(err, errStopped) {
		t.Fatalf("queued request: %v", err)
	}
	if _, err := b.Submit(context.Background(), []int{3}); !errors.Is(err, errStopped) {
		t.Fatalf("submit after close: %v", err)
	}
}
