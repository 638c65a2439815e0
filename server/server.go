// Package server serves a re2g pipeline over HTTP/JSON: answer, retrieve,
// rerank and encode endpoints with dynamic batching, bounded queues, size
// and time limits, optional bearer-token auth, Prometheus metrics, OpenTelemetry
// tracing (W3C trace context in, spans per request and batch), an
// OpenAPI document, structured access logs and graceful shutdown.
package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/re2g/re2g/pipeline"
	"go.opentelemetry.io/otel/propagation"
)

// Config holds the server's limits and batching settings; zero values take
// the defaults shown. New refuses a negative value (but MaxWait's) or one
// past its bound with a *ConfigError naming the field.
type Config struct {
	MaxBatch   int           // items per batch (32; at most 65,536)
	MaxWait    time.Duration // longest wait for a batch to fill (5ms; negative: none, a batch is whatever is queued); under Timeout
	Queue      int           // requests waiting per endpoint before 429 (256; at most 1,048,576); with NoBatching, requests running
	Workers    int           // batches computed at once per endpoint (1; at most 1,024)
	NoBatching bool          // run each request alone (the baseline batching is measured against)

	MaxBody       int64 // request body bytes (1 MiB; at most 1 GiB)
	MaxQueryLen   int   // characters per query (2,000)
	MaxPassages   int   // passages per rerank request (200)
	MaxPassageLen int   // characters per passage title+text (20,000)
	MaxItems      int   // queries per encode request (64)

	// Durations are at most 24 hours.
	Timeout           time.Duration // per-request deadline (60s)
	ReadHeaderTimeout time.Duration // slow clients: time to send the headers (5s)
	ReadTimeout       time.Duration // slow clients: time to send the whole request (30s)
	IdleTimeout       time.Duration // keep-alive connections (120s)
	ShutdownTimeout   time.Duration // grace for in-flight requests on shutdown (60s)

	AuthToken string       // bearer token for /v1/* and /metrics ("": no auth)
	Logger    *slog.Logger // access and error logs (slog.Default())
	// Propagator reads the caller's trace context from a request's headers
	// (nil: W3C Trace Context, traceparent and tracestate).
	Propagator propagation.TextMapPropagator
}

// Bounds past which Validate refuses a setting: beyond them a value is a
// typo, and the queues and goroutines it would allocate could exhaust memory.
const (
	maxMaxBatch = 1 << 16
	maxQueue    = 1 << 20
	maxWorkers  = 1 << 10
	maxMaxBody  = 1 << 30
	maxDuration = 24 * time.Hour
)

// ConfigError is a Config setting out of range.
type ConfigError struct {
	Field string // the Config field, e.g. "MaxBody"
	Value any    // its value
	Want  string // what it must be
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("server config: %s = %v: %s", e.Field, e.Value, e.Want)
}

// Validate reports the first setting out of range as a *ConfigError.
func (c Config) Validate() error {
	ints := []struct {
		field string
		v, hi int64
	}{
		{"MaxBatch", int64(c.MaxBatch), maxMaxBatch}, {"Queue", int64(c.Queue), maxQueue}, {"Workers", int64(c.Workers), maxWorkers},
		{"MaxBody", c.MaxBody, maxMaxBody}, {"MaxQueryLen", int64(c.MaxQueryLen), 0}, {"MaxPassages", int64(c.MaxPassages), 0},
		{"MaxPassageLen", int64(c.MaxPassageLen), 0}, {"MaxItems", int64(c.MaxItems), 0},
	}
	for _, f := range ints {
		switch {
		case f.v < 0:
			return &ConfigError{f.field, f.v, "must not be negative (0 takes the default)"}
		case f.hi > 0 && f.v > f.hi:
			return &ConfigError{f.field, f.v, fmt.Sprintf("must be at most %d", f.hi)}
		}
	}
	durs := []struct {
		field string
		v     time.Duration
	}{
		{"MaxWait", c.MaxWait}, {"Timeout", c.Timeout}, {"ReadHeaderTimeout", c.ReadHeaderTimeout},
		{"ReadTimeout", c.ReadTimeout}, {"IdleTimeout", c.IdleTimeout}, {"ShutdownTimeout", c.ShutdownTimeout},
	}
	for _, f := range durs {
		switch {
		case f.v < 0 && f.field != "MaxWait":
			return &ConfigError{f.field, f.v, "must not be negative (0 takes the default)"}
		case f.v > maxDuration:
			return &ConfigError{f.field, f.v, fmt.Sprintf("must be at most %v", maxDuration)}
		}
	}
	d := c
	d.defaults()
	if d.MaxWait >= d.Timeout {
		return &ConfigError{"MaxWait", d.MaxWait, fmt.Sprintf("must be under Timeout (%v): a request alone would time out waiting for its batch", d.Timeout)}
	}
	return nil
}

func (c *Config) defaults() {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	defd := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	def(&c.MaxBatch, 32)
	def(&c.Queue, 256)
	def(&c.Workers, 1)
	def(&c.MaxQueryLen, 2000)
	def(&c.MaxPassages, 200)
	def(&c.MaxPassageLen, 20000)
	def(&c.MaxItems, 64)
	if c.MaxWait < 0 {
		c.MaxWait = 0
	} else if c.MaxWait == 0 {
		c.MaxWait = 5 * time.Millisecond
	}
	if c.MaxBody == 0 {
		c.MaxBody = 1 << 20
	}
	defd(&c.Timeout, 60*time.Second)
	defd(&c.ReadHeaderTimeout, 5*time.Second)
	defd(&c.ReadTimeout, 30*time.Second)
	defd(&c.IdleTimeout, 120*time.Second)
	defd(&c.ShutdownTimeout, 60*time.Second)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Propagator == nil {
		c.Propagator = propagation.TraceContext{}
	}
}

// Server is the HTTP server. Create it with New, attach the loaded service
// (a *pipeline.Pipeline or any Service) with Ready (until then /readyz and
// /v1/* answer 503), and run it with Serve.
type Server struct {
	cfg      Config
	log      *slog.Logger
	m        *metrics
	token    [sha256.Size]byte
	back     atomic.Pointer[backend]
	draining atomic.Bool
	handler  http.Handler
	inFlight sync.WaitGroup
	reqID    atomic.Uint64

	base     context.Context // cancelled on a hard stop: ends running batches
	hardStop context.CancelFunc
}

// backend is the loaded service with one batcher per endpoint.
type backend struct {
	svc      Service
	caps     pipeline.Capabilities
	answer   *batcher[string, *pipeline.Result]
	retrieve *batcher[string, []pipeline.Candidate]
	rerank   *batcher[rerankItem, []pipeline.Candidate] // nil without a reranker
	encode   *batcher[string, []float32]                // nil without a query encoder
}

type rerankItem struct {
	query string
	cands []pipeline.Candidate
}

// New makes a server with cfg, or says which setting is out of range.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	s := &Server{cfg: cfg, log: cfg.Logger, m: newMetrics()}
	if cfg.AuthToken != "" {
		s.token = sha256.Sum256([]byte(cfg.AuthToken))
	}
	s.m.reg.MustRegister(newServerCollector(s))
	s.base, s.hardStop = context.WithCancel(context.Background())
	s.handler = traced(s.routes(), cfg.Propagator)
	return s, nil
}

// Ready attaches the loaded service, starting one batcher per endpoint it
// can answer. The caller keeps ownership of svc (a *pipeline.Pipeline
// needs closing after Serve returns). Ready is called once.
func (s *Server) Ready(svc Service) {
	bc := batcherConfig{MaxBatch: s.cfg.MaxBatch, MaxWait: s.cfg.MaxWait, Queue: s.cfg.Queue, Workers: s.cfg.Workers, Direct: s.cfg.NoBatching}
	if s.cfg.NoBatching {
		bc.MaxBatch = 1
	}
	b := &backend{svc: svc, caps: svc.Capabilities()}
	b.answer = newBatcher(s.base, "answer", bc, s.m, svc.AnswerBatch)
	b.retrieve = newBatcher(s.base, "retrieve", bc, s.m, svc.RetrieveBatch)
	if b.caps.Reranker {
		b.rerank = newBatcher(s.base, "rerank", bc, s.m, func(ctx context.Context, in []rerankItem) ([][]pipeline.Candidate, error) {
			qs := make([]string, len(in))
			cs := make([][]pipeline.Candidate, len(in))
			for i, it := range in {
				qs[i], cs[i] = it.query, it.cands
			}
			return svc.RerankBatch(ctx, qs, cs)
		})
	}
	if b.caps.QueryEncoder {
		b.encode = newBatcher(s.base, "encode", bc, s.m, svc.EncodeQueries)
	}
	s.back.Store(b)
}

// ErrNoReload is returned by ReloadIndex when there is nothing to reload:
// no service yet, or one that cannot swap its index.
var ErrNoReload = errors.New("server: the service cannot reload its index")

// ReloadIndex has the service open its index again and swap the new
// generation in if the index changed (re2g index add, delete, compact),
// while requests go on: those running finish with the index they started
// with. A failed reload (an index that does not open) leaves the service
// on its index. Each reload is logged and counted in
// re2g_index_reloads_total by result: ok, unchanged or error.
func (s *Server) ReloadIndex(ctx context.Context) error {
	b := s.back.Load()
	if b == nil {
		return fmt.Errorf("%w: not ready yet", ErrNoReload)
	}
	r, ok := b.svc.(Reloader)
	if !ok {
		return ErrNoReload
	}
	start := time.Now()
	changed, err := r.ReloadIndex(ctx)
	caps := b.svc.Capabilities()
	switch {
	case err != nil:
		s.m.reloads.WithLabelValues("error").Inc()
		s.log.Error("index reload failed: serving the index already loaded", "err", err,
			"generation", caps.Generation, "passages", caps.Passages)
		return err
	case !changed:
		s.m.reloads.WithLabelValues("unchanged").Inc()
		s.log.Info("index reload: the index has not changed", "generation", caps.Generation)
	default:
		s.m.reloads.WithLabelValues("ok").Inc()
		s.log.Info("index reloaded", "generation", caps.Generation, "passages", caps.Passages,
			"seconds", time.Since(start).Seconds())
	}
	return nil
}

// stages are the backend's batchers.
func (b *backend) stages() []stage {
	out := []stage{b.answer, b.retrieve}
	if b.rerank != nil {
		out = append(out, b.rerank)
	}
	if b.encode != nil {
		out = append(out, b.encode)
	}
	return out
}

func (b *backend) close() {
	b.answer.Close()
	b.retrieve.Close()
	if b.rerank != nil {
		b.rerank.Close()
	}
	if b.encode != nil {
		b.encode.Close()
	}
}

// Handler is the server's HTTP handler (for tests and embedding). Errors
// that net/http answers itself, before any handler runs (a malformed
// request, headers too large or too slow), are JSON only through Serve.
func (s *Server) Handler() http.Handler { return s.handler }

// httpServer is the net/http server Serve runs, with the slow-client timeouts.
func (s *Server) httpServer() *http.Server {
	return &http.Server{
		Handler:           s.handler,
		ConnState:         s.connState,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		// A response may take the whole request deadline to compute.
		WriteTimeout:   s.cfg.ReadTimeout + s.cfg.Timeout + 10*time.Second,
		IdleTimeout:    s.cfg.IdleTimeout,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:    func(net.Listener) context.Context { return context.Background() },
	}
}

// Serve serves on ln until ctx ends, then shuts down gracefully: /readyz
// turns 503, the listener closes, requests in flight finish (up to
// ShutdownTimeout, after which they are cancelled) and the batchers stop.
// It returns nil after a clean shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := s.httpServer()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(&listener{Listener: ln, s: s}) }()
	s.log.Info("serving", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		s.stopBackend()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.draining.Store(true)
	s.log.Info("shutting down: finishing requests in flight", "in_flight", s.m.inFlight.Load(), "grace", s.cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err := hs.Shutdown(sctx)
	if err != nil {
		s.log.Warn("shutdown grace over: cancelling requests in flight", "err", err)
		s.hardStop()
		hs.Close()
	}
	s.inFlight.Wait()
	s.stopBackend()
	<-errc
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	s.log.Info("shut down cleanly")
	return nil
}

func (s *Server) stopBackend() {
	if b := s.back.Load(); b != nil {
		b.close()
	}
	s.hardStop()
}

// authorized checks the bearer token in constant time (comparing digests,
// so that the token's length does not leak either).
func (s *Server) authorized(r *http.Request) bool {
	if s.cfg.AuthToken == "" {
		return true
	}
	h := r.Header.Get("Authorization")
	const prefix = "bearer "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(h[len(prefix):])))
	return subtle.ConstantTimeCompare(got[:], s.token[:]) == 1
}

// apiError is an error with its HTTP status and machine-readable code.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	retry   int
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// statusClientClosed is logged (nginx's convention) when the client left
// before its answer was ready; nothing reaches the client.
const statusClientClosed = 499

// classify turns an error from a stage into an apiError.
func (s *Server) classify(ctx context.Context, stage string, err error, retry func() int) *apiError {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, ErrQueueFull):
		e := errorf(http.StatusTooManyRequests, "overloaded", "the %s queue is full; retry later", stage)
		e.retry = retry()
		return e
	case errors.Is(err, errStopped):
		return errorf(http.StatusServiceUnavailable, "shutting_down", "the server is shutting down")
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded):
		return errorf(http.StatusGatewayTimeout, "timeout", "the request took longer than %v", s.cfg.Timeout)
	case ctx.Err() != nil:
		return errorf(statusClientClosed, "client_closed", "the client closed the request")
	}
	return errorf(http.StatusInternalServerError, "internal", "internal error in %s", stage)
}
