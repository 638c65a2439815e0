package pipeline

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/re2g/re2g/indexdir"
	"github.com/re2g/re2g/neural"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// recordSpans installs an SDK tracer provider that records into memory as
// the global one until the test ends.
func recordSpans(t *testing.T) (*tracetest.InMemoryExporter, *sdktrace.TracerProvider) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() {
		otel.SetTracerProvider(prev)
		tp.Shutdown(context.Background())
	})
	return exp, tp
}

// spanTree indexes recorded spans by name (each name must occur once).
type spanTree map[string]tracetest.SpanStub

func byName(t *testing.T, spans tracetest.SpanStubs) spanTree {
	t.Helper()
	m := spanTree{}
	for _, s := range spans {
		if _, dup := m[s.Name]; dup {
			t.Errorf("span %s recorded more than once", s.Name)
		}
		m[s.Name] = s
	}
	return m
}

// get returns the span called name, failing the test without it.
func (m spanTree) get(t *testing.T, name string) tracetest.SpanStub {
	t.Helper()
	s, ok := m[name]
	if !ok {
		names := make([]string, 0, len(m))
		for n := range m {
			names = append(names, n)
		}
		t.Fatalf("no span %s; recorded %v", name, names)
	}
	return s
}

// wantChild checks that child's parent is parent, in parent's trace, and
// that it ran within parent's time.
func (m spanTree) wantChild(t *testing.T, parent, child string) {
	t.Helper()
	p, c := m.get(t, parent), m.get(t, child)
	if c.Parent.SpanID() != p.SpanContext.SpanID() || c.SpanContext.TraceID() != p.SpanContext.TraceID() {
		t.Errorf("span %s: parent %s in trace %s, want %s (%s) in %s", child, c.Parent.SpanID(), c.SpanContext.TraceID(),
			parent, p.SpanContext.SpanID(), p.SpanContext.TraceID())
	}
	if c.StartTime.Before(p.StartTime) || c.EndTime.After(p.EndTime) {
		t.Errorf("span %s [%v, %v] is not within %s [%v, %v]", child, c.StartTime, c.EndTime, parent, p.StartTime, p.EndTime)
	}
}

// wantBefore checks that a ended before b started.
func (m spanTree) wantBefore(t *testing.T, a, b string) {
	t.Helper()
	if sa, sb := m.get(t, a), m.get(t, b); sa.EndTime.After(sb.StartTime) {
		t.Errorf("span %s ended at %v, after %s started at %v", a, sa.EndTime, b, sb.StartTime)
	}
}

func attr(s tracetest.SpanStub, key string) (attribute.Value, bool) {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// wantInt checks an integer attribute of the span called name.
func (m spanTree) wantInt(t *testing.T, name, key string, want int) {
	t.Helper()
	v, ok := attr(m.get(t, name), key)
	if !ok || v.Type() != attribute.INT64 || v.AsInt64() != int64(want) {
		t.Errorf("span %s: %s = %v (present %v), want %d", name, key, v.Emit(), ok, want)
	}
}

func (m spanTree) intAttr(t *testing.T, name, key string) int {
	t.Helper()
	v, ok := attr(m.get(t, name), key)
	if !ok || v.Type() != attribute.INT64 {
		t.Fatalf("span %s: no integer %s", name, key)
	}
	return int(v.AsInt64())
}

// tracedPipeline is a pipeline with every model (tiny, random) over a real
// index of 40 SQuADShifts passages.
func tracedPipeline(t *testing.T) *Pipeline {
	t.Helper()
	qDir, ctxDir, rrDir, genDir := tinyModels(t)
	corpusPath, _ := tinyCorpus(t, 40)
	enc, err := neural.LoadEncoder(ctxDir, neural.Options{MaxLength: 64})
	if err != nil {
		t.Fatal(err)
	}
	idx := filepath.Join(t.TempDir(), "index")
	_, err = indexdir.Build(context.Background(), corpusPath, indexdir.Options{Out: idx, Encoder: enc, Progress: io.Discard})
	enc.Close()
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{Index: idx, QueryEncoder: qDir, Reranker: rrDir, Generator: genDir, DenseK: 7, SparseK: 6, RerankK: 3,
		NumBeams: 2, NumReturnSequences: 2, MaxNewTokens: 4, Models: neural.Options{MaxLength: 96}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// A real query records one span per stage, nested under the caller's span,
// in order, with the stage's sizes and settings.
func TestAnswerSpans(t *testing.T) {
	p := tracedPipeline(t)
	exp, tp := recordSpans(t)
	ctx, root := tp.Tracer("test").Start(context.Background(), "request")
	qs := []string{"who elects the delegates?", "where is the assembly?"}
	res, err := p.AnswerBatch(ctx, qs)
	root.End()
	if err != nil {
		t.Fatal(err)
	}
	m := byName(t, exp.GetSpans())
	if len(m) != 10 {
		t.Errorf("%d spans, want 10 (request and 9 stages)", len(m))
	}
	for _, c := range [][2]string{
		{"request", "re2g.answer"},
		{"re2g.answer", "re2g.retrieve"}, {"re2g.answer", "re2g.rerank"}, {"re2g.answer", "re2g.generate"}, {"re2g.answer", "re2g.weight"},
		{"re2g.retrieve", "re2g.retrieve.dense"}, {"re2g.retrieve", "re2g.retrieve.bm25"}, {"re2g.retrieve", "re2g.merge"},
		{"re2g.retrieve.dense", "re2g.encode"},
	} {
		m.wantChild(t, c[0], c[1])
	}
	for _, c := range [][2]string{
		{"re2g.retrieve.dense", "re2g.retrieve.bm25"}, {"re2g.retrieve.bm25", "re2g.merge"},
		{"re2g.retrieve", "re2g.rerank"}, {"re2g.rerank", "re2g.generate"}, {"re2g.generate", "re2g.weight"},
	} {
		m.wantBefore(t, c[0], c[1])
	}
	for _, name := range []string{"re2g.answer", "re2g.retrieve", "re2g.retrieve.dense", "re2g.encode", "re2g.retrieve.bm25",
		"re2g.merge", "re2g.rerank", "re2g.weight"} {
		m.wantInt(t, name, "re2g.queries", 2)
	}
	for _, s := range exp.GetSpans() {
		if s.Status.Code == codes.Error {
			t.Errorf("span %s has an error status: %s", s.Name, s.Status.Description)
		}
		if s.InstrumentationScope.Name != TracerName && s.Name != "request" {
			t.Errorf("span %s: scope %q", s.Name, s.InstrumentationScope.Name)
		}
	}
	m.wantInt(t, "re2g.answer", "re2g.rerank_k", 3)
	m.wantInt(t, "re2g.retrieve.dense", "re2g.k", 7)
	m.wantInt(t, "re2g.retrieve.dense", "re2g.hits", 2*7) // 40 passages: every query finds 7
	m.wantInt(t, "re2g.encode", "re2g.dim", p.Encoder().Dim())
	m.wantInt(t, "re2g.retrieve.bm25", "re2g.k", 6)
	if n := m.intAttr(t, "re2g.retrieve.bm25", "re2g.hits"); n == 0 || n > 2*6 {
		t.Errorf("re2g.retrieve.bm25: %d hits, want 1 to 12", n)
	}
	// merged: at least the dense hits, at most dense and BM25 hits together
	cands := m.intAttr(t, "re2g.merge", "re2g.candidates")
	if dense, sparse := 2*7, m.intAttr(t, "re2g.retrieve.bm25", "re2g.hits"); cands < dense || cands > dense+sparse {
		t.Errorf("re2g.merge: %d candidates from %d dense and %d BM25 hits", cands, dense, sparse)
	}
	m.wantInt(t, "re2g.retrieve", "re2g.candidates", cands)
	m.wantInt(t, "re2g.rerank", "re2g.candidates", cands)
	m.wantInt(t, "re2g.rerank", "re2g.pairs", cands)
	m.wantInt(t, "re2g.generate", "re2g.sources", 2*3)
	m.wantInt(t, "re2g.generate", "re2g.num_beams", 2)
	m.wantInt(t, "re2g.generate", "re2g.num_return_sequences", 2)
	m.wantInt(t, "re2g.generate", "re2g.max_new_tokens", 4)
	m.wantInt(t, "re2g.generate", "re2g.sequences", 2*3*2)
	m.wantInt(t, "re2g.weight", "re2g.passages", 2*3)
	m.wantInt(t, "re2g.weight", "re2g.answers", len(res[0].Answers)+len(res[1].Answers))
	if v, _ := attr(m.get(t, "re2g.rerank"), "re2g.reranker"); !v.AsBool() {
		t.Error("re2g.rerank: re2g.reranker is not true with a cross-encoder loaded")
	}
}

// A failing stage marks its span and those above it as errors, with the
// error's message; the stages after it do not run.
func TestAnswerSpansOnError(t *testing.T) {
	p := tracedPipeline(t)
	exp, _ := recordSpans(t)
	if _, err := p.AnswerBatch(context.Background(), []string{"delegates", "  "}); err == nil {
		t.Fatal("an empty query was answered")
	}
	m := byName(t, exp.GetSpans())
	for _, name := range []string{"re2g.answer", "re2g.retrieve"} {
		s := m.get(t, name)
		if s.Status.Code != codes.Error || !strings.Contains(s.Status.Description, "query 1 is empty") {
			t.Errorf("span %s: status %v %q, want an error naming query 1", name, s.Status.Code, s.Status.Description)
		}
		if len(s.Events) == 0 || s.Events[0].Name != "exception" {
			t.Errorf("span %s: the error was not recorded as an event: %v", name, s.Events)
		}
	}
	if len(m) != 2 {
		t.Errorf("spans %v after a bad query, want re2g.answer and re2g.retrieve only", exp.GetSpans())
	}
	if m.get(t, "re2g.answer").Parent.IsValid() {
		t.Error("re2g.answer has a parent without one in its context")
	}

	// the batch entry points the server calls are spans of their own
	exp.Reset()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.EncodeQueries(ctx, []string{"delegates"}); err == nil {
		t.Fatal("a cancelled context was encoded")
	}
	if _, err := p.RerankBatch(context.Background(), []string{"q"}, [][]Candidate{{{ID: "a", Text: "one"}, {ID: "b", Text: "two"}}}); err != nil {
		t.Fatal(err)
	}
	m = byName(t, exp.GetSpans())
	if s := m.get(t, "re2g.encode"); s.Status.Code != codes.Error || s.Parent.IsValid() {
		t.Errorf("re2g.encode in a cancelled context: status %v, parent %v", s.Status.Code, s.Parent.SpanID())
	}
	m.wantInt(t, "re2g.rerank", "re2g.pairs", 2)
	if m.get(t, "re2g.rerank").Parent.IsValid() {
		t.Error("re2g.rerank alone has a parent")
	}
}

// Without a tracer provider installed, spans cost next to nothing: this
// measures the pipeline's spans for one query on the global no-op provider.
func BenchmarkNoopSpans(b *testing.B) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		c, s := startSpan(ctx, "re2g.answer", attrQueries.Int(1), attrRerankK.Int(5))
		for range 8 {
			_, cs := startSpan(c, "re2g.stage", attrQueries.Int(1), attrK.Int(12))
			cs.SetAttributes(attrHits.Int(12))
			endSpan(cs, nil)
		}
		endSpan(s, nil)
	}
}
