package server

import (
	"context"
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// TracerName is the instrumentation scope of the server's batch spans.
//
// The server traces with the global tracer provider (otel.GetTracerProvider;
// a no-op until the program installs one). Each request is a server span
// (otelhttp's, named by its route: "POST /v1/answer"), a child of the
// caller's span when the request carries W3C Trace Context headers
// (traceparent, tracestate; Config.Propagator to read others). Each batch a
// batcher runs is a re2g.batch span over the pipeline's spans: the child of
// its request when it holds one request (always with NoBatching), otherwise
// the root of a trace of its own, linked to every request's span, each of
// which links back to it.
const TracerName = "github.com/re2g/re2g/server"

// Batch span attributes.
const (
	attrStage         = attribute.Key("re2g.stage")          // the batcher: answer, retrieve, rerank or encode
	attrBatchRequests = attribute.Key("re2g.batch.requests") // requests in the batch
	attrBatchItems    = attribute.Key("re2g.batch.items")    // queries in the batch, all requests together
	attrBatchRetry    = attribute.Key("re2g.batch.retry")    // a request run alone after its batch failed
)

// untraced are the probes and the scrape, which would otherwise add a
// span every few seconds.
var untraced = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// traced wraps h in otelhttp's server spans, reading the caller's trace
// context with prop.
func traced(h http.Handler, prop propagation.TextMapPropagator) http.Handler {
	return otelhttp.NewHandler(h, "re2g",
		otelhttp.WithPropagators(prop),
		otelhttp.WithFilter(func(r *http.Request) bool { return !untraced[r.URL.Path] }))
}

// startBatch starts the span of a batch of stage run for the requests whose
// contexts are reqs, in ctx (the batch's own context: its cancellation is
// not theirs). With one request the span is that request's child; with
// more it starts a trace of its own, linked to each request's span, and
// each request's span is linked to it.
func startBatch(ctx context.Context, stage string, reqs []context.Context, items int, retry bool) (context.Context, trace.Span) {
	attrs := []attribute.KeyValue{attrStage.String(stage), attrBatchRequests.Int(len(reqs)), attrBatchItems.Int(items)}
	if retry {
		attrs = append(attrs, attrBatchRetry.Bool(true))
	}
	opts := []trace.SpanStartOption{trace.WithAttributes(attrs...)}
	if len(reqs) == 1 {
		ctx = trace.ContextWithSpan(ctx, trace.SpanFromContext(reqs[0]))
	} else {
		links := make([]trace.Link, 0, len(reqs))
		for _, rc := range reqs {
			if sc := trace.SpanContextFromContext(rc); sc.IsValid() {
				links = append(links, trace.Link{SpanContext: sc})
			}
		}
		opts = append(opts, trace.WithNewRoot(), trace.WithLinks(links...))
	}
	ctx, span := otel.Tracer(TracerName).Start(ctx, "re2g.batch", opts...)
	if len(reqs) > 1 && span.IsRecording() {
		link := trace.Link{SpanContext: span.SpanContext(), Attributes: []attribute.KeyValue{attrStage.String(stage)}}
		for _, rc := range reqs {
			trace.SpanFromContext(rc).AddLink(link)
		}
	}
	return ctx, span
}

// endBatch ends a batch's span, recording err (when not nil) as its status.
func endBatch(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
