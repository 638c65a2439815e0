package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/internal/tinymodels"
	"github.com/re2g/re2g/neural"
	"github.com/re2g/re2g/pipeline"
	"github.com/re2g/re2g/torch"
)

const shared = "../../shared/data"

// fixture is one pipeline over a real index of 40 SQuADShifts passages
// with tiny random models (DPR, cross-encoder, BART), shared by the tests:
// an index directory opens once per process, and the pipeline is safe for
// concurrent use.
var (
	fixOnce sync.Once
	fixP    *pipeline.Pipeline
	fixErr  error
	fixSkip string
	fixQs   []string
)

func testPipeline(t *testing.T) *pipeline.Pipeline {
	t.Helper()
	fixOnce.Do(func() {
		tok, err := os.ReadFile(filepath.Join(shared, "tokenizers/bert-base-uncased/tokenizer.json"))
		if err != nil {
			fixSkip = fmt.Sprintf("shared data not available: %v", err)
			return
		}
		sq, err := data.LoadSQuAD(filepath.Join(shared, "squadshifts/new_wiki_v1.0.json"), &data.Report{})
		if err != nil {
			fixSkip = fmt.Sprintf("shared data not available: %v", err)
			return
		}
		dir, err := os.MkdirTemp("", "re2g-server-test")
		if err != nil {
			fixErr = err
			return
		}
		torch.SetNumThreads(2)
		dirs, err := tinymodels.Write(dir, tok, tinymodels.Tiny, 11)
		if err != nil {
			fixErr = err
			return
		}
		corpusPath := filepath.Join(dir, "corpus.jsonl")
		f, _ := os.Create(corpusPath)
		if err := data.WriteCorpus(f, sq.Passages[:40]); err != nil {
			fixErr = err
			return
		}
		f.Close()
		for _, q := range sq.Questions[:200] {
			fixQs = append(fixQs, q.Question)
		}
		corpus, err := pipeline.LoadCorpus(corpusPath)
		if err != nil {
			fixErr = err
			return
		}
		enc, err := neural.LoadEncoder(dirs.CtxEncoder, neural.Options{MaxLength: 64})
		if err != nil {
			fixErr = err
			return
		}
		idx := filepath.Join(dir, "index")
		_, fixErr = pipeline.BuildIndex(context.Background(), corpusPath, corpus, pipeline.IndexOptions{Out: idx, Encoder: enc, Progress: io.Discard})
		enc.Close()
		if fixErr != nil {
			return
		}
		fixP, fixErr = pipeline.New(pipeline.Config{Index: idx, QueryEncoder: dirs.QueryEncoder, Reranker: dirs.Reranker,
			Generator: dirs.Generator, NumBeams: 2, NumReturnSequences: 2, MaxNewTokens: 6,
			Models: neural.Options{MaxLength: 96, BatchSize: 64}})
	})
	if fixSkip != "" {
		t.Skip(fixSkip)
	}
	if fixErr != nil {
		t.Fatal(fixErr)
	}
	return fixP
}

// testServer runs a server with cfg on a loopback port until the test ends.
func testServer(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	p := testPipeline(t)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := New(cfg)
	s.Ready(p)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s, "http://" + ln.Addr().String()
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func post(t *testing.T, url, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// wantError checks a JSON error response with status and code.
func wantError(t *testing.T, name string, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("%s: status %d, want %d (%.300s)", name, resp.StatusCode, status, body)
		return
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", name, ct)
	}
	var e errorBody
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Errorf("%s: not a JSON error: %s", name, body)
		return
	}
	if code != "" && e.Error.Code != code {
		t.Errorf("%s: code %q, want %q (%s)", name, e.Error.Code, code, e.Error.Message)
	}
	for _, leak := range []string{"goroutine ", "panic", ".go:"} {
		if strings.Contains(string(body), leak) {
			t.Errorf("%s: the response leaks internals: %s", name, body)
		}
	}
}

func TestEndpoints(t *testing.T) {
	_, url := testServer(t, Config{})
	resp, body := post(t, url+"/v1/answer", `{"query": "who elects the delegates?"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("answer: %d %s", resp.StatusCode, body)
	}
	var res pipeline.Result
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatal(err)
	}
	if res.Answer == "" || len(res.Provenance) != 5 || res.Query != "who elects the delegates?" {
		t.Fatalf("answer: %s", body)
	}

	resp, body = post(t, url+"/v1/retrieve", `{"query": "delegates"}`)
	var rr RetrieveResponse
	if resp.StatusCode != 200 || json.Unmarshal(body, &rr) != nil || len(rr.Candidates) == 0 {
		t.Fatalf("retrieve: %d %s", resp.StatusCode, body)
	}

	resp, body = post(t, url+"/v1/rerank", `{"query": "q", "passages": [{"id": "a", "title": "A", "text": "one"}, {"text": "two"}, {"id": "c", "text": "three"}], "top_k": 2}`)
	var rk RerankResponse
	if resp.StatusCode != 200 || json.Unmarshal(body, &rk) != nil || len(rk.Passages) != 2 || rk.Passages[0].RerankScore < rk.Passages[1].RerankScore {
		t.Fatalf("rerank: %d %s", resp.StatusCode, body)
	}

	resp, body = post(t, url+"/v1/encode", `{"queries": ["one", "two words"]}`)
	var en EncodeResponse
	if resp.StatusCode != 200 || json.Unmarshal(body, &en) != nil || len(en.Vectors) != 2 || len(en.Vectors[0]) != en.Dim || en.Dim == 0 {
		t.Fatalf("encode: %d %s", resp.StatusCode, body)
	}

	for _, path := range []string{"/healthz", "/readyz"} {
		resp, body := do(t, mustReq(t, "GET", url+path, ""))
		if resp.StatusCode != 200 || !json.Valid(body) {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
	}
	resp, body = do(t, mustReq(t, "GET", url+"/metrics", ""))
	for _, m := range []string{`re2g_http_requests_total{endpoint="answer",code="200"} 1`, `re2g_http_request_duration_seconds_bucket{endpoint="answer",le="+Inf"} 1`,
		`re2g_batch_size_count{stage="encode"} 1`, `re2g_queue_depth{stage="answer"} 0`, "process_resident_memory_bytes ", "re2g_ready 1"} {
		if !strings.Contains(string(body), m) {
			t.Errorf("metrics lack %q:\n%s", m, body)
		}
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("metrics Content-Type %q", ct)
	}
}

func mustReq(t *testing.T, method, url, body string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The OpenAPI document is valid JSON, OpenAPI 3, and describes exactly the
// routes the server has.
func TestOpenAPI(t *testing.T) {
	_, url := testServer(t, Config{})
	resp, body := do(t, mustReq(t, "GET", url+"/openapi.json", ""))
	var doc struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
		Comp    struct {
			Schemas map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &doc) != nil || !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi: %d %.200s", resp.StatusCode, body)
	}
	n := 0
	for _, r := range Routes {
		method, path, _ := strings.Cut(r, " ")
		if doc.Paths[path][strings.ToLower(method)] == nil {
			t.Errorf("route %s is not in the document", r)
		}
	}
	for _, ops := range doc.Paths {
		n += len(ops)
	}
	if n != len(Routes) {
		t.Errorf("the document has %d operations, the server %d routes", n, len(Routes))
	}
	// every $ref resolves
	for _, ref := range refs(body) {
		name := strings.TrimPrefix(ref, "#/components/schemas/")
		if doc.Comp.Schemas[name] == nil {
			t.Errorf("dangling $ref %s", ref)
		}
	}
}

func refs(doc []byte) []string {
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, y := range x {
				if s, ok := y.(string); ok && k == "$ref" {
					out = append(out, s)
				}
				walk(y)
			}
		case []any:
			for _, y := range x {
				walk(y)
			}
		}
	}
	var v any
	json.Unmarshal(doc, &v)
	walk(v)
	return out
}

// Every kind of bad input answers a 4xx JSON error, and the server goes on serving.
func TestBadInput(t *testing.T) {
	_, url := testServer(t, Config{MaxBody: 4096, MaxQueryLen: 100, MaxPassages: 3, MaxPassageLen: 200, MaxItems: 2})
	huge := strings.Repeat("a", 101)
	cases := []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"malformed JSON", "/v1/answer", `{"query": "x"`, 400, "malformed_json"},
		{"not JSON", "/v1/answer", `query=x`, 400, "malformed_json"},
		{"syntax error", "/v1/answer", `{"query": x}`, 400, "malformed_json"},
		{"trailing data", "/v1/answer", `{"query": "x"} {"query": "y"}`, 400, "malformed_json"},
		{"wrong type", "/v1/answer", `{"query": 42}`, 400, "wrong_type"},
		{"wrong type array", "/v1/retrieve", `{"query": ["a"]}`, 400, "wrong_type"},
		{"body not an object", "/v1/answer", `["who"]`, 400, "wrong_type"},
		{"wrong type nested", "/v1/rerank", `{"query": "q", "passages": [{"text": 1}]}`, 400, "wrong_type"},
		{"wrong type top_k", "/v1/rerank", `{"query": "q", "passages": [{"text": "t"}], "top_k": "2"}`, 400, "wrong_type"},
		{"unknown field", "/v1/answer", `{"query": "x", "k": 3}`, 400, "unknown_field"},
		{"unknown nested field", "/v1/rerank", `{"query": "q", "passages": [{"text": "t", "score": 1}]}`, 400, "unknown_field"},
		{"empty body", "/v1/answer", ``, 400, "empty_body"},
		{"empty object", "/v1/answer", `{}`, 400, "missing_field"},
		{"null query", "/v1/answer", `{"query": null}`, 400, "missing_field"},
		{"empty query", "/v1/answer", `{"query": ""}`, 400, "empty_input"},
		{"blank query", "/v1/retrieve", `{"query": " \t\n "}`, 400, "empty_input"},
		{"huge query", "/v1/answer", `{"query": "` + huge + `"}`, 400, "too_long"},
		{"invalid UTF-8", "/v1/answer", "{\"query\": \"\xff\xfe\"}", 400, "invalid_text"},
		{"oversized body", "/v1/answer", `{"query": "` + strings.Repeat("b", 5000) + `"}`, 413, "body_too_large"},
		{"no passages", "/v1/rerank", `{"query": "q", "passages": []}`, 400, "empty_input"},
		{"too many passages", "/v1/rerank", `{"query": "q", "passages": [{"text": "a"},{"text": "b"},{"text": "c"},{"text": "d"}]}`, 400, "too_many"},
		{"passage without text", "/v1/rerank", `{"query": "q", "passages": [{"title": "a"}]}`, 400, "missing_field"},
		{"huge passage", "/v1/rerank", `{"query": "q", "passages": [{"text": "` + strings.Repeat("c ", 150) + `"}]}`, 400, "too_long"},
		{"negative top_k", "/v1/rerank", `{"query": "q", "passages": [{"text": "a"}], "top_k": -1}`, 400, "bad_value"},
		{"no queries", "/v1/encode", `{"queries": []}`, 400, "empty_input"},
		{"too many queries", "/v1/encode", `{"queries": ["a", "b", "c"]}`, 400, "too_many"},
		{"empty query in list", "/v1/encode", `{"queries": ["a", ""]}`, 400, "empty_input"},
		{"unknown route", "/v1/nothing", `{}`, 404, "not_found"},
	}
	for _, c := range cases {
		resp, body := post(t, url+c.path, c.body)
		wantError(t, c.name, resp, body, c.status, c.code)
	}
	resp, body := do(t, mustReq(t, "GET", url+"/v1/answer", ""))
	wantError(t, "GET on a POST route", resp, body, 405, "method_not_allowed")
	if resp.Header.Get("Allow") != "POST" {
		t.Errorf("405 without Allow: POST")
	}
	resp, body = do(t, mustReq(t, "DELETE", url+"/healthz", ""))
	wantError(t, "DELETE /healthz", resp, body, 405, "method_not_allowed")
	resp, body = post(t, url+"/v1/answer", `{"query": "still serving?"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("after bad input: %d %s", resp.StatusCode, body)
	}
}

func TestAuth(t *testing.T) {
	_, url := testServer(t, Config{AuthToken: "s3cret-token"})
	body := `{"query": "delegates"}`
	resp, b := post(t, url+"/v1/retrieve", body)
	wantError(t, "no token", resp, b, 401, "unauthorized")
	if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Error("401 without WWW-Authenticate: Bearer")
	}
	resp, b = post(t, url+"/v1/retrieve", body, "Authorization", "Bearer s3cret-tokeN")
	wantError(t, "wrong token", resp, b, 401, "unauthorized")
	resp, b = post(t, url+"/v1/retrieve", body, "Authorization", "Basic s3cret-token")
	wantError(t, "wrong scheme", resp, b, 401, "unauthorized")
	resp, b = do(t, mustReq(t, "GET", url+"/metrics", ""))
	wantError(t, "metrics without token", resp, b, 401, "unauthorized")
	if resp, b = post(t, url+"/v1/retrieve", body, "Authorization", "Bearer s3cret-token"); resp.StatusCode != 200 {
		t.Fatalf("right token: %d %s", resp.StatusCode, b)
	}
	if resp, _ = do(t, mustReq(t, "GET", url+"/healthz", "")); resp.StatusCode != 200 {
		t.Fatal("healthz needs no token")
	}
}

// answerAll sends queries concurrently and returns the status codes and bodies.
func answerAll(t *testing.T, url string, qs []string) ([]int, [][]byte, []http.Header) {
	t.Helper()
	codes := make([]int, len(qs))
	bodies := make([][]byte, len(qs))
	hdrs := make([]http.Header, len(qs))
	var wg sync.WaitGroup
	for i, q := range qs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, _ := json.Marshal(map[string]string{"query": q})
			resp, err := http.Post(url+"/v1/answer", "application/json", bytes.NewReader(b))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			bodies[i], _ = io.ReadAll(resp.Body)
			codes[i], hdrs[i] = resp.StatusCode, resp.Header
		}()
	}
	wg.Wait()
	return codes, bodies, hdrs
}

// Concurrent requests are answered in shared batches, with the same
// answers as alone.
func TestBatchingGivesTheSameAnswers(t *testing.T) {
	p := testPipeline(t)
	s, url := testServer(t, Config{MaxBatch: 16, MaxWait: 300 * time.Millisecond})
	qs := fixQs[:12]
	codes, bodies, _ := answerAll(t, url, qs)
	for i, q := range qs {
		if codes[i] != 200 {
			t.Fatalf("%q: %d %s", q, codes[i], bodies[i])
		}
		var got pipeline.Result
		json.Unmarshal(bodies[i], &got)
		want, err := p.Answer(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		if got.Query != q || len(got.Provenance) != len(want.Provenance) {
			t.Fatalf("%q: batched %s", q, bodies[i])
		}
		for j := range want.Provenance {
			if got.Provenance[j].ID != want.Provenance[j].ID && abs(got.Provenance[j].RerankScore-want.Provenance[j].RerankScore) > 1e-4 {
				t.Fatalf("%q: passage %d is %s batched, %s alone", q, j, got.Provenance[j].ID, want.Provenance[j].ID)
			}
		}
	}
	var sb strings.Builder
	s.m.batchSize.write(&sb)
	if strings.Contains(sb.String(), `re2g_batch_size_count{stage="answer"} 12`) {
		t.Fatalf("12 concurrent requests ran in 12 batches:\n%s", sb.String())
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// A full queue answers 429 with Retry-After; nothing else fails.
func TestQueueFull(t *testing.T) {
	for _, noBatch := range []bool{false, true} {
		_, url := testServer(t, Config{MaxBatch: 1, Queue: 1, NoBatching: noBatch})
		codes, bodies, hdrs := answerAll(t, url, fixQs[:24])
		n429 := 0
		for i, c := range codes {
			switch c {
			case 200:
			case 429:
				n429++
				if hdrs[i].Get("Retry-After") == "" {
					t.Error("429 without Retry-After")
				}
				var e errorBody
				if json.Unmarshal(bodies[i], &e) != nil || e.Error.Code != "overloaded" {
					t.Errorf("429 body %s", bodies[i])
				}
			default:
				t.Errorf("no batching %v: status %d: %s", noBatch, c, bodies[i])
			}
		}
		if n429 == 0 || n429 == len(codes) {
			t.Errorf("no batching %v: %d of %d refused: want some", noBatch, n429, len(codes))
		}
	}
}

func TestDeadline(t *testing.T) {
	_, url := testServer(t, Config{Timeout: time.Millisecond, MaxWait: 50 * time.Millisecond})
	resp, body := post(t, url+"/v1/answer", `{"query": "who elects the delegates?"}`)
	wantError(t, "deadline", resp, body, 504, "timeout")
	resp, body = do(t, mustReq(t, "GET", url+"/healthz", ""))
	if resp.StatusCode != 200 {
		t.Fatalf("after a timeout: %d %s", resp.StatusCode, body)
	}
}

// Clients that leave mid-request (waiting for a batch or inside one) leave
// the others' answers intact, and their work is dropped.
func TestClientDisconnect(t *testing.T) {
	s, url := testServer(t, Config{MaxBatch: 16, MaxWait: 200 * time.Millisecond})
	var wg sync.WaitGroup
	var ok, gone atomic.Int32
	for i, q := range fixQs[:12] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			if i%3 == 0 {
				var cancel context.CancelFunc
				// some leave while queued, some while their batch runs
				ctx, cancel = context.WithTimeout(ctx, time.Duration(100+20*i)*time.Millisecond)
				defer cancel()
			}
			b, _ := json.Marshal(map[string]string{"query": q})
			req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/answer", bytes.NewReader(b))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				if i%3 == 0 && errors.Is(err, context.DeadlineExceeded) {
					gone.Add(1)
					return
				}
				t.Errorf("request %d: %v", i, err)
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 {
				t.Errorf("request %d: %d %s", i, resp.StatusCode, body)
			}
			ok.Add(1)
		}()
	}
	wg.Wait()
	if ok.Load() < 8 {
		t.Fatalf("%d of the 8 staying clients answered", ok.Load())
	}
	// the server noticed: 499 in its metrics once the handlers return
	deadline := time.Now().Add(5 * time.Second)
	for gone.Load() > 0 {
		var sb strings.Builder
		s.m.requests.write(&sb)
		if strings.Contains(sb.String(), `code="499"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d clients left, the server logged no 499:\n%s", gone.Load(), sb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, body := post(t, url+"/v1/answer", `{"query": "after the disconnects"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("after disconnects: %d %s", resp.StatusCode, body)
	}
}

// Slow clients: headers or a body that never complete are cut off by the
// timeouts; a stalled body gets 408.
func TestSlowClients(t *testing.T) {
	_, url := testServer(t, Config{ReadHeaderTimeout: 200 * time.Millisecond, ReadTimeout: 400 * time.Millisecond})
	addr := strings.TrimPrefix(url, "http://")

	// slow-loris: headers trickle in and never end
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	fmt.Fprintf(c, "POST /v1/answer HTTP/1.1\r\nHost: x\r\n")
	closed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, c)
		close(closed)
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
loop:
	for i := 0; ; i++ {
		select {
		case <-closed:
			break loop
		case <-tick.C:
			fmt.Fprintf(c, "X-Slow-%d: y\r\n", i)
		case <-time.After(5 * time.Second):
			t.Fatal("a slow-loris client kept its connection for 5 s")
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("slow headers cut off after %v", d)
	}

	// a body that stalls
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	fmt.Fprintf(c2, "POST /v1/answer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"query\":")
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c2), nil)
	if err != nil {
		t.Fatalf("stalled body: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	wantError(t, "stalled body", resp, body, 408, "request_timeout")

	if resp, body := post(t, url+"/v1/retrieve", `{"query": "still serving"}`); resp.StatusCode != 200 {
		t.Fatalf("after slow clients: %d %s", resp.StatusCode, body)
	}
}

// SIGTERM under load: the server stops taking requests, finishes every
// request in flight, and Serve returns cleanly.
func TestSIGTERMUnderLoad(t *testing.T) {
	p := testPipeline(t)
	s := New(Config{MaxBatch: 8, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	s.Ready(p)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()

	var ok, refused, bad atomic.Int32
	var wg sync.WaitGroup
	quit := make(chan struct{})
	for c := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			for i := 0; ; i++ {
				select {
				case <-quit:
					return
				default:
				}
				b, _ := json.Marshal(map[string]string{"query": fixQs[(c*7+i)%len(fixQs)]})
				resp, err := client.Post(url+"/v1/answer", "application/json", bytes.NewReader(b))
				if err != nil {
					refused.Add(1) // the listener is closed: not taken, not lost
					time.Sleep(10 * time.Millisecond)
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case 200:
					ok.Add(1)
				case 503: // draining
				default:
					bad.Add(1)
					t.Errorf("status %d: %s", resp.StatusCode, body)
				}
			}
		}()
	}
	for s.m.inFlight.Load() < 8 {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	inFlight := s.m.inFlight.Load()
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no shutdown 30 s after SIGTERM")
	}
	close(quit)
	wg.Wait()
	var sb strings.Builder
	s.m.requests.write(&sb)
	served := 0
	for _, line := range strings.Split(sb.String(), "\n") {
		if strings.HasPrefix(line, `re2g_http_requests_total{endpoint="answer",code="200"}`) {
			fmt.Sscan(strings.Fields(line)[1], &served)
		}
	}
	if served != int(ok.Load()) {
		t.Fatalf("the server answered %d requests, the clients received %d: answers were lost in the shutdown", served, ok.Load())
	}
	if inFlight == 0 || bad.Load() != 0 {
		t.Fatalf("%d in flight at SIGTERM, %d bad", inFlight, bad.Load())
	}
	t.Logf("SIGTERM with %d requests in flight: %d answered in all, %d refused after the listener closed", inFlight, ok.Load(), refused.Load())
}
