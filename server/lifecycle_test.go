package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// wordQueries are n distinct queries the wordService answers.
func wordQueries(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("who elects the delegates of state %d?", i)
	}
	return out
}

// Concurrent requests share batches.
func TestBatchingCoalesces(t *testing.T) {
	svc := newWordService()
	_, url := wordServer(t, Config{MaxBatch: 16, MaxWait: 300 * time.Millisecond}, svc)
	codes, bodies, _ := answerAll(t, url, wordQueries(12))
	for i, c := range codes {
		if c != 200 {
			t.Fatalf("request %d: %d %s", i, c, bodies[i])
		}
	}
	if sizes := svc.batchSizes("answer"); len(sizes) >= 12 {
		t.Fatalf("12 concurrent requests ran in batches of %v", sizes)
	}
}

// A full queue answers 429 with Retry-After; nothing else fails.
func TestQueueFull(t *testing.T) {
	for _, noBatch := range []bool{false, true} {
		svc := newWordService()
		svc.delay = 50 * time.Millisecond
		_, url := wordServer(t, Config{MaxBatch: 1, Queue: 1, NoBatching: noBatch}, svc)
		codes, bodies, hdrs := answerAll(t, url, wordQueries(24))
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
	svc := newWordService()
	svc.delay = 5 * time.Second
	_, url := wordServer(t, Config{Timeout: 100 * time.Millisecond, MaxWait: time.Millisecond}, svc)
	start := time.Now()
	resp, body := post(t, url+"/v1/answer", `{"query": "who elects the delegates?"}`)
	wantError(t, "deadline", resp, body, 504, "timeout")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("504 after %v", d)
	}
	resp, body = do(t, mustReq(t, "GET", url+"/healthz", ""))
	if resp.StatusCode != 200 {
		t.Fatalf("after a timeout: %d %s", resp.StatusCode, body)
	}
}

// Clients that leave mid-request (waiting for a batch or inside one) leave
// the others' answers intact, and their work is dropped.
func TestClientDisconnect(t *testing.T) {
	svc := newWordService()
	svc.delay = 300 * time.Millisecond
	s, url := wordServer(t, Config{MaxBatch: 16, MaxWait: 200 * time.Millisecond}, svc)
	var wg sync.WaitGroup
	var ok, gone atomic.Int32
	for i, q := range wordQueries(12) {
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
			req.Header.Set("Content-Type", "application/json")
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
		if v, _ := gather(t, s).value("re2g_http_requests_total", "endpoint", "answer", "code", "499"); v > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d clients left, the server counted no 499", gone.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, body := post(t, url+"/v1/answer", `{"query": "after the disconnects"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("after disconnects: %d %s", resp.StatusCode, body)
	}
}

// SIGTERM under load: the server stops taking requests, finishes every
// request in flight, and Serve returns cleanly.
func TestSIGTERMUnderLoad(t *testing.T) {
	svc := newWordService()
	svc.delay = 50 * time.Millisecond
	s, err := New(Config{MaxBatch: 8, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	s.Ready(svc)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()

	qs := wordQueries(64)
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
				b, _ := json.Marshal(map[string]string{"query": qs[(c*7+i)%len(qs)]})
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
	served, _ := gather(t, s).value("re2g_http_requests_total", "endpoint", "answer", "code", "200")
	if int(served) != int(ok.Load()) {
		t.Fatalf("the server answered %v requests, the clients received %d: answers were lost in the shutdown", served, ok.Load())
	}
	if inFlight == 0 || bad.Load() != 0 {
		t.Fatalf("%d in flight at SIGTERM, %d bad", inFlight, bad.Load())
	}
	t.Logf("SIGTERM with %d requests in flight: %d answered in all, %d refused after the listener closed", inFlight, ok.Load(), refused.Load())
}
