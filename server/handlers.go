package server

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/re2g/re2g/pipeline"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

//go:embed openapi.json
var openAPI []byte

// OpenAPI is the OpenAPI 3 document of the API, served at /openapi.json.
func OpenAPI() []byte { return openAPI }

// Routes are the server's routes, as registered (method and path).
var Routes = []string{
	"POST /v1/answer", "POST /v1/retrieve", "POST /v1/rerank", "POST /v1/encode",
	"GET /healthz", "GET /readyz", "GET /metrics", "GET /openapi.json",
}

type handlerFunc func(w http.ResponseWriter, r *http.Request) *apiError

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	api := map[string]handlerFunc{"answer": s.answer, "retrieve": s.retrieve, "rerank": s.rerank, "encode": s.encode}
	for name, h := range api {
		mux.Handle("POST /v1/"+name, s.wrap(name, true, true, h))
		mux.Handle("/v1/"+name, s.wrap(name, false, false, methodNotAllowed("POST")))
	}
	mux.Handle("GET /healthz", s.wrap("healthz", false, false, func(w http.ResponseWriter, r *http.Request) *apiError {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		return nil
	}))
	mux.Handle("GET /readyz", s.wrap("readyz", false, false, s.readyz))
	prom := promhttp.HandlerFor(s.m.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)})
	mux.Handle("GET /metrics", s.wrap("metrics", true, false, func(w http.ResponseWriter, r *http.Request) *apiError {
		prom.ServeHTTP(w, r)
		return nil
	}))
	mux.Handle("GET /openapi.json", s.wrap("openapi", false, false, func(w http.ResponseWriter, r *http.Request) *apiError {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openAPI)
		return nil
	}))
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/openapi.json"} {
		mux.Handle(p, s.wrap("other", false, false, methodNotAllowed("GET")))
	}
	mux.Handle("/", s.wrap("other", false, false, func(w http.ResponseWriter, r *http.Request) *apiError {
		return errorf(http.StatusNotFound, "not_found", "no route %s %s (see /openapi.json)", r.Method, r.URL.Path)
	}))
	return mux
}

func methodNotAllowed(allow string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) *apiError {
		w.Header().Set("Allow", allow)
		return errorf(http.StatusMethodNotAllowed, "method_not_allowed", "%s %s: use %s", r.Method, r.URL.Path, allow)
	}
}

// recorder notes the status and size of a response.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += n
	return n, err
}

// wrap adds to h: request id, auth (when protected), the per-request
// deadline (when timed), panic recovery, JSON errors, metrics and the
// access log.
func (s *Server) wrap(endpoint string, protected, timed bool, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		s.inFlight.Add(1)
		s.m.inFlight.Add(1)
		id := strconv.FormatUint(s.reqID.Add(1), 10)
		w.Header().Set("X-Request-Id", id)
		rec := &recorder{ResponseWriter: w}
		var aerr *apiError
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("handler panic", "id", id, "endpoint", endpoint, "panic", fmt.Sprint(p))
				aerr = errorf(http.StatusInternalServerError, "internal", "internal error (request %s)", id)
				if rec.status == 0 {
					s.writeError(rec, aerr)
				}
			}
			status := rec.status
			if aerr != nil && aerr.Status == statusClientClosed {
				status = statusClientClosed
			}
			if status == 0 {
				status = http.StatusOK
			}
			d := time.Since(start)
			s.m.requests.WithLabelValues(endpoint, strconv.Itoa(status)).Inc()
			s.m.latency.WithLabelValues(endpoint).Observe(d.Seconds())
			attrs := []any{"id", id, "method", r.Method, "path", r.URL.Path, "status", status, "bytes", rec.bytes,
				"ms", float64(d.Microseconds()) / 1000, "remote", r.RemoteAddr}
			if aerr != nil {
				s.m.errors.WithLabelValues(endpoint, aerr.Code).Inc()
				attrs = append(attrs, "error", aerr.Code)
			}
			if sc := trace.SpanContextFromContext(r.Context()); sc.IsValid() {
				attrs = append(attrs, "trace_id", sc.TraceID().String())
			}
			s.log.Info("request", attrs...)
			s.m.inFlight.Add(-1)
			s.inFlight.Done()
		}()
		if span := trace.SpanFromContext(r.Context()); span.IsRecording() {
			route := r.Pattern
			if _, path, ok := strings.Cut(route, " "); ok {
				route = path
			}
			span.SetAttributes(attribute.String("http.route", route), attribute.String("re2g.request_id", id))
		}
		if protected && !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="re2g"`)
			aerr = errorf(http.StatusUnauthorized, "unauthorized", "missing or wrong bearer token")
			s.writeError(rec, aerr)
			return
		}
		if timed {
			ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
			defer cancel()
			r = r.WithContext(ctx)
		}
		if aerr = h(rec, r); aerr != nil {
			if aerr.Status >= 500 && aerr.Status != http.StatusServiceUnavailable && aerr.Status != http.StatusGatewayTimeout {
				s.log.Warn("request failed", "id", id, "endpoint", endpoint, "error", aerr.Code)
			}
			if aerr.Code == "internal" {
				aerr.Message += fmt.Sprintf(" (request %s)", id)
			}
			s.writeError(rec, aerr)
		}
	})
}

func (s *Server) writeError(w http.ResponseWriter, e *apiError) {
	if e.Status == statusClientClosed {
		return // the client is gone
	}
	if e.retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.retry))
	}
	writeJSON(w, e.Status, map[string]*apiError{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"the response could not be encoded"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// decode reads a JSON object body into v, strictly: the Content-Type must
// be application/json, the body at most MaxBody bytes of UTF-8 holding one
// JSON object whose member names match v's fields exactly (case-sensitive),
// with no unknown or duplicate names and nothing after it.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) *apiError {
	if e := checkContentType(r.Header.Get("Content-Type")); e != nil {
		return e
	}
	if r.ContentLength > s.cfg.MaxBody {
		// Answer at once rather than wait for a body that may never come;
		// net/http closes the connection, since the body stays unread.
		w.Header().Set("Connection", "close")
		return errorf(http.StatusRequestEntityTooLarge, "body_too_large", "Content-Length %d is over the limit of %d bytes", r.ContentLength, s.cfg.MaxBody)
	}
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxBody)
	data, err := io.ReadAll(body)
	if err != nil {
		var mbe *http.MaxBytesError
		var ne net.Error
		switch {
		case errors.As(err, &mbe):
			return errorf(http.StatusRequestEntityTooLarge, "body_too_large", "the body is over %d bytes", s.cfg.MaxBody)
		case errors.As(err, &ne) && ne.Timeout():
			return errorf(http.StatusRequestTimeout, "request_timeout", "the body was not sent within %v", s.cfg.ReadTimeout)
		case r.Context().Err() != nil:
			return s.classify(r.Context(), "read", r.Context().Err(), nil)
		}
		return errorf(http.StatusBadRequest, "bad_body", "reading the body failed")
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return errorf(http.StatusBadRequest, "empty_body", "the body is empty: send a JSON object")
	}
	if !utf8.Valid(data) {
		return errorf(http.StatusBadRequest, "invalid_text", "the body is not valid UTF-8")
	}
	// encoding/json matches names case-insensitively and keeps the last of
	// duplicate names; its v2 (here as the module that mirrors it) does
	// neither by default.
	if err := jsonv2.Unmarshal(data, v, jsonv2.RejectUnknownMembers(true)); err != nil {
		return jsonError(err)
	}
	return nil
}

// checkContentType accepts application/json, with no charset or UTF-8.
func checkContentType(ct string) *apiError {
	if ct == "" {
		return errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "no Content-Type: send application/json")
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type %q: send application/json", ct)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type %q: the body must be UTF-8", ct)
	}
	return nil
}

func jsonError(err error) *apiError {
	var se *jsontext.SyntacticError
	var me *jsonv2.SemanticError
	switch {
	case errors.As(err, &se) && errors.Is(se.Err, jsontext.ErrDuplicateName):
		return errorf(http.StatusBadRequest, "duplicate_field", "duplicate field %q at %s", se.JSONPointer.LastToken(), pointer(se.JSONPointer))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(http.StatusBadRequest, "malformed_json", "the JSON ends early")
	case errors.As(err, &se):
		return errorf(http.StatusBadRequest, "malformed_json", "malformed JSON at byte %d: %v", se.ByteOffset, se.Err)
	case errors.As(err, &me) && errors.Is(me.Err, jsonv2.ErrUnknownName):
		return errorf(http.StatusBadRequest, "unknown_field", "unknown field %q at %s (field names are case-sensitive)", me.JSONPointer.LastToken(), pointer(me.JSONPointer))
	case errors.As(err, &me):
		got := jsonKind(me.JSONKind)
		if me.JSONPointer == "" {
			return errorf(http.StatusBadRequest, "wrong_type", "the body must be a JSON object, not %s", got)
		}
		want := goKind(me.GoType)
		if want == got {
			return errorf(http.StatusBadRequest, "wrong_type", "field %s: %s out of range", pointer(me.JSONPointer), got)
		}
		return errorf(http.StatusBadRequest, "wrong_type", "field %s: want %s, got %s", pointer(me.JSONPointer), want, got)
	}
	return errorf(http.StatusBadRequest, "malformed_json", "the body is not valid JSON")
}

// pointer shows a JSON pointer ("/passages/0/text"), "/" for the body.
func pointer(p jsontext.Pointer) string {
	if p == "" {
		return "/"
	}
	return string(p)
}

func jsonKind(k jsontext.Kind) string {
	switch k {
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	case '"':
		return "a string"
	case '0':
		return "a number"
	case '{':
		return "an object"
	case '[':
		return "an array"
	}
	return "a value"
}

func goKind(t reflect.Type) string {
	if t == nil {
		return "a value"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16,
		reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "an object"
}

// checkText validates one text field.
func checkText(field, s string, maxChars int) *apiError {
	if !utf8.ValidString(s) {
		return errorf(http.StatusBadRequest, "invalid_text", "%s is not valid UTF-8", field)
	}
	if strings.TrimSpace(s) == "" {
		return errorf(http.StatusBadRequest, "empty_input", "%s is empty", field)
	}
	if n := utf8.RuneCountInString(s); n > maxChars {
		return errorf(http.StatusBadRequest, "too_long", "%s has %d characters, over the limit of %d", field, n, maxChars)
	}
	return nil
}

func (s *Server) backend() (*backend, *apiError) {
	if s.draining.Load() {
		return nil, errorf(http.StatusServiceUnavailable, "shutting_down", "the server is shutting down")
	}
	b := s.back.Load()
	if b == nil {
		return nil, errorf(http.StatusServiceUnavailable, "not_ready", "the index and models are still loading")
	}
	return b, nil
}

// queryRequest is the body of /v1/answer and /v1/retrieve.
type queryRequest struct {
	Query *string `json:"query"`
}

func (s *Server) query(w http.ResponseWriter, r *http.Request) (string, *backend, *apiError) {
	var req queryRequest
	if e := s.decode(w, r, &req); e != nil {
		return "", nil, e
	}
	if req.Query == nil {
		return "", nil, errorf(http.StatusBadRequest, "missing_field", `"query" is required`)
	}
	if e := checkText(`"query"`, *req.Query, s.cfg.MaxQueryLen); e != nil {
		return "", nil, e
	}
	b, e := s.backend()
	return *req.Query, b, e
}

func (s *Server) answer(w http.ResponseWriter, r *http.Request) *apiError {
	q, b, e := s.query(w, r)
	if e != nil {
		return e
	}
	out, err := b.answer.Submit(r.Context(), []string{q})
	if err != nil {
		return s.classify(r.Context(), "answer", err, b.answer.RetryAfter)
	}
	writeJSON(w, http.StatusOK, out[0])
	return nil
}

// RetrieveResponse is the body /v1/retrieve answers with.
type RetrieveResponse struct {
	Query      string               `json:"query"`
	Candidates []pipeline.Candidate `json:"candidates"`
}

func (s *Server) retrieve(w http.ResponseWriter, r *http.Request) *apiError {
	q, b, e := s.query(w, r)
	if e != nil {
		return e
	}
	out, err := b.retrieve.Submit(r.Context(), []string{q})
	if err != nil {
		return s.classify(r.Context(), "retrieve", err, b.retrieve.RetryAfter)
	}
	writeJSON(w, http.StatusOK, RetrieveResponse{Query: q, Candidates: nonNil(out[0])})
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// RerankRequest is the body of /v1/rerank.
type RerankRequest struct {
	Query    *string     `json:"query"`
	Passages []PassageIn `json:"passages"`
	TopK     int         `json:"top_k,omitempty"`
}

// PassageIn is one passage to rerank.
type PassageIn struct {
	ID    string  `json:"id,omitempty"`
	Title string  `json:"title,omitempty"`
	Text  *string `json:"text"`
}

// RerankResponse is the body /v1/rerank answers with: passages best first.
type RerankResponse struct {
	Query    string               `json:"query"`
	Passages []pipeline.Candidate `json:"passages"`
}

func (s *Server) rerank(w http.ResponseWriter, r *http.Request) *apiError {
	var req RerankRequest
	if e := s.decode(w, r, &req); e != nil {
		return e
	}
	if req.Query == nil {
		return errorf(http.StatusBadRequest, "missing_field", `"query" is required`)
	}
	if e := checkText(`"query"`, *req.Query, s.cfg.MaxQueryLen); e != nil {
		return e
	}
	if len(req.Passages) == 0 {
		return errorf(http.StatusBadRequest, "empty_input", `"passages" is missing or empty`)
	}
	if len(req.Passages) > s.cfg.MaxPassages {
		return errorf(http.StatusBadRequest, "too_many", `%d passages, over the limit of %d`, len(req.Passages), s.cfg.MaxPassages)
	}
	if req.TopK < 0 {
		return errorf(http.StatusBadRequest, "bad_value", `"top_k" must be >= 0`)
	}
	cands := make([]pipeline.Candidate, len(req.Passages))
	for i, p := range req.Passages {
		if p.Text == nil {
			return errorf(http.StatusBadRequest, "missing_field", `passage %d: "text" is required`, i)
		}
		if e := checkText(fmt.Sprintf("passage %d", i), p.Title+" "+*p.Text, s.cfg.MaxPassageLen); e != nil {
			return e
		}
		id := p.ID
		if id == "" {
			id = strconv.Itoa(i)
		}
		cands[i] = pipeline.Candidate{ID: id, Title: p.Title, Text: *p.Text}
	}
	b, e := s.backend()
	if e != nil {
		return e
	}
	if b.rerank == nil {
		return errorf(http.StatusNotImplemented, "no_model", "the server runs without a reranker (re2g serve --reranker)")
	}
	out, err := b.rerank.Submit(r.Context(), []rerankItem{{query: *req.Query, cands: cands}})
	if err != nil {
		return s.classify(r.Context(), "rerank", err, b.rerank.RetryAfter)
	}
	ps := out[0]
	if req.TopK > 0 && req.TopK < len(ps) {
		ps = ps[:req.TopK]
	}
	writeJSON(w, http.StatusOK, RerankResponse{Query: *req.Query, Passages: ps})
	return nil
}

// EncodeRequest is the body of /v1/encode.
type EncodeRequest struct {
	Queries []string `json:"queries"`
}

// EncodeResponse is the body /v1/encode answers with: one vector per query.
type EncodeResponse struct {
	Dim     int         `json:"dim"`
	Vectors [][]float32 `json:"vectors"`
}

func (s *Server) encode(w http.ResponseWriter, r *http.Request) *apiError {
	var req EncodeRequest
	if e := s.decode(w, r, &req); e != nil {
		return e
	}
	if len(req.Queries) == 0 {
		return errorf(http.StatusBadRequest, "empty_input", `"queries" is missing or empty`)
	}
	if len(req.Queries) > s.cfg.MaxItems {
		return errorf(http.StatusBadRequest, "too_many", "%d queries, over the limit of %d", len(req.Queries), s.cfg.MaxItems)
	}
	for i, q := range req.Queries {
		if e := checkText(fmt.Sprintf("query %d", i), q, s.cfg.MaxQueryLen); e != nil {
			return e
		}
	}
	b, e := s.backend()
	if e != nil {
		return e
	}
	if b.encode == nil {
		return errorf(http.StatusNotImplemented, "no_model", "the server runs without a query encoder (re2g serve --query-encoder)")
	}
	out, err := b.encode.Submit(r.Context(), req.Queries)
	if err != nil {
		return s.classify(r.Context(), "encode", err, b.encode.RetryAfter)
	}
	writeJSON(w, http.StatusOK, EncodeResponse{Dim: b.caps.QueryDim, Vectors: out})
	return nil
}

// ReadyResponse is the body of /readyz once the server is ready. It names
// no paths: /readyz needs no token.
type ReadyResponse struct {
	Status     string          `json:"status"`
	Passages   int             `json:"passages"`
	Generation int             `json:"generation"`
	Models     map[string]bool `json:"models"`
	Batching   bool            `json:"batching"`
	MaxBatch   int             `json:"max_batch"`
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) *apiError {
	b, e := s.backend()
	if e != nil {
		return e
	}
	c := b.caps
	now := b.svc.Capabilities() // the index may have been reloaded
	writeJSON(w, http.StatusOK, ReadyResponse{Status: "ready", Passages: now.Passages, Generation: now.Generation,
		Models:   map[string]bool{"query_encoder": c.QueryEncoder, "bm25": c.BM25, "reranker": c.Reranker, "generator": c.Generator},
		Batching: !s.cfg.NoBatching, MaxBatch: s.cfg.MaxBatch})
	return nil
}
