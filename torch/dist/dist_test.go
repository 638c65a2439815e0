package dist

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/re2g/re2g/internal/proctest"
	"github.com/re2g/re2g/torch"
)

// The multi-rank tests run the test binary itself as each rank, with
// RE2G_DIST_CHILD naming the scenario and the launcher's variables set as
// torchrun sets them: real processes, real Gloo, on 127.0.0.1.
func TestMain(m *testing.M) {
	if name := os.Getenv("RE2G_DIST_CHILD"); name != "" {
		os.Exit(runChild(name))
	}
	os.Exit(m.Run())
}

// job describes a launch: the scenario, the world, and how ranks meet.
type job struct {
	scenario string
	world    int
	store    string // "tcp" or "file"
	ranks    []int  // the ranks to start (default: all)
	env      map[string]string
}

// start launches the job's ranks.
func start(t *testing.T, j job) []*proctest.Proc {
	t.Helper()
	pj := proctest.Job{World: j.world, Ranks: j.ranks, Env: []string{"RE2G_DIST_CHILD=" + j.scenario}}
	if j.store == "file" {
		pj.StoreFile = filepath.Join(t.TempDir(), "store")
	}
	for k, v := range j.env {
		pj.Env = append(pj.Env, k+"="+v)
	}
	return proctest.Start(t, pj)
}

// run launches the job and requires every rank to pass within limit.
func run(t *testing.T, j job, limit time.Duration) []*proctest.Proc {
	t.Helper()
	ps := start(t, j)
	proctest.Wait(t, ps, limit)
	for _, p := range ps {
		if p.Err() != nil || !strings.Contains(p.Output(), "PASS") {
			t.Errorf("%s, %d ranks, %s store: rank %d: %v\n%s", j.scenario, j.world, j.store, p.Rank, p.Err(), p.Output())
		} else {
			t.Logf("%s store, rank %d:\n%s", j.store, p.Rank, p.Output())
		}
	}
	return ps
}

func TestCollectives(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	for _, c := range []struct {
		world int
		store string
	}{{2, "file"}, {2, "tcp"}, {3, "tcp"}, {3, "file"}} {
		t.Run(fmt.Sprintf("%d-%s", c.world, c.store), func(t *testing.T) {
			run(t, job{scenario: "collectives", world: c.world, store: c.store, env: map[string]string{"RE2G_DIST_TIMEOUT": "60s"}}, 3*time.Minute)
		})
	}
}

// TestGatherGradMatchesOneProcess: DPR's loss over each rank's questions
// against every rank's passages, gradients averaged over ranks, equals the
// one-process gradient over the concatenated batch.
func TestGatherGradMatchesOneProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	run(t, job{scenario: "dpr", world: 2, store: "tcp", env: map[string]string{"RE2G_DIST_TIMEOUT": "60s"}}, 3*time.Minute)
	run(t, job{scenario: "dpr", world: 3, store: "file", env: map[string]string{"RE2G_DIST_TIMEOUT": "60s"}}, 3*time.Minute)
}

func TestAlone(t *testing.T) {
	ctx := context.Background()
	g, err := New(ctx, Env{WorldSize: 1}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if g.Size() != 1 || g.Rank() != 0 || g.Backend() != "" || !g.IsMain() {
		t.Errorf("alone: size %d rank %d backend %q", g.Size(), g.Rank(), g.Backend())
	}
	var nilGroup *Group
	for _, g := range []*Group{g, nilGroup} {
		s := torch.NewScope()
		x := s.FromFloat32([]float32{1, 2, 3, 4}, 2, 2)
		if err := g.AllReduce(ctx, Average, x); err != nil {
			t.Fatal(err)
		}
		if err := g.Broadcast(ctx, 0, x); err != nil {
			t.Fatal(err)
		}
		if err := g.Barrier(ctx); err != nil {
			t.Fatal(err)
		}
		all, counts, err := g.AllGather(ctx, s, x)
		if err != nil || counts.Total() != 2 {
			t.Fatal(err, counts)
		}
		v, _ := all.Float32s()
		if fmt.Sprint(v) != "[1 2 3 4]" {
			t.Errorf("all-gather alone: %v", v)
		}
		if err := g.AllReduce(ctx, Average, s.FromInt64([]int64{1}, 1)); err == nil {
			t.Error("average of int64 alone: no error")
		}
		if err := g.Broadcast(ctx, 1, x); err == nil {
			t.Error("broadcast from root 1 alone: no error")
		}
		st := g.Store()
		if err := st.Set(ctx, "k", []byte("v")); err != nil {
			t.Fatal(err)
		}
		if b, err := st.Get(ctx, "k"); err != nil || string(b) != "v" {
			t.Errorf("store get: %q, %v", b, err)
		}
		if n, err := st.Add(ctx, "n", 3); err != nil || n != 3 {
			t.Errorf("store add: %d, %v", n, err)
		}
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		err = st.Wait(short, "never")
		cancel()
		if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waiting for never") {
			t.Errorf("store wait for a missing key: %v", err)
		}
		if b, err := g.BroadcastBytes(ctx, 0, []byte("x")); err != nil || string(b) != "x" {
			t.Errorf("broadcast bytes: %q, %v", b, err)
		}
		s.Close()
	}
	if _, err := New(ctx, Env{WorldSize: 2, StoreFile: filepath.Join(t.TempDir(), "s")}, Options{Backend: NCCL}); err == nil ||
		!strings.Contains(err.Error(), "needs a CUDA device") {
		t.Errorf("nccl on the CPU: %v", err)
	}
	if !Available(NCCL) {
		_, err := New(ctx, Env{WorldSize: 2, StoreFile: filepath.Join(t.TempDir(), "s")}, Options{Backend: NCCL, Device: torch.Device{Type: torch.CUDA}})
		if err == nil || !strings.Contains(err.Error(), "without NCCL") {
			t.Errorf("nccl on a shim without it: %v", err)
		}
	}
}

// TestTimeoutNamesOpAndRank: a rank that never calls the collective leaves
// the other with an error naming the op and its rank, within the timeout;
// later collectives fail at once.
func TestTimeoutNamesOpAndRank(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	run(t, job{scenario: "timeout", world: 2, store: "tcp", env: map[string]string{"RE2G_DIST_TIMEOUT": "2s"}}, time.Minute)
}

// TestBackwardTimeout: the all-reduce inside an autograd all-gather's
// backward pass is bounded by the timeout too: a rank that never runs its
// backward leaves the other's Backward with an error naming it and the rank.
func TestBackwardTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	run(t, job{scenario: "backward-timeout", world: 2, store: "file", env: map[string]string{"RE2G_DIST_TIMEOUT": "2s"}}, time.Minute)
}

// TestRendezvousTimeout: a rank that never starts leaves rank 0 with an
// error within the timeout, not a hang.
func TestRendezvousTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	for _, store := range []string{"tcp", "file"} {
		ps := run(t, job{scenario: "never-joined", world: 2, store: store, ranks: []int{0}, env: map[string]string{"RE2G_DIST_TIMEOUT": "2s"}}, time.Minute)
		if ps[0].Elapsed() > 20*time.Second {
			t.Errorf("%s store: rank 0 took %v with a 2 s timeout", store, ps[0].Elapsed())
		}
	}
}

// TestKilledPeer: a rank killed (SIGKILL) in the middle of a job leaves the
// other with an error naming the op, long before the timeout.
func TestKilledPeer(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	ps := start(t, job{scenario: "killed", world: 2, store: "tcp", env: map[string]string{"RE2G_DIST_TIMEOUT": "60s"}})
	victim := ps[1]
	victim.WaitFor(t, "ready", time.Minute)
	time.Sleep(300 * time.Millisecond) // rank 0 is waiting in its second all-reduce
	killed := time.Now()
	victim.Cmd.Process.Signal(syscall.SIGKILL)
	proctest.Wait(t, ps, time.Minute)
	out := ps[0].Output()
	if ps[0].Err() != nil || !strings.Contains(out, "PASS") {
		t.Errorf("rank 0: %v\n%s", ps[0].Err(), out)
	}
	t.Logf("rank 0:\n%s", out)
	if d := time.Since(killed); d > 20*time.Second {
		t.Errorf("rank 0 took %v after the kill (timeout 60 s)", d)
	}
}

// TestCancel: a cancelled context ends a collective at once and Close does
// not wait for the abandoned native operation.
func TestCancel(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	run(t, job{scenario: "cancel", world: 2, store: "file", env: map[string]string{"RE2G_DIST_TIMEOUT": "30s"}}, time.Minute)
}

// ---- the children ----

func runChild(name string) int {
	env, err := LookupEnv()
	if err != nil {
		fmt.Println("FAIL:", err)
		return 1
	}
	opts := Options{GlooHost: "127.0.0.1"}
	if b := os.Getenv("RE2G_TEST_BUCKET"); b != "" {
		opts.BucketBytes, _ = strconv.ParseInt(b, 10, 64)
	}
	if name == "never-joined" {
		t0 := time.Now()
		_, err := New(context.Background(), env, opts)
		var e *Error
		if !errors.As(err, &e) || e.Op != "rendezvous" || !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "rendezvous on rank 0 of 2") {
			fmt.Println("FAIL: want a rendezvous timeout naming rank 0 of 2, got:", err)
			return 1
		}
		fmt.Printf("got after %v: %v\nPASS\n", time.Since(t0).Round(time.Millisecond), err)
		return 0
	}
	ctx := context.Background()
	g, err := New(ctx, env, opts)
	if err != nil {
		fmt.Println("FAIL:", err)
		return 1
	}
	defer g.Close()
	var f func(context.Context, *Group) error
	switch name {
	case "collectives":
		f = childCollectives
	case "dpr":
		f = childDPR
	case "timeout":
		f = childTimeout
	case "backward-timeout":
		f = childBackwardTimeout
	case "killed":
		f = childKilled
	case "cancel":
		f = childCancel
	default:
		fmt.Println("FAIL: unknown scenario", name)
		return 1
	}
	if err := f(ctx, g); err != nil {
		fmt.Println("FAIL:", err)
		return 1
	}
	if n := torch.LiveTensors(); n != 0 {
		fmt.Println("FAIL:", n, "tensor handles still live")
		return 1
	}
	fmt.Println("PASS")
	return 0
}

func near(got []float64, want func(i int) float64, tol float64) error {
	for i, v := range got {
		if math.Abs(v-want(i)) > tol {
			return fmt.Errorf("element %d: got %v, want %v", i, v, want(i))
		}
	}
	return nil
}

func childCollectives(ctx context.Context, g *Group) error {
	s := torch.NewScope()
	defer s.Close()
	W, r := g.Size(), g.Rank()
	fw, fr := float64(W), float64(r)
	tri := fw * (fw + 1) / 2 // Σ (rank+1)
	vals := func(n int, f func(i int) float64) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = f(i)
		}
		return v
	}
	// sum, average, max and min against hand-computed values, in several types
	for _, dt := range []torch.DType{torch.Float32, torch.Float64, torch.BFloat16, torch.Float16} {
		x := s.ToDType(s.FromFloat64(vals(6, func(i int) float64 { return (fr + 1) * float64(i+1) }), 2, 3), dt)
		if err := g.AllReduce(ctx, Sum, x); err != nil {
			return err
		}
		got, _ := x.Float64s()
		if err := near(got, func(i int) float64 { return tri * float64(i+1) }, 1e-6*tri*8); err != nil {
			return fmt.Errorf("sum %v: %w", dt, err)
		}
		if x.DType() != dt {
			return fmt.Errorf("sum %v: result is %v", dt, x.DType())
		}
		y := s.ToDType(s.FromFloat64(vals(5, func(i int) float64 { return fr + float64(i) }), 5), dt)
		if err := g.AllReduce(ctx, Average, y); err != nil {
			return err
		}
		got, _ = y.Float64s()
		if err := near(got, func(i int) float64 { return (fw-1)/2 + float64(i) }, 2e-2); err != nil {
			return fmt.Errorf("average %v: %w", dt, err)
		}
	}
	m := s.FromInt64([]int64{int64(r), -int64(r), 7}, 3)
	n := s.FromInt64([]int64{int64(r), -int64(r), 7}, 3)
	if err := g.AllReduce(ctx, Max, m); err != nil {
		return err
	}
	if err := g.AllReduce(ctx, Min, n); err != nil {
		return err
	}
	mv, _ := m.Int64s()
	nv, _ := n.Int64s()
	if fmt.Sprint(mv) != fmt.Sprint([]int64{int64(W - 1), 0, 7}) || fmt.Sprint(nv) != fmt.Sprint([]int64{0, -int64(W - 1), 7}) {
		return fmt.Errorf("max %v, min %v", mv, nv)
	}
	isum := s.FromInt64([]int64{int64(r + 1)}, 1)
	if err := g.AllReduce(ctx, Sum, isum); err != nil {
		return err
	}
	if v, _ := isum.Int64s(); v[0] != int64(tri) {
		return fmt.Errorf("int64 sum %v, want %v", v, tri)
	}
	if err := g.AllReduce(ctx, Average, s.FromInt64([]int64{1}, 1)); err == nil || !strings.Contains(err.Error(), "floating-point") {
		return fmt.Errorf("average of int64: %v", err)
	}
	// several tensors of mixed types, one of them a transposed view, in
	// buckets of 64 bytes (several collectives)
	a := s.FromFloat32([]float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}, 20)
	b := s.Transpose(s.FromFloat64(vals(6, func(i int) float64 { return fr * float64(i) }), 2, 3), 0, 1)
	c := s.FromInt64([]int64{int64(r)}, 1)
	d := s.ToDType(s.FromFloat32([]float32{float32(r), 1}, 2), torch.BFloat16)
	if err := g.AllReduce(ctx, Sum, a, b, c, d); err != nil {
		return err
	}
	av, _ := a.Float64s()
	bv, _ := s.Contiguous(b).Float64s()
	cv, _ := c.Int64s()
	dv, _ := d.Float64s()
	if err := near(av, func(i int) float64 { return fw * float64(i+1) }, 1e-5); err != nil {
		return fmt.Errorf("packed a: %w", err)
	}
	sumR := fw * (fw - 1) / 2
	// b is the transpose of [[0,1,2],[3,4,5]]·Σr: b[i][j] = (3j+i)·Σr
	if err := near(bv, func(k int) float64 { i, j := k/2, k%2; return float64(3*j+i) * sumR }, 1e-9); err != nil {
		return fmt.Errorf("packed transposed b: %w", err)
	}
	if cv[0] != int64(sumR) || dv[0] != sumR || dv[1] != fw {
		return fmt.Errorf("packed c %v, d %v", cv, dv)
	}
	// broadcast from the last rank, a non-zero root
	root := W - 1
	p := s.FromFloat32([]float32{float32(r), float32(r) * 2, 5}, 3)
	q := s.FromInt64([]int64{int64(r * 10)}, 1)
	if err := g.Broadcast(ctx, root, p, q); err != nil {
		return err
	}
	pv, _ := p.Float64s()
	qv, _ := q.Int64s()
	if fmt.Sprint(pv) != fmt.Sprint([]float64{float64(root), float64(root) * 2, 5}) || qv[0] != int64(root*10) {
		return fmt.Errorf("broadcast from %d: %v %v", root, pv, qv)
	}
	if err := g.Broadcast(ctx, W, p); err == nil {
		return fmt.Errorf("broadcast from root %d: no error", W)
	}
	// all-gather with unequal sizes: rank r gives r+1 rows of [10r+i, -1]
	rows := r + 1
	data := make([]float32, 0, 2*rows)
	for i := 0; i < rows; i++ {
		data = append(data, float32(10*r+i), -1)
	}
	all, counts, err := g.AllGather(ctx, s, s.FromFloat32(data, int64(rows), 2))
	if err != nil {
		return err
	}
	var want []float32
	for k := 0; k < W; k++ {
		if counts[k] != int64(k+1) {
			return fmt.Errorf("all-gather counts %v", counts)
		}
		for i := 0; i <= k; i++ {
			want = append(want, float32(10*k+i), -1)
		}
	}
	got, _ := all.Float32s()
	if fmt.Sprint(got) != fmt.Sprint(want) || fmt.Sprint(all.Shape()) != fmt.Sprint([]int64{int64(len(want) / 2), 2}) {
		return fmt.Errorf("all-gather: got %v %v, want %v", all.Shape(), got, want)
	}
	if counts.Offset(r) != int64(r*(r+1)/2) {
		return fmt.Errorf("offset of rank %d: %d", r, counts.Offset(r))
	}
	// rank 0 gives no rows; bfloat16 travels as float32 in Gloo
	none := s.ToDType(s.Full(float64(r), torch.Float32, torch.CPUDevice, int64(r), 3), torch.BFloat16)
	all, counts, err = g.AllGather(ctx, s, none)
	if err != nil {
		return err
	}
	if all.DType() != torch.BFloat16 || counts[0] != 0 || counts.Total() != int64(W*(W-1)/2) {
		return fmt.Errorf("all-gather with an empty rank: %v %v", all, counts)
	}
	// a shape that differs is an error on every rank, and the group goes on
	_, _, err = g.AllGather(ctx, s, s.Zeros(torch.Float32, torch.CPUDevice, 1, int64(2+r)))
	if err == nil || !strings.Contains(err.Error(), "must agree") {
		return fmt.Errorf("all-gather of mismatched shapes: %v", err)
	}
	if err := g.Barrier(ctx); err != nil {
		return err
	}
	// gradients: w has a gradient on every rank, u on rank 0 only, v on none
	w := s.FromFloat32([]float32{1, 2, 3}, 3)
	u := s.FromFloat32([]float32{1, 1}, 2)
	v := s.FromFloat32([]float32{5}, 1)
	for _, t := range []*torch.Tensor{w, u, v} {
		t.SetRequiresGrad(true)
	}
	loss := s.Sum(s.MulScalar(w, fr+1), false)
	if r == 0 {
		loss = s.Add(loss, s.Sum(s.MulScalar(u, 4), false))
	}
	s.Backward(loss)
	if err := s.Err(); err != nil {
		return err
	}
	if err := g.AllReduceGrads(ctx, []*torch.Tensor{w, u, v}); err != nil {
		return err
	}
	gw, _ := s.Grad(w).Float64s()
	if err := near(gw, func(int) float64 { return (fw + 1) / 2 }, 1e-6); err != nil {
		return fmt.Errorf("grad w: %w", err)
	}
	gu := s.Grad(u)
	if gu == nil {
		return fmt.Errorf("rank %d: u has no gradient after the all-reduce", r)
	}
	guv, _ := gu.Float64s()
	if err := near(guv, func(int) float64 { return 4 / fw }, 1e-6); err != nil {
		return fmt.Errorf("grad u: %w", err)
	}
	if s.Grad(v) != nil {
		return fmt.Errorf("v got a gradient")
	}
	if err := g.AllReduceGrads(ctx, []*torch.Tensor{w, u, v}[:1+r%2]); err == nil || !strings.Contains(err.Error(), "same parameters") {
		return fmt.Errorf("mismatched parameter lists: %v", err)
	}
	// the store: a value from rank 0, a counter every rank bumps, bytes from the last rank
	st := g.Store()
	if r == 0 {
		if err := st.Set(ctx, "built", []byte("idx/")); err != nil {
			return err
		}
	}
	if v, err := st.Get(ctx, "built"); err != nil || string(v) != "idx/" {
		return fmt.Errorf("store get: %q, %v", v, err)
	}
	if _, err := st.Add(ctx, "ranks", 1); err != nil {
		return err
	}
	if err := g.Barrier(ctx); err != nil {
		return err
	}
	if n, err := st.Add(ctx, "ranks", 0); err != nil || n != int64(W) {
		return fmt.Errorf("store counter %d, %v", n, err)
	}
	for i := 0; i < 3; i++ {
		msg, err := g.BroadcastBytes(ctx, W-1, []byte(fmt.Sprintf("from %d, call %d", r, i)))
		if err != nil {
			return err
		}
		if string(msg) != fmt.Sprintf("from %d, call %d", W-1, i) {
			return fmt.Errorf("broadcast bytes: %q", msg)
		}
	}
	if err := s.Err(); err != nil {
		return err
	}
	if g.Backend() != Gloo {
		return fmt.Errorf("backend %q", g.Backend())
	}
	return g.Barrier(ctx)
}

// childDPR computes a DPR-like loss two ways: distributed (each rank's
// questions against all ranks' passages through AllGatherGrad, gradients
// averaged by AllReduceGrads) and as one process over the whole batch; the
// gradients must agree within 1e-6. Rank r has r+1 questions and passages.
func childDPR(ctx context.Context, g *Group) error {
	const din, dim = 8, 4
	W, r := g.Size(), g.Rank()
	counts := make(Counts, W)
	for k := range counts {
		counts[k] = int64(k + 1)
	}
	N, off, n := counts.Total(), counts.Offset(r), counts[r]
	gen := func(seed float64, k int) []float32 {
		v := make([]float32, k)
		for i := range v {
			v[i] = float32(math.Sin(seed + 0.37*float64(i)))
		}
		return v
	}
	xq, xp := gen(1, int(N)*din), gen(2, int(N)*din)
	wq, wp := gen(3, din*dim), gen(4, din*dim)
	for _, autocast := range []bool{false, true} {
		s := torch.NewScope()
		run := s
		if autocast {
			run = s.Autocast(torch.BFloat16)
		}
		// distributed
		Wq, Wp := s.FromFloat32(wq, din, dim), s.FromFloat32(wp, din, dim)
		Wq.SetRequiresGrad(true)
		Wp.SetRequiresGrad(true)
		Q := run.Matmul(s.Slice(s.FromFloat32(xq, N, din), 0, off, off+n, 1), Wq)
		P := run.Matmul(s.Slice(s.FromFloat32(xp, N, din), 0, off, off+n, 1), Wp)
		all, got, err := g.AllGatherGrad(ctx, run, P)
		if err != nil {
			return err
		}
		if fmt.Sprint(got) != fmt.Sprint(counts) || all.DType() != P.DType() {
			return fmt.Errorf("counts %v (want %v), gathered %v from %v", got, counts, all, P)
		}
		logits := run.Matmul(Q, s.Transpose(all, 0, 1))
		target := s.Arange(off, off+n, 1, torch.Int64, torch.CPUDevice)
		// Each rank's share of the batch mean, scaled by W because the
		// gradients are then averaged over ranks.
		loss := run.MulScalar(run.CrossEntropy(logits, target, -100, torch.ReduceSum, 0), float64(W)/float64(N))
		s.Backward(loss)
		if err := s.Err(); err != nil {
			return err
		}
		if err := g.AllReduceGrads(ctx, []*torch.Tensor{Wq, Wp}); err != nil {
			return err
		}
		// one process, the whole batch
		Vq, Vp := s.FromFloat32(wq, din, dim), s.FromFloat32(wp, din, dim)
		Vq.SetRequiresGrad(true)
		Vp.SetRequiresGrad(true)
		Q1 := run.Matmul(s.FromFloat32(xq, N, din), Vq)
		P1 := run.Matmul(s.FromFloat32(xp, N, din), Vp)
		loss1 := run.CrossEntropy(run.Matmul(Q1, s.Transpose(P1, 0, 1)), s.Arange(0, N, 1, torch.Int64, torch.CPUDevice), -100, torch.ReduceMean, 0)
		s.Backward(loss1)
		if err := s.Err(); err != nil {
			return err
		}
		worst, scale := 0.0, 0.0
		for _, pair := range [][2]*torch.Tensor{{Wq, Vq}, {Wp, Vp}} {
			a, _ := s.Grad(pair[0]).Float64s()
			b, _ := s.Grad(pair[1]).Float64s()
			for i := range a {
				worst = max(worst, math.Abs(a[i]-b[i]))
				scale = max(scale, math.Abs(b[i]))
			}
		}
		tol := 1e-6
		if autocast {
			tol = 3e-2 * scale // bfloat16 products, summed in another order
		}
		fmt.Printf("autocast %v: largest gradient difference %.3g (largest gradient %.3g)\n", autocast, worst, scale)
		if worst > tol || scale == 0 {
			return fmt.Errorf("autocast %v: gradients differ by %g (tolerance %g)", autocast, worst, tol)
		}
		run.Close() // s itself when not autocasting
		s.Close()
	}
	return nil
}

// childTimeout: rank 1 never calls the all-reduce rank 0 calls.
func childTimeout(ctx context.Context, g *Group) error {
	s := torch.NewScope()
	defer s.Close()
	x := s.Ones(torch.Float32, torch.CPUDevice, 4)
	if err := g.AllReduce(ctx, Sum, x); err != nil { // both: in step so far
		return err
	}
	if g.Rank() == 1 {
		time.Sleep(6 * time.Second) // alive, but never calls it
		return nil
	}
	t0 := time.Now()
	err := g.AllReduce(ctx, Sum, x)
	took := time.Since(t0)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrTimeout) || !strings.HasPrefix(err.Error(), "dist: all_reduce on rank 0 of 2: timed out after") {
		return fmt.Errorf("want a timeout naming all_reduce and rank 0 of 2, got %v", err)
	}
	if took < 1900*time.Millisecond || took > 5*time.Second {
		return fmt.Errorf("timed out after %v with a 2 s timeout", took)
	}
	fmt.Printf("after %v: %v\n", took.Round(time.Millisecond), err)
	// the group is out of step now: later collectives fail at once
	t0 = time.Now()
	err = g.Barrier(ctx)
	if !errors.Is(err, ErrFailed) || time.Since(t0) > time.Second || !strings.Contains(err.Error(), "barrier on rank 0 of 2") {
		return fmt.Errorf("after a failure, barrier: %v (%v)", err, time.Since(t0))
	}
	fmt.Println(err)
	// a context deadline nearer than the timeout bounds the wait too
	return nil
}

func childBackwardTimeout(ctx context.Context, g *Group) error {
	s := torch.NewScope()
	defer s.Close()
	x := s.Ones(torch.Float32, torch.CPUDevice, 2, 3)
	x.SetRequiresGrad(true)
	all, _, err := g.AllGatherGrad(ctx, s, s.MulScalar(x, 2))
	if err != nil {
		return err
	}
	if g.Rank() == 1 {
		time.Sleep(5 * time.Second) // never runs its backward
		return nil
	}
	t0 := time.Now()
	s.Backward(s.Sum(all, false))
	err = s.Err()
	if err == nil || !strings.Contains(err.Error(), "dist: all_gather backward (all-reduce of the gradient) on rank 0 of 2") ||
		!strings.Contains(err.Error(), "timed out") || time.Since(t0) > 5*time.Second {
		return fmt.Errorf("backward: %v after %v", err, time.Since(t0))
	}
	fmt.Printf("after %v: %v\n", time.Since(t0).Round(time.Millisecond), err)
	if err := g.Barrier(ctx); !errors.Is(err, ErrFailed) {
		return fmt.Errorf("barrier after a failed backward: %v", err)
	}
	return nil
}

// childKilled: rank 1 is killed while rank 0 waits in an all-reduce.
func childKilled(ctx context.Context, g *Group) error {
	s := torch.NewScope()
	defer s.Close()
	x := s.Ones(torch.Float32, torch.CPUDevice, 1024)
	if err := g.AllReduce(ctx, Sum, x); err != nil {
		return err
	}
	if g.Rank() == 1 {
		fmt.Println("ready")
		time.Sleep(time.Minute) // killed here
		return nil
	}
	t0 := time.Now()
	err := g.AllReduce(ctx, Sum, x)
	if !errors.Is(err, ErrPeerLost) || !strings.Contains(err.Error(), "all_reduce on rank 0 of 2: a peer went away") {
		return fmt.Errorf("want a lost peer naming all_reduce and rank 0, got %v", err)
	}
	fmt.Printf("after %v: %v\n", time.Since(t0).Round(time.Millisecond), err)
	return nil
}

// childCancel: a context deadline nearer than the timeout ends a
// collective that rank 1 does not join; then, on a second group, a
// cancellation ends one, and Close does not wait for the abandoned work.
func childCancel(ctx context.Context, g *Group) error {
	env, _ := LookupEnv()
	env.StoreFile += ".2"
	if g.Rank() == 1 {
		g2, err := New(ctx, env, Options{GlooHost: "127.0.0.1"})
		if err != nil {
			return err
		}
		time.Sleep(3 * time.Second)
		g2.Close()
		return nil
	}
	s := torch.NewScope()
	defer s.Close()
	x := s.Ones(torch.Float32, torch.CPUDevice, 4)
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	err := g.AllReduce(short, Sum, x)
	took := time.Since(t0)
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) || took > 2*time.Second {
		return fmt.Errorf("context deadline: %v after %v", err, took)
	}
	fmt.Printf("deadline after %v: %v\n", took.Round(time.Millisecond), err)

	g2, err := New(ctx, env, Options{GlooHost: "127.0.0.1"})
	if err != nil {
		return err
	}
	c, cancel2 := context.WithCancel(ctx)
	go func() { time.Sleep(300 * time.Millisecond); cancel2() }()
	t0 = time.Now()
	err = g2.AllReduce(c, Sum, x)
	if !errors.Is(err, context.Canceled) || time.Since(t0) > time.Second || !strings.Contains(err.Error(), "all_reduce on rank 0 of 2: cancelled") {
		return fmt.Errorf("cancelled all-reduce: %v after %v", err, time.Since(t0))
	}
	fmt.Printf("cancelled after %v: %v\n", time.Since(t0).Round(time.Millisecond), err)
	c, cancel3 := context.WithCancel(ctx)
	go func() { time.Sleep(300 * time.Millisecond); cancel3() }()
	t0 = time.Now()
	err = g2.Store().Wait(c, "never")
	if !errors.Is(err, context.Canceled) || time.Since(t0) > time.Second {
		return fmt.Errorf("cancelled store wait: %v after %v", err, time.Since(t0))
	}
	fmt.Printf("store wait cancelled after %v: %v\n", time.Since(t0).Round(time.Millisecond), err)
	t0 = time.Now()
	g2.Close() // the abandoned all-reduce is still queued in Gloo: Close must not wait for it
	if d := time.Since(t0); d > 2*time.Second {
		return fmt.Errorf("close took %v", d)
	}
	return nil
}
