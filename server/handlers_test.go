package server

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/re2g/re2g/pipeline"
)

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Each endpoint answers from the service behind the server.
func TestServiceEndpoints(t *testing.T) {
	_, url := wordServer(t, Config{}, nil)
	resp, body := post(t, url+"/v1/answer", `{"query": "who elects the delegates?"}`)
	var res pipeline.Result
	if resp.StatusCode != 200 || json.Unmarshal(body, &res) != nil || res.Answer != "Convention" || len(res.Provenance) != 2 {
		t.Fatalf("answer: %d %s", resp.StatusCode, body)
	}
	resp, body = post(t, url+"/v1/retrieve", `{"query": "tea plant"}`)
	var rr RetrieveResponse
	if resp.StatusCode != 200 || json.Unmarshal(body, &rr) != nil || len(rr.Candidates) != 2 || rr.Candidates[0].ID != "tea" {
		t.Fatalf("retrieve: %d %s", resp.StatusCode, body)
	}
	resp, body = post(t, url+"/v1/retrieve", `{"query": "zebra"}`)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"candidates":[]`) {
		t.Fatalf("retrieve with no hits: %d %s", resp.StatusCode, body)
	}
	resp, body = post(t, url+"/v1/rerank", `{"query": "hot tea", "passages": [{"id": "a", "text": "cold coffee"}, {"text": "hot tea"}, {"id": "c", "text": "hot water"}], "top_k": 2}`)
	var rk RerankResponse
	if resp.StatusCode != 200 || json.Unmarshal(body, &rk) != nil || len(rk.Passages) != 2 || rk.Passages[0].ID != "1" || rk.Passages[1].ID != "c" {
		t.Fatalf("rerank: %d %s", resp.StatusCode, body)
	}
	resp, body = post(t, url+"/v1/encode", `{"queries": ["one", "two words"]}`)
	var en EncodeResponse
	if resp.StatusCode != 200 || json.Unmarshal(body, &en) != nil || en.Dim != wordDim || len(en.Vectors) != 2 || len(en.Vectors[1]) != wordDim {
		t.Fatalf("encode: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, mustReq(t, "GET", url+"/readyz", ""))
	var ready ReadyResponse
	if resp.StatusCode != 200 || json.Unmarshal(body, &ready) != nil || ready.Passages != 6 || !ready.Models["reranker"] || !ready.Batching {
		t.Fatalf("readyz: %d %s", resp.StatusCode, body)
	}
}

// Without a reranker or a query encoder, their endpoints answer 501; a
// server not yet Ready answers 503 on /readyz and /v1/*.
func TestCapabilities(t *testing.T) {
	svc := newWordService()
	svc.caps.Reranker, svc.caps.QueryEncoder, svc.caps.QueryDim = false, false, 0
	_, url := wordServer(t, Config{}, svc)
	resp, body := post(t, url+"/v1/rerank", `{"query": "q", "passages": [{"text": "t"}]}`)
	wantError(t, "rerank without a reranker", resp, body, 501, "no_model")
	resp, body = post(t, url+"/v1/encode", `{"queries": ["q"]}`)
	wantError(t, "encode without an encoder", resp, body, 501, "no_model")
	if resp, body = post(t, url+"/v1/answer", `{"query": "tea"}`); resp.StatusCode != 200 {
		t.Fatalf("answer: %d %s", resp.StatusCode, body)
	}

	s, err := New(Config{Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	answer := mustReq(t, "POST", "/v1/answer", `{"query": "x"}`)
	answer.Header.Set("Content-Type", "application/json")
	for _, r := range []*http.Request{mustReq(t, "GET", "/readyz", ""), answer} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		wantError(t, r.URL.Path+" before Ready", w.Result(), w.Body.Bytes(), 503, "not_ready")
	}
}

// A service's failure or panic answers 500 without internals, for the bad
// request only.
func TestServiceFailures(t *testing.T) {
	_, url := wordServer(t, Config{}, nil)
	resp, body := post(t, url+"/v1/answer", `{"query": "please fail"}`)
	wantError(t, "failing batch", resp, body, 500, "internal")
	resp, body = post(t, url+"/v1/retrieve", `{"query": "please panic"}`)
	wantError(t, "panicking batch", resp, body, 500, "internal")
	if resp, body = post(t, url+"/v1/retrieve", `{"query": "tea"}`); resp.StatusCode != 200 {
		t.Fatalf("after a panic: %d %s", resp.StatusCode, body)
	}
}

// The OpenAPI document is valid JSON, OpenAPI 3, and describes exactly the
// routes the server has.
func TestOpenAPI(t *testing.T) {
	_, url := wordServer(t, Config{}, nil)
	resp, body := do(t, mustReq(t, "GET", url+"/openapi.json", ""))
	var doc struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
		Comp    struct {
			Schemas map[string]map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &doc) != nil || !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi: %d %.200s", resp.StatusCode, body)
	}
	n := 0
	for _, r := range Routes {
		method, path, _ := strings.Cut(r, " ")
		op := doc.Paths[path][strings.ToLower(method)]
		if op == nil {
			t.Errorf("route %s is not in the document", r)
			continue
		}
		if method == "POST" {
			if resps, _ := op["responses"].(map[string]any); resps["415"] == nil {
				t.Errorf("route %s does not document 415", r)
			}
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
	if props, _ := doc.Comp.Schemas["Ready"]["properties"].(map[string]any); props["index"] != nil || props["passages"] == nil {
		t.Errorf("Ready schema: %v", props)
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
	_, url := wordServer(t, Config{MaxBody: 4096, MaxQueryLen: 100, MaxPassages: 3, MaxPassageLen: 200, MaxItems: 2}, nil)
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
		{"trailing garbage", "/v1/answer", `{"query": "x"}]`, 400, "malformed_json"},
		{"wrong type", "/v1/answer", `{"query": 42}`, 400, "wrong_type"},
		{"wrong type array", "/v1/retrieve", `{"query": ["a"]}`, 400, "wrong_type"},
		{"body not an object", "/v1/answer", `["who"]`, 400, "wrong_type"},
		{"wrong type nested", "/v1/rerank", `{"query": "q", "passages": [{"text": 1}]}`, 400, "wrong_type"},
		{"wrong type top_k", "/v1/rerank", `{"query": "q", "passages": [{"text": "t"}], "top_k": "2"}`, 400, "wrong_type"},
		{"fractional top_k", "/v1/rerank", `{"query": "q", "passages": [{"text": "t"}], "top_k": 1.5}`, 400, "wrong_type"},
		{"unknown field", "/v1/answer", `{"query": "x", "k": 3}`, 400, "unknown_field"},
		{"unknown nested field", "/v1/rerank", `{"query": "q", "passages": [{"text": "t", "score": 1}]}`, 400, "unknown_field"},
		// encoding/json would take these: names match case-insensitively there,
		// and the last of duplicate names wins
		{"upper-case name", "/v1/answer", `{"QUERY": "x"}`, 400, "unknown_field"},
		{"capitalised name", "/v1/retrieve", `{"Query": "x"}`, 400, "unknown_field"},
		{"upper-case nested name", "/v1/rerank", `{"query": "q", "passages": [{"TEXT": "t"}]}`, 400, "unknown_field"},
		{"duplicate name", "/v1/answer", `{"query": "x", "query": "y"}`, 400, "duplicate_field"},
		{"duplicate nested name", "/v1/rerank", `{"query": "q", "passages": [{"text": "a", "text": "b"}]}`, 400, "duplicate_field"},
		{"duplicate list", "/v1/encode", `{"queries": ["a"], "queries": ["b"]}`, 400, "duplicate_field"},
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

// The messages name what is wrong and where.
func TestBadInputMessages(t *testing.T) {
	_, url := wordServer(t, Config{}, nil)
	for body, want := range map[string]string{
		`{"QUERY": "x"}`: `unknown field "QUERY" at /QUERY`,
		`{"query": "q", "passages": [{"text": "a", "text": "b"}]}`: `duplicate field "text" at /passages/0/text`,
		`{"query": "q", "passages": [{"text": 1}]}`:                `field /passages/0/text: want a string, got a number`,
		`["who"]`: `the body must be a JSON object, not an array`,
	} {
		path := "/v1/answer"
		if strings.Contains(body, "passages") {
			path = "/v1/rerank"
		}
		_, b := post(t, url+path, body)
		var e errorBody
		if json.Unmarshal(b, &e) != nil || !strings.Contains(e.Error.Message, want) {
			t.Errorf("%s: message %q, want %q", body, e.Error.Message, want)
		}
	}
}

// POST bodies must be declared JSON (UTF-8): anything else is 415.
func TestContentType(t *testing.T) {
	_, url := wordServer(t, Config{}, nil)
	body := `{"query": "tea"}`
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
		"application/json; charset=latin1", "application/jsonx", "json", "application/json; =bad"} {
		req := mustReq(t, "POST", url+"/v1/retrieve", body)
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		resp, b := do(t, req)
		wantError(t, "Content-Type "+ct, resp, b, 415, "unsupported_media_type")
	}
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "Application/JSON; charset=UTF-8"} {
		if resp, b := post(t, url+"/v1/retrieve", body, "Content-Type", ct); resp.StatusCode != 200 {
			t.Errorf("Content-Type %q: %d %s", ct, resp.StatusCode, b)
		}
	}
}

func TestAuth(t *testing.T) {
	_, url := wordServer(t, Config{AuthToken: "s3cret-token-0123456789"}, nil)
	body := `{"query": "delegates"}`
	resp, b := post(t, url+"/v1/retrieve", body)
	wantError(t, "no token", resp, b, 401, "unauthorized")
	if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Error("401 without WWW-Authenticate: Bearer")
	}
	resp, b = post(t, url+"/v1/retrieve", body, "Authorization", "Bearer s3cret-token-0123456788")
	wantError(t, "wrong token", resp, b, 401, "unauthorized")
	resp, b = post(t, url+"/v1/retrieve", body, "Authorization", "Basic s3cret-token-0123456789")
	wantError(t, "wrong scheme", resp, b, 401, "unauthorized")
	resp, b = do(t, mustReq(t, "GET", url+"/metrics", ""))
	wantError(t, "metrics without token", resp, b, 401, "unauthorized")
	if resp, b = post(t, url+"/v1/retrieve", body, "Authorization", "Bearer s3cret-token-0123456789"); resp.StatusCode != 200 {
		t.Fatalf("right token: %d %s", resp.StatusCode, b)
	}
	if mf := scrape(t, url, "Authorization", "Bearer s3cret-token-0123456789"); mf["re2g_ready"] == nil {
		t.Fatal("metrics with the token")
	}
	for _, path := range []string{"/healthz", "/readyz", "/openapi.json"} {
		if resp, _ = do(t, mustReq(t, "GET", url+path, "")); resp.StatusCode != 200 {
			t.Fatalf("%s needs no token: %d", path, resp.StatusCode)
		}
	}
}
