package server

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/re2g/re2g/torch"
)

// metrics are the server's Prometheus metrics, in a registry of its own
// (so that several servers can live in one process) together with the
// standard Go runtime and process collectors.
type metrics struct {
	reg          *prometheus.Registry
	requests     *prometheus.CounterVec   // endpoint, code
	errors       *prometheus.CounterVec   // endpoint, error
	rejected     *prometheus.CounterVec   // stage
	panics       *prometheus.CounterVec   // stage
	latency      *prometheus.HistogramVec // endpoint
	batchSize    *prometheus.HistogramVec // stage
	batchSeconds *prometheus.HistogramVec // stage
	reloads      *prometheus.CounterVec   // result
	inFlight     atomic.Int64
}

var latencyBounds = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "re2g_http_requests_total",
			Help: "HTTP requests by endpoint and status code."}, []string{"endpoint", "code"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "re2g_http_errors_total",
			Help: "Error responses by endpoint and error code."}, []string{"endpoint", "error"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "re2g_queue_rejected_total",
			Help: "Requests refused with 429 because a stage's queue was full."}, []string{"stage"}),
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "re2g_stage_panics_total",
			Help: "Batches whose computation panicked (answered 500)."}, []string{"stage"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "re2g_http_request_duration_seconds",
			Help: "Request latency by endpoint.", Buckets: latencyBounds}, []string{"endpoint"}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "re2g_batch_size",
			Help: "Items per computed batch, by stage.", Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256}}, []string{"stage"}),
		batchSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "re2g_batch_duration_seconds",
			Help: "Time to compute one batch, by stage.", Buckets: latencyBounds}, []string{"stage"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "re2g_index_reloads_total",
			Help: "Index reloads (SIGHUP, a changed manifest) by result: ok (a new generation swapped in), unchanged, error (the index already loaded kept)."},
			[]string{"result"}),
	}
	for _, r := range []string{"ok", "unchanged", "error"} {
		m.reloads.WithLabelValues(r)
	}
	m.reg.MustRegister(m.requests, m.errors, m.rejected, m.panics, m.latency, m.batchSize, m.batchSeconds, m.reloads,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "re2g_torch_live_tensors",
			Help: "libtorch tensors alive (a steady rise is a leak)."}, func() float64 { return float64(torch.LiveTensors()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "re2g_http_in_flight_requests",
			Help: "Requests being served."}, func() float64 { return float64(m.inFlight.Load()) }),
	)
	return m
}

// stage is what the metrics read from a batcher when scraped.
type stage interface {
	Name() string
	Depth() int64
	Running() int64
}

// serverCollector reports, when scraped, the server's readiness and each
// stage's queue depth and running items.
type serverCollector struct {
	s                                         *Server
	ready, depth, running, generation, passes *prometheus.Desc
}

func newServerCollector(s *Server) *serverCollector {
	return &serverCollector{s: s,
		ready:      prometheus.NewDesc("re2g_ready", "1 when the index and models are loaded and the server is not draining.", nil, nil),
		generation: prometheus.NewDesc("re2g_index_generation", "Generation of the index being served (updates committed since it was built).", nil, nil),
		passes:     prometheus.NewDesc("re2g_index_passages", "Passages of the index being served (deleted ones excepted).", nil, nil),
		depth:      prometheus.NewDesc("re2g_queue_depth", "Items waiting for a batch, by stage.", []string{"stage"}, nil),
		running:    prometheus.NewDesc("re2g_batch_running_items", "Items being computed, by stage.", []string{"stage"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *serverCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.ready
	ch <- c.depth
	ch <- c.running
	ch <- c.generation
	ch <- c.passes
}

// Collect implements prometheus.Collector.
func (c *serverCollector) Collect(ch chan<- prometheus.Metric) {
	b := c.s.back.Load()
	ready := 0.0
	if b != nil && !c.s.draining.Load() {
		ready = 1
	}
	ch <- prometheus.MustNewConstMetric(c.ready, prometheus.GaugeValue, ready)
	if b == nil {
		return
	}
	caps := b.svc.Capabilities()
	ch <- prometheus.MustNewConstMetric(c.generation, prometheus.GaugeValue, float64(caps.Generation))
	ch <- prometheus.MustNewConstMetric(c.passes, prometheus.GaugeValue, float64(caps.Passages))
	for _, st := range b.stages() {
		ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(st.Depth()), st.Name())
		ch <- prometheus.MustNewConstMetric(c.running, prometheus.GaugeValue, float64(st.Running()), st.Name())
	}
}
