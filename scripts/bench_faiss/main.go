// Command bench_faiss benchmarks re2g's FAISS bindings against Python FAISS
// (Debian's python3-faiss, the same libfaiss 1.7.3) on the same
// random-but-clustered vectors, the same saved index, the same queries and
// efSearch values: build time, recall@k against exact search, single-query
// latency and throughput, batched throughput. It prints a table, a final
// "go/python single-query qps ratio" line and writes a recall-QPS plot.
//
//	make bench-faiss            # n = 10k and 100k
//	make bench-faiss BENCH_FAISS_N=10000,100000,1000000
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/re2g/re2g/faiss"
	"github.com/re2g/re2g/internal/atomicfile"
	"github.com/re2g/re2g/internal/progress"
	"github.com/re2g/re2g/internal/vecgen"
)

type variant struct {
	name   string
	metric faiss.Metric
	sq8    bool
}

var allVariants = []variant{
	{"hnsw-ip", faiss.InnerProduct, false},
	{"sq8-ip", faiss.InnerProduct, true},
}

type config struct {
	ns           []int
	d, nq, k     int
	m, efc       int
	efs          []int
	variants     []variant
	out, python  string
	script       string
	threads      int
	single       int
	train        int
	pyBuild      bool
	pyBuildMaxN  int
	skipExisting bool
}

// side is one implementation's measurements for one (n, variant, ef).
type side struct {
	Recall     float64 `json:"recall"`
	BatchQPS   float64 `json:"batch_qps"`
	SingleP50  float64 `json:"single_p50_us"`
	SingleP99  float64 `json:"single_p99_us"`
	SingleQPS  float64 `json:"single_qps"`
	Single1QPS float64 `json:"single_qps_1thread,omitempty"` // python at 1 OpenMP thread
}

type row struct {
	N           int     `json:"n"`
	Variant     string  `json:"variant"`
	Ef          int     `json:"ef"`
	Go          side    `json:"go"`
	Py          side    `json:"python"`
	SameIDs     float64 `json:"same_ids"` // fraction of batched result ids equal between Go and Python
	GoBuildS    float64 `json:"go_build_s"`
	PyBuildS    float64 `json:"py_build_s"` // 0: not measured
	GoBuildCPU  float64 `json:"go_build_cpu_s"`
	PyBuildCPU  float64 `json:"py_build_cpu_s"`
	BytesPerVec float64 `json:"bytes_per_vector"`
}

func main() {
	var c config
	var ns, efs, vs string
	flag.StringVar(&ns, "n", "10000,100000", "corpus sizes, comma-separated")
	flag.IntVar(&c.d, "d", 768, "dimension")
	flag.IntVar(&c.nq, "nq", 1000, "queries")
	flag.IntVar(&c.k, "k", 10, "k for recall@k")
	flag.IntVar(&c.m, "M", faiss.DefaultM, "HNSW M")
	flag.IntVar(&c.efc, "efc", faiss.DefaultEfConstruction, "HNSW efConstruction")
	flag.StringVar(&efs, "ef", "16,32,64,128,256", "efSearch values")
	flag.StringVar(&vs, "variants", "hnsw-ip,sq8-ip", "index variants")
	flag.StringVar(&c.out, "out", "build/bench_faiss", "output folder (vectors, indexes, results)")
	flag.StringVar(&c.python, "python", "/usr/bin/python3", "python with Debian's python3-faiss")
	flag.StringVar(&c.script, "script", "scripts/bench_faiss/bench_faiss.py", "python side")
	flag.IntVar(&c.threads, "threads", runtime.NumCPU(), "OpenMP threads for both sides")
	flag.IntVar(&c.single, "single", 1000, "single queries timed per ef")
	flag.IntVar(&c.train, "train", 100000, "SQ8 training sample")
	flag.BoolVar(&c.pyBuild, "pybuild", true, "also time the same build in Python")
	flag.IntVar(&c.pyBuildMaxN, "pybuild-max-n", 100000, "largest n for the Python build timing")
	flag.BoolVar(&c.skipExisting, "reuse", false, "reuse saved indexes from an earlier run (no build timing)")
	flag.Parse()
	var err error
	if c.ns, err = ints(ns); err != nil {
		fail(err)
	}
	if c.efs, err = ints(efs); err != nil {
		fail(err)
	}
	for _, name := range strings.Split(vs, ",") {
		i := slices.IndexFunc(allVariants, func(v variant) bool { return v.name == name })
		if i < 0 {
			fail(fmt.Errorf("unknown variant %q", name))
		}
		c.variants = append(c.variants, allVariants[i])
	}
	if err := run(context.Background(), c); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench_faiss:", err)
	os.Exit(1)
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("bad integer list %q", s)
		}
		out = append(out, v)
	}
	return out, nil
}

func run(ctx context.Context, c config) error {
	faiss.SetThreads(c.threads)
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return err
	}
	slog.Info("bench_faiss", "threads", faiss.Threads(), "GOMAXPROCS", runtime.GOMAXPROCS(0),
		"OMP_NUM_THREADS", os.Getenv("OMP_NUM_THREADS"), "OMP_WAIT_POLICY", os.Getenv("OMP_WAIT_POLICY"))
	var rows []row
	for _, n := range c.ns {
		r, err := runN(ctx, c, n)
		if err != nil {
			return fmt.Errorf("n=%d: %w", n, err)
		}
		rows = append(rows, r...)
		// Results so far, in case a later (larger) n is interrupted.
		if err := report(c, rows, false); err != nil {
			return err
		}
	}
	return report(c, rows, true)
}

func runN(ctx context.Context, c config, n int) ([]row, error) {
	dir := filepath.Join(c.out, fmt.Sprintf("n%d", n))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	g := vecgen.New(vecgen.Default(c.d))
	slog.Info("generating vectors", "n", n, "d", c.d, "queries", c.nq)
	xb := g.Vectors(1, n)
	xq := g.Vectors(2, c.nq)
	basePath, qPath, gtPath := filepath.Join(dir, "base.f32"), filepath.Join(dir, "queries.f32"), filepath.Join(dir, "gt.i64")
	if err := writeF32(basePath, xb); err != nil {
		return nil, err
	}
	if err := writeF32(qPath, xq); err != nil {
		return nil, err
	}
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = int64(i)
	}
	slog.Info("exact search for ground truth", "n", n)
	gt, err := exact(ctx, c, xb, xq, ids)
	if err != nil {
		return nil, err
	}
	if err := writeI64(gtPath, gt.IDs); err != nil {
		return nil, err
	}
	var rows []row
	for _, v := range c.variants {
		path := filepath.Join(dir, v.name+".faiss")
		var goBuild, pyBuild, goCPU, pyCPU float64
		if _, err := os.Stat(path); err != nil || !c.skipExisting {
			if goBuild, goCPU, err = buildGo(ctx, c, v, xb, ids, path); err != nil {
				return nil, fmt.Errorf("%s: go build: %w", v.name, err)
			}
			if c.pyBuild && n <= c.pyBuildMaxN {
				if pyBuild, pyCPU, err = buildPy(c, v, basePath, filepath.Join(dir, v.name+".py.faiss")); err != nil {
					return nil, fmt.Errorf("%s: python build: %w", v.name, err)
				}
			}
		}
		st, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		goS, pyS, same, err := measure(ctx, c, path, qPath, xq, gt)
		if err != nil {
			return nil, fmt.Errorf("%s: search: %w", v.name, err)
		}
		for i, ef := range c.efs {
			rows = append(rows, row{N: n, Variant: v.name, Ef: ef, Go: goS[i], Py: pyS[i],
				SameIDs: same[i], GoBuildS: goBuild, PyBuildS: pyBuild, GoBuildCPU: goCPU, PyBuildCPU: pyCPU, BytesPerVec: float64(st.Size()) / float64(n)})
		}
	}
	return rows, nil
}

func exact(ctx context.Context, c config, xb, xq []float32, ids []int64) (*faiss.Result, error) {
	flat, err := faiss.NewFlat(c.d, faiss.InnerProduct)
	if err != nil {
		return nil, err
	}
	defer flat.Close()
	if err := flat.Add(ctx, xb, ids); err != nil {
		return nil, err
	}
	return flat.Search(ctx, xq, c.k, nil)
}

// cpuSeconds is this process's user+system CPU time (all threads).
func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func buildGo(ctx context.Context, c config, v variant, xb []float32, ids []int64, path string) (wall, cpu float64, err error) {
	n := len(ids)
	start, cpu0 := time.Now(), cpuSeconds()
	cfg := faiss.HNSWConfig{M: c.m, EfConstruction: c.efc, Metric: v.metric, SQ8: v.sq8}
	ix, err := faiss.NewHNSW(c.d, cfg)
	if err != nil {
		return 0, 0, err
	}
	defer ix.Close()
	if v.sq8 {
		if err := ix.Train(ctx, xb[:min(n, c.train)*c.d]); err != nil {
			return 0, 0, err
		}
	}
	bar := progress.New(n, fmt.Sprintf("go build %s n=%d", v.name, n), "vectors")
	const chunk = 65536
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		if err := ix.Add(ctx, xb[lo*c.d:hi*c.d], ids[lo:hi]); err != nil {
			return 0, 0, err
		}
		bar.Add(hi - lo)
	}
	bar.Finish()
	wall, cpu = time.Since(start).Seconds(), cpuSeconds()-cpu0
	slog.Info("go build", "variant", v.name, "n", n, "seconds", wall, "cpu_seconds", cpu, "index", ix.Description())
	return wall, cpu, ix.Save(path)
}

func buildPy(c config, v variant, basePath, save string) (wall, cpu float64, err error) {
	args := []string{c.script, "build", "--d", strconv.Itoa(c.d), "--threads", strconv.Itoa(c.threads),
		"--base", basePath, "--metric", v.metric.String(), "--M", strconv.Itoa(c.m),
		"--efc", strconv.Itoa(c.efc), "--train", strconv.Itoa(c.train), "--save", save}
	if v.sq8 {
		args = append(args, "--sq8")
	}
	var res struct {
		BuildS float64 `json:"build_s"`
		CPU    float64 `json:"build_cpu_s"`
	}
	if err := runPy(c, args, &res); err != nil {
		return 0, 0, err
	}
	os.Remove(save) // only the timing matters; searches use the Go-built index
	slog.Info("python build", "variant", v.name, "seconds", res.BuildS, "cpu_seconds", res.CPU)
	return res.BuildS, res.CPU, nil
}

func runPy(c config, args []string, res any) error {
	cmd := exec.Command(c.python, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("%s %s: %w", c.python, strings.Join(args, " "), err)
	}
	if err := json.Unmarshal(out, res); err != nil {
		return fmt.Errorf("python output %q: %w", out, err)
	}
	return nil
}

// batchReps is how many times each batched search is timed (best kept), on
// both sides.
const batchReps = 3

// pyServer is the Python side, kept running so that each Go timing can be
// interleaved with the matching Python one on the same shared cores.
type pyServer struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func startPy(c config, path, qPath string) (*pyServer, error) {
	cmd := exec.Command(c.python, c.script, "serve", "--d", strconv.Itoa(c.d), "--threads", strconv.Itoa(c.threads),
		"--index", path, "--queries", qPath, "--k", strconv.Itoa(c.k))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", c.python, err)
	}
	p := &pyServer{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<20)}
	var hello struct {
		Ready   bool   `json:"ready"`
		Threads int    `json:"threads"`
		Version string `json:"faiss_version"`
	}
	if err := p.read(&hello); err != nil {
		p.close()
		return nil, err
	}
	slog.Info("python faiss ready", "version", hello.Version, "omp_threads", hello.Threads)
	return p, nil
}

func (p *pyServer) read(resp any) error {
	line, err := p.out.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("python side: %w", err)
	}
	return json.Unmarshal(line, resp)
}

func (p *pyServer) call(req, resp any) error {
	b, _ := json.Marshal(req)
	if _, err := p.in.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("python side: %w", err)
	}
	return p.read(resp)
}

func (p *pyServer) close() {
	p.in.Write([]byte(`{"op":"quit"}` + "\n"))
	p.in.Close()
	p.cmd.Wait()
}

// singleBlock is how many single queries each side runs before the other
// takes its turn.
const singleBlock = 100

// measure searches the saved index from Go and from Python, alternating
// between them, and returns one Go and one Python measurement per ef plus
// the fraction of batched result ids that agree.
func measure(ctx context.Context, c config, path, qPath string, xq []float32, gt *faiss.Result) ([]side, []side, []float64, error) {
	ix, err := faiss.Load(path)
	if err != nil {
		return nil, nil, nil, err
	}
	defer ix.Close()
	py, err := startPy(c, path, qPath)
	if err != nil {
		return nil, nil, nil, err
	}
	defer py.close()
	var goSides, pySides []side
	var same []float64
	ns := min(c.single, c.nq)
	for ei, ef := range c.efs {
		if err := py.call(map[string]any{"op": "ef", "ef": ef}, &struct{}{}); err != nil {
			return nil, nil, nil, err
		}
		opt := &faiss.SearchOptions{EfSearch: ef}
		if _, err := ix.Search(ctx, xq[:10*c.d], c.k, opt); err != nil { // warm up
			return nil, nil, nil, err
		}
		var goRes *faiss.Result
		var pyIDs []int64
		goBatch, pyBatch := math.Inf(1), math.Inf(1)
		for rep := 0; rep < 2*batchReps; rep++ {
			if (rep+ei)%2 == 0 {
				start := time.Now()
				if goRes, err = ix.Search(ctx, xq, c.k, opt); err != nil {
					return nil, nil, nil, err
				}
				goBatch = min(goBatch, time.Since(start).Seconds())
			} else {
				var r struct {
					Secs float64 `json:"secs"`
					IDs  []int64 `json:"ids"`
				}
				if err := py.call(map[string]any{"op": "batch"}, &r); err != nil {
					return nil, nil, nil, err
				}
				pyBatch, pyIDs = min(pyBatch, r.Secs), r.IDs
			}
		}
		var goLat, pyLat, py1Lat []float64
		for lo := 0; lo < ns; lo += singleBlock {
			n := min(singleBlock, ns-lo)
			goTurn := func() error {
				for i := lo; i < lo+n; i++ {
					t0 := time.Now()
					if _, err := ix.Search(ctx, xq[i*c.d:(i+1)*c.d], c.k, opt); err != nil {
						return err
					}
					goLat = append(goLat, time.Since(t0).Seconds())
				}
				return nil
			}
			pyTurn := func(threads int, into *[]float64) error {
				var r struct {
					Lat []float64 `json:"lat"`
				}
				if err := py.call(map[string]any{"op": "single", "start": lo, "count": n, "threads": threads}, &r); err != nil {
					return err
				}
				*into = append(*into, r.Lat...)
				return nil
			}
			turns := []func() error{goTurn, func() error { return pyTurn(c.threads, &pyLat) }, func() error { return pyTurn(1, &py1Lat) }}
			if (lo/singleBlock+ei)%2 == 1 {
				slices.Reverse(turns)
			}
			for _, t := range turns {
				if err := t(); err != nil {
					return nil, nil, nil, err
				}
			}
		}
		if len(pyIDs) != len(goRes.IDs) {
			return nil, nil, nil, fmt.Errorf("python returned %d ids, want %d", len(pyIDs), len(goRes.IDs))
		}
		pyRes := &faiss.Result{N: goRes.N, K: goRes.K, IDs: pyIDs}
		agree := 0
		for i := range pyIDs {
			if pyIDs[i] == goRes.IDs[i] {
				agree++
			}
		}
		same = append(same, float64(agree)/float64(len(pyIDs)))
		gs := singleStats(goLat)
		gs.Recall, gs.BatchQPS = recall(goRes, gt), float64(c.nq)/goBatch
		ps := singleStats(pyLat)
		ps.Recall, ps.BatchQPS = recall(pyRes, gt), float64(c.nq)/pyBatch
		ps.Single1QPS = singleStats(py1Lat).SingleQPS
		goSides, pySides = append(goSides, gs), append(pySides, ps)
		slog.Info("measured", "index", filepath.Base(path), "ef", ef, "recall", gs.Recall,
			"go_1q_qps", int(gs.SingleQPS), "py_1q_qps", int(ps.SingleQPS), "py1_1q_qps", int(ps.Single1QPS),
			"go_batch_qps", int(gs.BatchQPS), "py_batch_qps", int(ps.BatchQPS))
	}
	return goSides, pySides, same, nil
}

func singleStats(lat []float64) side {
	total := 0.0
	for _, l := range lat {
		total += l
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	return side{SingleP50: pct(s, 50) * 1e6, SingleP99: pct(s, 99) * 1e6, SingleQPS: float64(len(s)) / total}
}

func recall(got, exact *faiss.Result) float64 {
	hit := 0
	for i := 0; i < exact.N; i++ {
		want := exact.IDs[i*exact.K : (i+1)*exact.K]
		g := got.IDs[i*got.K : (i+1)*got.K]
		for _, id := range g {
			if slices.Contains(want, id) {
				hit++
			}
		}
	}
	return float64(hit) / float64(exact.N*exact.K)
}

func pct(sorted []float64, p float64) float64 {
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func writeF32(path string, x []float32) error {
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		buf := make([]byte, 4*65536)
		for lo := 0; lo < len(x); lo += 65536 {
			hi := min(lo+65536, len(x))
			for i, f := range x[lo:hi] {
				binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(f))
			}
			if _, err := w.Write(buf[:4*(hi-lo)]); err != nil {
				return err
			}
		}
		return nil
	})
}

func writeI64(path string, x []int64) error {
	b := make([]byte, 8*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(v))
	}
	return atomicfile.WriteFile(path, b, 0o644)
}
