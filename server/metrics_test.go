package server

import (
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// families are parsed metric families by name.
type families map[string]*dto.MetricFamily

// scrape fetches /metrics and parses it as the Prometheus text format.
func scrape(t *testing.T, url string, hdr ...string) families {
	t.Helper()
	req := mustReq(t, "GET", url+"/metrics", "")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: status %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("/metrics Content-Type %q", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return mf
}

// gather reads the server's registry directly (after shutdown, say).
func gather(t *testing.T, s *Server) families {
	t.Helper()
	mfs, err := s.m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := families{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// value is the value of the sample of family name with exactly the labels
// lv (name, value, ...): a counter's or gauge's value, a histogram's count.
func (f families) value(name string, lv ...string) (float64, bool) {
	mf := f[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		if len(m.GetLabel()) != len(lv)/2 {
			continue
		}
		for _, l := range m.GetLabel() {
			found := false
			for i := 0; i+1 < len(lv); i += 2 {
				if lv[i] == l.GetName() && lv[i+1] == l.GetValue() {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

// /metrics is Prometheus' text format as client_golang writes it: the
// server's metrics with their names, types and labels, counted right, and
// the standard Go runtime and process collectors.
func TestMetrics(t *testing.T) {
	svc := newWordService()
	_, url := wordServer(t, Config{MaxBatch: 4}, svc)
	for range 3 {
		if resp, body := post(t, url+"/v1/answer", `{"query": "who elects the delegates?"}`); resp.StatusCode != 200 {
			t.Fatalf("answer: %d %s", resp.StatusCode, body)
		}
	}
	resp, body := post(t, url+"/v1/answer", `{"query": 1}`)
	wantError(t, "wrong type", resp, body, 400, "wrong_type")
	resp, body = post(t, url+"/v1/encode", `{"queries": ["one", "two"]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("encode: %d %s", resp.StatusCode, body)
	}
	mf := scrape(t, url)

	types := map[string]dto.MetricType{
		"re2g_http_requests_total": dto.MetricType_COUNTER, "re2g_http_errors_total": dto.MetricType_COUNTER,
		"re2g_http_request_duration_seconds": dto.MetricType_HISTOGRAM, "re2g_batch_size": dto.MetricType_HISTOGRAM,
		"re2g_batch_duration_seconds": dto.MetricType_HISTOGRAM, "re2g_queue_depth": dto.MetricType_GAUGE,
		"re2g_batch_running_items": dto.MetricType_GAUGE, "re2g_ready": dto.MetricType_GAUGE,
		"re2g_torch_live_tensors": dto.MetricType_GAUGE, "re2g_http_in_flight_requests": dto.MetricType_GAUGE,
		// the standard collectors
		"process_resident_memory_bytes": dto.MetricType_GAUGE, "process_cpu_seconds_total": dto.MetricType_COUNTER,
		"process_open_fds": dto.MetricType_GAUGE, "go_goroutines": dto.MetricType_GAUGE,
		"go_memstats_heap_inuse_bytes": dto.MetricType_GAUGE, "go_gc_duration_seconds": dto.MetricType_SUMMARY,
		"go_info": dto.MetricType_GAUGE,
	}
	for name, typ := range types {
		if mf[name] == nil {
			t.Errorf("no %s", name)
		} else if mf[name].GetType() != typ {
			t.Errorf("%s is a %v, want %v", name, mf[name].GetType(), typ)
		}
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"re2g_http_requests_total", []string{"endpoint", "answer", "code", "200"}, 3},
		{"re2g_http_requests_total", []string{"endpoint", "answer", "code", "400"}, 1},
		{"re2g_http_requests_total", []string{"endpoint", "encode", "code", "200"}, 1},
		{"re2g_http_errors_total", []string{"endpoint", "answer", "error", "wrong_type"}, 1},
		{"re2g_http_request_duration_seconds", []string{"endpoint", "answer"}, 4},
		{"re2g_batch_size", []string{"stage", "answer"}, float64(len(svc.batchSizes("answer")))},
		{"re2g_batch_size", []string{"stage", "encode"}, 1},
		{"re2g_batch_duration_seconds", []string{"stage", "answer"}, 3},
		{"re2g_queue_depth", []string{"stage", "answer"}, 0},
		{"re2g_queue_depth", []string{"stage", "rerank"}, 0},
		{"re2g_batch_running_items", []string{"stage", "encode"}, 0},
		{"re2g_ready", nil, 1},
		{"re2g_http_in_flight_requests", nil, 1}, // the scrape itself
	} {
		if v, ok := mf.value(c.name, c.labels...); !ok || v != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, v, ok, c.want)
		}
	}
	// encode's histogram: 2 items in one batch, in the bucket le=2 and up
	h := mf["re2g_batch_size"]
	for _, m := range h.GetMetric() {
		if m.GetLabel()[0].GetValue() != "encode" {
			continue
		}
		if m.Histogram.GetSampleSum() != 2 {
			t.Errorf("encode batch size sum %v, want 2", m.Histogram.GetSampleSum())
		}
		for _, b := range m.Histogram.GetBucket() {
			if want := map[bool]uint64{true: 1, false: 0}[b.GetUpperBound() >= 2]; b.GetCumulativeCount() != want {
				t.Errorf("encode batch size bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
			}
		}
	}
	for _, name := range []string{"process_resident_memory_bytes", "go_goroutines", "go_memstats_heap_inuse_bytes"} {
		if v, _ := mf.value(name); v <= 0 {
			t.Errorf("%s = %v", name, v)
		}
	}
}

// Before Ready, /metrics answers (re2g_ready 0) with no stage gauges.
func TestMetricsBeforeReady(t *testing.T) {
	s, err := New(Config{Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	mf := gather(t, s)
	if v, ok := mf.value("re2g_ready"); !ok || v != 0 {
		t.Errorf("re2g_ready = %v (present %v) before Ready", v, ok)
	}
	if mf["re2g_queue_depth"] != nil {
		t.Errorf("queue depths before there are queues: %v", mf["re2g_queue_depth"])
	}
}
