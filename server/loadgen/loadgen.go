// Package loadgen drives a re2g server with concurrent closed-loop clients
// and reports throughput, latency percentiles, errors and the server's
// resident memory (from its /metrics).
package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config is one load run.
type Config struct {
	URL      string        // server base URL, e.g. http://127.0.0.1:8080
	Path     string        // endpoint, e.g. /v1/answer
	Bodies   [][]byte      // request bodies, sent round-robin
	Clients  int           // concurrent clients, each one request at a time
	Duration time.Duration // how long to send
	Token    string        // bearer token ("": none)
	Timeout  time.Duration // per-request client timeout (default 2 minutes)
}

// Report is a run's outcome. Latencies are those of the 200 responses.
type Report struct {
	Requests           int            // responses and transport errors
	OK                 int            // 200
	Rejected           int            // 429 (deliberate back-pressure)
	Errors             int            // anything else, transport errors included
	ErrorKinds         map[string]int // status code or error text → count
	Seconds            float64
	Throughput         float64 // OK per second
	P50, P95, P99, Max time.Duration
}

// Run sends load until cfg.Duration has passed or ctx ends, then waits for
// the requests in flight.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Clients <= 0 || len(cfg.Bodies) == 0 || cfg.Duration <= 0 {
		return nil, fmt.Errorf("loadgen: want clients > 0, bodies and a duration")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Minute
	}
	client := &http.Client{Timeout: cfg.Timeout, Transport: &http.Transport{MaxIdleConns: cfg.Clients, MaxIdleConnsPerHost: cfg.Clients}}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var (
		next  atomic.Uint64
		mu    sync.Mutex
		lat   []time.Duration
		rep   = &Report{ErrorKinds: map[string]int{}}
		wg    sync.WaitGroup
		start = time.Now()
	)
	for range cfg.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				body := cfg.Bodies[int(next.Add(1)-1)%len(cfg.Bodies)]
				// the request itself is not cut by the run's end: it finishes
				req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), "POST", cfg.URL+cfg.Path, bytes.NewReader(body))
				if err != nil {
					return
				}
				req.Header.Set("Content-Type", "application/json")
				if cfg.Token != "" {
					req.Header.Set("Authorization", "Bearer "+cfg.Token)
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				var code int
				retry := time.Duration(0)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					code = resp.StatusCode
					if s, e := strconv.Atoi(resp.Header.Get("Retry-After")); e == nil {
						retry = time.Duration(s) * time.Second
					}
				}
				d := time.Since(t0)
				mu.Lock()
				rep.Requests++
				switch {
				case err != nil:
					rep.Errors++
					rep.ErrorKinds[shortErr(err)]++
				case code == 200:
					rep.OK++
					lat = append(lat, d)
				case code == 429:
					rep.Rejected++
				default:
					rep.Errors++
					rep.ErrorKinds[strconv.Itoa(code)]++
				}
				mu.Unlock()
				if retry > 0 {
					select {
					case <-ctx.Done():
					case <-time.After(min(retry, time.Second)):
					}
				}
			}
		}()
	}
	wg.Wait()
	rep.Seconds = time.Since(start).Seconds()
	rep.Throughput = float64(rep.OK) / rep.Seconds
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	rep.P50, rep.P95, rep.P99 = pct(lat, 0.50), pct(lat, 0.95), pct(lat, 0.99)
	if len(lat) > 0 {
		rep.Max = lat[len(lat)-1]
	}
	return rep, nil
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

// pct is the q-quantile of sorted latencies (nearest rank).
func pct(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// ResidentBytes reads process_resident_memory_bytes from the server's /metrics.
func ResidentBytes(ctx context.Context, url, token string) (int64, error) {
	v, err := Metric(ctx, url, token, "process_resident_memory_bytes")
	return int64(v), err
}

// Metric reads one unlabelled sample from the server's /metrics.
func Metric(ctx context.Context, url, token, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("metrics: status %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("metrics: no %s", name)
}
