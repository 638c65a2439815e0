package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
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
in flight finish (up to --shutdown-timeout).`,
		Flags: append(pipelineFlags(), serveFlags()...),
		Action: func(c *cli.Context) error {
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
			p, err := pipeline.NewContext(c.Context, pcfg)
			if err != nil {
				ln.Close()
				<-errc
				return err
			}
			defer p.Close()
			s.Ready(p)
			slog.Info("ready", "addr", ln.Addr().String(), "index", pcfg.Index, "load_seconds", time.Since(start).Seconds(),
				"batching", !scfg.NoBatching, "max_batch", scfg.MaxBatch, "device", pcfg.Models.Device.String())
			return <-errc
		},
	})
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
