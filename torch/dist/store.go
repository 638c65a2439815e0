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
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// Store is the job's key-value store, for the control plane: ranks agree on
// small things through it ("rank 0 has built the index", an error a rank
// wants the others to see). It is the rendezvous store itself (a TCP store,
// hosted by rank 0 or torchrun's agent, or a file store) with re2g's keys
// apart from the process group's. A group of one rank has a store in
// memory. Its methods are safe for concurrent use.
//
// Get and Wait wait for keys until the context's deadline, or the group's
// timeout when the context has none; they poll (every 1 to 50 ms), so a
// cancelled context ends them at once and nothing is left waiting.
type Store struct {
	g  *Group
	mu sync.Mutex
	s  C.re2g_store_t // nil for a group of one rank

	local map[string][]byte
}

func newLocalStore(g *Group) *Store { return &Store{g: g, local: map[string][]byte{}} }

// Store is the group's key-value store.
func (g *Group) Store() *Store {
	if g == nil {
		return &Store{local: map[string][]byte{}}
	}
	return g.store
}

const kvPrefix = "kv/"

func (s *Store) err(op, msg string, kind, cause error) error {
	rank, size := 0, 1
	if s.g != nil {
		rank, size = s.g.rank, s.g.size
	}
	return &Error{Op: "store " + op, Rank: rank, Size: size, Msg: msg, Kind: kind, Cause: cause}
}

func (s *Store) native(op string, e C.re2g_err) error {
	if e == nil {
		return nil
	}
	msg := errString(e)
	kind := error(nil)
	if containsAny(strings.ToLower(msg), peerMarkers) {
		kind = ErrPeerLost
		msg = "the store's host went away (rank 0 or the launcher's agent exited): " + msg
	}
	return s.err(op, msg, kind, nil)
}

func checkKey(key string) error {
	if key == "" || strings.IndexByte(key, 0) >= 0 {
		return fmt.Errorf("dist: store key %q: want a non-empty string without NUL", key)
	}
	return nil
}

// Set stores value under key, replacing what was there.
func (s *Store) Set(ctx context.Context, key string, value []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return s.err("set", err.Error(), nil, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.s == nil {
		if s.local == nil {
			return s.err("set", "the group is closed", ErrClosed, nil)
		}
		s.local[kvPrefix+key] = append([]byte(nil), value...)
		return nil
	}
	ck := C.CString(kvPrefix + key)
	defer C.free(unsafe.Pointer(ck))
	var p unsafe.Pointer
	if len(value) > 0 {
		p = C.CBytes(value)
		defer C.free(p)
	}
	return s.native("set", C.re2g_store_set(s.s, ck, p, C.size_t(len(value))))
}

// Add adds delta to the integer under key (0 when absent) and returns the
// sum: a counter every rank can bump, e.g. ranks done with their shard.
func (s *Store) Add(ctx context.Context, key string, delta int64) (int64, error) {
	if err := checkKey(key); err != nil {
		return 0, err
	}
	return s.add(ctx, kvPrefix+key, delta)
}

func (s *Store) add(ctx context.Context, key string, delta int64) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, s.err("add", err.Error(), nil, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.s == nil {
		if s.local == nil {
			return 0, s.err("add", "the group is closed", ErrClosed, nil)
		}
		n, _ := strconv.ParseInt(string(s.local[key]), 10, 64)
		n += delta
		s.local[key] = []byte(strconv.FormatInt(n, 10))
		return n, nil
	}
	ck := C.CString(key)
	defer C.free(unsafe.Pointer(ck))
	var out C.int64_t
	if err := s.native("add", C.re2g_store_add(s.s, ck, C.int64_t(delta), &out)); err != nil {
		return 0, err
	}
	return int64(out), nil
}

// Delete removes key; a missing key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	return s.delete(kvPrefix + key)
}

func (s *Store) delete(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.s == nil {
		delete(s.local, key)
		return nil
	}
	ck := C.CString(key)
	defer C.free(unsafe.Pointer(ck))
	var d C.int
	return s.native("delete", C.re2g_store_delete(s.s, ck, &d))
}

// has reports whether the full key exists.
func (s *Store) has(key string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.s == nil {
		if s.local == nil {
			return false, s.err("wait", "the group is closed", ErrClosed, nil)
		}
		_, ok := s.local[key]
		return ok, nil
	}
	ck := C.CString(key)
	defer C.free(unsafe.Pointer(ck))
	var ok C.int
	if err := s.native("wait", C.re2g_store_check(s.s, ck, &ok)); err != nil {
		return false, err
	}
	return ok != 0, nil
}

// Wait waits until every key exists.
func (s *Store) Wait(ctx context.Context, keys ...string) error {
	full := make([]string, len(keys))
	for i, k := range keys {
		if err := checkKey(k); err != nil {
			return err
		}
		full[i] = kvPrefix + k
	}
	return s.wait(ctx, "wait", full, keys)
}

func (s *Store) wait(ctx context.Context, op string, full, shown []string) error {
	timeout := DefaultTimeout
	if s.g != nil {
		timeout = s.g.timeout
	}
	start := time.Now()
	deadline, byCtx := ctx.Deadline()
	if !byCtx {
		deadline = start.Add(timeout)
	}
	pause := time.Millisecond
	for i := 0; i < len(full); {
		ok, err := s.has(full[i])
		if err != nil {
			return err
		}
		if ok {
			i++
			continue
		}
		if ctx.Err() != nil || !time.Now().Before(deadline) {
			cause := ctx.Err()
			if cause == nil && byCtx {
				cause = context.DeadlineExceeded
			}
			if cause == nil || errors.Is(cause, context.DeadlineExceeded) {
				return s.err(op, fmt.Sprintf("timed out after %v waiting for %s", time.Since(start).Round(time.Millisecond), strings.Join(shown[i:], ", ")), ErrTimeout, cause)
			}
			return s.err(op, cause.Error(), nil, cause)
		}
		t := time.NewTimer(min(pause, time.Until(deadline)))
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		pause = min(pause*2, 50*time.Millisecond)
	}
	return nil
}

// Get waits for key (as Wait) and returns its value.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	return s.get(ctx, kvPrefix+key, key)
}

func (s *Store) get(ctx context.Context, full, shown string) ([]byte, error) {
	if err := s.wait(ctx, "get", []string{full}, []string{shown}); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.s == nil {
		return append([]byte(nil), s.local[full]...), nil
	}
	ck := C.CString(full)
	defer C.free(unsafe.Pointer(ck))
	var p unsafe.Pointer
	var n C.size_t
	if err := s.native("get", C.re2g_store_get(s.s, ck, &p, &n)); err != nil {
		return nil, err
	}
	if p == nil {
		return []byte{}, nil
	}
	defer C.re2g_free_buf(p)
	return C.GoBytes(p, C.int(n)), nil
}

// closeShared marks this rank closed and frees the store; the host waits
// (at most wait) for every other rank's mark first.
func (s *Store) closeShared(hosting bool, wait time.Duration) {
	ctx := context.Background()
	_, err := s.add(ctx, "closed", 1)
	if hosting && err == nil {
		deadline := time.Now().Add(wait)
		for time.Now().Before(deadline) {
			n, err := s.add(ctx, "closed", 0)
			if err != nil || n >= int64(s.g.size) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	s.mu.Lock()
	C.re2g_store_free(s.s)
	s.s = nil
	s.mu.Unlock()
}

// BroadcastBytes sends root's payload to every rank through the store and
// returns it on all of them (root's own copy on root): every rank calls it,
// in the same order, as a collective. For small payloads (a path, a JSON
// status, an error message); tensors go through Broadcast. It waits as
// Store.Get does.
func (g *Group) BroadcastBytes(ctx context.Context, root int, payload []byte) ([]byte, error) {
	if g.single() {
		if root != 0 {
			return nil, fmt.Errorf("dist: broadcast_bytes root %d out of range (world size 1)", root)
		}
		return append([]byte(nil), payload...), nil
	}
	if root < 0 || root >= g.size {
		return nil, fmt.Errorf("dist: broadcast_bytes root %d out of range (world size %d)", root, g.size)
	}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil, &Error{Op: "broadcast_bytes", Rank: g.rank, Size: g.size, Msg: "the group is closed", Kind: ErrClosed}
	}
	g.bseq++
	key := "bcast/" + strconv.FormatUint(g.bseq, 10)
	g.mu.Unlock()
	s := g.store
	if g.rank == root {
		if err := s.Set(ctx, key, payload); err != nil {
			return nil, err
		}
		return append([]byte(nil), payload...), nil
	}
	v, err := s.Get(ctx, key)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.Op = "broadcast_bytes"
		}
		return nil, err
	}
	// The last reader removes the key.
	if n, err := s.Add(ctx, key+"/read", 1); err == nil && n == int64(g.size-1) {
		s.Delete(ctx, key)
		s.Delete(ctx, key+"/read")
	}
	return v, nil
}
