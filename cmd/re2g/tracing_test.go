package main

import (
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an OTLP trace receiver: POST /v1/traces (protobuf or
// JSON), or the gRPC TraceService.
type otlpReceiver struct {
	coltracepb.UnimplementedTraceServiceServer
	mu       sync.Mutex
	requests int
	types    []string // Content-Types of the HTTP requests
	bodies   []string // the JSON bodies
	spans    []*tracepb.ResourceSpans
}

func (rc *otlpReceiver) add(ct string, req *coltracepb.ExportTraceServiceRequest, body []byte) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.requests++
	if ct != "" {
		rc.types = append(rc.types, ct)
	}
	if req != nil {
		rc.spans = append(rc.spans, req.ResourceSpans...)
	} else {
		rc.bodies = append(rc.bodies, string(body))
	}
}

func (rc *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != "POST" || r.URL.Path != "/v1/traces" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ct := r.Header.Get("Content-Type")
	switch ct {
	case "application/x-protobuf":
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.add(ct, &req, nil)
	case "application/json":
		rc.add(ct, nil, body)
	default:
		http.Error(w, "unsupported content type "+ct, http.StatusUnsupportedMediaType)
		return
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(http.StatusOK)
}

// Export is the gRPC TraceService's.
func (rc *otlpReceiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	rc.add("", req, nil)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// span is one received span with its resource's service name and scope.
type span struct {
	*tracepb.Span
	service, scope string
}

func (rc *otlpReceiver) received() (int, []span) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []span
	for _, rs := range rc.spans {
		svc := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.Key == "service.name" {
				svc = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				out = append(out, span{Span: s, service: svc, scope: ss.GetScope().GetName()})
			}
		}
	}
	return rc.requests, out
}

func httpReceiver(t *testing.T) (*otlpReceiver, string) {
	t.Helper()
	rc := &otlpReceiver{}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	return rc, srv.URL
}

func grpcReceiver(t *testing.T) (*otlpReceiver, string) {
	t.Helper()
	rc := &otlpReceiver{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(gs, rc)
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	return rc, "http://" + ln.Addr().String()
}

func intAttr(s span, key string) (int64, bool) {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return kv.GetValue().GetIntValue(), true
		}
	}
	return 0, false
}

// bm25Index builds a BM25-only index of writeCorpus's passages.
func bm25Index(t *testing.T) string {
	t.Helper()
	idx := filepath.Join(t.TempDir(), "idx")
	if err := newApp().Run([]string{"re2g", "index", "--corpus", writeCorpus(t), "--out", idx}); err != nil {
		t.Fatal(err)
	}
	return idx
}

// noTraceEnv unsets the OTLP variables for the test (and the processes it
// starts).
func noTraceEnv(t *testing.T) {
	for _, v := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
		"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_SDK_DISABLED", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_BSP_SCHEDULE_DELAY"} {
		t.Setenv(v, "")
	}
}

// `re2g serve` with OTEL_EXPORTER_OTLP_ENDPOINT exports a request's spans,
// in the caller's trace, to a real OTLP/HTTP receiver, flushing them on
// SIGTERM: the schedule delay is 10 minutes, so only the flush can send them.
func TestServeExportsSpansOverOTLP(t *testing.T) {
	noTraceEnv(t)
	idx := bm25Index(t)
	rc, url := httpReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "600000")
	s := start2(t, "serve", "--index", idx, "--addr", "127.0.0.1:0")
	m := regexp.MustCompile(`addr=(\S+)`).FindStringSubmatch(s.waitFor(t, "msg=ready", 60*time.Second))
	if m == nil {
		t.Fatalf("no address in the output:\n%s", s.output())
	}
	const tid, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req, _ := http.NewRequest("POST", "http://"+m[1]+"/v1/answer", strings.NewReader(`{"query": "who elects the delegates?"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+tid+"-"+parent+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("answer: %d", resp.StatusCode)
	}
	if n, _ := rc.received(); n != 0 {
		t.Fatalf("%d exports before the server stopped, with a 10 minute schedule delay", n)
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	if code := s.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("serve: exit %d:\n%s", code, s.output())
	}
	_, spans := rc.received()
	got := map[string]span{}
	for _, sp := range spans {
		if sp.service != "re2g" {
			t.Errorf("span %s: service.name %q, want re2g", sp.Name, sp.service)
		}
		if hex.EncodeToString(sp.TraceId) == tid {
			got[sp.Name] = sp
		}
	}
	// a BM25-only index, no models: no dense retrieval, no generation
	for _, name := range []string{"POST /v1/answer", "re2g.batch", "re2g.answer", "re2g.retrieve", "re2g.retrieve.bm25", "re2g.merge", "re2g.rerank", "re2g.weight"} {
		if _, ok := got[name]; !ok {
			t.Fatalf("no span %s in the caller's trace; received %d spans", name, len(spans))
		}
	}
	if srv := got["POST /v1/answer"]; hex.EncodeToString(srv.ParentSpanId) != parent {
		t.Errorf("the server span's parent is %x, want the caller's %s", srv.ParentSpanId, parent)
	}
	if b, a := got["re2g.batch"], got["re2g.answer"]; string(a.ParentSpanId) != string(b.SpanId) || string(b.ParentSpanId) != string(got["POST /v1/answer"].SpanId) {
		t.Error("re2g.answer is not under re2g.batch under the server span")
	}
	if k, ok := intAttr(got["re2g.retrieve.bm25"], "re2g.k"); !ok || k != 12 {
		t.Errorf("re2g.retrieve.bm25: re2g.k = %d (present %v), want 12", k, ok)
	}
	if got["re2g.answer"].scope != "github.com/re2g/re2g/pipeline" || got["re2g.batch"].scope != "github.com/re2g/re2g/server" {
		t.Errorf("scopes %q and %q", got["re2g.answer"].scope, got["re2g.batch"].scope)
	}
	open := false
	for _, sp := range spans {
		open = open || sp.Name == "re2g.open"
	}
	if !open {
		t.Error("loading the pipeline was not traced (re2g.open)")
	}
}

// `re2g ask` honours OTEL_EXPORTER_OTLP_PROTOCOL (grpc, http/json) and
// OTEL_SERVICE_NAME, and exports before it exits.
func TestAskExportsOverEachProtocol(t *testing.T) {
	noTraceEnv(t)
	idx := bm25Index(t)
	t.Setenv("OTEL_SERVICE_NAME", "re2g-ask-test")
	for _, proto := range []string{"grpc", "http/json"} {
		rc, url := httpReceiver(t)
		if proto == "grpc" {
			rc, url = grpcReceiver(t)
		}
		t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", proto)
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
		a := start2(t, "ask", "--index", idx, "--json", "who elects the delegates?")
		if code := a.wait(t, 60*time.Second); code != 0 {
			t.Fatalf("%s: ask: exit %d:\n%s", proto, code, a.output())
		}
		n, spans := rc.received()
		if n == 0 {
			t.Fatalf("%s: nothing was exported", proto)
		}
		if proto == "grpc" {
			names := map[string]string{}
			for _, sp := range spans {
				names[sp.Name] = sp.service
			}
			for _, name := range []string{"re2g.open", "re2g.answer", "re2g.retrieve.bm25", "re2g.weight"} {
				if svc, ok := names[name]; !ok || svc != "re2g-ask-test" {
					t.Errorf("grpc: span %s: present %v, service %q", name, ok, svc)
				}
			}
			continue
		}
		rc.mu.Lock()
		types, bodies := rc.types, strings.Join(rc.bodies, "\n")
		rc.mu.Unlock()
		if types[0] != "application/json" || !strings.Contains(bodies, `"re2g.answer"`) || !strings.Contains(bodies, `"re2g-ask-test"`) {
			t.Errorf("http/json: %v %.500s", types, bodies)
		}
	}
}

// Without an endpoint nothing is installed: the global tracer provider is
// the one there was, and a receiver at OTLP's default address hears nothing.
func TestNoTracingWithoutEndpoint(t *testing.T) {
	noTraceEnv(t)
	idx := bm25Index(t)
	before := otel.GetTracerProvider()
	if err := runTraced(context.Background(), []string{"re2g", "ask", "--index", idx, "delegates"}); err != nil {
		t.Fatal(err)
	}
	if after := otel.GetTracerProvider(); after != before {
		t.Fatalf("a tracer provider (%T) was installed without OTEL_EXPORTER_OTLP_ENDPOINT", after)
	}
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("OTEL_SDK_DISABLED", "true")
	if err := runTraced(context.Background(), []string{"re2g", "ask", "--index", idx, "delegates"}); err != nil {
		t.Fatal(err)
	}
	if after := otel.GetTracerProvider(); after != before {
		t.Fatalf("a tracer provider (%T) was installed with OTEL_SDK_DISABLED=true", after)
	}

	// an SDK provider installed by mistake would export to localhost:4318
	noTraceEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:4318")
	if err != nil {
		t.Skipf("OTLP's default port is taken, so the process check cannot run: %v", err)
	}
	rc := &otlpReceiver{}
	srv := &http.Server{Handler: rc}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	a := start2(t, "ask", "--index", idx, "delegates")
	if code := a.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("ask: exit %d:\n%s", code, a.output())
	}
	if n, _ := rc.received(); n != 0 {
		t.Fatalf("%d exports to localhost:4318 without OTEL_EXPORTER_OTLP_ENDPOINT", n)
	}
}

// Bad settings are errors naming the variable, before any command runs.
func TestTracingSettingsChecked(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4318"}, `OTEL_EXPORTER_OTLP_ENDPOINT="localhost:4318": want an http or https URL`},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "ftp://collector/v1/traces"}, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://%zz"}, "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "thrift"}, `OTEL_EXPORTER_OTLP_PROTOCOL="thrift"`},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "HTTP"}, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_RESOURCE_ATTRIBUTES": "team"}, "OTEL_RESOURCE_ATTRIBUTES"},
	} {
		t.Run(c.want, func(t *testing.T) {
			noTraceEnv(t)
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			before := otel.GetTracerProvider()
			err := runTraced(context.Background(), []string{"re2g", "--help"})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%v: %v, want an error with %q", c.env, err, c.want)
			}
			if otel.GetTracerProvider() != before {
				t.Fatal("a provider was installed despite the error")
			}
		})
	}
	// a good setting installs the SDK's provider (restored after the test)
	noTraceEnv(t)
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://collector.invalid/v1/traces")
	before := otel.GetTracerProvider()
	t.Cleanup(func() { otel.SetTracerProvider(before) })
	shutdown, err := startTracing(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := otel.GetTracerProvider().(*sdktrace.TracerProvider); !ok {
		t.Fatalf("provider %T, want the SDK's", otel.GetTracerProvider())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		t.Fatalf("shutdown with nothing to send: %v", err)
	}
}
