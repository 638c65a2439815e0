package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/re2g/re2g/faiss"
	"github.com/re2g/re2g/internal/atomicfile"
)

// report prints the table and ratio lines, and writes results.json,
// table.md and recall_qps.png under c.out. final adds nothing but the
// printout to stdout (intermediate reports only write files).
func report(c config, rows []row, final bool) error {
	var b bytes.Buffer
	writeTable(&b, c, rows)
	if err := atomicfile.WriteFile(filepath.Join(c.out, "table.md"), b.Bytes(), 0o644); err != nil {
		return err
	}
	js, _ := json.MarshalIndent(rows, "", "  ")
	if err := atomicfile.WriteFile(filepath.Join(c.out, "results.json"), js, 0o644); err != nil {
		return err
	}
	png := filepath.Join(c.out, "recall_qps.png")
	if err := plotRecallQPS(c, rows, png); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if final {
		os.Stdout.Write(b.Bytes())
		fmt.Printf("plot: %s\n", png)
	}
	return nil
}

func writeTable(w io.Writer, c config, rows []row) {
	fmt.Fprintf(w, "FAISS %s HNSW (M=%d, efConstruction=%d), d=%d, %d queries, recall@%d vs exact inner product.\n",
		"1.7.3", c.m, c.efc, c.d, c.nq, c.k)
	fmt.Fprintf(w, "Threads: Go faiss.SetThreads(%d) (single queries run on 1 thread: faiss.threadsFor), "+
		"Python faiss.omp_set_num_threads(%d); single-query Python also at 1 thread (py1). %d CPUs, GOMAXPROCS=%d, OMP_WAIT_POLICY=%q.\n\n",
		c.threads, c.threads, runtime.NumCPU(), runtime.GOMAXPROCS(0), os.Getenv("OMP_WAIT_POLICY"))
	fmt.Fprintln(w, "| n | variant | ef | recall go | recall py | same ids | 1q p50 µs go/py | 1q p99 µs go/py | 1q qps go | 1q qps py | 1q qps py1 | 1q go/py | batch qps go | batch qps py | batch go/py | build s go | build s py | build cpu s go/py | bytes/vec |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		pyb := "-"
		if r.PyBuildS > 0 {
			pyb = fmt.Sprintf("%.1f", r.PyBuildS)
		}
		gob := "-"
		if r.GoBuildS > 0 {
			gob = fmt.Sprintf("%.1f", r.GoBuildS)
		}
		fmt.Fprintf(w, "| %d | %s | %d | %.4f | %.4f | %.4f | %.0f/%.0f | %.0f/%.0f | %.0f | %.0f | %.0f | %.2f | %.0f | %.0f | %.2f | %s | %s | %.1f/%.1f | %.0f |\n",
			r.N, r.Variant, r.Ef, r.Go.Recall, r.Py.Recall, r.SameIDs, r.Go.SingleP50, r.Py.SingleP50,
			r.Go.SingleP99, r.Py.SingleP99, r.Go.SingleQPS, r.Py.SingleQPS, r.Py.Single1QPS,
			r.Go.SingleQPS/r.Py.SingleQPS, r.Go.BatchQPS, r.Py.BatchQPS, r.Go.BatchQPS/r.Py.BatchQPS, gob, pyb, r.GoBuildCPU, r.PyBuildCPU, r.BytesPerVec)
	}
	fmt.Fprintln(w)
	// Equal-recall comparison of float32 and SQ8 vectors (batched qps at
	// the smallest ef reaching the target recall).
	const target = 0.95
	ns := uniqueNs(rows)
	for _, n := range ns {
		a, okA := atRecall(rows, n, "hnsw-ip", target)
		b, okB := atRecall(rows, n, "sq8-ip", target)
		if !okA && !okB {
			continue
		}
		fmt.Fprintf(w, "n=%d at recall@%d >= %.2f: hnsw-ip %s; sq8-ip %s\n", n, c.k, target, a, b)
	}
	for _, n := range ns {
		for _, r := range rows {
			if r.N == n && r.Ef == faiss.DefaultEfSearch {
				fmt.Fprintf(w, "n=%d %s default efSearch=%d: recall@%d go %.4f python %.4f, %.0f bytes/vector\n",
					n, r.Variant, r.Ef, c.k, r.Go.Recall, r.Py.Recall, r.BytesPerVec)
			}
		}
	}
	recallSame := true
	for _, r := range rows {
		recallSame = recallSame && r.Go.Recall == r.Py.Recall
	}
	fmt.Fprintf(w, "recall@%d identical between Go and Python in every row: %v\n", c.k, recallSame)
	gm := func(f func(r row) float64) float64 {
		s, k := 0.0, 0
		for _, r := range rows {
			if v := f(r); v > 0 && !math.IsInf(v, 0) && !math.IsNaN(v) {
				s += math.Log(v)
				k++
			}
		}
		if k == 0 {
			return math.NaN()
		}
		return math.Exp(s / float64(k))
	}
	fmt.Fprintf(w, "go/python build time ratio (geometric mean): %.3f\n", gm(func(r row) float64 {
		if r.PyBuildS == 0 || r.Ef != c.efs[0] {
			return 0
		}
		return r.GoBuildS / r.PyBuildS
	}))
	fmt.Fprintf(w, "go/python build cpu-time ratio (geometric mean): %.3f\n", gm(func(r row) float64 {
		if r.PyBuildCPU == 0 || r.Ef != c.efs[0] {
			return 0
		}
		return r.GoBuildCPU / r.PyBuildCPU
	}))
	fmt.Fprintf(w, "go/python batched qps ratio (geometric mean): %.3f\n", gm(func(r row) float64 { return r.Go.BatchQPS / r.Py.BatchQPS }))
	fmt.Fprintf(w, "go/python-1-thread single-query qps ratio (geometric mean): %.3f\n", gm(func(r row) float64 { return r.Go.SingleQPS / r.Py.Single1QPS }))
	fmt.Fprintf(w, "go/python single-query qps ratio: %.3f\n", gm(func(r row) float64 { return r.Go.SingleQPS / r.Py.SingleQPS }))
}

func uniqueNs(rows []row) []int {
	var ns []int
	for _, r := range rows {
		if !slices.Contains(ns, r.N) {
			ns = append(ns, r.N)
		}
	}
	return ns
}

func atRecall(rows []row, n int, variant string, target float64) (string, bool) {
	seen := false
	for _, r := range rows {
		if r.N != n || r.Variant != variant {
			continue
		}
		seen = true
		if r.Go.Recall >= target {
			return fmt.Sprintf("ef=%d recall %.4f batch %.0f qps, single %.0f qps", r.Ef, r.Go.Recall, r.Go.BatchQPS, r.Go.SingleQPS), true
		}
	}
	if seen {
		return "never (max ef too small)", true
	}
	return "not run", false
}

func plotRecallQPS(c config, rows []row, path string) error {
	ns := uniqueNs(rows)
	if len(ns) == 0 {
		return nil
	}
	plots := make([][]*plot.Plot, len(ns))
	for i, n := range ns {
		plots[i] = make([]*plot.Plot, 2)
		for j, mode := range []string{"batched", "single-query"} {
			p := plot.New()
			p.Title.Text = fmt.Sprintf("n=%d, d=%d: %s", n, c.d, mode)
			p.X.Label.Text = fmt.Sprintf("recall@%d", c.k)
			p.Y.Label.Text = "queries/s"
			p.Y.Scale = plot.LogScale{}
			p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
			p.Legend.Top = false
			p.Legend.Left = true
			for vi, v := range c.variants {
				for si, sideName := range []string{"go", "python"} {
					var xy plotter.XYs
					for _, r := range rows {
						if r.N != n || r.Variant != v.name {
							continue
						}
						s := r.Go
						if sideName == "python" {
							s = r.Py
						}
						q := s.BatchQPS
						if j == 1 {
							q = s.SingleQPS
						}
						xy = append(xy, plotter.XY{X: s.Recall, Y: q})
					}
					if len(xy) == 0 {
						continue
					}
					l, pts, err := plotter.NewLinePoints(xy)
					if err != nil {
						return err
					}
					col := plotutil.Color(vi)
					l.Color, pts.Color = col, col
					if si == 1 {
						l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
						pts.Shape = draw.CrossGlyph{}
					} else {
						pts.Shape = draw.CircleGlyph{}
					}
					p.Add(l, pts)
					p.Legend.Add(v.name+" "+sideName, l, pts)
				}
			}
			p.Add(plotter.NewGrid())
			plots[i][j] = p
		}
	}
	img := vgimg.New(vg.Points(1100), vg.Points(float64(420*len(ns))))
	dc := draw.New(img)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	t := draw.Tiles{Rows: len(ns), Cols: 2, PadX: vg.Millimeter * 6, PadY: vg.Millimeter * 6,
		PadTop: vg.Millimeter * 3, PadBottom: vg.Millimeter * 3, PadLeft: vg.Millimeter * 3, PadRight: vg.Millimeter * 3}
	canv := plot.Align(plots, t, dc)
	for i := range plots {
		for j := range plots[i] {
			plots[i][j].Draw(canv[i][j])
		}
	}
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, buf.Bytes(), 0o644)
}
