package dist

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// The kinds of failure a collective reports, for errors.Is.
var (
	// ErrTimeout: the other ranks did not take part in time (a rank that
	// never calls the collective, or is stuck, or calls another one).
	ErrTimeout = errors.New("timed out")
	// ErrPeerLost: a peer's connection closed (a rank exited or was killed).
	ErrPeerLost = errors.New("peer lost")
	// ErrFailed: an earlier collective failed, so the ranks are out of step
	// and the group refuses further collectives. Close it and exit.
	ErrFailed = errors.New("group failed")
	// ErrClosed: the group was closed.
	ErrClosed = errors.New("group closed")
)

// Error is a failed distributed operation, naming the operation and this
// process's rank:
//
//	dist: all_reduce on rank 1 of 2: timed out after 30s waiting for the other ranks
type Error struct {
	Op         string // all_reduce, broadcast, all_gather, barrier, rendezvous, store wait, …
	Rank, Size int
	Msg        string
	Kind       error // ErrTimeout, ErrPeerLost, ErrFailed, ErrClosed, or nil
	Cause      error // the context's error, when it ended the wait
}

func (e *Error) Error() string {
	return fmt.Sprintf("dist: %s on rank %d of %d: %s", e.Op, e.Rank, e.Size, e.Msg)
}

// Unwrap gives errors.Is the kind and the context's error.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Cause != nil {
		errs = append(errs, e.Cause)
	}
	return errs
}

// peerMarkers are what Gloo, NCCL and the TCP store say when a peer's
// process has gone.
var peerMarkers = []string{
	"connection closed by peer", "connection reset by peer", "broken pipe", "econnreset",
	"connection refused", "remote process exited", "socket closed", "end of file",
}

// classify turns a native error message into an *Error of op.
func (g *Group) classify(op, msg string, wait time.Duration) *Error {
	e := &Error{Op: op, Rank: g.rank, Size: g.size, Msg: msg}
	low := strings.ToLower(msg)
	switch {
	case strings.Contains(low, "the group failed earlier"):
		e.Kind = ErrFailed
		e.Msg = msg + ": the ranks are out of step; close the group and exit"
	case strings.Contains(low, "the group is closed"):
		e.Kind = ErrClosed
	case containsAny(low, peerMarkers):
		e.Kind = ErrPeerLost
		e.Msg = "a peer went away (another rank exited or was killed): " + msg
	case strings.Contains(low, "timed out") || strings.Contains(low, "timeout"):
		e.Kind = ErrTimeout
		e.Msg = fmt.Sprintf("timed out after %v waiting for the other ranks (%s)", wait.Round(time.Millisecond), msg)
	}
	return e
}

func containsAny(s string, subs []string) bool {
	for _, x := range subs {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}
