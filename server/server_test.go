package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/indexdir"
	"github.com/re2g/re2g/internal/tinymodels"
	"github.com/re2g/re2g/neural"
	"github.com/re2g/re2g/pipeline"
	"github.com/re2g/re2g/torch"
)

const shared = "../../shared/data"

// The end-to-end tests serve the real pipeline; the others (handlers_test.go,
// conn_test.go, lifecycle_test.go) a wordService, without models.

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
	fixDir  string // the fixture's directory, the index beneath it
	fixDirs tinymodels.Dirs
	fixPs   []data.Passage // the SQuADShifts passages; the index holds the first 40
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
		fixDir = dir
		torch.SetNumThreads(2)
		dirs, err := tinymodels.Write(dir, tok, tinymodels.Tiny, 11)
		if err != nil {
			fixErr = err
			return
		}
		fixDirs, fixPs = dirs, sq.Passages
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
		enc, err := neural.LoadEncoder(dirs.CtxEncoder, neural.Options{MaxLength: 64})
		if err != nil {
			fixErr = err
			return
		}
		idx := filepath.Join(dir, "index")
		_, fixErr = indexdir.Build(context.Background(), corpusPath, indexdir.Options{Out: idx, Encoder: enc, EncoderDir: dirs.CtxEncoder, Progress: io.Discard})
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

// startServer runs a server with cfg and svc on a loopback port until the
// test ends.
func startServer(t *testing.T, cfg Config, svc Service) (*Server, string) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Ready(svc)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		// A connection the client opened but never used stays StateNew,
		// which Shutdown waits up to 5 s for: close the client's first.
		http.DefaultClient.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s, "http://" + ln.Addr().String()
}

// testServer serves the real pipeline (tiny models, real index).
func testServer(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	return startServer(t, cfg, testPipeline(t))
}

// wordServer serves a wordService: no models.
func wordServer(t *testing.T, cfg Config, svc *wordService) (*Server, string) {
	t.Helper()
	if svc == nil {
		svc = newWordService()
	}
	return startServer(t, cfg, svc)
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
		// /readyz needs no token: it must not show where the index lives
		if strings.Contains(string(body), fixDir) || strings.Contains(string(body), `"index"`) {
			t.Errorf("%s shows the index's path: %s", path, body)
		}
	}
	var ready ReadyResponse
	_, body = do(t, mustReq(t, "GET", url+"/readyz", ""))
	json.Unmarshal(body, &ready)
	if ready.Passages != 40 || !ready.Models["query_encoder"] || !ready.Models["reranker"] || !ready.Models["generator"] || !ready.Models["bm25"] {
		t.Errorf("readyz: %s", body)
	}
	mf := scrape(t, url)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"re2g_http_requests_total", []string{"endpoint", "answer", "code", "200"}, 1},
		{"re2g_http_request_duration_seconds", []string{"endpoint", "answer"}, 1},
		{"re2g_batch_size", []string{"stage", "encode"}, 1},
		{"re2g_queue_depth", []string{"stage", "answer"}, 0},
		{"re2g_ready", nil, 1},
	} {
		if v, ok := mf.value(c.name, c.labels...); !ok || v != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, v, ok, c.want)
		}
	}
	if v, _ := mf.value("process_resident_memory_bytes"); v <= 0 {
		t.Errorf("process_resident_memory_bytes = %v", v)
	}
	if v, ok := mf.value("re2g_torch_live_tensors"); !ok || v <= 0 {
		t.Errorf("re2g_torch_live_tensors = %v (present %v) with models loaded", v, ok)
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
	if n, _ := gather(t, s).value("re2g_batch_size", "stage", "answer"); n == 0 || n >= 12 {
		t.Fatalf("12 concurrent requests ran in %v batches", n)
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
