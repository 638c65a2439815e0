package pipeline

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// TracerName is the instrumentation scope of the pipeline's spans.
//
// Every stage of a query is an OpenTelemetry span, a child of the span in
// the context it is given, from the global tracer provider
// (otel.GetTracerProvider): a no-op, which records and exports nothing,
// until the program installs one (re2g does when OTEL_EXPORTER_OTLP_ENDPOINT
// is set). The spans, nested as AnswerBatch runs them:
//
//	re2g.answer
//	├── re2g.retrieve
//	│   ├── re2g.retrieve.dense
//	│   │   └── re2g.encode
//	│   ├── re2g.retrieve.bm25
//	│   └── re2g.merge
//	├── re2g.rerank
//	├── re2g.generate
//	└── re2g.weight
//
// RetrieveBatch, RerankBatch and EncodeQueries called alone are spans of
// their own (re2g.retrieve, re2g.rerank, re2g.encode), Predict is
// re2g.predict over its AnswerBatch calls, and NewContext is re2g.open.
// Their attributes (re2g.queries, re2g.k, re2g.hits, ...) are listed in the
// README.
const TracerName = "github.com/re2g/re2g/pipeline"

// Span attributes: the sizes and settings of each stage.
const (
	attrQueries      = attribute.Key("re2g.queries")    // queries in the batch
	attrK            = attribute.Key("re2g.k")          // hits asked for per query
	attrEfSearch     = attribute.Key("re2g.ef_search")  // HNSW search breadth (0: the index's)
	attrHits         = attribute.Key("re2g.hits")       // hits found, all queries together
	attrCandidates   = attribute.Key("re2g.candidates") // merged candidates, all queries together
	attrDim          = attribute.Key("re2g.dim")        // query vector dimension
	attrBM25K1       = attribute.Key("re2g.bm25.k1")    // BM25 k1
	attrBM25B        = attribute.Key("re2g.bm25.b")     // BM25 b
	attrReranker     = attribute.Key("re2g.reranker")   // whether a cross-encoder scored (else: order kept)
	attrPairs        = attribute.Key("re2g.pairs")      // (query, passage) pairs scored
	attrRerankK      = attribute.Key("re2g.rerank_k")   // passages kept per query
	attrPassages     = attribute.Key("re2g.passages")   // passages kept, all queries together
	attrSources      = attribute.Key("re2g.sources")    // generator inputs (query and passage)
	attrBeams        = attribute.Key("re2g.num_beams")  // beams per source
	attrReturnSeqs   = attribute.Key("re2g.num_return_sequences")
	attrMaxNewTokens = attribute.Key("re2g.max_new_tokens") // answer length limit
	attrSequences    = attribute.Key("re2g.sequences")      // sequences generated, all sources together
	attrAnswers      = attribute.Key("re2g.answers")        // distinct answers, all queries together
	attrGenerator    = attribute.Key("re2g.generator")      // whether answers are generated
	attrRecords      = attribute.Key("re2g.records")        // KILT records (Predict)
	attrBatchSize    = attribute.Key("re2g.batch_size")     // queries per AnswerBatch (Predict)
	attrIndex        = attribute.Key("re2g.index")          // index directory (NewContext)
)

// startSpan starts a span named name as a child of ctx's span, with the
// global tracer provider's tracer (looked up each time, so that a provider
// installed after the pipeline was made is used). The attributes are set
// only on a recording span: on the no-op provider a span costs a few
// hundred nanoseconds.
func startSpan(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	ctx, span := otel.Tracer(TracerName).Start(ctx, name)
	if len(attrs) > 0 && span.IsRecording() {
		span.SetAttributes(attrs...)
	}
	return ctx, span
}

// endSpan ends span, recording err (when not nil) as its status.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
