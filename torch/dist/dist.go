// Package dist runs re2g on several processes at once: data-parallel
// training and distributed corpus encoding, on libtorch's c10d process
// groups (Gloo for CPU tensors, NCCL for CUDA ones) through re2g's shim.
//
// A job is started by a launcher that sets the environment (see Env):
// torchrun (`torchrun --no-python --nproc_per_node 2 re2g …`), SLURM's srun
// or a Kubernetes PyTorchJob. FromEnv reads it, meets the other ranks
// (rank 0 hosts a TCP store at MASTER_ADDR:MASTER_PORT, or torchrun's agent
// does) and returns the Group:
//
//	g, err := dist.FromEnv(ctx, dist.Options{Device: dev})
//	if err != nil { … }
//	defer g.Close()
//	err = g.AllReduce(ctx, dist.Average, loss)
//
// Without a launcher (or with a world size of 1) FromEnv returns a group of
// one rank with no process group at all: its collectives return at once
// (AllReduce leaves tensors as they are, AllGather copies, Barrier returns)
// and its Store is a map in memory, so code written for several ranks runs
// unchanged alone. A nil *Group behaves the same way.
//
// The rules:
//
//   - Every rank calls the same collectives, in the same order, with
//     tensors of the same types and shapes (AllGather's first dimension
//     excepted). A rank that skips one, or calls another, leaves the others
//     waiting until their timeout. Decisions that differ by rank (rank 0
//     writes the index) must not change which collectives run.
//   - One goroutine at a time issues a group's collectives (they are
//     serialised); an autograd all-gather's backward pass (AllGatherGrad)
//     runs its all-reduce inside Scope.Backward, which is also a collective.
//   - Every blocking call takes a context. A collective waits at most
//     Options.Timeout (the backend's own limit, fixed when the group is
//     made), less when the context's deadline is nearer; store waits wait
//     until the context's deadline, or Options.Timeout when it has none, so
//     that a long wait (ranks waiting while rank 0 builds an index) is a
//     Store.Wait with a long deadline rather than a Barrier.
//   - A failed collective (timeout, a peer that went away, or a context
//     that ended it) fails the group: the ranks are out of step and later
//     collectives return ErrFailed. Close the group and exit; the launcher
//     restarts or ends the job. Errors name the operation and the rank:
//     `dist: all_reduce on rank 1 of 2: timed out after 30s waiting for the
//     other ranks`.
//   - When a context is cancelled during a collective, the call returns at
//     once (within 100 ms) and no goroutine is left behind; the native
//     operation stays queued in the backend until it completes or reaches
//     the backend's timeout, holding its own references to the tensors
//     (freeing them is safe). Close then releases the process group in the
//     background, as Gloo's teardown waits for that operation. Rendezvous
//     cancelled the same way leaves one goroutine in native code until the
//     rendezvous timeout, which then frees what it made.
//
// Native memory is owned explicitly, as in package torch: Close releases the
// process group and the store; tensors returned by AllGather belong to the
// scope passed in.
package dist

/*
#cgo CFLAGS: -I${SRCDIR}/../csrc
#cgo LDFLAGS: -L${SRCDIR}/../../build/lib -lre2gtorch -Wl,--enable-new-dtags -Wl,-rpath,${SRCDIR}/../../build/lib
#include <stdlib.h>
#include "re2g_torch.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/re2g/re2g/torch"
)

// Backend is the library that carries a group's collectives.
type Backend string

// The backends.
const (
	Gloo Backend = "gloo" // CPU tensors, over TCP
	NCCL Backend = "nccl" // CUDA tensors, needs a shim built against a CUDA libtorch with NCCL
)

// ParseBackend reads "gloo" or "nccl".
func ParseBackend(s string) (Backend, error) {
	switch strings.ToLower(s) {
	case "gloo":
		return Gloo, nil
	case "nccl":
		return NCCL, nil
	}
	return "", fmt.Errorf("dist: unknown backend %q (want gloo or nccl)", s)
}

// Available reports whether the loaded shim was built with backend b.
func Available(b Backend) bool {
	m := C.re2g_dist_backends()
	switch b {
	case Gloo:
		return m&C.RE2G_GLOO != 0
	case NCCL:
		return m&C.RE2G_NCCL != 0
	}
	return false
}

func (b Backend) code() C.int {
	if b == NCCL {
		return C.RE2G_NCCL
	}
	return C.RE2G_GLOO
}

// DefaultTimeout bounds rendezvous and each collective when neither
// Options.Timeout nor RE2G_DIST_TIMEOUT says otherwise.
const DefaultTimeout = 10 * time.Minute

// DefaultBucketBytes is the size of the buffers AllReduceGrads packs
// gradients into, as PyTorch's DistributedDataParallel (25 MiB).
const DefaultBucketBytes = 25 << 20

// Options configure a group.
type Options struct {
	// Device is where the tensors the group reduces live. It picks the
	// backend (Gloo for the CPU, NCCL for CUDA) and holds the group's own
	// small tensors (Barrier, AllGather's shapes). A CUDA device with a
	// negative index is this rank's local GPU, cuda:LOCAL_RANK.
	Device torch.Device
	// Backend overrides the choice by device; "" reads RE2G_DIST_BACKEND,
	// then goes by Device. NCCL on a shim without NCCL is an error.
	Backend Backend
	// Timeout bounds the rendezvous and each collective; 0 reads
	// RE2G_DIST_TIMEOUT, then DefaultTimeout.
	Timeout time.Duration
	// BucketBytes is the largest buffer AllReduce, Broadcast and
	// AllReduceGrads pack tensors into; 0 is DefaultBucketBytes.
	BucketBytes int64
	// GlooInterface is the network interface Gloo binds (as
	// GLOO_SOCKET_IFNAME, which is read when this is empty); GlooHost, when
	// no interface is given, the host name or address it binds. With
	// neither, Gloo binds 127.0.0.1 when MASTER_ADDR is a loopback address,
	// and the address of this host's name otherwise.
	GlooInterface, GlooHost string
	// Logger receives the rendezvous and close lines; nil is slog.Default().
	Logger *slog.Logger
}

// Group is this process's membership of a job: its rank, the process
// group's collectives and the job's key-value store.
type Group struct {
	rank, size           int
	localRank, localSize int
	launcher             string
	backend              Backend
	device               torch.Device
	timeout              time.Duration
	bucket               int64
	log                  *slog.Logger

	mu        sync.Mutex // one collective at a time
	pg        C.re2g_pg_t
	store     *Store
	hosting   bool // this rank hosts the TCP store
	closed    bool
	abandoned bool   // a collective was given up with its native work in flight
	bseq      uint64 // BroadcastBytes calls so far
}

// FromEnv forms the group the launcher's environment describes (LookupEnv),
// or a group of one rank when there is none. See New.
func FromEnv(ctx context.Context, opts Options) (*Group, error) {
	env, err := LookupEnv()
	if err != nil {
		return nil, err
	}
	return New(ctx, env, opts)
}

// New forms the group env describes: it meets the other ranks through the
// store (rank 0 hosting it unless env.AgentStore or env.StoreFile) and
// connects the process group, waiting at most the timeout or the context's
// deadline for all ranks to arrive. With env.WorldSize 1 it returns a group
// of one rank and no process group.
func New(ctx context.Context, env Env, opts Options) (*Group, error) {
	g := &Group{
		rank: env.Rank, size: max(env.WorldSize, 1),
		localRank: env.LocalRank, localSize: max(env.LocalWorldSize, 1),
		launcher: env.Launcher, timeout: opts.Timeout, bucket: opts.BucketBytes, log: opts.Logger,
		device: opts.Device,
	}
	if g.log == nil {
		g.log = slog.Default()
	}
	if g.bucket <= 0 {
		g.bucket = DefaultBucketBytes
	}
	if g.rank < 0 || g.rank >= g.size {
		return nil, fmt.Errorf("dist: rank %d out of range for a world of %d", g.rank, g.size)
	}
	if g.device.Type == torch.CUDA && g.device.Index < 0 {
		g.device.Index = g.localRank
	}
	if g.timeout <= 0 {
		d, err := envTimeout(os.LookupEnv)
		if err != nil {
			return nil, err
		}
		g.timeout = d
	}
	if g.timeout <= 0 {
		g.timeout = DefaultTimeout
	}
	b := opts.Backend
	if b == "" {
		var err error
		if b, err = envBackend(os.LookupEnv); err != nil {
			return nil, err
		}
	}
	if b == "" {
		b = Gloo
		if g.device.Type == torch.CUDA {
			b = NCCL
		}
	}
	if _, err := ParseBackend(string(b)); err != nil {
		return nil, err
	}
	g.backend = b
	if g.size == 1 {
		g.store = newLocalStore(g)
		return g, nil
	}
	if b == NCCL && g.device.Type != torch.CUDA {
		return nil, fmt.Errorf("dist: the nccl backend needs a CUDA device, not %v (use gloo for the CPU)", g.device)
	}
	if !Available(b) {
		switch b {
		case NCCL:
			return nil, fmt.Errorf("dist: backend nccl: this libre2gtorch (libtorch %s) was built without NCCL: build the shim against a CUDA libtorch with NCCL's headers (make torch-shim TORCH_PREFIX=…), or use gloo", torch.Version())
		default:
			return nil, fmt.Errorf("dist: backend gloo: this libre2gtorch (libtorch %s) was built without Gloo's headers (make torch-dist-info; GLOO_INCLUDE=DIR)", torch.Version())
		}
	}
	if err := torch.CheckDevice(g.device); err != nil {
		return nil, fmt.Errorf("dist: %w", err)
	}
	if err := g.rendezvous(ctx, env, opts); err != nil {
		return nil, err
	}
	return g, nil
}

// rendezvous makes the store, waits until every rank has counted itself in
// there, and makes the process group. Native code blocks (making the store:
// until it is reached, or, on the host, until every rank has connected;
// making the process group: until every rank's Gloo or NCCL has connected),
// so it runs in a goroutine and a cancelled context returns at once: the
// goroutine then ends within the timeout and frees what it made.
func (g *Group) rendezvous(ctx context.Context, env Env, opts Options) error {
	wait := g.timeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < wait {
		wait = time.Until(d)
	}
	if wait <= 0 {
		return &Error{Op: "rendezvous", Rank: g.rank, Size: g.size, Msg: "the context's deadline has passed", Kind: ErrTimeout, Cause: context.DeadlineExceeded}
	}
	start := time.Now()
	deadline := start.Add(wait)
	prefix := "re2g/"
	if env.AgentStore {
		prefix += "attempt_" + strconv.Itoa(env.RestartCount) + "/"
	}
	iface := opts.GlooInterface
	if iface == "" {
		iface, _, _ = strings.Cut(os.Getenv("GLOO_SOCKET_IFNAME"), ",")
	}
	host := opts.GlooHost
	if iface == "" && host == "" && isLoopback(env.MasterAddr) {
		host = "127.0.0.1"
	}
	g.hosting = env.StoreFile == "" && !env.AgentStore && g.rank == 0
	where := env.StoreFile
	if where == "" {
		where = net.JoinHostPort(env.MasterAddr, strconv.Itoa(env.MasterPort))
	}
	fail := func(msg string) error {
		e := g.classify("rendezvous", msg, time.Since(start))
		if e.Kind == ErrTimeout {
			e.Msg = fmt.Sprintf("not every rank arrived at %s within %v (%s)", where, wait.Round(time.Millisecond), msg)
		}
		return e
	}
	cancelled := func() error {
		e := &Error{Op: "rendezvous", Rank: g.rank, Size: g.size, Msg: ctx.Err().Error(), Cause: ctx.Err()}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			e.Kind = ErrTimeout
			e.Msg = fmt.Sprintf("not every rank arrived at %s within %v", where, wait.Round(time.Millisecond))
		}
		return e
	}

	// The store.
	type madeStore struct {
		s   C.re2g_store_t
		err string
	}
	storeDone := make(chan madeStore, 1)
	go func() {
		var m madeStore
		ms := C.int64_t(max(wait.Milliseconds(), 1))
		cprefix := C.CString(prefix)
		defer C.free(unsafe.Pointer(cprefix))
		var e C.re2g_err
		if env.StoreFile != "" {
			cpath := C.CString(env.StoreFile)
			e = C.re2g_store_file(cpath, C.int(g.size), ms, cprefix, &m.s)
			C.free(unsafe.Pointer(cpath))
		} else {
			chost := C.CString(env.MasterAddr)
			server := C.int(0)
			if g.hosting {
				server = 1
			}
			e = C.re2g_store_tcp(chost, C.int(env.MasterPort), server, C.int(g.size), ms, cprefix, &m.s)
			C.free(unsafe.Pointer(chost))
		}
		if e != nil {
			m.err = fmt.Sprintf("store at %s: %s", where, errString(e))
		}
		storeDone <- m
	}()
	var store C.re2g_store_t
	select {
	case m := <-storeDone:
		if m.err != "" {
			return fail(m.err)
		}
		store = m.s
	case <-ctx.Done():
		go func() {
			if m := <-storeDone; m.s != nil {
				C.re2g_store_free(m.s)
			}
		}()
		return cancelled()
	}
	g.store = &Store{g: g, s: store}
	ok := false
	defer func() {
		if !ok {
			g.store.mu.Lock()
			C.re2g_store_free(store)
			g.store.s = nil
			g.store.mu.Unlock()
		}
	}()

	// Every rank counts itself in: the process group's own rendezvous then
	// finds them all there, within the deadline.
	if _, err := g.store.add(ctx, "arrived", 1); err != nil {
		return fail(err.Error())
	}
	pause := time.Millisecond
	for {
		n, err := g.store.add(ctx, "arrived", 0)
		if err != nil {
			return fail(err.Error())
		}
		if n >= int64(g.size) {
			break
		}
		if ctx.Err() != nil {
			return cancelled()
		}
		if !time.Now().Before(deadline) {
			e := &Error{Op: "rendezvous", Rank: g.rank, Size: g.size, Kind: ErrTimeout,
				Msg: fmt.Sprintf("%d of %d ranks arrived at %s within %v", n, g.size, where, wait.Round(time.Millisecond))}
			if _, byCtx := ctx.Deadline(); byCtx && wait < g.timeout {
				e.Cause = context.DeadlineExceeded
			}
			return e
		}
		time.Sleep(min(pause, time.Until(deadline)))
		pause = min(2*pause, 50*time.Millisecond)
	}

	// The process group, with the group's timeout: its collectives keep it.
	type madePG struct {
		pg  C.re2g_pg_t
		err string
	}
	pgDone := make(chan madePG, 1)
	go func() {
		var m madePG
		cpg := C.CString("pg/")
		ciface, chost := C.CString(iface), C.CString(host)
		e := C.re2g_pg_new(store, cpg, C.int(g.rank), C.int(g.size), g.backend.code(), C.int64_t(max(g.timeout.Milliseconds(), 1)), ciface, chost, &m.pg)
		C.free(unsafe.Pointer(cpg))
		C.free(unsafe.Pointer(ciface))
		C.free(unsafe.Pointer(chost))
		if e != nil {
			m.err = fmt.Sprintf("%s process group: %s", g.backend, errString(e))
		}
		pgDone <- m
	}()
	select {
	case m := <-pgDone:
		if m.err != "" {
			return fail(m.err)
		}
		g.pg = m.pg
	case <-ctx.Done():
		ok = true // the goroutine frees the store once the process group is made or has failed
		st := g.store
		go func() {
			if m := <-pgDone; m.pg != nil {
				C.re2g_pg_free(m.pg)
			}
			st.mu.Lock()
			C.re2g_store_free(st.s)
			st.s = nil
			st.mu.Unlock()
		}()
		return cancelled()
	}
	ok = true
	g.log.Info("dist: joined", "rank", g.rank, "world", g.size, "local_rank", g.localRank,
		"backend", g.backend, "device", g.device, "store", where, "hosting", g.hosting,
		"launcher", g.launcher, "ms", time.Since(start).Milliseconds())
	return nil
}

func isLoopback(addr string) bool {
	if addr == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(addr, "[]"))
	return ip != nil && ip.IsLoopback()
}

// errString turns a shim error into a string and frees it.
func errString(e C.re2g_err) string {
	s := C.GoString(e)
	C.re2g_free_err(e)
	return s
}

// Rank is this process's rank, 0 to Size()-1; 0 for a nil group.
func (g *Group) Rank() int {
	if g == nil {
		return 0
	}
	return g.rank
}

// Size is the number of ranks; 1 for a nil group.
func (g *Group) Size() int {
	if g == nil {
		return 1
	}
	return g.size
}

// LocalRank is this process's rank on its machine (LOCAL_RANK).
func (g *Group) LocalRank() int {
	if g == nil {
		return 0
	}
	return g.localRank
}

// LocalSize is the number of ranks on this machine (LOCAL_WORLD_SIZE).
func (g *Group) LocalSize() int {
	if g == nil {
		return 1
	}
	return g.localSize
}

// IsMain reports whether this is rank 0, the one that writes shared output.
func (g *Group) IsMain() bool { return g.Rank() == 0 }

// Backend is the group's backend ("" for a group of one rank).
func (g *Group) Backend() Backend {
	if g == nil || g.pg == nil {
		return ""
	}
	return g.backend
}

// Device is the group's device.
func (g *Group) Device() torch.Device {
	if g == nil {
		return torch.CPUDevice
	}
	return g.device
}

// Launcher says which launcher's variables formed the group ("" alone).
func (g *Group) Launcher() string {
	if g == nil {
		return ""
	}
	return g.launcher
}

// Timeout is the bound on each collective.
func (g *Group) Timeout() time.Duration {
	if g == nil {
		return DefaultTimeout
	}
	return g.timeout
}

// single reports whether g has no process group (one rank, or nil).
func (g *Group) single() bool { return g == nil || g.size == 1 }

// Close leaves the group: it releases the process group (Gloo closes its
// connections, so peers still waiting on this rank fail at once) and the
// store. The rank hosting the TCP store keeps serving it until every other
// rank has closed too, at most a minute or the timeout (not at all after a
// failed collective), so that none loses the store in the middle of a call.
// Close is safe to call twice and on nil.
func (g *Group) Close() error {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	g.closed = true
	failed := false
	if g.pg != nil {
		pg := g.pg
		failed = C.re2g_pg_failed(pg) != 0
		g.pg = nil
		if g.abandoned {
			// Gloo's teardown waits for the abandoned operation (at most its timeout).
			go C.re2g_pg_free(pg)
		} else {
			C.re2g_pg_free(pg)
		}
	}
	if g.store != nil && g.store.s != nil {
		// After a failure the other ranks may be gone: the host does not wait.
		g.store.closeShared(g.hosting && !failed, min(g.timeout, time.Minute))
	}
	return nil
}
