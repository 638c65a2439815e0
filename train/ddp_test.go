package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/re2g/re2g/internal/fixturedir"
	"github.com/re2g/re2g/internal/proctest"
	"github.com/re2g/re2g/torch"
	"github.com/re2g/re2g/torch/dist"
)

// The data-parallel tests run the test binary itself as every rank (real
// processes, real Gloo on 127.0.0.1), with RE2G_TRAIN_CHILD naming a spec:
// the phase, its config and inputs. A 1-rank run is the same child without
// a launcher's environment: the single-process loop.
func TestMain(m *testing.M) {
	if p := os.Getenv("RE2G_TRAIN_CHILD"); p != "" {
		os.Exit(trainChild(p))
	}
	os.Exit(m.Run())
}

// ddpSpec is what a child runs.
type ddpSpec struct {
	Phase                             string // dpr, generator, reranker, e2e, toy
	Config                            *Config
	Train, Dev, Index                 string
	QueryEncoder, Reranker, Generator string
	Out                               string
	Resume                            bool
	Trace                             string // a file name with %d for the rank
	KillRank, KillAt                  int    // SIGKILL rank KillRank after update KillAt (0: never)
	Timeout                           time.Duration
}

func trainChild(specPath string) int {
	b, err := os.ReadFile(specPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var sp ddpSpec
	if err := json.Unmarshal(b, &sp); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx := context.Background()
	g, err := dist.FromEnv(ctx, dist.Options{Timeout: sp.Timeout})
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
	defer g.Close()
	rank := g.Rank()
	f, err := os.Create(fmt.Sprintf(sp.Trace, rank))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer f.Close()
	enc := json.NewEncoder(f)
	ro := RunOptions{Group: g, Resume: sp.Resume, Trace: func(r TraceRecord) {
		enc.Encode(r)
		if sp.KillAt > 0 && r.Rank == sp.KillRank && r.Step == sp.KillAt {
			f.Sync()
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}}
	err = func() error {
		if sp.Phase == "toy" {
			return toyRun(ctx, g, sp.Out, ro)
		}
		ds, err := OpenDataset(ctx, sp.Train, sp.Dev, sp.Index)
		if err != nil {
			return err
		}
		switch sp.Phase {
		case "dprloss":
			err = dprLossChild(ctx, sp, ds, g)
		case "dpr":
			_, _, err = TrainDPR(ctx, sp.Config, ds, DPRInput{Index: sp.Index}, sp.Out, ro)
		case "generator":
			_, _, err = TrainGenerator(ctx, sp.Config, ds, GeneratorInput{QueryEncoder: sp.QueryEncoder, Index: sp.Index}, sp.Out, ro)
		case "reranker":
			_, _, err = TrainReranker(ctx, sp.Config, ds, RerankerInput{QueryEncoder: sp.QueryEncoder, Index: sp.Index}, sp.Out, ro)
		case "e2e":
			_, _, err = TrainE2E(ctx, sp.Config, ds, E2EInput{QueryEncoder: sp.QueryEncoder, Index: sp.Index}, sp.Out, ro)
		default:
			err = fmt.Errorf("unknown phase %q", sp.Phase)
		}
		return err
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
	fmt.Println("DONE")
	return 0
}

// toyRun trains a linear model whose loss skips the even examples, so that
// a rank's slice often contributes nothing; every rank initialises it
// differently (rank 0's start must win), with clipping and accumulation.
func toyRun(ctx context.Context, g *dist.Group, dir string, ro RunOptions) error {
	if err := torch.SetNumThreads(1); err != nil {
		return err
	}
	s := torch.NewScope()
	defer s.Close()
	w := s.Full(float64(g.Rank()+1)/10, torch.Float32, torch.CPUDevice, 3)
	if err := s.Err(); err != nil {
		return err
	}
	w.SetRequiresGrad(true)
	const n = 9
	x := make([]float32, 0, 3*n)
	y := make([]float32, n)
	for i := 0; i < n; i++ {
		x = append(x, float32(i)/n, 1, float32(i%3))
		y[i] = float32(i % 4)
	}
	t := &Task{Name: "toy", N: n, Params: map[string][]torch.Param{"toy": {{Name: "w", Tensor: w, Decay: true}}},
		Loss: func(ctx context.Context, s *torch.Scope, b Batch) (*torch.Tensor, int, error) {
			var rows, ys []float32
			for _, i := range b.Idx {
				if i%2 == 0 {
					continue
				}
				rows = append(rows, x[3*i:3*i+3]...)
				ys = append(ys, y[i])
			}
			if len(ys) == 0 {
				return nil, 0, nil
			}
			k := int64(len(ys))
			d := s.Sub(s.Matmul(s.FromFloat32(rows, k, 3), w), s.FromFloat32(ys, k))
			return s.Mean(s.Mul(d, d), false), len(ys), s.Err()
		},
		Save: func(string) error { return nil },
	}
	_, err := Run(ctx, t, Opt{MaxSteps: 5, BatchSize: 3, Accum: 2, LR: 0.05, Warmup: 0.2, WeightDecay: 0.01, ClipNorm: 0.5, CheckpointEvery: 2}, 11, dir, ro)
	return err
}

// dprLossChild computes DPR's loss and gradients over one micro-batch of
// the four training questions, as the loop does (each rank its slice, its
// mean weighed by its share, gradients averaged), and rank 0 writes them to
// sp.Out/<case>.safetensors: "negatives" with the tiny task's BM25
// negatives, "shared" with two questions to a positive and no negative
// (two passages: on three ranks, rank 0 encodes none).
func dprLossChild(ctx context.Context, sp ddpSpec, ds *Dataset, g *dist.Group) error {
	e, err := newEnv(sp.Config, ds, sp.Index)
	if err != nil {
		return err
	}
	defer e.close()
	e.g = g
	torch.ManualSeed(sp.Config.Seed)
	q, err := e.loadBiEncoder("", true, nil)
	if err != nil {
		return err
	}
	defer q.Close()
	c, err := e.loadBiEncoder("", false, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	ranked, err := e.bm25(ctx, e.trainQ, 8)
	if err != nil {
		return err
	}
	exs, err := e.hardNegatives(e.trainQ, ranked, 1)
	if err != nil {
		return err
	}
	shared := slices.Clone(exs)
	for i := range shared {
		shared[i].pos, shared[i].hasNeg = exs[i/2*2].pos, false
	}
	qp, _ := q.m.Parameters()
	cp, _ := c.m.Parameters()
	params := append(qp, cp...)
	for _, cs := range []struct {
		name string
		xs   []dprExample
		amp  torch.DType
	}{{"negatives", exs, -1}, {"shared", shared, -1}, {"negatives-bf16", exs, torch.BFloat16}} {
		name, xs := cs.name, cs.xs
		e.amp = cs.amp // bf16: autocast, as --dtype bfloat16
		for _, p := range params {
			p.Tensor.ZeroGrad()
		}
		global := []int{2, 0, 3, 1}
		lo, hi := sliceOf(len(global), g.Rank(), g.Size())
		s := e.scope()
		loss, n, err := e.dprLoss(ctx, s, q, c, xs, Batch{Idx: global[lo:hi], Global: global}, true)
		if err != nil {
			return err
		}
		v, err := loss.Item()
		if err != nil {
			return err
		}
		cnt, tot, err := microStats(ctx, g, n, v*float64(n))
		if err != nil {
			return err
		}
		s.Backward(s.MulScalar(loss, float64(n*g.Size())/cnt))
		if err := s.Err(); err != nil {
			return err
		}
		if err := g.AllReduceGrads(ctx, tensorsOf(params)); err != nil {
			return err
		}
		out := map[string]*torch.Tensor{"loss": s.FromFloat64([]float64{tot / cnt}, 1)}
		for _, p := range params {
			if gr := s.Grad(p.Tensor); gr != nil {
				out["grad/"+p.Name] = gr
			}
		}
		if g.Rank() == 0 {
			if err := os.MkdirAll(sp.Out, 0o755); err != nil {
				return err
			}
			if err := torch.SaveSafetensors(filepath.Join(sp.Out, name+".safetensors"), out, nil); err != nil {
				return err
			}
		}
		s.Close()
	}
	return nil
}

// launch runs world ranks of sp (world 1: no launcher environment) to
// their end.
func launch(t *testing.T, sp ddpSpec, world int) []*proctest.Proc {
	t.Helper()
	if sp.Timeout == 0 {
		sp.Timeout = time.Minute
	}
	b, err := json.Marshal(sp)
	if err != nil {
		t.Fatal(err)
	}
	specPath := filepath.Join(t.TempDir(), "spec.json")
	if err := os.WriteFile(specPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cs := proctest.Start(t, proctest.Job{World: world, Env: []string{"RE2G_TRAIN_CHILD=" + specPath, "OMP_NUM_THREADS=1"}})
	proctest.Wait(t, cs, 5*time.Minute)
	return cs
}

// mustPass requires every rank to have finished.
func mustPass(t *testing.T, what string, cs []*proctest.Proc) {
	t.Helper()
	failed := false
	for _, c := range cs {
		if c.Err() != nil || !strings.Contains(c.Output(), "DONE") {
			t.Errorf("%s: rank %d of %d: %v\n%s", what, c.Rank, len(cs), c.Err(), c.Output())
			failed = true
		}
	}
	if failed {
		t.FailNow()
	}
}

func readTrace(t *testing.T, path string) []TraceRecord {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []TraceRecord
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l == "" {
			continue
		}
		var r TraceRecord
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// loadParams reads a checkpoint's tensors as float64.
func loadParams(t *testing.T, ck string) map[string][]float64 {
	t.Helper()
	return fixturedir.Float64s(t, filepath.Join(ck, "params.safetensors"))
}

// maxDiff is the largest absolute difference between two checkpoints'
// tensors (every tensor of a must be in b).
func maxDiff(t *testing.T, a, b map[string][]float64) (float64, bool) {
	t.Helper()
	d, same := 0.0, true
	for n, x := range a {
		y, ok := b[n]
		if !ok || len(y) != len(x) {
			t.Fatalf("tensor %s: %d values, %d in the other checkpoint", n, len(x), len(y))
		}
		for i := range x {
			d = max(d, math.Abs(x[i]-y[i]))
			same = same && x[i] == y[i]
		}
	}
	if len(a) != len(b) {
		t.Fatalf("checkpoints of %d and %d tensors", len(a), len(b))
	}
	return d, same
}

// ddpRun is one launch's outcome.
type ddpRun struct {
	traces [][]TraceRecord // by rank
	params map[string][]float64
}

// runPhase launches sp on world ranks and reads its traces and rank 0's
// last checkpoint (ck, under sp.Out).
func runPhase(t *testing.T, sp ddpSpec, world int, ck string) ddpRun {
	t.Helper()
	sp.Trace = filepath.Join(t.TempDir(), "trace-%d.jsonl")
	t0 := time.Now()
	cs := launch(t, sp, world)
	mustPass(t, fmt.Sprintf("%s on %d rank(s)", sp.Phase, world), cs)
	t.Logf("%s on %d rank(s): %v", sp.Phase, world, time.Since(t0).Round(time.Millisecond))
	var r ddpRun
	for k := 0; k < world; k++ {
		r.traces = append(r.traces, readTrace(t, fmt.Sprintf(sp.Trace, k)))
	}
	r.params = loadParams(t, filepath.Join(sp.Out, ck))
	return r
}

// compareRuns checks a W-rank run against the 1-rank run: the same global
// micro-batches and each rank's slice of them, every rank's parameters the
// same bits after each update, the losses, the first gradient's norm and
// the parameters after the last update within tol; it returns the largest
// parameter and loss differences.
//
// RE2G_DDP_VERBOSE=1 logs every update's losses and gradient norms by group,
// and the parameters that differ most.
//
// Parameters named in noise are left out of the bound (and reported): those
// whose gradient is zero by symmetry, which AdamW nevertheless moves by
// about half the learning rate a step, in the direction of the rounding
// noise, in any run.
func compareRuns(t *testing.T, name string, one, many ddpRun, steps int, tol float64, noise ...string) (float64, float64) {
	t.Helper()
	w := len(many.traces)
	ref := one.traces[0]
	if len(ref) != steps {
		t.Fatalf("%s: %d updates on 1 rank, want %d", name, len(ref), steps)
	}
	lossDiff, gradRel := 0.0, 0.0
	for r, tr := range many.traces {
		if len(tr) != steps {
			t.Fatalf("%s: rank %d made %d updates, want %d", name, r, len(tr), steps)
		}
		for i, u := range tr {
			if !slices.EqualFunc(u.Global, ref[i].Global, slices.Equal) {
				t.Errorf("%s: update %d: rank %d's micro-batches %v, one process's %v", name, i+1, r, u.Global, ref[i].Global)
			}
			for a, gl := range u.Global {
				lo, hi := sliceOf(len(gl), r, w)
				if !slices.Equal(u.Local[a], gl[lo:hi]) {
					t.Errorf("%s: update %d: rank %d took %v of %v", name, i+1, r, u.Local[a], gl)
				}
			}
			if u.ParamHash != many.traces[0][i].ParamHash {
				t.Errorf("%s: update %d: rank %d's parameters differ from rank 0's", name, i+1, r)
			}
			if u.Loss != many.traces[0][i].Loss || u.GradNorm != many.traces[0][i].GradNorm {
				t.Errorf("%s: update %d: rank %d logged loss %v, gradient norm %v; rank 0 %v, %v", name, i+1, r, u.Loss, u.GradNorm, many.traces[0][i].Loss, many.traces[0][i].GradNorm)
			}
			if r == 0 && os.Getenv("RE2G_DDP_VERBOSE") != "" {
				t.Logf("%s update %d: loss %.9g / %.9g, grad norm %.9g / %.9g %v / %v", name, i+1, u.Loss, ref[i].Loss, u.GradNorm, ref[i].GradNorm, u.GroupNorms, ref[i].GroupNorms)
			}
			lossDiff = max(lossDiff, math.Abs(u.Loss-ref[i].Loss))
			gradRel = max(gradRel, math.Abs(u.GradNorm-ref[i].GradNorm)/math.Max(ref[i].GradNorm, 1e-12))
		}
	}
	a, b := maps.Clone(one.params), maps.Clone(many.params)
	for _, n := range noise {
		nd, _ := maxDiff(t, map[string][]float64{n: a[n]}, map[string][]float64{n: b[n]})
		t.Logf("%s: %s (zero gradient by symmetry, moved by AdamW on rounding noise) differs by %.3g: not bounded", name, n, nd)
		delete(a, n)
		delete(b, n)
	}
	d, _ := maxDiff(t, a, b)
	if os.Getenv("RE2G_DDP_VERBOSE") != "" {
		for n, x := range one.params {
			m, at := 0.0, 0
			for i := range x {
				if v := math.Abs(x[i] - many.params[n][i]); v > m {
					m, at = v, i
				}
			}
			if m > tol/10 {
				t.Logf("%s: %s[%d] %.9g vs %.9g (Δ %.3g, of %d values)", name, n, at, x[at], many.params[n][at], m, len(x))
			}
		}
	}
	first := math.Abs(many.traces[0][0].GradNorm-ref[0].GradNorm) / math.Max(ref[0].GradNorm, 1e-12)
	t.Logf("%s: %d ranks vs 1 over %d updates: max |Δparam| %.3g, max |Δloss| %.3g (first update %.7f vs %.7f), max relative Δ gradient norm %.3g (first update %.3g)",
		name, w, steps, d, lossDiff, many.traces[0][0].Loss, ref[0].Loss, gradRel, first)
	// The gradients are compared where the weights are the same, at the
	// first update; later ones differ as the weights do.
	if d > tol || lossDiff > tol || first > tol {
		t.Errorf("%s: %d ranks differ from 1: parameters by %g, losses by %g, the first gradient's norm by %g (relative); want ≤ %g", name, w, d, lossDiff, first, tol)
	}
	return d, lossDiff
}

// TestDataParallel: a 2-rank run of each phase (and of a toy task whose
// loss skips examples) equals the 1-rank run with the same global batch
// after 5 updates: data order, losses, gradient norms, parameters; a rank
// killed mid-run makes the other exit with the error, and --resume then
// finishes with the uninterrupted run's parameters.
func TestDataParallel(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	const steps, tol = 5, 1e-5
	t.Run("toy", func(t *testing.T) {
		sp := ddpSpec{Phase: "toy"}
		sp.Out = filepath.Join(t.TempDir(), "one")
		one := runPhase(t, sp, 1, "checkpoint")
		sp.Out = filepath.Join(t.TempDir(), "two")
		two := runPhase(t, sp, 2, "checkpoint")
		compareRuns(t, "toy", one, two, steps, tol)
		// The even examples contribute nothing: some rank's slice had none.
		empty := 0
		for _, tr := range two.traces {
			for _, u := range tr {
				for _, l := range u.Local {
					if !slices.ContainsFunc(l, func(i int) bool { return i%2 == 1 }) {
						empty++
					}
				}
			}
		}
		if empty == 0 {
			t.Error("no rank's slice was without a contributing example: the case is untested")
		}
		t.Logf("toy: %d rank slices contributed nothing", empty)
	})

	ds0, ix := tinyDataset(t)
	// tinyDataset's task files lie beside its index.
	tr, dv := filepath.Join(filepath.Dir(ix), "train.jsonl"), filepath.Join(filepath.Dir(ix), "dev.jsonl")
	cfg := tinyConfig("")
	cfg.Threads = 1
	// One learning rate, 1e-4, for every phase: AdamW turns floating-point
	// noise in gradient elements near zero (from the ranks' smaller
	// matrix products) into steps of the learning rate's order, so the
	// parameters' difference after 5 updates scales with it (at the small
	// preset's 1e-3 the generator's reaches 1.2e-5, the reranker's 3.5e-5 at
	// 5e-4, while their first gradients agree to 3e-8).
	for _, o := range []*Opt{&cfg.DPR.Stage1, &cfg.Generator.Opt, &cfg.Reranker.Opt, &cfg.E2E.Opt} {
		o.MaxSteps, o.BatchSize, o.Accum, o.CheckpointEvery, o.LR = steps, 4, 1, 2, 1e-4
	}
	cfg.DPR.Stage1.EvalEvery = 2 // rank 0 evaluates, the others wait
	cfg.DPR.Stage2 = Opt{}
	cfg.Generator.BatchSize, cfg.Generator.Accum = 2, 2 // a question per rank and micro-batch
	cfg.E2E.Accum = 2

	// The later phases start from a DPR phase's outputs.
	pre := tinyConfig(filepath.Join(t.TempDir(), "pre"))
	pre.DPR.Stage2 = Opt{}
	dpr, _, err := TrainDPR(context.Background(), pre, ds0, DPRInput{Index: ix}, filepath.Join(pre.Out, "dpr"), RunOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// DPR's in-batch negatives span the ranks: the loss and the gradients
	// of 2 ranks are those of one process over the concatenated batch,
	// also when there are fewer passages than ranks.
	t.Run("dprloss", func(t *testing.T) {
		sp := ddpSpec{Phase: "dprloss", Config: cfg, Train: tr, Dev: dv, Index: ix, Trace: filepath.Join(t.TempDir(), "trace-%d.jsonl")}
		outs := map[int]string{}
		for _, w := range []int{1, 2, 3} {
			sp.Out = filepath.Join(t.TempDir(), strconv.Itoa(w))
			outs[w] = sp.Out
			mustPass(t, fmt.Sprintf("dpr loss on %d rank(s)", w), launch(t, sp, w))
		}
		for _, c := range []struct {
			name string
			w    int
		}{{"negatives", 2}, {"negatives", 3}, {"shared", 2}, {"shared", 3}, {"negatives-bf16", 2}, {"negatives-bf16", 3}} {
			name := c.name
			a, b := fixturedir.Float64s(t, filepath.Join(outs[1], name+".safetensors")), fixturedir.Float64s(t, filepath.Join(outs[c.w], name+".safetensors"))
			dl := math.Abs(a["loss"][0] - b["loss"][0])
			dg, scale := 0.0, 0.0
			for n, x := range a {
				if n == "loss" {
					continue
				}
				for i := range x {
					dg = max(dg, math.Abs(x[i]-b[n][i]))
					scale = max(scale, math.Abs(x[i]))
				}
			}
			if len(a) != len(b) || len(a) < 10 {
				t.Fatalf("%s: %d and %d tensors", name, len(a), len(b))
			}
			t.Logf("dpr loss, %s: 1 rank %.8f, %d ranks %.8f (Δ %.2g); gradients: max |Δ| %.2g, relative to the largest element (%.3g) %.2g",
				name, a["loss"][0], c.w, b["loss"][0], dl, dg, scale, dg/max(scale, 1e-30))
			// bf16 rounds every product to 8 significant bits: only a
			// gross error (a gradient lost or doubled) shows there.
			lt, gt := 1e-6, 1e-5
			if strings.HasSuffix(name, "bf16") {
				lt, gt = 2e-2, 5e-2
			}
			if dl > lt || dg > gt*scale || scale == 0 {
				t.Errorf("%s: %d ranks' DPR loss or gradient differs from one process's over the same batch", name, c.w)
			}
		}
	})

	// Stage 2: rank 0 encodes the corpus with the stage-1 encoder and mines
	// the negatives from that index, which every rank then trains on.
	cfg2 := *cfg
	cfg2.DPR.Stage1.MaxSteps, cfg2.DPR.Stage1.EvalEvery = 2, 0
	cfg2.DPR.Stage2 = cfg.DPR.Stage1
	results := map[string]ddpRun{}
	for _, ph := range []struct {
		name, phase, ck string
		index           string
		cfg             *Config
	}{{"dpr", "dpr", "stage1/checkpoint", ix, cfg}, {"dpr-stage2", "dpr", "stage2/checkpoint", ix, &cfg2},
		{"generator", "generator", "checkpoint", dpr.Index, cfg}, {"reranker", "reranker", "checkpoint", dpr.Index, cfg},
		{"e2e", "e2e", "checkpoint", dpr.Index, cfg}} {
		t.Run(ph.name, func(t *testing.T) {
			sp := ddpSpec{Phase: ph.phase, Config: ph.cfg, Train: tr, Dev: dv, Index: ph.index, QueryEncoder: dpr.QueryEncoder}
			sp.Out = filepath.Join(t.TempDir(), "one")
			one := runPhase(t, sp, 1, ph.ck)
			sp.Out = filepath.Join(t.TempDir(), "two")
			two := runPhase(t, sp, 2, ph.ck)
			var noise []string
			if ph.phase == "reranker" {
				// The listwise softmax is shift-invariant: the score's bias has no gradient.
				noise = []string{"reranker/classifier.bias"}
			}
			n := steps
			if ph.cfg.DPR.Stage2.MaxSteps > 0 {
				n += ph.cfg.DPR.Stage1.MaxSteps // the trace holds both stages
			}
			compareRuns(t, ph.name, one, two, n, tol, noise...)
			results[ph.name] = two
			if ph.phase == "generator" {
				// A control without data parallelism: one process with a
				// question per micro-batch (1 × 4, the same update as 2 × 2)
				// computes as each rank does (a question per rank and
				// micro-batch), and its difference from the 2 × 2 run is
				// the 2-rank run's: rounding in the float32 RAG loss,
				// whose gradient to the question encoder is a small
				// difference of large log-likelihoods.
				c := *cfg
				c.Generator.BatchSize, c.Generator.Accum = 1, 4
				sp.Config, sp.Out = &c, filepath.Join(t.TempDir(), "control")
				ctl := runPhase(t, sp, 1, ph.ck)
				dc, _ := maxDiff(t, ctl.params, two.params)
				d1, _ := maxDiff(t, ctl.params, one.params)
				g := func(r ddpRun) float64 { return r.traces[0][0].GroupNorms["question_encoder"] }
				t.Logf("generator control, 1 rank × 1 question × 4: max |Δparam| to 2 ranks %.3g, to 1 rank 2 × 2 %.3g; first question-encoder gradient norm %.10f, 2 ranks %.10f, 1 rank 2 × 2 %.10f",
					dc, d1, g(ctl), g(two), g(one))
				if dc > tol/10 {
					t.Errorf("2 ranks (a question each) differ from one process computing a question at a time by %g", dc)
				}
			}
			if ph.name == "dpr" {
				// DPR's negatives span the ranks: the first update's loss
				// (same weights) is the loss over the concatenated batch.
				t.Logf("dpr: first loss, 2 ranks %.8f, 1 rank %.8f (Δ %.2g)", two.traces[0][0].Loss, one.traces[0][0].Loss,
					math.Abs(two.traces[0][0].Loss-one.traces[0][0].Loss))
			}
		})
	}

	t.Run("kill", func(t *testing.T) {
		whole, ok := results["dpr"]
		if !ok {
			t.Skip("the dpr run failed")
		}
		for _, victim := range []int{1, 0} {
			sp := ddpSpec{Phase: "dpr", Config: cfg, Train: tr, Dev: dv, Index: ix, KillRank: victim, KillAt: 3, Timeout: time.Minute}
			sp.Out = filepath.Join(t.TempDir(), "killed")
			sp.Trace = filepath.Join(t.TempDir(), "trace-%d.jsonl")
			cs := launch(t, sp, 2)
			dead, alive := cs[victim], cs[1-victim]
			var ee *exec.ExitError
			if dead.Err() == nil || !strings.Contains(dead.Err().Error(), "killed") {
				t.Fatalf("rank %d was not killed: %v\n%s", victim, dead.Err(), dead.Output())
			}
			if alive.Err() == nil || !errors.As(alive.Err(), &ee) || ee.ExitCode() == 0 {
				t.Fatalf("rank %d went on after rank %d was killed: %v\n%s", 1-victim, victim, alive.Err(), alive.Output())
			}
			msg := alive.Output()
			if !strings.Contains(msg, "dist: ") || !strings.Contains(msg, fmt.Sprintf("on rank %d of 2", 1-victim)) {
				t.Errorf("rank %d's error names no operation and rank:\n%s", 1-victim, msg)
			}
			t.Logf("rank %d killed (SIGKILL) after update 3; rank %d exited %d %v later: %s", victim, 1-victim, ee.ExitCode(),
				alive.Ended().Sub(dead.Ended()).Round(time.Millisecond), lastLine(msg))
			// Nothing half-written: rank 0's checkpoint (update 2) loads.
			var st State
			b, err := os.ReadFile(filepath.Join(sp.Out, "stage1", "checkpoint", "state.json"))
			if err != nil || json.Unmarshal(b, &st) != nil || st.Step != 2 || st.WorldSize != 2 {
				t.Fatalf("checkpoint after the kill: %v, step %d, world %d", err, st.Step, st.WorldSize)
			}
			if victim == 0 {
				continue
			}
			// --resume finishes, with the uninterrupted run's parameters.
			sp.KillAt, sp.Resume = 0, true
			resumed := runPhase(t, sp, 2, "stage1/checkpoint")
			d, same := maxDiff(t, whole.params, resumed.params)
			if !same {
				t.Errorf("resumed after the kill: parameters differ from the uninterrupted 2-rank run's by up to %g", d)
			}
			if n := len(resumed.traces[0]); n != steps-2 {
				t.Errorf("the resumed run made %d updates, want %d", n, steps-2)
			}
			for i, u := range resumed.traces[0] {
				if w := whole.traces[0][i+2]; u.Loss != w.Loss || u.ParamHash != w.ParamHash {
					t.Errorf("resumed update %d: loss %v, uninterrupted %v", u.Step, u.Loss, w.Loss)
				}
			}
			t.Logf("resumed from update 2 on 2 ranks: parameters bitwise equal to the uninterrupted run: %v", same)

			// A different world size is refused.
			sp.Trace = filepath.Join(t.TempDir(), "trace-%d.jsonl")
			one := launch(t, sp, 1)
			if one[0].Err() == nil || !strings.Contains(one[0].Output(), "written by a run of 2 rank(s); this run has 1") {
				t.Errorf("resume on 1 rank of a 2-rank checkpoint: %v\n%s", one[0].Err(), one[0].Output())
			}
		}
	})
}

func lastLine(s string) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	return ls[len(ls)-1]
}
