package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/re2g/re2g/internal/atomicfile"
)

// A scale metric is one cost measured at every size.
type scaleMetric struct {
	key, label, unit string
	// panel of the plot: time, memory, disk or latency ("" for none)
	panel string
	// model projects the cost: power (the measured slope), nlogn, linear
	// (fixed + per passage, through the two largest sizes) or rate
	// (passages/s: the time is n/rate)
	model string
	get   func(r *scaleResult) (float64, bool)
}

func mib(kib int64) float64 { return float64(kib) / 1024 }

func bytesMiB(b int64) float64 { return float64(b) / (1 << 20) }

// built reads a build stage's figure, when it was measured.
func built(s *buildStage, f func(*buildStage) float64) (float64, bool) {
	if s == nil || s.Skipped != "" {
		return 0, false
	}
	v := f(s)
	return v, v > 0
}

func partMiB(s *buildStage, part string) (float64, bool) {
	return built(s, func(s *buildStage) float64 { return bytesMiB(s.Bytes[part]) })
}

var scaleMetrics = []scaleMetric{
	{"bm25_s", "BM25 build (store + bleve) s", "s", "time", "power", func(r *scaleResult) (float64, bool) {
		return built(r.BM25, func(s *buildStage) float64 { return s.Seconds })
	}},
	{"index_s", "index build (BM25 + import + HNSW-SQ8) s", "s", "time", "nlogn", func(r *scaleResult) (float64, bool) {
		return built(r.Index, func(s *buildStage) float64 { return s.Seconds })
	}},
	{"index_hnsw_s", "HNSW-SQ8 phase of the index build s", "s", "time", "nlogn", func(r *scaleResult) (float64, bool) {
		return built(r.Index, func(s *buildStage) float64 { return s.Phases["hnsw"] })
	}},
	{"sq8_s", "HNSW-SQ8 build alone s", "s", "", "nlogn", func(r *scaleResult) (float64, bool) {
		return built(r.SQ8, func(s *buildStage) float64 { return s.Seconds })
	}},
	{"flat_s", "HNSWFlat build alone s", "s", "time", "nlogn", func(r *scaleResult) (float64, bool) {
		return built(r.Flat, func(s *buildStage) float64 { return s.Seconds })
	}},
	{"encode_small_s", "encoding, BERT 128x2 (n / rate) s", "s", "time", "rate", func(r *scaleResult) (float64, bool) {
		if r.Encode == nil || r.Encode.Small == nil || r.Encode.Small.Rate <= 0 {
			return 0, false
		}
		return float64(r.Passages) / r.Encode.Small.Rate, true
	}},
	{"encode_base_s", "encoding, BERT-base shape (n / rate) s", "s", "time", "rate", func(r *scaleResult) (float64, bool) {
		if r.Encode == nil || r.Encode.Base == nil || r.Encode.Base.Rate <= 0 {
			return 0, false
		}
		return float64(r.Passages) / r.Encode.Base.Rate, true
	}},
	{"open_s", "indexdir.Open s (median of 3)", "s", "", "linear", func(r *scaleResult) (float64, bool) {
		if r.Open == nil || len(r.Open.Seconds) == 0 {
			return 0, false
		}
		s := slices.Sorted(slices.Values(r.Open.Seconds))
		return s[len(s)/2], true
	}},
	{"serve_ready_s", "serve: start to ready s", "s", "", "linear", func(r *scaleResult) (float64, bool) {
		if r.Serve == nil {
			return 0, false
		}
		return r.Serve.ReadySeconds, true
	}},
	{"bm25_peak_mib", "BM25 build peak RSS MiB", "MiB", "memory", "linear", func(r *scaleResult) (float64, bool) {
		return built(r.BM25, func(s *buildStage) float64 { return mib(s.PeakKB) })
	}},
	{"bm25_anon_mib", "BM25 build peak anonymous RSS MiB", "MiB", "", "linear", func(r *scaleResult) (float64, bool) {
		return built(r.BM25, func(s *buildStage) float64 { return mib(s.AnonKB) })
	}},
	{"index_peak_mib", "index build peak RSS MiB", "MiB", "memory", "linear", func(r *scaleResult) (float64, bool) {
		return built(r.Index, func(s *buildStage) float64 { return mib(s.PeakKB) })
	}},
	{"sq8_peak_mib", "HNSW-SQ8 build peak RSS MiB", "MiB", "memory", "linear", func(r *scaleResult) (float64, bool) {
		return built(r.SQ8, func(s *buildStage) float64 { return mib(s.PeakKB) })
	}},
	{"flat_peak_mib", "HNSWFlat build peak RSS MiB", "MiB", "memory", "linear", func(r *scaleResult) (float64, bool) {
		return built(r.Flat, func(s *buildStage) float64 { return mib(s.PeakKB) })
	}},
	{"encode_small_peak_mib", "encoding BERT 128x2 peak RSS MiB", "MiB", "", "linear", func(r *scaleResult) (float64, bool) {
		if r.Encode == nil || r.Encode.Small == nil {
			return 0, false
		}
		return mib(r.Encode.Small.PeakKB), true
	}},
	{"encode_base_peak_mib", "encoding BERT-base peak RSS MiB", "MiB", "", "linear", func(r *scaleResult) (float64, bool) {
		if r.Encode == nil || r.Encode.Base == nil {
			return 0, false
		}
		return mib(r.Encode.Base.PeakKB), true
	}},
	{"serve_rss_loaded_mib", "serve RSS after loading MiB", "MiB", "memory", "linear", func(r *scaleResult) (float64, bool) {
		if r.Serve == nil {
			return 0, false
		}
		return mib(r.Serve.Loaded.RSS), true
	}},
	{"serve_rss_after_mib", "serve RSS after the queries MiB", "MiB", "memory", "linear", func(r *scaleResult) (float64, bool) {
		if r.Serve == nil {
			return 0, false
		}
		return mib(r.Serve.AfterQueries.RSS), true
	}},
	{"serve_anon_after_mib", "serve anonymous RSS after the queries MiB", "MiB", "", "linear", func(r *scaleResult) (float64, bool) {
		if r.Serve == nil {
			return 0, false
		}
		return mib(r.Serve.AfterQueries.Anon), true
	}},
	{"store_mib", "passage store MiB", "MiB", "disk", "linear", func(r *scaleResult) (float64, bool) { return partMiB(r.Index, "passages") }},
	{"bm25_mib", "BM25 (bleve) MiB", "MiB", "disk", "linear", func(r *scaleResult) (float64, bool) { return partMiB(r.Index, "bm25") }},
	{"vectors_mib", "vector store (f32) MiB", "MiB", "disk", "linear", func(r *scaleResult) (float64, bool) { return partMiB(r.Index, "vectors") }},
	{"sq8_mib", "HNSW-SQ8 file MiB", "MiB", "disk", "linear", func(r *scaleResult) (float64, bool) { return partMiB(r.Index, "hnsw") }},
	{"flat_mib", "HNSWFlat file MiB", "MiB", "disk", "linear", func(r *scaleResult) (float64, bool) { return partMiB(r.Flat, "hnsw") }},
	{"index_mib", "index directory MiB", "MiB", "disk", "linear", func(r *scaleResult) (float64, bool) { return partMiB(r.Index, "total") }},
	{"bm25_p50_ms", "BM25 query p50 ms", "ms", "latency", "power", func(r *scaleResult) (float64, bool) {
		return queryLat(r, func(q *queryStage) latency { return q.BM25 }, false)
	}},
	{"bm25_p99_ms", "BM25 query p99 ms", "ms", "", "power", func(r *scaleResult) (float64, bool) {
		return queryLat(r, func(q *queryStage) latency { return q.BM25 }, true)
	}},
	{"hnsw_p50_ms", "HNSW-SQ8 search p50 ms", "ms", "latency", "power", func(r *scaleResult) (float64, bool) {
		return queryLat(r, func(q *queryStage) latency { return q.HNSW }, false)
	}},
	{"hnsw_p99_ms", "HNSW-SQ8 search p99 ms", "ms", "", "power", func(r *scaleResult) (float64, bool) {
		return queryLat(r, func(q *queryStage) latency { return q.HNSW }, true)
	}},
	{"flat_p50_ms", "HNSWFlat search p50 ms", "ms", "latency", "power", func(r *scaleResult) (float64, bool) {
		if r.Flat == nil || r.Flat.Search == nil {
			return 0, false
		}
		return r.Flat.Search.P50, true
	}},
	{"flat_p99_ms", "HNSWFlat search p99 ms", "ms", "", "power", func(r *scaleResult) (float64, bool) {
		if r.Flat == nil || r.Flat.Search == nil {
			return 0, false
		}
		return r.Flat.Search.P99, true
	}},
	{"encode_p50_ms", "query encoding p50 ms", "ms", "", "power", func(r *scaleResult) (float64, bool) {
		return queryLat(r, func(q *queryStage) latency { return q.Encode }, false)
	}},
	{"retrieve_p50_ms", "pipeline.Retrieve p50 ms", "ms", "latency", "power", func(r *scaleResult) (float64, bool) {
		return queryLat(r, func(q *queryStage) latency { return q.Retrieve }, false)
	}},
	{"retrieve_p99_ms", "pipeline.Retrieve p99 ms", "ms", "", "power", func(r *scaleResult) (float64, bool) {
		return queryLat(r, func(q *queryStage) latency { return q.Retrieve }, true)
	}},
	{"http_p50_ms", "serve /v1/retrieve p50 ms", "ms", "", "power", func(r *scaleResult) (float64, bool) {
		if r.Serve == nil {
			return 0, false
		}
		return r.Serve.HTTP.P50, true
	}},
	{"http_p99_ms", "serve /v1/retrieve p99 ms", "ms", "", "power", func(r *scaleResult) (float64, bool) {
		if r.Serve == nil {
			return 0, false
		}
		return r.Serve.HTTP.P99, true
	}},
	{"update_add_s", "index add (--updates passages with vectors) s", "s", "time", "power", func(r *scaleResult) (float64, bool) {
		return updated(r, func(u *updateStage) float64 { return u.Add.Seconds })
	}},
	{"update_add_peak_mib", "index add peak RSS MiB", "MiB", "", "linear", func(r *scaleResult) (float64, bool) {
		return updated(r, func(u *updateStage) float64 { return mib(u.Add.PeakKB) })
	}},
	{"update_delete_s", "index delete (the same passages) s", "s", "", "power", func(r *scaleResult) (float64, bool) {
		return updated(r, func(u *updateStage) float64 { return u.Delete.Seconds })
	}},
	{"update_compact_s", "index compact s", "s", "", "nlogn", func(r *scaleResult) (float64, bool) {
		return updated(r, func(u *updateStage) float64 {
			if u.Compact == nil {
				return 0
			}
			return u.Compact.Seconds
		})
	}},
	{"update_reload_s", "serve: SIGHUP to the added passages served s", "s", "", "linear", func(r *scaleResult) (float64, bool) {
		return updated(r, func(u *updateStage) float64 { return u.Reload["add"] })
	}},
	{"update_http_p99_ms", "serve /v1/retrieve p99 during the updates ms", "ms", "", "power", func(r *scaleResult) (float64, bool) {
		return updated(r, func(u *updateStage) float64 { return u.During.P99 })
	}},
}

// updated reads an update stage's figure, when it was measured.
func updated(r *scaleResult, f func(*updateStage) float64) (float64, bool) {
	if r.Update == nil {
		return 0, false
	}
	v := f(r.Update)
	return v, v > 0
}

func queryLat(r *scaleResult, f func(*queryStage) latency, p99 bool) (float64, bool) {
	if r.Query == nil {
		return 0, false
	}
	l := f(r.Query)
	if p99 {
		return l.P99, l.N > 0
	}
	return l.P50, l.N > 0
}

// scaleFit is one metric's growth between the two largest sizes that have
// it, and its projection.
type scaleFit struct {
	Key        string  `json:"key"`
	Label      string  `json:"label"`
	N1         int     `json:"n1"`
	N2         int     `json:"n2"`
	V1         float64 `json:"v1"`
	V2         float64 `json:"v2"`
	Slope      float64 `json:"slope"`
	PowerLaw   float64 `json:"power_law"` // v2 (N/n2)^slope
	Model      string  `json:"model"`
	Projection float64 `json:"projection"` // by Model
}

func fitMetric(m scaleMetric, rs []*scaleResult, target float64) (scaleFit, bool) {
	var pts [][2]float64
	for _, r := range rs {
		if v, ok := m.get(r); ok && v > 0 {
			pts = append(pts, [2]float64{float64(r.Passages), v})
		}
	}
	if len(pts) < 2 {
		return scaleFit{}, false
	}
	a, b := pts[len(pts)-2], pts[len(pts)-1]
	f := scaleFit{Key: m.key, Label: m.label, N1: int(a[0]), N2: int(b[0]), V1: a[1], V2: b[1], Model: m.model}
	f.Slope = math.Log(b[1]/a[1]) / math.Log(b[0]/a[0])
	f.PowerLaw = b[1] * math.Pow(target/b[0], f.Slope)
	switch m.model {
	case "nlogn":
		f.Projection = b[1] * target / b[0] * math.Log(target) / math.Log(b[0])
	case "linear":
		// a cost that fell between the sizes (noise) is taken as flat
		f.Projection = b[1] + max(0, (b[1]-a[1])/(b[0]-a[0]))*(target-b[0])
	case "rate":
		f.Projection = b[1] * target / b[0]
	default:
		f.Projection = f.PowerLaw
	}
	return f, true
}

// scaleReport is results.json.
type scaleReport struct {
	Machine   map[string]string `json:"machine"`
	Target    float64           `json:"project_to"`
	Sizes     []*scaleResult    `json:"sizes"`
	Fits      []scaleFit        `json:"fits"`
	Encodings []encodeProj      `json:"encoding_projections"`
}

// encodeProj is the time to encode the target corpus at a rate.
type encodeProj struct {
	What  string  `json:"what"`
	Rate  float64 `json:"passages_per_second"` // 0: not measured
	Hours float64 `json:"hours"`
}

// dprRate is DPR's published encoding rate per GPU: 21M passages in about
// 8.8 hours on 8 GPUs (Karpukhin et al., EMNLP 2020, "Run-time
// Efficiency"; 32 GB V100s, the paper's training hardware).
const dprRate = 21e6 / (8.8 * 3600 * 8)

func reportScale(w io.Writer, cfg scaleConfig, rs []*scaleResult, target float64, plotPath string) error {
	rep := scaleReport{Target: target, Sizes: rs, Machine: map[string]string{
		"cpus": strconv.Itoa(runtime.NumCPU()), "go": runtime.Version(), "date": time.Now().UTC().Format(time.RFC3339)}}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		rep.Machine["memory"] = strings.Join(strings.Fields(strings.SplitN(string(b), "\n", 2)[0])[1:], " ")
	}
	for _, m := range scaleMetrics {
		if f, ok := fitMetric(m, rs, target); ok {
			rep.Fits = append(rep.Fits, f)
		}
	}
	// the encoding rate does not depend on the corpus's size, the load on
	// the machine does: the best of the sizes
	var small, base float64
	for _, r := range rs {
		if e := r.Encode; e != nil {
			if e.Small != nil {
				small = max(small, e.Small.Rate)
			}
			if e.Base != nil {
				base = max(base, e.Base.Rate)
			}
		}
	}
	if small > 0 {
		rep.Encodings = append(rep.Encodings, encodeProj{"BERT 128x2 (bert-tiny shape), this CPU, best of the sizes", small, target / small / 3600})
	}
	if base > 0 {
		rep.Encodings = append(rep.Encodings, encodeProj{"BERT-base shape (DPR's), this CPU, best of the sizes", base, target / base / 3600})
	}
	rep.Encodings = append(rep.Encodings,
		encodeProj{"DPR's published rate: 21M passages in 8.8 h on 8 GPUs (Karpukhin et al. 2020), one GPU", dprRate, target / dprRate / 3600},
		encodeProj{"the same, 8 GPUs", 8 * dprRate, target / dprRate / 8 / 3600},
		encodeProj{"one H200, bf16: not measured yet (hours = N / rate / 3600)", 0, 0})
	printScale(w, rs, rep)
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(cfg.work, "results.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	if err := writeScaleCSV(filepath.Join(cfg.work, "results.csv"), rs); err != nil {
		return err
	}
	if err := plotScale(plotPath, rs); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nresults: %s, %s; plot: %s\n", filepath.Join(cfg.work, "results.json"), filepath.Join(cfg.work, "results.csv"), plotPath)
	printScaleSummary(w, rs, rep)
	return nil
}

func fmtNum(v float64) string {
	switch a := math.Abs(v); {
	case a == 0:
		return "0"
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'g', 2, 64)
	}
}

// cell is a metric's value at r, or "-".
func cell(key string, r *scaleResult) string {
	for _, m := range scaleMetrics {
		if m.key == key {
			if v, ok := m.get(r); ok {
				return fmtNum(v)
			}
		}
	}
	return "-"
}

func printScale(w io.Writer, rs []*scaleResult, rep scaleReport) {
	fmt.Fprintln(w, "builds (each a child process: wall s / peak RSS MiB); encoding rates on a sample (passages/s); load: the highest 1-minute load average seen at a stage's start or end")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| passages | corpus MiB | BM25 s | BM25 MiB | encode 128x2 p/s | encode base p/s | index (BM25 + SQ8) s | its HNSW s | index MiB | HNSW-SQ8 alone s | SQ8 MiB | HNSWFlat s | Flat MiB | load |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rs {
		corpus, small, base := "-", "-", "-"
		if r.Corpus != nil {
			corpus = fmtNum(bytesMiB(r.Corpus.Bytes))
		}
		if r.Encode != nil && r.Encode.Small != nil {
			small = fmtNum(r.Encode.Small.Rate)
		}
		if r.Encode != nil && r.Encode.Base != nil {
			base = fmtNum(r.Encode.Base.Rate)
		}
		load := "-"
		if len(r.Load) > 0 {
			hi := 0.0
			for _, l := range r.Load {
				hi = max(hi, l[0], l[1])
			}
			load = fmtNum(hi)
		}
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Passages, corpus, cell("bm25_s", r), cell("bm25_peak_mib", r),
			small, base, cell("index_s", r), cell("index_hnsw_s", r), cell("index_peak_mib", r), cell("sq8_s", r), cell("sq8_peak_mib", r), cell("flat_s", r), cell("flat_peak_mib", r), load)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "the index (BM25 + HNSW-SQ8) on disk (MiB), opened, searched one query at a time (ms p50/p99), served")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| passages | store | bm25 | vectors | SQ8 | Flat | open s | BM25 | HNSW-SQ8 | HNSWFlat | encode q | retrieve | serve ready s | serve RSS MiB loaded / after | /v1/retrieve |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	pair := func(a, b string, r *scaleResult) string { return cell(a, r) + " / " + cell(b, r) }
	for _, r := range rs {
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Passages,
			cell("store_mib", r), cell("bm25_mib", r), cell("vectors_mib", r), cell("sq8_mib", r), cell("flat_mib", r), cell("open_s", r),
			pair("bm25_p50_ms", "bm25_p99_ms", r), pair("hnsw_p50_ms", "hnsw_p99_ms", r), pair("flat_p50_ms", "flat_p99_ms", r),
			cell("encode_p50_ms", r), pair("retrieve_p50_ms", "retrieve_p99_ms", r), cell("serve_ready_s", r),
			pair("serve_rss_loaded_mib", "serve_rss_after_mib", r), pair("http_p50_ms", "http_p99_ms", r))
	}
	if slices.ContainsFunc(rs, func(r *scaleResult) bool { return r.Update != nil }) {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "live updates while re2g serve answers one request after another: re2g index add (passages with their vectors), delete (the same), compact, each followed by SIGHUP (s; peak RSS MiB)")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| passages | added | add s | add MiB | reload s | delete s | reload s | compact s | reload s | requests | failed | /v1/retrieve p50 / p99 ms |")
		fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
		for _, r := range rs {
			u := r.Update
			if u == nil {
				continue
			}
			compact, compactReload := "-", "-"
			if u.Compact != nil {
				compact, compactReload = fmtNum(u.Compact.Seconds), fmtNum(u.Reload["compact"])
			}
			fmt.Fprintf(w, "| %d | %d | %s | %s | %s | %s | %s | %s | %s | %d | %d | %s / %s |\n", r.Passages, u.Passages,
				fmtNum(u.Add.Seconds), fmtNum(mib(u.Add.PeakKB)), fmtNum(u.Reload["add"]), fmtNum(u.Delete.Seconds), fmtNum(u.Reload["delete"]),
				compact, compactReload, u.During.N+u.Errors, u.Errors, fmtNum(u.During.P50), fmtNum(u.During.P99))
		}
	}
	if len(rep.Fits) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "growth: log-log slope between the two largest sizes; projection to %s passages: the power law, and the model named\n\n", fmtCount(rep.Target))
		fmt.Fprintln(w, "| cost | n1 | at n1 | n2 | at n2 | slope | power law | model | model's projection |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---|---:|")
		for _, f := range rep.Fits {
			unit := ""
			for _, m := range scaleMetrics {
				if m.key == f.Key {
					unit = m.unit
				}
			}
			fmt.Fprintf(w, "| %s | %d | %s | %d | %s | %.2f | %s | %s | %s |\n", f.Label, f.N1, fmtNum(f.V1), f.N2, fmtNum(f.V2), f.Slope,
				fmtUnit(f.PowerLaw, unit), modelName(f.Model), fmtUnit(f.Projection, unit))
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "encoding %s passages:\n", fmtCount(rep.Target))
	for _, e := range rep.Encodings {
		if e.Rate == 0 {
			fmt.Fprintf(w, "  %s\n", e.What)
			continue
		}
		fmt.Fprintf(w, "  %s: %s passages/s -> %s h\n", e.What, fmtNum(e.Rate), fmtNum(e.Hours))
	}
}

// fmtUnit is a projected value in a larger unit where it reads better:
// hours for long times, GiB for large sizes.
func fmtUnit(v float64, unit string) string {
	switch {
	case unit == "s" && v >= 3600:
		return fmtNum(v/3600) + " h"
	case unit == "MiB" && v >= 1024:
		return fmtNum(v/1024) + " GiB"
	}
	return fmtNum(v)
}

func modelName(m string) string {
	return map[string]string{"power": "power law", "nlogn": "n log n", "linear": "fixed + per passage", "rate": "n / rate"}[m]
}

func fmtCount(n float64) string {
	switch {
	case n >= 1e6:
		return strconv.FormatFloat(n/1e6, 'f', -1, 64) + "M"
	case n >= 1e3:
		return strconv.FormatFloat(n/1e3, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(n, 'f', -1, 64)
}

func fitOf(rep scaleReport, key string) (scaleFit, bool) {
	for _, f := range rep.Fits {
		if f.Key == key {
			return f, true
		}
	}
	return scaleFit{}, false
}

// printScaleSummary is the closing line: the largest build, the BM25
// build's memory per corpus byte, and the projection.
func printScaleSummary(w io.Writer, rs []*scaleResult, rep scaleReport) {
	last := rs[len(rs)-1]
	var parts []string
	if s := last.Index; s != nil {
		parts = append(parts, fmt.Sprintf("%d passages: BM25 + HNSW-SQ8 build from precomputed vectors %.1f min, peak %.0f MiB", last.Passages, s.Seconds/60, mib(s.PeakKB)))
	}
	if len(rs) >= 2 {
		a, b := rs[len(rs)-2], rs[len(rs)-1]
		if a.BM25 != nil && b.BM25 != nil && a.Corpus != nil && b.Corpus != nil {
			more := float64(b.Corpus.Bytes - a.Corpus.Bytes)
			parts = append(parts, fmt.Sprintf("BM25-only build %d→%d: peak RSS %.3f, anonymous %.3f bytes per corpus byte", a.Passages, b.Passages,
				float64(b.BM25.PeakKB-a.BM25.PeakKB)*1024/more, float64(b.BM25.AnonKB-a.BM25.AnonKB)*1024/more))
		}
	}
	var slopes []string
	for _, k := range []string{"bm25_s", "index_hnsw_s", "flat_s", "index_peak_mib", "serve_rss_after_mib", "bm25_p50_ms", "retrieve_p50_ms"} {
		if f, ok := fitOf(rep, k); ok {
			slopes = append(slopes, fmt.Sprintf("%s %.2f", k, f.Slope))
		}
	}
	if len(slopes) > 0 {
		parts = append(parts, "slopes "+strings.Join(slopes, ", "))
	}
	var proj []string
	if f, ok := fitOf(rep, "bm25_s"); ok {
		proj = append(proj, fmt.Sprintf("BM25 %.1f h", f.Projection/3600))
	}
	if f, ok := fitOf(rep, "index_hnsw_s"); ok {
		proj = append(proj, fmt.Sprintf("HNSW-SQ8 %.1f h", f.Projection/3600))
	}
	if f, ok := fitOf(rep, "index_peak_mib"); ok {
		proj = append(proj, fmt.Sprintf("build peak %.1f GiB", f.Projection/1024))
	}
	if f, ok := fitOf(rep, "sq8_mib"); ok {
		proj = append(proj, fmt.Sprintf("SQ8 index %.1f GiB", f.Projection/1024))
	}
	if f, ok := fitOf(rep, "serve_rss_after_mib"); ok {
		proj = append(proj, fmt.Sprintf("serving RSS %.1f GiB", f.Projection/1024))
	}
	if len(proj) > 0 {
		parts = append(parts, fmt.Sprintf("at %s: %s", fmtCount(rep.Target), strings.Join(proj, ", ")))
	}
	fmt.Fprintf(w, "scale: %s\n", strings.Join(parts, "; "))
}

func writeScaleCSV(path string, rs []*scaleResult) error {
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		head := []string{"passages", "corpus_bytes"}
		for _, m := range scaleMetrics {
			head = append(head, m.key)
		}
		cw.Write(head)
		for _, r := range rs {
			row := []string{strconv.Itoa(r.Passages), ""}
			if r.Corpus != nil {
				row[1] = strconv.FormatInt(r.Corpus.Bytes, 10)
			}
			for _, m := range scaleMetrics {
				if v, ok := m.get(r); ok {
					row = append(row, strconv.FormatFloat(v, 'g', 6, 64))
				} else {
					row = append(row, "")
				}
			}
			cw.Write(row)
		}
		cw.Flush()
		return cw.Error()
	})
}

// plotScale draws each plot panel's metrics against corpus size, log-log.
func plotScale(path string, rs []*scaleResult) error {
	panels := []struct{ key, title, ylabel string }{
		{"time", "build and encoding time", "seconds"},
		{"memory", "peak / resident memory", "MiB"},
		{"disk", "on disk", "MiB"},
		{"latency", "one query, p50", "ms"},
	}
	var row []*plot.Plot
	for _, pn := range panels {
		p := plot.New()
		p.Title.Text = pn.title
		p.X.Label.Text = "passages"
		p.Y.Label.Text = pn.ylabel
		p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
		p.X.Tick.Marker, p.Y.Tick.Marker = ticks125{}, ticks125{}
		p.Legend.Top, p.Legend.Left = true, true
		var args []any
		for _, m := range scaleMetrics {
			if m.panel != pn.key {
				continue
			}
			var xy plotter.XYs
			for _, r := range rs {
				if v, ok := m.get(r); ok && v > 0 {
					xy = append(xy, plotter.XY{X: float64(r.Passages), Y: v})
				}
			}
			if len(xy) > 0 {
				args = append(args, strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m.label, " s"), " MiB"), " ms"), xy)
			}
		}
		if len(args) == 0 {
			continue
		}
		if err := plotutil.AddLinePoints(p, args...); err != nil {
			return fmt.Errorf("plot %s: %w", path, err)
		}
		// room above the lines for the legend
		if p.Y.Min > 0 {
			p.Y.Max *= max(8, math.Pow(p.Y.Max/p.Y.Min, 0.55))
		}
		row = append(row, p)
	}
	if len(row) == 0 {
		return nil
	}
	cols := 2
	rows := (len(row) + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for i := range grid {
		grid[i] = make([]*plot.Plot, cols)
		for j := range cols {
			if k := i*cols + j; k < len(row) {
				grid[i][j] = row[k]
			}
		}
	}
	img := vgimg.New(13*vg.Inch, vg.Length(rows)*5*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Inch / 3, PadY: vg.Inch / 3, PadTop: vg.Inch / 6, PadBottom: vg.Inch / 6, PadLeft: vg.Inch / 6, PadRight: vg.Inch / 6}
	canvases := plot.Align(grid, tiles, dc)
	for i := range grid {
		for j, p := range grid[i] {
			if p != nil {
				p.Draw(canvases[i][j])
			}
		}
	}
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(w)
		return err
	})
}

// ticks125 marks a log axis at 1, 2 and 5 times the powers of ten, with
// labels such as 200k and 1M, and the other multiples unlabelled.
type ticks125 struct{}

func (ticks125) Ticks(lo, hi float64) []plot.Tick {
	var out []plot.Tick
	if lo <= 0 || hi <= lo {
		return out
	}
	for e := math.Floor(math.Log10(lo)); math.Pow(10, e) <= hi; e++ {
		for m := 1; m <= 9; m++ {
			v := float64(m) * math.Pow(10, e)
			if v < lo || v > hi {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || m == 2 || m == 5 {
				t.Label = tickLabel(v)
			}
			out = append(out, t)
		}
	}
	return out
}

func tickLabel(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', 4, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'g', 4, 64) + "k"
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}
