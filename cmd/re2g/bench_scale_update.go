package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/indexdir"
	"github.com/re2g/re2g/internal/procstat"
	"github.com/re2g/re2g/internal/synthcorpus"
)

// updatePage is the first page number of the passages the update stage
// adds: far above any corpus's (ids 51000000::[k,k] on).
const updatePage = 50_000_000

// updateStage is the live updates of one size's index, made while a re2g
// serve of it answers: passages added with their vectors, then deleted,
// then (up to --compact-max) the index compacted, each by re2g index in a
// child and followed by a SIGHUP to the server.
type updateStage struct {
	Passages       int                `json:"passages"` // added, then deleted
	Add            childRun           `json:"add"`
	Delete         childRun           `json:"delete"`
	Compact        *childRun          `json:"compact,omitempty"`
	CompactSkipped string             `json:"compact_skipped,omitempty"`
	Reload         map[string]float64 `json:"reload_seconds"` // SIGHUP to /readyz at the new generation, by update
	// During is /v1/retrieve, one request at a time from the first update
	// to the last reload; Errors counts the requests that failed.
	During   latency         `json:"during"`
	Errors   int             `json:"errors"`
	ServeRSS procstat.Memory `json:"serve_after_kib"`
}

// readyState is what /readyz says of the index served.
type readyState struct {
	Status     string `json:"status"`
	Passages   int    `json:"passages"`
	Generation int    `json:"generation"`
}

// scaleServer is a re2g serve child of the bench.
type scaleServer struct {
	cmd     *exec.Cmd
	url     string
	exited  chan error
	log     *os.File
	logPath string
	stopped bool
}

// startScaleServe starts re2g serve on the index with the query encoder
// (its output in dir/name.log) and waits until it is ready.
func startScaleServe(ctx context.Context, cfg *scaleConfig, dir, name, index string) (*scaleServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &scaleServer{url: "http://" + addr, exited: make(chan error, 1), logPath: filepath.Join(dir, name+".log")}
	if s.log, err = os.Create(s.logPath); err != nil {
		return nil, err
	}
	s.cmd = exec.CommandContext(ctx, cfg.bin, "--log-level", "warn", "serve", "--index", index, "--query-encoder", cfg.models.BaseQuery, "--addr", addr)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		s.log.Close()
		return nil, err
	}
	go func() { s.exited <- s.cmd.Wait() }()
	if err := waitReady(ctx, s.url, s.exited, 30*time.Minute); err != nil {
		s.kill()
		return nil, fmt.Errorf("%w (log: %s)", err, s.logPath)
	}
	return s, nil
}

// kill ends the server at once, unless it was stopped (deferred, for a
// failure).
func (s *scaleServer) kill() {
	if s.stopped {
		return
	}
	s.stopped = true
	s.cmd.Process.Kill()
	<-s.exited
	s.log.Close()
}

// stop ends the server with SIGTERM, as an operator would, and reports an
// exit that is not clean.
func (s *scaleServer) stop() error {
	s.stopped = true
	defer s.log.Close()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.exited:
		if err != nil {
			return fmt.Errorf("re2g serve exited with %v after SIGTERM (log: %s)", err, s.logPath)
		}
		return nil
	case <-time.After(2 * time.Minute):
		s.cmd.Process.Kill()
		<-s.exited
		return errors.New("re2g serve did not stop 2 minutes after SIGTERM")
	}
}

func (s *scaleServer) ready(ctx context.Context) (readyState, error) {
	var r readyState
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/readyz", nil)
	if err != nil {
		return r, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return r, fmt.Errorf("GET /readyz: %s: %w", resp.Status, err)
	}
	return r, nil
}

// retrieve posts one query to /v1/retrieve and returns the candidates' ids.
func (s *scaleServer) retrieve(ctx context.Context, client *http.Client, q string) ([]string, error) {
	body, _ := json.Marshal(map[string]string{"query": q})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/v1/retrieve", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("POST /v1/retrieve: %s: %s", resp.Status, b)
	}
	var out struct {
		Candidates []struct {
			ID string `json:"id"`
		} `json:"candidates"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("POST /v1/retrieve: %w", err)
	}
	ids := make([]string, len(out.Candidates))
	for i, c := range out.Candidates {
		ids[i] = c.ID
	}
	return ids, nil
}

// reload sends SIGHUP and waits until /readyz reports a generation after
// from with want passages; it returns the seconds that took.
func (s *scaleServer) reload(ctx context.Context, from, want int) (float64, error) {
	t0 := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		return 0, err
	}
	deadline := t0.Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-s.exited:
			s.exited <- err
			return 0, fmt.Errorf("re2g serve exited while reloading: %v (log: %s)", err, s.logPath)
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		r, err := s.ready(ctx)
		if err != nil || r.Generation <= from {
			continue
		}
		if r.Passages != want {
			return 0, fmt.Errorf("after the reload /readyz says generation %d with %d passages, want %d", r.Generation, r.Passages, want)
		}
		return time.Since(t0).Seconds(), nil
	}
	return 0, fmt.Errorf("re2g serve did not reload past generation %d in 10 minutes (log: %s)", from, s.logPath)
}

// scaleUpdates is the update stage: cfg.updates new passages (pages from
// updatePage, vectors from their own stream) added to the index, found by
// a query made of their text once the server has reloaded, deleted, no
// longer found, and the index compacted (up to cfg.compactMax passages),
// while a client keeps querying the server. The index is left with the
// corpus's passages (and, without compaction, the tombstones).
func scaleUpdates(ctx context.Context, cfg *scaleConfig, dir, index string, n int, child func(string, ...string) (childRun, error)) (*updateStage, error) {
	k := cfg.updates
	corpus := filepath.Join(dir, "update.jsonl.gz")
	vecs, ids := filepath.Join(dir, "update.npy"), filepath.Join(dir, "update.ids")
	if cfg.src == nil {
		var err error
		if cfg.src, err = synthcorpus.Load(cfg.data); err != nil {
			return nil, err
		}
	}
	if _, err := synthcorpus.WriteFrom(corpus, updatePage, k, cfg.seed+1, cfg.src); err != nil {
		return nil, err
	}
	if _, err := writeScaleVectors(ctx, corpus, vecs, ids, k, cfg.dim, 3); err != nil {
		return nil, err
	}
	// the probe: the first added passage, queried by its text
	var probe indexdir.Passage
	if _, err := indexdir.ReadCorpus(ctx, corpus, &data.Report{}, func(p indexdir.Passage) error {
		if probe.ID == "" {
			probe = p
		}
		return nil
	}); err != nil {
		return nil, err
	}
	// a run stopped between the add and the delete left the passages in
	if _, err := child("update-undo", "--progress", "log", "index", "delete", "--index", index, "--ids", ids, "--ignore-missing"); err != nil {
		return nil, err
	}
	srv, err := startScaleServe(ctx, cfg, dir, "update-serve", index)
	if err != nil {
		return nil, err
	}
	defer srv.kill()
	before, err := srv.ready(ctx)
	if err != nil {
		return nil, err
	}
	if before.Passages != n {
		return nil, fmt.Errorf("the server holds %d passages, want %d", before.Passages, n)
	}

	// the client: one request at a time until the last reload
	client := &http.Client{Timeout: time.Minute}
	var (
		mu     sync.Mutex
		ms     []float64
		errs   int
		lastEr error
	)
	lctx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; lctx.Err() == nil; i++ {
			t0 := time.Now()
			_, err := srv.retrieve(lctx, client, cfg.questions[i%len(cfg.questions)])
			d := float64(time.Since(t0).Nanoseconds()) / 1e6
			mu.Lock()
			if err != nil && lctx.Err() == nil {
				errs++
				lastEr = err
			} else if err == nil {
				ms = append(ms, d)
			}
			mu.Unlock()
		}
	})
	defer func() { stopLoad(); wg.Wait() }()

	s := &updateStage{Passages: k, Reload: map[string]float64{}}
	query := strings.Join(strings.Fields(probe.Text)[:min(40, len(strings.Fields(probe.Text)))], " ")
	found := func() (bool, error) {
		got, err := srv.retrieve(ctx, client, query)
		return slices.Contains(got, probe.ID), err
	}
	gen := before.Generation
	step := func(name string, want int, args ...string) (childRun, error) {
		run, err := child("update-"+name, append([]string{"--progress", "log", "index", name, "--index", index}, args...)...)
		if err != nil {
			return run, err
		}
		if s.Reload[name], err = srv.reload(ctx, gen, want); err != nil {
			return run, fmt.Errorf("after index %s: %w", name, err)
		}
		r, err := srv.ready(ctx)
		gen = r.Generation
		slog.Info("bench scale: updated and reloaded", "update", name, "seconds", run.Seconds, "reload_seconds", s.Reload[name], "generation", gen, "passages", r.Passages)
		return run, err
	}
	if s.Add, err = step("add", n+k, "--corpus", corpus, "--vectors", vecs, "--vector-ids", ids); err != nil {
		return nil, err
	}
	if ok, err := found(); err != nil || !ok {
		return nil, fmt.Errorf("after adding %s and reloading, a query of its text does not retrieve it (%v)", probe.ID, err)
	}
	if s.Delete, err = step("delete", n, "--ids", ids); err != nil {
		return nil, err
	}
	if ok, err := found(); err != nil || ok {
		return nil, fmt.Errorf("after deleting %s and reloading, a query of its text still retrieves it (%v)", probe.ID, err)
	}
	if cfg.compactMax > 0 && n > cfg.compactMax {
		s.CompactSkipped = fmt.Sprintf("--compact-max %d", cfg.compactMax)
	} else {
		run, err := step("compact", n)
		if err != nil {
			return nil, err
		}
		s.Compact = &run
	}
	stopLoad()
	wg.Wait()
	if s.ServeRSS, err = procstat.Read(srv.cmd.Process.Pid); err != nil {
		return nil, err
	}
	if err := srv.stop(); err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("no request answered during the updates (%d failed: %v)", errs, lastEr)
	}
	s.During, s.Errors = summarize(ms), errs
	if errs > 0 {
		slog.Warn("bench scale: requests failed during the updates", "failed", errs, "last", lastEr)
	}
	for _, f := range []string{corpus, vecs, ids} {
		os.Remove(f)
	}
	return s, nil
}

// summarize is the latency of operations that took ms milliseconds.
func summarize(ms []float64) latency {
	ms = slices.Sorted(slices.Values(ms))
	n := len(ms)
	sum := 0.0
	for _, v := range ms {
		sum += v
	}
	rank := func(p float64) float64 { return ms[max(0, int(math.Ceil(p*float64(n)))-1)] }
	return latency{N: n, P50: rank(0.5), P99: rank(0.99), Mean: sum / float64(n)}
}
