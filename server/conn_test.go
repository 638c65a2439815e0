package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawExchange sends raw bytes on a fresh connection and reads one response
// (within limit).
func rawExchange(t *testing.T, addr, send string, limit time.Duration) (*http.Response, []byte, time.Duration) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if _, err := io.WriteString(c, send); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(limit))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%.60q: no response within %v: %v", send, limit, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, body, time.Since(start)
}

// Slow clients: headers or a body that never complete are cut off by the
// timeouts, with a JSON 408.
func TestSlowClients(t *testing.T) {
	_, url := wordServer(t, Config{ReadHeaderTimeout: 200 * time.Millisecond, ReadTimeout: 400 * time.Millisecond}, nil)
	addr := strings.TrimPrefix(url, "http://")

	// slow-loris: headers trickle in and never end
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	fmt.Fprintf(c, "POST /v1/answer HTTP/1.1\r\nHost: x\r\n")
	type reply struct {
		b   []byte
		err error
	}
	closed := make(chan reply, 1)
	go func() {
		b, err := io.ReadAll(c)
		closed <- reply{b, err}
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var got reply
loop:
	for i := 0; ; i++ {
		select {
		case got = <-closed:
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
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(got.b))), nil)
	if err != nil {
		t.Fatalf("slow headers: no HTTP response before the close: %q", got.b)
	}
	body, _ := io.ReadAll(resp.Body)
	wantError(t, "slow headers", resp, body, 408, "request_timeout")

	// headers that stop mid-way, in the request line or in a header
	for _, partial := range []string{"POST /v1/ans", "POST /v1/answer HTTP/1.1\r\nHost: x\r\nContent-Ty"} {
		resp, body, d := rawExchange(t, addr, partial, 3*time.Second)
		wantError(t, fmt.Sprintf("headers stopping at %q", partial), resp, body, 408, "request_timeout")
		if d > 2*time.Second {
			t.Errorf("headers stopping at %q: answered after %v", partial, d)
		}
	}

	// a body that stalls
	resp, body, _ = rawExchange(t, addr, "POST /v1/answer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"query\":", 5*time.Second)
	wantError(t, "stalled body", resp, body, 408, "request_timeout")

	// an idle connection is closed without a word
	c3, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	c3.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, _ := io.ReadAll(c3); len(b) != 0 {
		t.Errorf("an idle connection got %q", b)
	}

	if resp, body := post(t, url+"/v1/retrieve", `{"query": "still serving"}`); resp.StatusCode != 200 {
		t.Fatalf("after slow clients: %d %s", resp.StatusCode, body)
	}
}

// A Content-Length over MaxBody is refused at once, not after waiting for
// a body that will never be that long.
func TestContentLengthOverLimit(t *testing.T) {
	s, url := wordServer(t, Config{MaxBody: 1 << 20}, nil) // ReadTimeout 30 s
	addr := strings.TrimPrefix(url, "http://")
	resp, body, d := rawExchange(t, addr, "POST /v1/answer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n{\"query\": \"x\"}", 5*time.Second)
	wantError(t, "10 GB Content-Length", resp, body, 413, "body_too_large")
	if d > 2*time.Second {
		t.Errorf("413 after %v", d)
	}
	if !resp.Close {
		t.Error("the connection stays open with 10 GB unread")
	}
	if !strings.Contains(string(body), "10000000000") {
		t.Errorf("the message does not name the Content-Length: %s", body)
	}
	// at the limit is fine
	q := `{"query": "` + strings.Repeat("a", 1000) + `"}`
	if resp, body := post(t, url+"/v1/retrieve", q); resp.StatusCode != 200 {
		t.Fatalf("small body: %d %s", resp.StatusCode, body)
	}
	if v, _ := gather(t, s).value("re2g_http_errors_total", "endpoint", "answer", "error", "body_too_large"); v != 1 {
		t.Errorf("413s counted: %v", v)
	}
}

// What net/http answers itself, before any handler runs, is the API's JSON
// error too, counted under endpoint "other".
func TestNetHTTPErrorsAreJSON(t *testing.T) {
	s, url := wordServer(t, Config{}, nil)
	addr := strings.TrimPrefix(url, "http://")
	cases := []struct {
		name, send string
		status     int
		code, msg  string
	}{
		{"garbage", "GARBAGE\r\n\r\n", 400, "bad_request", "malformed HTTP request"},
		{"no Host", "GET /healthz HTTP/1.1\r\n\r\n", 400, "bad_request", "missing required Host header"},
		{"bad Content-Length", "POST /v1/answer HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400, "bad_request", "malformed HTTP request"},
		{"headers too large", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 80<<10) + "\r\n\r\n", 431, "headers_too_large", "too large"},
		{"unknown transfer coding", "POST /v1/answer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: zip\r\n\r\n", 501, "not_implemented", "transfer encoding"},
	}
	for _, c := range cases {
		resp, body, _ := rawExchange(t, addr, c.send, 5*time.Second)
		wantError(t, c.name, resp, body, c.status, c.code)
		if !strings.Contains(string(body), c.msg) {
			t.Errorf("%s: message %s, want %q in it", c.name, body, c.msg)
		}
		if resp.Header.Get("X-Request-Id") == "" || resp.Header.Get("Date") == "" || !resp.Close {
			t.Errorf("%s: headers %v", c.name, resp.Header)
		}
	}
	mf := gather(t, s)
	for _, c := range []struct {
		code, err string
		n         float64
	}{{"400", "bad_request", 3}, {"431", "headers_too_large", 1}, {"501", "not_implemented", 1}} {
		if v, _ := mf.value("re2g_http_requests_total", "endpoint", "other", "code", c.code); v != c.n {
			t.Errorf("requests with %s: %v, want %v", c.code, v, c.n)
		}
		if v, _ := mf.value("re2g_http_errors_total", "endpoint", "other", "error", c.err); v != c.n {
			t.Errorf("errors %s: %v, want %v", c.err, v, c.n)
		}
	}
	// keep-alive requests after a handler's answer are untouched
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for i := range 3 {
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("keep-alive request %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.Contains(string(body), "ok") {
			t.Fatalf("keep-alive request %d: %d %s", i, resp.StatusCode, body)
		}
	}
}

func TestParseNetHTTPError(t *testing.T) {
	for in, want := range map[string]string{
		"HTTP/1.1 400 Bad Request" + netHTTPErrorHeaders + "400 Bad Request":                                                             "400 bad_request malformed HTTP request",
		"HTTP/1.1 400 Bad Request: missing required Host header" + netHTTPErrorHeaders + "400 Bad Request: missing required Host header": "400 bad_request missing required Host header",
		"HTTP/1.1 418 I'm a teapot" + netHTTPErrorHeaders + "short and stout":                                                            "418 http_error short and stout",
		// handlers' responses carry other headers first
		"HTTP/1.1 400 Bad Request\r\nDate: x" + netHTTPErrorHeaders:            "",
		"HTTP/1.1 200 OK" + netHTTPErrorHeaders + "fine":                       "",
		"HTTP/1.0 400 Bad Request" + netHTTPErrorHeaders:                       "",
		"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n\r\n{}": "",
	} {
		e := parseNetHTTPError([]byte(in))
		got := ""
		if e != nil {
			got = fmt.Sprintf("%d %s %s", e.Status, e.Code, e.Message)
		}
		if got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}
