package train

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"sort"

	"github.com/re2g/re2g/internal/atomicfile"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// writeCurves writes dir/loss.png, dir/metrics.png (when there are dev
// evaluations) and dir/history.json.
func writeCurves(dir, name string, st *State) error {
	b, err := json.MarshalIndent(st, "", " ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "history.json"), b, 0o644); err != nil {
		return err
	}
	if len(st.Loss) > 0 {
		if err := savePlot(filepath.Join(dir, "loss.png"), name+": training loss", "loss", map[string][]Point{"loss": smooth(st.Loss)}); err != nil {
			return err
		}
	}
	if len(st.Metrics) > 0 {
		if err := savePlot(filepath.Join(dir, "metrics.png"), name+": dev metrics", "value", st.Metrics); err != nil {
			return err
		}
	}
	return nil
}

// smooth is a running mean over a window of 1/50 of the curve.
func smooth(ps []Point) []Point {
	w := max(1, len(ps)/50)
	out := make([]Point, len(ps))
	sum := 0.0
	for i, p := range ps {
		sum += p.Value
		if i >= w {
			sum -= ps[i-w].Value
		}
		out[i] = Point{p.Step, sum / float64(min(i+1, w))}
	}
	return out
}

func savePlot(path, title, ylabel string, series map[string][]Point) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "update"
	p.Y.Label.Text = ylabel
	names := make([]string, 0, len(series))
	for k := range series {
		names = append(names, k)
	}
	sort.Strings(names)
	var args []any
	for _, k := range names {
		xy := make(plotter.XYs, len(series[k]))
		for i, pt := range series[k] {
			xy[i].X, xy[i].Y = float64(pt.Step), pt.Value
		}
		args = append(args, k, xy)
	}
	if err := plotutil.AddLinePoints(p, args...); err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	wt, err := p.WriterTo(8*vg.Inch, 4*vg.Inch, "png")
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return atomicfile.Write(path, 0o644, func(w io.Writer) error { _, err := wt.WriteTo(w); return err })
}
