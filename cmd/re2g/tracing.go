package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// tracingShutdownTimeout bounds the flush of the spans still buffered when
// a command ends.
const tracingShutdownTimeout = 10 * time.Second

// startTracing installs an OpenTelemetry SDK tracer provider, batching spans
// to an OTLP exporter (HTTP, or gRPC with OTEL_EXPORTER_OTLP_PROTOCOL=grpc),
// as the global one when
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT is set
// (and OTEL_SDK_DISABLED is not true), and returns the function that
// flushes and shuts it down. Otherwise it installs nothing, and the
// library's spans stay no-ops.
//
// The exporter reads the other standard variables itself
// (OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT, _COMPRESSION, _CERTIFICATE, ...),
// the SDK OTEL_TRACES_SAMPLER and OTEL_BSP_*, the resource OTEL_SERVICE_NAME
// (default re2g) and OTEL_RESOURCE_ATTRIBUTES. An endpoint that is not an
// http or https URL, or a protocol other than http/protobuf, http/json or
// grpc, is an error naming the variable.
func startTracing(ctx context.Context) (shutdown func(context.Context) error, err error) {
	none := func(context.Context) error { return nil }
	if v := strings.TrimSpace(os.Getenv("OTEL_SDK_DISABLED")); strings.EqualFold(v, "true") {
		return none, nil
	}
	set := false
	for _, name := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		v, ok := os.LookupEnv(name)
		if !ok || v == "" {
			continue
		}
		set = true
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("%s=%q: want an http or https URL, such as http://localhost:4318", name, v)
		}
	}
	if !set {
		return none, nil
	}
	protocol := "http/protobuf"
	for _, name := range []string{"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"} {
		switch v := os.Getenv(name); v {
		case "":
		case "http/protobuf", "http/json", "grpc":
			protocol = v // the per-signal variable, read last, wins
		default:
			return nil, fmt.Errorf("%s=%q: want http/protobuf (the default), http/json or grpc", name, v)
		}
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { slog.Warn("tracing", "err", err) }))
	var exp sdktrace.SpanExporter
	if protocol == "grpc" {
		exp, err = otlptracegrpc.New(ctx)
	} else {
		exp, err = otlptracehttp.New(ctx) // reads the protocol itself
	}
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	res, err := resource.New(ctx, resource.WithAttributes(attribute.String("service.name", "re2g")),
		resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil {
		exp.Shutdown(ctx)
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES or OTEL_SERVICE_NAME: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	slog.Debug("tracing: exporting spans over OTLP", "protocol", protocol)
	return tp.Shutdown, nil
}

// runTraced runs the command line args with tracing set up from the
// environment (startTracing), flushing the spans before it returns.
// A failure to export is logged, not the command's: it does not change
// the exit status.
func runTraced(ctx context.Context, args []string) error {
	shutdown, err := startTracing(ctx)
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	defer func() {
		// the command's context may be cancelled (SIGTERM): flush all the same
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tracingShutdownTimeout)
		defer cancel()
		if err := shutdown(sctx); err != nil {
			slog.Warn("tracing: flushing spans failed", "err", err)
		}
	}()
	return newApp().RunContext(ctx, args)
}
