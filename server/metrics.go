package server

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/re2g/re2g/torch"
)

// Metrics in the Prometheus text exposition format (version 0.0.4),
// written by hand: counters and histograms keyed by label values, and
// gauges read when scraped.

type counterVec struct {
	name, help string
	labels     []string
	mu         sync.Mutex
	vals       map[string]*atomic.Uint64
}

func newCounterVec(name, help string, labels ...string) *counterVec {
	return &counterVec{name: name, help: help, labels: labels, vals: map[string]*atomic.Uint64{}}
}

func (c *counterVec) get(lv ...string) *atomic.Uint64 {
	k := strings.Join(lv, "\xff")
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.vals[k]
	if v == nil {
		v = new(atomic.Uint64)
		c.vals[k] = v
	}
	return v
}

func (c *counterVec) inc(lv ...string) { c.get(lv...).Add(1) }

func (c *counterVec) write(w io.Writer) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", c.name, c.help, c.name)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range sortedKeys(c.vals) {
		fmt.Fprintf(w, "%s%s %d\n", c.name, labelString(c.labels, k, ""), c.vals[k].Load())
	}
}

type histogram struct {
	mu     sync.Mutex
	counts []uint64 // per bucket, not cumulative; the last is +Inf
	sum    float64
	n      uint64
}

type histogramVec struct {
	name, help string
	labels     []string
	bounds     []float64
	mu         sync.Mutex
	vals       map[string]*histogram
}

func newHistogramVec(name, help string, bounds []float64, labels ...string) *histogramVec {
	return &histogramVec{name: name, help: help, labels: labels, bounds: bounds, vals: map[string]*histogram{}}
}

func (h *histogramVec) observe(lv string, v float64) {
	h.mu.Lock()
	x := h.vals[lv]
	if x == nil {
		x = &histogram{counts: make([]uint64, len(h.bounds)+1)}
		h.vals[lv] = x
	}
	h.mu.Unlock()
	i := sort.SearchFloat64s(h.bounds, v) // first bound >= v
	x.mu.Lock()
	x.counts[i]++
	x.sum += v
	x.n++
	x.mu.Unlock()
}

func (h *histogramVec) write(w io.Writer) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s histogram\n", h.name, h.help, h.name)
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, k := range sortedKeys(h.vals) {
		x := h.vals[k]
		x.mu.Lock()
		cum := uint64(0)
		for i, b := range h.bounds {
			cum += x.counts[i]
			fmt.Fprintf(w, "%s_bucket%s %d\n", h.name, labelString(h.labels, k, formatFloat(b)), cum)
		}
		fmt.Fprintf(w, "%s_bucket%s %d\n", h.name, labelString(h.labels, k, "+Inf"), x.n)
		fmt.Fprintf(w, "%s_sum%s %s\n", h.name, labelString(h.labels, k, ""), formatFloat(x.sum))
		fmt.Fprintf(w, "%s_count%s %d\n", h.name, labelString(h.labels, k, ""), x.n)
		x.mu.Unlock()
	}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// labelString renders {a="x",b="y"} from label names and \xff-joined
// values, with le appended when not "".
func labelString(names []string, key, le string) string {
	var parts []string
	if len(names) > 0 {
		vals := strings.Split(key, "\xff")
		for i, n := range names {
			v := ""
			if i < len(vals) {
				v = vals[i]
			}
			parts = append(parts, n+"="+strconv.Quote(v))
		}
	}
	if le != "" {
		parts = append(parts, `le="`+le+`"`)
	}
	if len(parts) == 0 {
		return ""
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// metrics are the server's metrics.
type metrics struct {
	requests     *counterVec   // endpoint, code
	errors       *counterVec   // endpoint, error code
	rejected     *counterVec   // stage
	panics       *counterVec   // stage
	latency      *histogramVec // endpoint
	batchSize    *histogramVec // stage
	batchSeconds *histogramVec // stage
	inFlight     atomic.Int64
}

var latencyBounds = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

func newMetrics() *metrics {
	return &metrics{
		requests:     newCounterVec("re2g_http_requests_total", "HTTP requests by endpoint and status code.", "endpoint", "code"),
		errors:       newCounterVec("re2g_http_errors_total", "Error responses by endpoint and error code.", "endpoint", "error"),
		rejected:     newCounterVec("re2g_queue_rejected_total", "Requests refused with 429 because a stage's queue was full.", "stage"),
		panics:       newCounterVec("re2g_stage_panics_total", "Batches whose computation panicked (answered 500).", "stage"),
		latency:      newHistogramVec("re2g_http_request_duration_seconds", "Request latency by endpoint.", latencyBounds, "endpoint"),
		batchSize:    newHistogramVec("re2g_batch_size", "Items per computed batch, by stage.", []float64{1, 2, 4, 8, 16, 32, 64, 128, 256}, "stage"),
		batchSeconds: newHistogramVec("re2g_batch_duration_seconds", "Time to compute one batch, by stage.", latencyBounds, "stage"),
	}
}

// gauge is one gauge sample written at scrape time.
type gauge struct {
	name, help string
	labels     []string
	samples    func() []sample
}

type sample struct {
	key string // \xff-joined label values
	v   float64
}

// writeMetrics writes every metric, with the gauges given.
func (m *metrics) writeTo(w io.Writer, gauges []gauge) error {
	bw := bufio.NewWriter(w)
	for _, c := range []*counterVec{m.requests, m.errors, m.rejected, m.panics} {
		c.write(bw)
	}
	for _, h := range []*histogramVec{m.latency, m.batchSize, m.batchSeconds} {
		h.write(bw)
	}
	for _, g := range gauges {
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s gauge\n", g.name, g.help, g.name)
		for _, s := range g.samples() {
			fmt.Fprintf(bw, "%s%s %s\n", g.name, labelString(g.labels, s.key, ""), formatFloat(s.v))
		}
	}
	return bw.Flush()
}

// processGauges are the process-wide gauges: resident memory, goroutines,
// live libtorch tensors and requests in flight.
func (m *metrics) processGauges() []gauge {
	one := func(f func() float64) func() []sample { return func() []sample { return []sample{{v: f()}} } }
	return []gauge{
		{name: "process_resident_memory_bytes", help: "Resident memory size in bytes.", samples: one(func() float64 { return float64(residentBytes()) })},
		{name: "go_memstats_heap_inuse_bytes", help: "Bytes in in-use spans of the Go heap.", samples: one(func() float64 {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			return float64(ms.HeapInuse)
		})},
		{name: "go_goroutines", help: "Number of goroutines.", samples: one(func() float64 { return float64(runtime.NumGoroutine()) })},
		{name: "re2g_torch_live_tensors", help: "libtorch tensors alive (a steady rise is a leak).", samples: one(func() float64 { return float64(torch.LiveTensors()) })},
		{name: "re2g_http_in_flight_requests", help: "Requests being served.", samples: one(func() float64 { return float64(m.inFlight.Load()) })},
	}
}

// residentBytes reads the resident set size from /proc/self/statm (0 where
// there is no /proc).
func residentBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}
