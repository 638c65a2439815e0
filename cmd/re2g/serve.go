package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/re2g/re2g/pipeline"
	"github.com/re2g/re2g/server"
	"github.com/urfave/cli/v2"
)

// serveFlags are the server's own flags (the model flags come from pipelineFlags).
func serveFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "addr", Value: "127.0.0.1:8080", Usage: "listen address (loopback by default; port 0 picks one)"},
		&cli.IntFlag{Name: "max-batch", Value: 32, Usage: "requests coalesced into one batch per endpoint"},
		&cli.DurationFlag{Name: "max-wait", Value: 5 * time.Millisecond, Usage: "longest wait for a batch to fill"},
		&cli.IntFlag{Name: "queue", Value: 256, Usage: "requests waiting per endpoint before 429 (with --no-batching: running)"},
		&cli.IntFlag{Name: "workers", Value: 1, Usage: "batches computed at once per endpoint"},
		&cli.BoolFlag{Name: "no-batching", Usage: "run each request alone (the baseline batching is measured against)"},
		&cli.Int64Flag{Name: "max-body", Value: 1 << 20, Usage: "request body limit in bytes"},
		&cli.IntFlag{Name: "max-query-len", Value: 2000, Usage: "characters per query"},
		&cli.IntFlag{Name: "max-passages", Value: 200, Usage: "passages per /v1/rerank request"},
		&cli.IntFlag{Name: "max-passage-len", Value: 20000, Usage: "characters per passage (title and text)"},
		&cli.IntFlag{Name: "max-items", Value: 64, Usage: "queries per /v1/encode request"},
		&cli.DurationFlag{Name: "timeout", Value: 60 * time.Second, Usage: "per-request deadline"},
		&cli.DurationFlag{Name: "read-header-timeout", Value: 5 * time.Second, Usage: "slow clients: time to send the headers"},
		&cli.DurationFlag{Name: "read-timeout", Value: 30 * time.Second, Usage: "slow clients: time to send the whole request"},
		&cli.DurationFlag{Name: "idle-timeout", Value: 120 * time.Second, Usage: "keep-alive connections"},
		&cli.DurationFlag{Name: "shutdown-timeout", Value: 60 * time.Second, Usage: "grace for requests in flight on SIGTERM"},
		&cli.StringFlag{Name: "auth-token-file", Usage: "file holding the bearer token required on /v1/* and /metrics"},
	}
}

// serveNumeric maps each numeric flag to its server.Config field, so that a
// setting out of range is reported by the flag's name.
var serveNumeric = []struct{ flag, field string }{
	{"max-batch", "MaxBatch"}, {"max-wait", "MaxWait"}, {"queue", "Queue"}, {"workers", "Workers"},
	{"max-body", "MaxBody"}, {"max-query-len", "MaxQueryLen"}, {"max-passages", "MaxPassages"},
	{"max-passage-len", "MaxPassageLen"}, {"max-items", "MaxItems"}, {"timeout", "Timeout"},
	{"read-header-timeout", "ReadHeaderTimeout"}, {"read-timeout", "ReadTimeout"}, {"idle-timeout", "IdleTimeout"},
	{"shutdown-timeout", "ShutdownTimeout"},
}

// serverConfig reads and checks the server's flags. Every numeric flag must
// be positive (--max-wait may be 0: no waiting) and within the bounds
// server.Config.Validate sets.
func serverConfig(c *cli.Context) (server.Config, error) {
	for _, f := range serveNumeric {
		var zero, neg bool
		switch v := c.Value(f.flag).(type) {
		case int:
			zero, neg = v == 0, v < 0
		case int64:
			zero, neg = v == 0, v < 0
		case time.Duration:
			zero, neg = v == 0, v < 0
		default:
			return server.Config{}, fmt.Errorf("serve: flag --%s has type %T", f.flag, v)
		}
		switch {
		case f.flag == "max-wait" && neg:
			return server.Config{}, fmt.Errorf("--max-wait %v: must not be negative (0: no waiting)", c.Value(f.flag))
		case f.flag != "max-wait" && (zero || neg):
			return server.Config{}, fmt.Errorf("--%s %v: must be positive", f.flag, c.Value(f.flag))
		}
	}
	cfg := server.Config{
		MaxBatch: c.Int("max-batch"), MaxWait: c.Duration("max-wait"), Queue: c.Int("queue"), Workers: c.Int("workers"),
		NoBatching: c.Bool("no-batching"), MaxBody: c.Int64("max-body"), MaxQueryLen: c.Int("max-query-len"),
		MaxPassages: c.Int("max-passages"), MaxPassageLen: c.Int("max-passage-len"), MaxItems: c.Int("max-items"),
		Timeout: c.Duration("timeout"), ReadHeaderTimeout: c.Duration("read-header-timeout"), ReadTimeout: c.Duration("read-timeout"),
		IdleTimeout: c.Duration("idle-timeout"), ShutdownTimeout: c.Duration("shutdown-timeout"), Logger: slog.Default(),
	}
	if c.Duration("max-wait") == 0 {
		cfg.MaxWait = -1 // no waiting: a batch is whatever is queued
	}
	if err := cfg.Validate(); err != nil {
		var ce *server.ConfigError
		if errors.As(err, &ce) {
			for _, f := range serveNumeric {
				if f.field == ce.Field {
					return cfg, fmt.Errorf("--%s %v: %s", f.flag, c.Value(f.flag), strings.ReplaceAll(ce.Want, "Timeout", "--timeout"))
				}
			}
		}
		return cfg, err
	}
	if f := c.String("auth-token-file"); f != "" {
		tok, err := server.LoadToken(f, slog.Default())
		if err != nil {
			return cfg, fmt.Errorf("--auth-token-file: %w", err)
		}
		cfg.AuthToken = tok
	}
	return cfg, nil
}

func init() {
	commands = append(commands, &cli.Command{
		Name:  "serve",
		Usage: "serve answer, retrieve, rerank and encode over HTTP/JSON, with dynamic batching",
		Description: `Endpoints: POST /v1/answer, /v1/retrieve, /v1/rerank, /v1/encode; GET /healthz, /readyz,
/metrics (Prometheus), /openapi.json. The server listens at once (/healthz answers, /readyz says 503)
and turns ready when the index and models are loaded. SIGTERM or Ctrl-C stops it gracefully: requests
in flight finish (up to --shutdown-timeout). SIGHUP reloads the index (after re2g index add, delete
or compact), as does a change of its manifest with --reload-poll: the new generation opens in the
background and is swapped in, requests in flight finish on the old one; a failed reload keeps the old one.`,
		Flags: append(append(pipelineFlags(), serveFlags()...),
			&cli.DurationFlag{Name: "reload-poll", Usage: "reload the index when its manifest changes, checked this often (0: only on SIGHUP)"}),
		Action: func(c *cli.Context) error {
			// SIGHUP reloads the index; caught from the start, so that one
			// sent while the models load does not end the process.
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			pcfg, err := pipelineConfig(c)
			if err != nil {
				return err
			}
			scfg, err := serverConfig(c)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", c.String("addr"))
			if err != nil {
				return fmt.Errorf("--addr: %w", err)
			}
			if host, _, _ := net.SplitHostPort(c.String("addr")); !isLoopback(host) && scfg.AuthToken == "" {
				slog.Warn("listening beyond loopback without --auth-token-file", "addr", ln.Addr().String())
			}
			s, err := server.New(scfg)
			if err != nil {
				return err
			}
			errc := make(chan error, 1)
			go func() { errc <- s.Serve(c.Context, ln) }()
			start := time.Now()
			stamp := manifestStamp(pcfg.Index) // before opening: a change meanwhile is seen
			p, err := pipeline.NewContext(c.Context, pcfg)
			if err != nil {
				ln.Close()
				<-errc
				return err
			}
			defer p.Close()
			s.Ready(p)
			caps := p.Capabilities()
			slog.Info("ready", "addr", ln.Addr().String(), "index", pcfg.Index, "generation", caps.Generation, "passages", caps.Passages,
				"load_seconds", time.Since(start).Seconds(), "batching", !scfg.NoBatching, "max_batch", scfg.MaxBatch, "device", pcfg.Models.Device.String())
			wctx, stopWatch := context.WithCancel(c.Context)
			defer stopWatch()
			go watchIndex(wctx, s, pcfg.Index, c.Duration("reload-poll"), hup, stamp)
			return <-errc
		},
	})
}

// watchIndex reloads the served index on SIGHUP and, every poll (when
// positive), if its manifest changed since the last look: an update (re2g
// index add, delete, compact) commits by replacing the manifest. It stats
// the manifest rather than watching it with inotify: that works on NFS and
// other shared mounts whose changes come from other machines, and survives
// the rename that replaces the file; a stat every few seconds costs
// nothing. A reload that fails is logged and counted and not tried again
// until the manifest changes again (or SIGHUP).
func watchIndex(ctx context.Context, s *server.Server, dir string, poll time.Duration, hup <-chan os.Signal, last string) {
	var tick <-chan time.Time
	if poll > 0 {
		t := time.NewTicker(poll)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			slog.Info("SIGHUP: reloading the index", "index", dir)
		case <-tick:
			now := manifestStamp(dir)
			if now == last {
				continue
			}
			slog.Info("the index's manifest changed: reloading the index", "index", dir)
		}
		last = manifestStamp(dir)
		s.ReloadIndex(ctx) // logs and counts its result
	}
}

// manifestStamp identifies the index's manifest file as it is now: its
// inode (an update renames a new file into place), size and time.
func manifestStamp(dir string) string {
	st, err := os.Stat(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return "missing"
	}
	ino := uint64(0)
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		ino = sys.Ino
	}
	return fmt.Sprintf("%d %d %d", ino, st.Size(), st.ModTime().UnixNano())
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
