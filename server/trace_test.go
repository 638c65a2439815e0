package server

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// recordSpans installs an SDK tracer provider that records into memory as
// the global one until the test ends.
func recordSpans(t *testing.T) *tracetest.InMemoryExporter {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() {
		otel.SetTracerProvider(prev)
		tp.Shutdown(context.Background())
	})
	return exp
}

// waitSpans waits until n spans satisfying keep are recorded (a server span
// ends just after its response is written) and returns every span.
func waitSpans(t *testing.T, exp *tracetest.InMemoryExporter, n int, keep func(tracetest.SpanStub) bool) tracetest.SpanStubs {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		all := exp.GetSpans()
		got := 0
		for _, s := range all {
			if keep(s) {
				got++
			}
		}
		if got >= n {
			return all
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d spans after 10s; recorded %v", got, n, names(all))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func names(spans tracetest.SpanStubs) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.Name
	}
	return out
}

func named(name string) func(tracetest.SpanStub) bool {
	return func(s tracetest.SpanStub) bool { return s.Name == name }
}

func spanAttr(s tracetest.SpanStub, key string) attribute.Value {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// inTrace are the spans of trace id.
func inTrace(spans tracetest.SpanStubs, id trace.TraceID) tracetest.SpanStubs {
	var out tracetest.SpanStubs
	for _, s := range spans {
		if s.SpanContext.TraceID() == id {
			out = append(out, s)
		}
	}
	return out
}

// only returns the one span called name among spans.
func only(t *testing.T, spans tracetest.SpanStubs, name string) tracetest.SpanStub {
	t.Helper()
	var out []tracetest.SpanStub
	for _, s := range spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	if len(out) != 1 {
		t.Fatalf("%d spans %s, want 1; spans %v", len(out), name, names(spans))
	}
	return out[0]
}

func wantParent(t *testing.T, child, parent tracetest.SpanStub) {
	t.Helper()
	if child.Parent.SpanID() != parent.SpanContext.SpanID() || child.SpanContext.TraceID() != parent.SpanContext.TraceID() {
		t.Errorf("span %s: parent %s, want %s (%s)", child.Name, child.Parent.SpanID(), parent.Name, parent.SpanContext.SpanID())
	}
}

func hasLink(s tracetest.SpanStub, sc trace.SpanContext) bool {
	for _, l := range s.Links {
		if l.SpanContext.TraceID() == sc.TraceID() && l.SpanContext.SpanID() == sc.SpanID() {
			return true
		}
	}
	return false
}

// traceparent makes a W3C traceparent header for a sampled span of the
// caller's, and returns it with its ids.
func traceparent(t *testing.T, i int) (string, trace.TraceID, trace.SpanID) {
	t.Helper()
	tid, err := trace.TraceIDFromHex(fmt.Sprintf("4bf92f3577b34da6a3ce929d0e0e%04x", i))
	if err != nil {
		t.Fatal(err)
	}
	sid, err := trace.SpanIDFromHex(fmt.Sprintf("00f067aa0ba9%04x", i))
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("00-%s-%s-01", tid, sid), tid, sid
}

// syncBuffer is a log destination the server's goroutines may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A request with W3C trace headers is served in the caller's trace: the
// server span is the child of the caller's span, the batch the server
// span's, and every pipeline stage (real models, real index) below it.
func TestTraceparentJoinsTheCallersTrace(t *testing.T) {
	testPipeline(t)
	exp := recordSpans(t)
	var logs syncBuffer
	_, url := testServer(t, Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})

	for i, c := range []struct {
		path, body string
		stages     []string // the pipeline spans below the batch
	}{
		{"/v1/answer", `{"query": "who elects the delegates?"}`, []string{"re2g.answer", "re2g.retrieve", "re2g.retrieve.dense",
			"re2g.encode", "re2g.retrieve.bm25", "re2g.merge", "re2g.rerank", "re2g.generate", "re2g.weight"}},
		{"/v1/retrieve", `{"query": "delegates"}`, []string{"re2g.retrieve", "re2g.retrieve.dense", "re2g.encode", "re2g.retrieve.bm25", "re2g.merge"}},
		{"/v1/rerank", `{"query": "q", "passages": [{"text": "one"}, {"text": "two"}]}`, []string{"re2g.rerank"}},
		{"/v1/encode", `{"queries": ["one", "two"]}`, []string{"re2g.encode"}},
	} {
		tp, tid, sid := traceparent(t, i)
		resp, body := post(t, url+c.path, c.body, "traceparent", tp, "tracestate", "caller=abc")
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", c.path, resp.StatusCode, body)
		}
		name := "POST " + c.path
		spans := inTrace(waitSpans(t, exp, 1, func(s tracetest.SpanStub) bool { return s.Name == name && s.SpanContext.TraceID() == tid }), tid)
		srv := only(t, spans, name)
		if srv.Parent.SpanID() != sid || !srv.Parent.IsRemote() || srv.SpanKind != trace.SpanKindServer {
			t.Errorf("%s: parent %s (remote %v), kind %v; want the caller's %s", name, srv.Parent.SpanID(), srv.Parent.IsRemote(), srv.SpanKind, sid)
		}
		if ts := srv.SpanContext.TraceState().Get("caller"); ts != "abc" {
			t.Errorf("%s: tracestate caller=%q, want abc", name, ts)
		}
		if code := spanAttr(srv, "http.response.status_code"); code.AsInt64() != 200 {
			t.Errorf("%s: http.response.status_code %v", name, code.Emit())
		}
		if route, id := spanAttr(srv, "http.route").AsString(), spanAttr(srv, "re2g.request_id").AsString(); route != c.path || id != resp.Header.Get("X-Request-Id") {
			t.Errorf("%s: http.route %q, re2g.request_id %q (X-Request-Id %q)", name, route, id, resp.Header.Get("X-Request-Id"))
		}
		batch := only(t, spans, "re2g.batch")
		wantParent(t, batch, srv)
		stage := strings.TrimPrefix(c.path, "/v1/")
		if spanAttr(batch, "re2g.stage").AsString() != stage || spanAttr(batch, "re2g.batch.requests").AsInt64() != 1 {
			t.Errorf("%s: re2g.batch attributes %v", name, batch.Attributes)
		}
		top := only(t, spans, c.stages[0])
		wantParent(t, top, batch)
		for _, st := range c.stages {
			only(t, spans, st)
		}
		if want := 2 + len(c.stages); len(spans) != want {
			t.Errorf("%s: %d spans in the caller's trace, want %d: %v", name, len(spans), want, names(spans))
		}
		if !strings.Contains(logs.String(), "trace_id="+tid.String()) {
			t.Errorf("%s: the access log does not name the trace:\n%s", name, logs.String())
		}
	}

	// without trace headers a request starts a trace of its own; the probes
	// are not traced
	exp.Reset()
	for _, p := range []string{"/healthz", "/readyz"} {
		if resp, body := do(t, mustReq(t, "GET", url+p, "")); resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", p, resp.StatusCode, body)
		}
	}
	if resp, body := post(t, url+"/v1/encode", `{"queries": ["one"]}`); resp.StatusCode != 200 {
		t.Fatalf("encode: %d %s", resp.StatusCode, body)
	}
	spans := waitSpans(t, exp, 1, named("POST /v1/encode"))
	if srv := only(t, spans, "POST /v1/encode"); srv.Parent.IsValid() {
		t.Errorf("a request without trace headers has parent %v", srv.Parent.SpanID())
	}
	for _, s := range spans {
		if strings.HasPrefix(s.Name, "GET") {
			t.Errorf("the probe was traced: %s", s.Name)
		}
	}
}

// Requests answered in one batch each keep their own trace; the batch is
// a trace of its own, linked both ways with each request. A failed batch
// reruns each request alone, each run a child of its request.
func TestBatchSpansLinkTheirRequests(t *testing.T) {
	exp := recordSpans(t)
	svc := newWordService()
	_, url := wordServer(t, Config{MaxBatch: 16, MaxWait: 300 * time.Millisecond}, svc)
	qs := []string{"who elects the delegates?", "what is tea?", "where do rivers flow?"}
	tids := map[trace.TraceID]bool{}
	var wg sync.WaitGroup
	for i, q := range qs {
		tp, tid, _ := traceparent(t, 10+i)
		tids[tid] = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, body := post(t, url+"/v1/answer", fmt.Sprintf(`{"query": %q}`, q), "traceparent", tp); resp.StatusCode != 200 {
				t.Errorf("%q: %d %s", q, resp.StatusCode, body)
			}
		}()
	}
	wg.Wait()
	spans := waitSpans(t, exp, len(qs), named("POST /v1/answer"))
	if sizes := svc.batchSizes("answer"); len(sizes) != 1 {
		t.Fatalf("3 concurrent requests ran in batches of %v, want one", sizes)
	}
	batch := only(t, spans, "re2g.batch")
	if batch.Parent.IsValid() || tids[batch.SpanContext.TraceID()] {
		t.Errorf("the batch of 3 requests is in trace %s under %s, want a trace of its own", batch.SpanContext.TraceID(), batch.Parent.SpanID())
	}
	if n := spanAttr(batch, "re2g.batch.requests").AsInt64(); n != 3 || len(batch.Links) != 3 {
		t.Errorf("batch: %d requests, %d links, want 3", n, len(batch.Links))
	}
	for _, s := range spans {
		if s.Name != "POST /v1/answer" {
			continue
		}
		if !tids[s.SpanContext.TraceID()] {
			t.Errorf("a request span left its caller's trace: %s", s.SpanContext.TraceID())
		}
		if !hasLink(batch, s.SpanContext) || !hasLink(s, batch.SpanContext) {
			t.Errorf("request %s and the batch are not linked both ways", s.SpanContext.SpanID())
		}
	}

	// one request of a batch fails: the batch's span says so, and each
	// request reruns alone under its own span
	exp.Reset()
	tids = map[trace.TraceID]bool{}
	status := make([]int, 2)
	for i, q := range []string{"what is tea?", "please fail"} {
		tp, tid, _ := traceparent(t, 20+i)
		tids[tid] = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, _ := post(t, url+"/v1/answer", fmt.Sprintf(`{"query": %q}`, q), "traceparent", tp)
			status[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	if status[0] != 200 || status[1] != 500 {
		t.Fatalf("status %v, want 200 and 500", status)
	}
	spans = waitSpans(t, exp, 2, named("POST /v1/answer"))
	var failed, retries int
	for _, s := range spans {
		if s.Name != "re2g.batch" {
			continue
		}
		switch {
		case spanAttr(s, "re2g.batch.retry").AsBool():
			retries++
			if !tids[s.SpanContext.TraceID()] || !s.Parent.IsValid() {
				t.Errorf("a rerun is not in its request's trace")
			}
			for _, r := range inTrace(spans, s.SpanContext.TraceID()) {
				if r.Name == "POST /v1/answer" {
					wantParent(t, s, r)
				}
			}
		case s.Status.Code == codes.Error:
			failed++
		}
	}
	if failed != 1 || retries != 2 {
		t.Errorf("%d failed batches and %d reruns, want 1 and 2: %v", failed, retries, names(spans))
	}
}

// With batching off each request's batch span is its child; a propagator
// that reads nothing leaves each request in a trace of its own.
func TestTraceNoBatchingAndPropagator(t *testing.T) {
	exp := recordSpans(t)
	_, url := wordServer(t, Config{NoBatching: true}, nil)
	tp, tid, sid := traceparent(t, 30)
	if resp, body := post(t, url+"/v1/retrieve", `{"query": "tea"}`, "traceparent", tp); resp.StatusCode != 200 {
		t.Fatalf("retrieve: %d %s", resp.StatusCode, body)
	}
	spans := waitSpans(t, exp, 1, named("POST /v1/retrieve"))
	srv := only(t, spans, "POST /v1/retrieve")
	if srv.SpanContext.TraceID() != tid || srv.Parent.SpanID() != sid {
		t.Errorf("server span in %s under %s, want %s under %s", srv.SpanContext.TraceID(), srv.Parent.SpanID(), tid, sid)
	}
	wantParent(t, only(t, spans, "re2g.batch"), srv)

	exp.Reset()
	_, url = wordServer(t, Config{Propagator: propagation.NewCompositeTextMapPropagator()}, nil)
	if resp, body := post(t, url+"/v1/retrieve", `{"query": "tea"}`, "traceparent", tp); resp.StatusCode != 200 {
		t.Fatalf("retrieve: %d %s", resp.StatusCode, body)
	}
	spans = waitSpans(t, exp, 1, named("POST /v1/retrieve"))
	if srv := only(t, spans, "POST /v1/retrieve"); srv.SpanContext.TraceID() == tid || srv.Parent.IsValid() {
		t.Errorf("a propagator that reads nothing joined the caller's trace %s", tid)
	}
}
