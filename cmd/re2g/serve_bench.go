package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/indexdir"
	"github.com/re2g/re2g/internal/tinymodels"
	"github.com/re2g/re2g/neural"
	"github.com/re2g/re2g/server/loadgen"
	"github.com/urfave/cli/v2"
)

func init() {
	subcommand("bench", "benchmarks", &cli.Command{
		Name:  "serve",
		Usage: "load-test re2g serve: N clients for T seconds, batching against no batching in the same run",
		Description: `Without --url, builds (once, under --work) small random models with the real bert-base-uncased
tokenizer and a DPR+BM25 index of the SQuADShifts paragraphs, then for each variant starts
"re2g serve" on a free loopback port with --serve-flags plus the variant's flags, warms it up, runs
the load, reads the server's resident memory from /metrics before and after, stops it with SIGTERM
(which must exit cleanly) and prints one table row. With --url, loads that server once.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "url", Usage: "load this running server instead of starting servers"},
			&cli.StringFlag{Name: "token-file", Usage: "bearer token for --url"},
			&cli.StringFlag{Name: "endpoint", Value: "answer", Usage: "answer, retrieve or encode"},
			&cli.IntFlag{Name: "clients", Value: 32, Usage: "concurrent clients"},
			&cli.DurationFlag{Name: "duration", Value: 60 * time.Second, Usage: "measured load per variant"},
			&cli.DurationFlag{Name: "warmup", Value: 30 * time.Second, Usage: "load before the memory baseline"},
			&cli.StringFlag{Name: "squad", Value: "../shared/data/squadshifts/new_wiki_v1.0.json", Usage: "SQuAD v1.1 file: corpus and questions"},
			&cli.StringFlag{Name: "tokenizer-json", Value: "../shared/data/tokenizers/bert-base-uncased/tokenizer.json", Usage: "tokenizer of the random models"},
			&cli.StringFlag{Name: "work", Value: "build/bench-serve", Usage: "models, index and server logs"},
			&cli.StringFlag{Name: "models", Value: "dpr,rerank,generate", Usage: "models the servers load, of dpr, rerank, generate (BM25 always runs)"},
			&cli.StringFlag{Name: "model-size", Value: "small", Usage: "random models: tiny (BERT 32x2, BART 16x1) or small (BERT 128x2, BART 64x2)"},
			&cli.StringFlag{Name: "serve-flags", Value: "--threads 2 --workers 1 --batch-size 64 --max-batch 32 --num-beams 4 --max-new-tokens 16",
				Usage: "flags for every server"},
			&cli.StringSliceFlag{Name: "variant", Value: cli.NewStringSlice("batching=", "no batching=--no-batching"),
				Usage: "NAME=FLAGS, one server each, in order (the first's throughput is compared with the others')"},
		},
		Action: benchServe,
	})
}

type benchRow struct {
	name           string
	rep            *loadgen.Report
	rssBefore      int64
	rssMid         int64 // half-way through the measured load
	rssAfter       int64
	heap, tensors  [2]float64 // Go heap in use and live libtorch tensors, before and after
	cleanExit      bool
	shutdownSecond float64
}

func benchServe(c *cli.Context) error {
	ctx := c.Context
	bodies, err := benchBodies(c)
	if err != nil {
		return err
	}
	path := "/v1/" + c.String("endpoint")
	lc := loadgen.Config{Path: path, Bodies: bodies, Clients: c.Int("clients"), Duration: c.Duration("duration")}
	if u := c.String("url"); u != "" {
		if f := c.String("token-file"); f != "" {
			b, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			lc.Token = strings.TrimSpace(string(b))
		}
		lc.URL = strings.TrimRight(u, "/")
		row, err := loadOnce(ctx, lc, c.Duration("warmup"))
		if err != nil {
			return err
		}
		printBench(c, []benchRow{row})
		return nil
	}
	models, index, err := benchFixture(c)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	var rows []benchRow
	for _, v := range c.StringSlice("variant") {
		name, flags, _ := strings.Cut(v, "=")
		args := []string{"--log-level", "warn", "serve", "--index", index}
		for _, m := range strings.Split(c.String("models"), ",") {
			switch strings.TrimSpace(m) {
			case "dpr":
				args = append(args, "--query-encoder", models.QueryEncoder)
			case "rerank":
				args = append(args, "--reranker", models.Reranker)
			case "generate":
				args = append(args, "--generator", models.Generator)
			case "":
			default:
				return fmt.Errorf("--models: unknown model %q", m)
			}
		}
		args = append(args, strings.Fields(c.String("serve-flags"))...)
		args = append(args, strings.Fields(flags)...)
		row, err := benchVariant(ctx, exe, args, filepath.Join(c.String("work"), "serve-"+strings.ReplaceAll(name, " ", "-")+".log"), lc, c.Duration("warmup"))
		if err != nil {
			return fmt.Errorf("variant %q: %w", name, err)
		}
		row.name = name
		rows = append(rows, row)
		fmt.Fprintf(os.Stderr, "%s: %.2f answers/s, p50 %v, %d errors, %d rejected\n", name, row.rep.Throughput, row.rep.P50.Round(time.Millisecond), row.rep.Errors, row.rep.Rejected)
	}
	printBench(c, rows)
	return nil
}

// benchBodies are request bodies made from the SQuAD questions.
func benchBodies(c *cli.Context) ([][]byte, error) {
	sq, err := data.LoadSQuAD(c.String("squad"), &data.Report{})
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, q := range sq.Questions {
		var v any = map[string]string{"query": q.Question}
		switch c.String("endpoint") {
		case "answer", "retrieve":
		case "encode":
			v = map[string][]string{"queries": {q.Question}}
		default:
			return nil, fmt.Errorf("--endpoint %q: want answer, retrieve or encode", c.String("endpoint"))
		}
		b, _ := json.Marshal(v)
		out = append(out, b)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s has no questions", c.String("squad"))
	}
	return out, nil
}

// benchFixture writes the random models and the index, once.
func benchFixture(c *cli.Context) (tinymodels.Dirs, string, error) {
	work := c.String("work")
	size := c.String("model-size")
	sz, err := tinymodels.ParseSize(size)
	if err != nil {
		return tinymodels.Dirs{}, "", err
	}
	mdir := filepath.Join(work, "models-"+size)
	dirs := tinymodels.Dirs{QueryEncoder: filepath.Join(mdir, "query-encoder"), CtxEncoder: filepath.Join(mdir, "ctx-encoder"),
		Reranker: filepath.Join(mdir, "reranker"), Generator: filepath.Join(mdir, "generator")}
	if _, err := os.Stat(filepath.Join(dirs.Generator, "tokenizer.json")); err != nil {
		tok, err := os.ReadFile(c.String("tokenizer-json"))
		if err != nil {
			return dirs, "", err
		}
		os.RemoveAll(mdir)
		if dirs, err = tinymodels.Write(mdir, tok, sz, 7); err != nil {
			return dirs, "", err
		}
	}
	index := filepath.Join(work, "index-"+size)
	if _, err := os.Stat(filepath.Join(index, "manifest.json")); err != nil {
		os.RemoveAll(index)
		enc, err := neural.LoadEncoder(dirs.CtxEncoder, neural.Options{MaxLength: 256, BatchSize: 64})
		if err != nil {
			return dirs, "", err
		}
		_, err = indexdir.Build(c.Context, c.String("squad"), indexdir.Options{Out: index, Encoder: enc, EncoderDir: dirs.CtxEncoder})
		enc.Close()
		if err != nil {
			return dirs, "", err
		}
	}
	return dirs, index, nil
}

// benchVariant starts a server, loads it and stops it with SIGTERM.
func benchVariant(ctx context.Context, exe string, args []string, logPath string, lc loadgen.Config, warmup time.Duration) (benchRow, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return benchRow{}, err
	}
	addr := ln.Addr().String()
	ln.Close()
	logf, err := os.Create(logPath)
	if err != nil {
		return benchRow{}, err
	}
	defer logf.Close()
	cmd := exec.Command(exe, append(args, "--addr", addr)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return benchRow{}, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
	}()
	lc.URL = "http://" + addr
	if err := waitReady(ctx, lc.URL, exited, 3*time.Minute); err != nil {
		return benchRow{}, fmt.Errorf("%w (log: %s)", err, logPath)
	}
	row, err := loadOnce(ctx, lc, warmup)
	if err != nil {
		return row, err
	}
	t0 := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		row.cleanExit = err == nil
		row.shutdownSecond = time.Since(t0).Seconds()
	case <-time.After(90 * time.Second):
		return row, fmt.Errorf("the server did not stop 90 s after SIGTERM (log: %s)", logPath)
	}
	return row, nil
}

func waitReady(ctx context.Context, url string, exited <-chan error, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("the server exited while loading: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
	}
	return errors.New("the server was not ready in time")
}

// loadOnce warms the server up, notes its memory, runs the load and notes it again.
func loadOnce(ctx context.Context, lc loadgen.Config, warmup time.Duration) (benchRow, error) {
	var row benchRow
	if warmup > 0 {
		w := lc
		w.Duration = warmup
		if _, err := loadgen.Run(ctx, w); err != nil {
			return row, err
		}
	}
	var err error
	if row.rssBefore, err = loadgen.ResidentBytes(ctx, lc.URL, lc.Token); err != nil {
		return row, err
	}
	row.heap[0], _ = loadgen.Metric(ctx, lc.URL, lc.Token, "go_memstats_heap_inuse_bytes")
	row.tensors[0], _ = loadgen.Metric(ctx, lc.URL, lc.Token, "re2g_torch_live_tensors")
	mid := make(chan int64, 1)
	go func() {
		select {
		case <-time.After(lc.Duration / 2):
			v, _ := loadgen.ResidentBytes(ctx, lc.URL, lc.Token)
			mid <- v
		case <-ctx.Done():
			mid <- 0
		}
	}()
	if row.rep, err = loadgen.Run(ctx, lc); err != nil {
		return row, err
	}
	row.rssMid = <-mid
	row.rssAfter, err = loadgen.ResidentBytes(ctx, lc.URL, lc.Token)
	row.heap[1], _ = loadgen.Metric(ctx, lc.URL, lc.Token, "go_memstats_heap_inuse_bytes")
	row.tensors[1], _ = loadgen.Metric(ctx, lc.URL, lc.Token, "re2g_torch_live_tensors")
	row.cleanExit = true
	return row, err
}

func printBench(c *cli.Context, rows []benchRow) {
	fmt.Printf("re2g bench serve: %s, %d clients, %v per variant after %v warm-up\n\n", "/v1/"+c.String("endpoint"), c.Int("clients"), c.Duration("duration"), c.Duration("warmup"))
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(w, " variant\t ok\t req/s\t p50\t p95\t p99\t errors\t 429\t RSS before\t RSS mid\t RSS after\t after/before\t after/mid\t SIGTERM exit\t")
	for _, r := range rows {
		exit := "clean"
		if !r.cleanExit {
			exit = "FAILED"
		}
		if r.shutdownSecond > 0 {
			exit += fmt.Sprintf(" (%.1f s)", r.shutdownSecond)
		}
		mib := func(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
		change := func(a, b int64) string { return fmt.Sprintf("%+.1f%%", 100*float64(a-b)/float64(max(b, 1))) }
		fmt.Fprintf(w, " %s\t %d\t %.2f\t %v\t %v\t %v\t %d\t %d\t %s\t %s\t %s\t %s\t %s\t %s\t\n", r.name, r.rep.OK, r.rep.Throughput,
			r.rep.P50.Round(time.Millisecond), r.rep.P95.Round(time.Millisecond), r.rep.P99.Round(time.Millisecond), r.rep.Errors, r.rep.Rejected,
			mib(r.rssBefore), mib(r.rssMid), mib(r.rssAfter), change(r.rssAfter, r.rssBefore), change(r.rssAfter, r.rssMid), exit)
	}
	w.Flush()
	for _, r := range rows {
		fmt.Printf("%s: Go heap in use %.0f → %.0f MiB, live libtorch tensors %.0f → %.0f (both read with the server idle)\n",
			r.name, r.heap[0]/(1<<20), r.heap[1]/(1<<20), r.tensors[0], r.tensors[1])
	}
	for _, r := range rows {
		if len(r.rep.ErrorKinds) > 0 {
			fmt.Printf("%s errors: %v\n", r.name, r.rep.ErrorKinds)
		}
	}
	if len(rows) > 1 {
		fmt.Println()
		for _, r := range rows[1:] {
			fmt.Printf("throughput %s / %s: %.2fx\n", rows[0].name, r.name, rows[0].rep.Throughput/max(r.rep.Throughput, 1e-9))
		}
	}
}
