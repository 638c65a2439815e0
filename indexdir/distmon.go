package indexdir

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/re2g/re2g/torch"
	"github.com/re2g/re2g/torch/dist"
)

// monitorEvery is the time between the monitor's rounds.
const monitorEvery = 500 * time.Millisecond

// jobMonitor keeps the ranks of a distributed build in touch. A goroutine
// on every rank all-reduces, each round, a vector that says which ranks
// have failed and whether rank 0 has finished: every rank learns both in
// the same round, so all stop together, and no rank is left in a
// collective. A rank that dies or is killed fails the round on the others
// at once (its connections close), one that hangs after the group's
// timeout; the monitored context ctx is then cancelled with the error, so
// that whatever the rank is doing (reading, encoding, waiting for a key)
// stops. The round is the only collective of a build, and it runs on one
// goroutine, as the group requires.
type jobMonitor struct {
	g      *dist.Group
	prefix string // the build's keys in the job's store (buildPrefix)
	parent context.Context
	ctx    context.Context // cancelled when the job fails
	cancel context.CancelCauseFunc

	failed   atomic.Bool // this rank has failed (its error is in the store)
	finished atomic.Bool // rank 0 has finished the index
	detached atomic.Bool // a lost rank no longer cancels ctx

	done chan struct{} // closed when the loop ends
	mu   sync.Mutex
	err  error // why the loop ended: another rank's failure, a lost rank, this rank's context (nil: finished, or this rank failed)
}

// key is the store key k of this build.
func (m *jobMonitor) key(k string) string { return m.prefix + k }

// startMonitor starts the monitor of a build on g.
func startMonitor(ctx context.Context, g *dist.Group) *jobMonitor {
	m := &jobMonitor{g: g, prefix: buildPrefix(g), parent: ctx, done: make(chan struct{})}
	m.ctx, m.cancel = context.WithCancelCause(ctx)
	go m.loop()
	return m
}

func (m *jobMonitor) loop() {
	defer close(m.done)
	n, r := m.g.Size(), m.g.Rank()
	for {
		v := make([]float32, n+1)
		if m.failed.Load() {
			v[r] = 1
		}
		if r == 0 && m.finished.Load() {
			v[n] = 1
		}
		sum, err := m.round(v)
		if err != nil {
			if m.parent.Err() != nil {
				m.end(context.Cause(m.parent))
			} else {
				m.end(m.lost(err))
			}
			return
		}
		for q := range n {
			if sum[q] == 0 {
				continue
			}
			if q == r {
				m.end(nil) // this rank's own error goes back from Build
			} else {
				m.end(m.failure(q))
			}
			return
		}
		if sum[n] > 0 {
			m.end(nil)
			return
		}
		t := time.NewTimer(monitorEvery)
		select {
		case <-m.parent.Done():
			t.Stop()
			m.end(context.Cause(m.parent))
			return
		case <-t.C:
		}
	}
}

// round all-reduces v (a sum) over the ranks, on the group's device (NCCL
// takes CUDA tensors only: a training job's group on CUDA runs this too).
func (m *jobMonitor) round(v []float32) ([]float32, error) {
	s := torch.NewScope().NoGrad()
	defer s.Close()
	t := s.FromFloat32(v, int64(len(v)))
	if dev := m.g.Device(); dev.Type != torch.CPU {
		t = s.To(t, dev)
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	if err := m.g.AllReduce(m.parent, dist.Sum, t); err != nil {
		return nil, err
	}
	if dev := m.g.Device(); dev.Type != torch.CPU {
		t = s.To(t, torch.CPUDevice)
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	return t.Float32s()
}

// failure is rank q's error, as it put it in the store.
func (m *jobMonitor) failure(q int) error {
	ctx, cancel := context.WithTimeout(m.parent, 30*time.Second)
	defer cancel()
	msg, err := m.g.Store().Get(ctx, m.key(keyFailed+strconv.Itoa(q)))
	if err != nil {
		msg = []byte("(its error could not be read: " + err.Error() + ")")
	}
	return &RankError{Rank: q, Size: m.g.Size(), Msg: string(msg)}
}

// lost is the error of a round that failed: a rank went away or hangs.
func (m *jobMonitor) lost(err error) error {
	who := "a rank"
	if m.g.Size() == 2 {
		who = "rank " + strconv.Itoa(1-m.g.Rank())
	}
	what := "went away (it exited or was killed)"
	switch {
	case errors.Is(err, dist.ErrTimeout):
		what = fmt.Sprintf("stopped answering for %v (it hangs, or its machine is gone)", m.g.Timeout())
	case !errors.Is(err, dist.ErrPeerLost):
		what = "stopped answering"
	}
	return fmt.Errorf("index: %s of the job %s: every rank stops; rerun with --resume to continue: %w", who, what, err)
}

// end records why the loop ended and, for an error before detach, cancels
// the monitored context with it.
func (m *jobMonitor) end(err error) {
	m.mu.Lock()
	m.err = err
	m.mu.Unlock()
	if err != nil && !m.detached.Load() {
		m.cancel(err)
	}
}

// ended reports whether the loop has ended.
func (m *jobMonitor) ended() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// cause is the error that stopped this rank from outside: another rank's
// failure or a lost rank (nil: none, or not yet).
func (m *jobMonitor) cause() error {
	if !m.ended() || m.parent.Err() != nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// fail tells the other ranks that this one failed with err, and waits for
// the round that carries it (at most the group's timeout).
func (m *jobMonitor) fail(err error) {
	if m.ended() {
		return
	}
	ctx, cancel := context.WithTimeout(m.parent, 30*time.Second)
	defer cancel()
	if serr := m.g.Store().Set(ctx, m.key(keyFailed+strconv.Itoa(m.g.Rank())), []byte(err.Error())); serr != nil {
		slog.Warn("index: telling the other ranks of the failure", "err", serr)
	}
	m.failed.Store(true)
	<-m.done
}

// finish (rank 0) tells the other ranks that the index is finished, and
// waits for the round that carries it. It returns the error the loop ended
// with, if it had ended otherwise.
func (m *jobMonitor) finish() error {
	m.finished.Store(true)
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// wait (ranks > 0) waits until rank 0 has finished the index (nil) or the
// job has failed.
func (m *jobMonitor) wait() error {
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	if m.failed.Load() {
		return fmt.Errorf("index: rank %d failed", m.g.Rank())
	}
	return nil
}

// detach makes a lost rank no longer cancel the monitored context: rank 0
// calls it once every rank's chunks are stored.
func (m *jobMonitor) detach() { m.detached.Store(true) }

// stop ends the monitored context. The loop ends with the group: Build's
// caller closes it.
func (m *jobMonitor) stop() { m.cancel(nil) }

// RankError is another rank's failure in a distributed build, as that rank
// reported it.
type RankError struct {
	Rank, Size int
	Msg        string
}

func (e *RankError) Error() string {
	return fmt.Sprintf("index: rank %d of %d failed: %s", e.Rank, e.Size, strings.TrimPrefix(e.Msg, "index: "))
}
