package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// net/http answers some requests itself, before any handler runs, in plain
// text: a malformed request line or header or a bad Content-Length (400),
// headers over MaxHeaderBytes (431), an unknown transfer coding (501) and a
// request line that ReadHeaderTimeout cuts off (400); headers that the
// timeout cuts off after the request line get no answer at all. Serve wraps
// each connection so that those answers are the API's JSON errors, and a
// request whose headers do not arrive in time gets a 408.
//
// A connection is "between requests" from net/http's StateNew or StateIdle
// (reported by Server.ConnState before it reads the next request) to
// StateActive (once a request has been read). A read that times out then,
// after some bytes of a request arrived, is a header timeout: the
// connection answers 408 itself, and swallows the plain-text reply net/http
// may write next. net/http's own replies are recognized by their fixed
// form: the status line followed at once by netHTTPErrorHeaders (a handler's
// response always carries a Date header in between).

const netHTTPErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

type listener struct {
	net.Listener
	s *Server
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &conn{Conn: c, s: l.s}, nil
}

type conn struct {
	net.Conn
	s *Server

	mu      sync.Mutex
	between bool // waiting for the next request's headers
	got     int  // bytes read since the connection was last between requests
	replied bool // this connection's JSON error reply is written
}

// connState is the http.Server's ConnState hook.
func (s *Server) connState(c net.Conn, st http.ConnState) {
	cc, ok := c.(*conn)
	if !ok {
		return
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	switch st {
	case http.StateNew, http.StateIdle:
		cc.between, cc.got = true, 0
	case http.StateActive:
		cc.between = false
	}
}

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.between {
		return n, err
	}
	c.got += n
	var ne net.Error
	if err != nil && errors.As(err, &ne) && ne.Timeout() && c.got > 0 && !c.replied {
		c.reply(errorf(http.StatusRequestTimeout, "request_timeout", "the request headers were not sent within %v", c.s.cfg.ReadHeaderTimeout))
	}
	return n, err
}

func (c *conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.replied {
		c.mu.Unlock()
		return len(p), nil // net/http's plain-text reply after ours
	}
	if e := parseNetHTTPError(p); e != nil {
		c.reply(e)
		c.mu.Unlock()
		return len(p), nil
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// CloseWrite lets net/http half-close the connection after a 431, as it
// does on a bare TCP connection.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// reply writes e as a JSON response that closes the connection, and counts
// and logs it like a handler's error. c.mu is held.
func (c *conn) reply(e *apiError) {
	c.replied = true
	id := strconv.FormatUint(c.s.reqID.Add(1), 10)
	body, _ := json.Marshal(map[string]*apiError{"error": e})
	body = append(body, '\n')
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\nDate: %s\r\nX-Request-Id: %s\r\n\r\n",
		e.Status, http.StatusText(e.Status), len(body), time.Now().UTC().Format(http.TimeFormat), id)
	b.Write(body)
	c.s.m.requests.WithLabelValues("other", strconv.Itoa(e.Status)).Inc()
	c.s.m.errors.WithLabelValues("other", e.Code).Inc()
	c.s.log.Info("request", "id", id, "status", e.Status, "bytes", len(body), "remote", c.RemoteAddr().String(), "error", e.Code)
	c.Conn.Write(b.Bytes())
}

// parseNetHTTPError recognizes one of net/http's own plain-text replies
// ("HTTP/1.1 400 Bad Request: reason" + netHTTPErrorHeaders + text) and
// returns it as an apiError, or nil.
func parseNetHTTPError(p []byte) *apiError {
	rest, ok := bytes.CutPrefix(p, []byte("HTTP/1.1 "))
	if !ok {
		return nil
	}
	line, body, ok := bytes.Cut(rest, []byte(netHTTPErrorHeaders))
	if !ok || bytes.Contains(line, []byte("\r\n")) || len(line) < 3 {
		return nil
	}
	status, err := strconv.Atoi(string(line[:3]))
	if err != nil || status < 400 || status > 599 {
		return nil
	}
	code := map[int]string{
		http.StatusBadRequest:                  "bad_request",
		http.StatusRequestHeaderFieldsTooLarge: "headers_too_large",
		http.StatusNotImplemented:              "not_implemented",
	}[status]
	if code == "" {
		code = "http_error"
	}
	// net/http's text is "400 Bad Request" or "400 Bad Request: reason"
	head := fmt.Sprintf("%d %s", status, http.StatusText(status))
	msg := strings.TrimPrefix(strings.TrimPrefix(string(body), head), ": ")
	if msg == "" {
		msg = map[int]string{
			http.StatusBadRequest:                  "malformed HTTP request",
			http.StatusRequestHeaderFieldsTooLarge: "the request headers are too large",
		}[status]
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return errorf(status, code, "%s", msg)
}
