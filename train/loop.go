package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/re2g/re2g/internal/atomicfile"
	"github.com/re2g/re2g/internal/progress"
	"github.com/re2g/re2g/torch"
	"github.com/re2g/re2g/torch/dist"
)

// Task is one phase as the loop sees it: named groups of trainable
// parameters, a loss over a micro-batch of example indices, an optional dev
// evaluation, and a way to save the trained models.
type Task struct {
	Name   string
	Params map[string][]torch.Param // group (model) name → its trainable parameters
	Frozen map[string][]torch.Param // tensors kept fixed, checkpointed all the same
	// LRScale multiplies the learning rate of a group (default 1).
	LRScale map[string]float64
	N       int // training examples
	// Loss returns the mean loss over the n examples of b.Idx that
	// contribute (nil and 0 when none does) in s, which records gradients.
	// Under data parallelism the loop weighs each rank's mean by its n (see
	// ddp.go). A Loss that runs collectives (AllGatherGrad) must return a
	// tensor on every rank, n 0 included, since its backward pass is one.
	Loss func(ctx context.Context, s *torch.Scope, b Batch) (loss *torch.Tensor, n int, err error)
	// Eval scores the current models on dev (nil: no evaluation); Metric
	// names the value that early stopping and the best model follow
	// (higher is better).
	Eval   func(ctx context.Context) (map[string]float64, error)
	Metric string
	// Save writes the models (Hugging Face directories) under dir.
	Save func(dir string) error
	// NewScope makes each micro-batch's scope (nil: torch.NewScope; a
	// mixed-precision run returns an autocast scope).
	NewScope func() *torch.Scope
}

// Point is one logged value.
type Point struct {
	Step  int     `json:"step"`
	Value float64 `json:"value"`
}

// State is what a checkpoint records besides tensors.
type State struct {
	Step       int                `json:"step"` // updates done
	Total      int                `json:"total"`
	Seed       uint64             `json:"seed"`
	Loss       []Point            `json:"loss"`
	Metrics    map[string][]Point `json:"metrics"`
	Best       float64            `json:"best"`
	BestStep   int                `json:"best_step"`
	Bad        int                `json:"bad"` // evaluations since the best
	Stopped    bool               `json:"stopped"`
	AdamSteps  map[string]int64   `json:"adam_steps"`
	Examples   int                `json:"examples"`             // examples (of every rank) seen in this process's run
	WorldSize  int                `json:"world_size,omitempty"` // ranks of the run (0: one)
	Seconds    float64            `json:"seconds"`
	Throughput float64            `json:"examples_per_second"`
	// AllReduceSeconds is the time this process's run spent all-reducing
	// gradients (AllReduceGrads, after the backward passes) with W > 1.
	AllReduceSeconds float64 `json:"all_reduce_seconds,omitempty"`
}

// Result is a finished phase.
type Result struct {
	State
	Final map[string]float64 // the last evaluation (of the best model when evaluating)
}

// RunOptions are the loop's process-level settings.
type RunOptions struct {
	Resume   bool      // continue from dir's checkpoint when there is one
	Progress io.Writer // progress (package progress; nil: none)
	StopAt   int       // > 0: return after this many updates as if killed (tests)
	// Group, with more than one rank, trains data-parallel (ddp.go): rank 0
	// alone writes checkpoints, models, plots and history and shows
	// progress. Nil, or one rank, is the single-process loop.
	Group *dist.Group
	// Trace, when set, receives a record of every update (tests, debugging).
	Trace func(TraceRecord)
}

// Run trains t with o under dir: checkpoints in dir/checkpoint, the best
// (or last) models in dir/model, curves in dir/*.png, history in
// dir/history.json.
func Run(ctx context.Context, t *Task, o Opt, seed uint64, dir string, ro RunOptions) (*Result, error) {
	if t.N <= 0 {
		return nil, fmt.Errorf("train %s: no training examples", t.Name)
	}
	if o.Accum <= 0 {
		o.Accum = 1
	}
	g := ro.Group
	W, rank := g.Size(), g.Rank()
	if W > 1 && min(o.BatchSize, t.N) < W {
		return nil, fmt.Errorf("train %s: a micro-batch of %d examples for %d ranks: every rank needs at least one (raise batch_size)", t.Name, min(o.BatchSize, t.N), W)
	}
	if rank != 0 {
		ro.Progress = nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("train %s: %w", t.Name, err)
	}
	var params []torch.Param
	for _, g := range sortedGroups(t.Params) {
		for _, p := range t.Params[g] {
			params = append(params, torch.Param{Name: g + "/" + p.Name, Tensor: p.Tensor, Decay: p.Decay})
		}
	}
	// One AdamW per learning-rate scale: libtorch's step takes one rate.
	cfg := torch.DefaultAdamW(o.LR)
	cfg.WeightDecay = o.WeightDecay
	byScale := map[float64][]torch.Param{}
	var scales []float64
	for _, g := range sortedGroups(t.Params) {
		sc, ok := t.LRScale[g]
		if !ok {
			sc = 1
		}
		if _, seen := byScale[sc]; !seen {
			scales = append(scales, sc)
		}
		for _, p := range t.Params[g] {
			byScale[sc] = append(byScale[sc], torch.Param{Name: g + "/" + p.Name, Tensor: p.Tensor, Decay: p.Decay})
		}
	}
	var opt optimizers
	defer opt.close()
	for _, sc := range scales {
		if len(byScale[sc]) == 0 {
			continue
		}
		a, err := torch.NewAdamW(byScale[sc], cfg)
		if err != nil {
			return nil, fmt.Errorf("train %s: %w", t.Name, err)
		}
		opt = append(opt, scaled{a, sc})
	}
	all := append([]torch.Param(nil), params...)
	for _, g := range sortedGroups(t.Frozen) {
		for _, p := range t.Frozen[g] {
			all = append(all, torch.Param{Name: g + "#frozen/" + p.Name, Tensor: p.Tensor})
		}
	}
	ptensors := tensorsOf(params)
	perUpdate := o.BatchSize * o.Accum
	total := o.MaxSteps
	if total <= 0 {
		total = max(1, int(math.Ceil(o.Epochs*float64(t.N)/float64(perUpdate))))
	}
	st := State{Total: total, Seed: seed, Metrics: map[string][]Point{}, Best: -math.MaxFloat64}
	ck := filepath.Join(dir, "checkpoint")
	resumed, err := syncStart(ctx, g, t.Name, ck, ro.Resume, all, params, opt, &st)
	if err != nil {
		return nil, err
	}
	if resumed {
		slog.Info("resumed", "phase", t.Name, "step", st.Step, "of", st.Total)
		if st.Total != total || st.Seed != seed {
			return nil, fmt.Errorf("train %s: checkpoint %s was for %d steps, seed %d; this run has %d, seed %d", t.Name, ck, st.Total, st.Seed, total, seed)
		}
	}
	st.WorldSize = 0
	if W > 1 {
		st.WorldSize = W
	}
	sched := torch.LinearSchedule{Base: o.LR, Warmup: int(o.Warmup * float64(total)), Total: total}
	bar := progress.NewTo(ro.Progress, total, t.Name, "steps")
	defer bar.Finish()
	bar.Resume(st.Step)
	start := time.Now()
	examples := 0
	var reduceTime time.Duration
	// evaluate runs on rank 0 (the models are the same bits on every rank),
	// which saves the best model; every rank gets the outcome, so that early
	// stopping stops them all at once.
	type outcome struct {
		Metrics  map[string]float64 `json:"metrics"`
		Best     float64            `json:"best"`
		BestStep int                `json:"best_step"`
		Bad      int                `json:"bad"`
		Stopped  bool               `json:"stopped"`
	}
	evaluate := func() error {
		if t.Eval == nil {
			return nil
		}
		out, err := onRoot(ctx, g, "dev evaluation", func() (outcome, error) {
			m, err := t.Eval(ctx)
			if err != nil {
				return outcome{}, fmt.Errorf("train %s: eval at step %d: %w", t.Name, st.Step, err)
			}
			v, ok := m[t.Metric]
			if !ok {
				return outcome{}, fmt.Errorf("train %s: eval has no metric %q", t.Name, t.Metric)
			}
			out := outcome{Metrics: m, Best: st.Best, BestStep: st.BestStep, Bad: st.Bad}
			if v > st.Best {
				out.Best, out.BestStep, out.Bad = v, st.Step, 0
				return out, saveModels(filepath.Join(dir, "model"), t.Save)
			}
			out.Bad++
			out.Stopped = o.Patience > 0 && out.Bad >= o.Patience
			return out, nil
		})
		if err != nil {
			return err
		}
		for k, v := range out.Metrics {
			st.Metrics[k] = append(st.Metrics[k], Point{st.Step, v})
		}
		slog.Info("dev", "phase", t.Name, "step", st.Step, "metrics", out.Metrics)
		st.Best, st.BestStep, st.Bad, st.Stopped = out.Best, out.BestStep, out.Bad, out.Stopped
		if st.Stopped {
			slog.Info("early stop", "phase", t.Name, "step", st.Step, "best", st.Best, "best_step", st.BestStep)
		}
		return nil
	}
	for st.Step < total && !st.Stopped {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if ro.StopAt > 0 && st.Step >= ro.StopAt {
			return &Result{State: st}, nil
		}
		// Dropout draws from libtorch's generator: seeding it per update
		// makes a resumed run repeat the uninterrupted one.
		torch.ManualSeed(dropoutSeed(seed, st.Step, rank))
		sum, n := 0.0, 0
		var tr *TraceRecord
		if ro.Trace != nil {
			tr = &TraceRecord{Rank: rank, Step: st.Step + 1}
		}
		for a := 0; a < o.Accum; a++ {
			idx := batchAt(seed, t.N, o.BatchSize, st.Step*o.Accum+a)
			b := Batch{Idx: idx, Global: idx}
			if W > 1 {
				lo, hi := sliceOf(len(idx), rank, W)
				b.Idx = idx[lo:hi]
			}
			if tr != nil {
				tr.Global, tr.Local = append(tr.Global, b.Global), append(tr.Local, b.Idx)
			}
			var s *torch.Scope
			if t.NewScope != nil {
				s = t.NewScope()
			} else {
				s = torch.NewScope()
			}
			loss, k, err := t.Loss(ctx, s, b)
			if loss == nil {
				k = 0
			}
			if err == nil && W == 1 && loss != nil {
				s.Backward(s.DivScalar(loss, float64(o.Accum)))
				var v float64
				if v, err = loss.Item(); err == nil {
					sum += v
					n++
				}
			} else if err == nil && W > 1 {
				// Every rank's examples count alike: this rank's mean is
				// weighed by its share of the micro-batch's contributors.
				local := 0.0
				if loss != nil && k > 0 {
					var v float64
					if v, err = loss.Item(); err == nil {
						local = v * float64(k)
					}
				}
				var cnt, tot float64
				if err == nil {
					cnt, tot, err = microStats(ctx, g, k, local)
				}
				if err == nil && loss != nil {
					f := 0.0
					if cnt > 0 {
						f = float64(k) * float64(W) / (cnt * float64(o.Accum))
					}
					s.Backward(s.MulScalar(loss, f))
				}
				if err == nil && cnt > 0 {
					sum += tot / cnt
					n++
				}
			}
			if err == nil {
				err = s.Err()
			}
			s.Close()
			if err != nil {
				return nil, fmt.Errorf("train %s: step %d: %w", t.Name, st.Step, err)
			}
			examples += len(b.Global)
		}
		if W > 1 {
			t0 := time.Now()
			if err := g.AllReduceGrads(ctx, ptensors); err != nil {
				return nil, fmt.Errorf("train %s: step %d: %w", t.Name, st.Step, err)
			}
			reduceTime += time.Since(t0)
		}
		if tr != nil {
			var err error
			if tr.GradNorm, err = gradNorm(ptensors); err != nil {
				return nil, err
			}
			tr.GroupNorms = map[string]float64{}
			for _, gr := range sortedGroups(t.Params) {
				if tr.GroupNorms[gr], err = gradNorm(tensorsOf(t.Params[gr])); err != nil {
					return nil, err
				}
			}
		}
		if o.ClipNorm > 0 {
			if _, err := torch.ClipGradNorm(ptensors, o.ClipNorm); err != nil {
				return nil, fmt.Errorf("train %s: clip: %w", t.Name, err)
			}
		}
		if err := opt.step(sched.LR(st.Step)); err != nil {
			return nil, fmt.Errorf("train %s: step %d: %w", t.Name, st.Step, err)
		}
		if err := opt.zeroGrad(); err != nil {
			return nil, err
		}
		st.Step++
		if n > 0 {
			st.Loss = append(st.Loss, Point{st.Step, sum / float64(n)})
		}
		if tr != nil {
			tr.Loss = sum / float64(max(n, 1))
			var err error
			if tr.ParamHash, err = paramHash(ptensors); err != nil {
				return nil, err
			}
			ro.Trace(*tr)
		}
		bar.Describe(fmt.Sprintf("loss %.4f", sum/float64(max(n, 1))))
		bar.Set(st.Step)
		if o.EvalEvery > 0 && st.Step%o.EvalEvery == 0 && st.Step < total {
			if err := evaluate(); err != nil {
				return nil, err
			}
		}
		if o.CheckpointEvery > 0 && st.Step%o.CheckpointEvery == 0 && st.Step < total {
			if err := doOnRoot(ctx, g, "writing the checkpoint", func() error {
				if err := saveCheckpoint(ck, all, opt, &st); err != nil {
					return fmt.Errorf("train %s: %w", t.Name, err)
				}
				return writeCurves(dir, t.Name, &st)
			}); err != nil {
				return nil, err
			}
		}
	}
	bar.Finish()
	st.Examples = examples
	st.Seconds = time.Since(start).Seconds()
	if st.Seconds > 0 {
		st.Throughput = float64(examples) / st.Seconds
	}
	if W > 1 {
		st.AllReduceSeconds = reduceTime.Seconds()
		slog.Info("data-parallel run", "phase", t.Name, "world", W, "examples/s", fmt.Sprintf("%.1f", st.Throughput),
			"seconds", fmt.Sprintf("%.1f", st.Seconds), "gradient all-reduce seconds", fmt.Sprintf("%.2f", st.AllReduceSeconds))
	}
	// The last evaluation, unless early stopping just made one.
	if !st.Stopped {
		if t.Eval != nil {
			if err := evaluate(); err != nil {
				return nil, err
			}
		} else if err := doOnRoot(ctx, g, "saving the models", func() error {
			return saveModels(filepath.Join(dir, "model"), t.Save)
		}); err != nil {
			return nil, err
		}
	}
	if err := doOnRoot(ctx, g, "writing the checkpoint", func() error {
		if err := saveCheckpoint(ck, all, opt, &st); err != nil {
			return fmt.Errorf("train %s: %w", t.Name, err)
		}
		return writeCurves(dir, t.Name, &st)
	}); err != nil {
		return nil, err
	}
	res := &Result{State: st, Final: map[string]float64{}}
	for k, v := range st.Metrics {
		for _, p := range v {
			if p.Step == st.BestStep {
				res.Final[k] = p.Value
			}
		}
	}
	return res, nil
}

// saveModels writes the models (save) into a fresh folder beside dir, then
// renames it over dir: a kill leaves the old models or the new ones, as
// saveCheckpoint does.
func saveModels(dir string, save func(string) error) error {
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return fmt.Errorf("models: %w", err)
	}
	if err := save(tmp); err != nil {
		return err
	}
	old := dir + ".old"
	os.RemoveAll(old)
	if _, err := os.Stat(dir); err == nil {
		if err := os.Rename(dir, old); err != nil {
			return fmt.Errorf("models: %w", err)
		}
	}
	if err := atomicfile.Rename(tmp, dir); err != nil {
		return fmt.Errorf("models: %w", err)
	}
	os.RemoveAll(old)
	return nil
}

// batchAt is the micro-batch number m of a seeded stream of epochs, each a
// fresh permutation of the n examples: a pure function of (seed, m), so
// that resuming needs no saved sampler state.
func batchAt(seed uint64, n, size, m int) []int {
	size = min(size, n)
	perEpoch := n / size
	epoch, k := m/perEpoch, m%perEpoch
	perm := rand.New(rand.NewPCG(seed, uint64(epoch))).Perm(n)
	return perm[k*size : (k+1)*size]
}

func sortedGroups(m map[string][]torch.Param) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sortStrings(ks)
	return ks
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// saveCheckpoint writes parameters, optimiser state and the loop's state
// into a fresh folder, then renames it over dir: a kill leaves the old
// checkpoint or the new one.
func saveCheckpoint(dir string, params []torch.Param, opt optimizers, st *State) error {
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	ts := map[string]*torch.Tensor{}
	for _, p := range params {
		ts[p.Name] = p.Tensor
	}
	if err := torch.SaveSafetensors(filepath.Join(tmp, "params.safetensors"), ts, nil); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	s := torch.NewScope()
	defer s.Close()
	ost, steps, err := opt.state(s)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if len(ost) > 0 {
		if err := torch.SaveSafetensors(filepath.Join(tmp, "optimizer.safetensors"), ost, nil); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
	}
	st.AdamSteps = steps
	b, err := json.MarshalIndent(st, "", " ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(tmp, "state.json"), b, 0o644); err != nil {
		return err
	}
	old := dir + ".old"
	os.RemoveAll(old)
	if _, err := os.Stat(dir); err == nil {
		if err := os.Rename(dir, old); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
	}
	if err := atomicfile.Rename(tmp, dir); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	os.RemoveAll(old)
	return nil
}

// loadCheckpoint restores what saveCheckpoint wrote; false when there is
// none. A kill between the two renames of saveCheckpoint leaves dir.old,
// which is used then.
func loadCheckpoint(dir string, params []torch.Param, opt optimizers, st *State) (bool, error) {
	if _, err := os.Stat(filepath.Join(dir, "state.json")); err != nil {
		if _, err2 := os.Stat(filepath.Join(dir+".old", "state.json")); err2 == nil {
			dir += ".old"
		} else if errors.Is(err, os.ErrNotExist) {
			return false, nil
		} else {
			return false, err
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return false, err
	}
	var loaded State
	if err := json.Unmarshal(b, &loaded); err != nil {
		return false, fmt.Errorf("%s/state.json: %w", dir, err)
	}
	f, err := torch.OpenSafetensors(filepath.Join(dir, "params.safetensors"))
	if err != nil {
		return false, err
	}
	defer f.Close()
	s := torch.NewScope()
	defer s.Close()
	for _, p := range params {
		src, err := f.Load(s, p.Name, p.Tensor.Device(), p.Tensor.DType())
		if err != nil {
			return false, fmt.Errorf("%s: parameter %s: %w", dir, p.Name, err)
		}
		if err := p.Tensor.CopyFrom(src); err != nil {
			return false, fmt.Errorf("%s: parameter %s: %w", dir, p.Name, err)
		}
	}
	if len(loaded.AdamSteps) > 0 {
		of, err := torch.OpenSafetensors(filepath.Join(dir, "optimizer.safetensors"))
		if err != nil {
			return false, err
		}
		defer of.Close()
		ts := map[string]*torch.Tensor{}
		for _, p := range params {
			if _, ok := loaded.AdamSteps[p.Name]; !ok {
				continue
			}
			for _, suf := range []string{".exp_avg", ".exp_avg_sq"} {
				t, err := of.Load(s, p.Name+suf, p.Tensor.Device(), p.Tensor.DType())
				if err != nil {
					return false, fmt.Errorf("%s: optimizer state %s: %w", dir, p.Name+suf, err)
				}
				ts[p.Name+suf] = t
			}
		}
		if err := opt.loadState(ts, loaded.AdamSteps); err != nil {
			return false, fmt.Errorf("%s: %w", dir, err)
		}
	}
	if loaded.Metrics == nil {
		loaded.Metrics = map[string][]Point{}
	}
	*st = loaded
	return true, nil
}

type scaled struct {
	*torch.AdamW
	scale float64
}

// optimizers are AdamWs over disjoint parameter sets, stepped together.
type optimizers []scaled

func (o optimizers) close() {
	for _, a := range o {
		a.Close()
	}
}

func (o optimizers) step(lr float64) error {
	for _, a := range o {
		if err := a.Step(lr * a.scale); err != nil {
			return err
		}
	}
	return nil
}

func (o optimizers) zeroGrad() error {
	for _, a := range o {
		if err := a.ZeroGrad(); err != nil {
			return err
		}
	}
	return nil
}

func (o optimizers) state(s *torch.Scope) (map[string]*torch.Tensor, map[string]int64, error) {
	ts, steps := map[string]*torch.Tensor{}, map[string]int64{}
	for _, a := range o {
		t, st, err := a.State(s)
		if err != nil {
			return nil, nil, err
		}
		for k, v := range t {
			ts[k] = v
		}
		for k, v := range st {
			steps[k] = v
		}
	}
	return ts, steps, nil
}

func (o optimizers) loadState(ts map[string]*torch.Tensor, steps map[string]int64) error {
	for _, a := range o {
		if err := a.LoadState(ts, steps); err != nil {
			return err
		}
	}
	return nil
}
