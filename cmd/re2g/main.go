// Command re2g indexes passage corpora, trains and evaluates the Re2G models,
// answers questions from the command line and serves them over HTTP.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"sort"
	"syscall"

	"github.com/re2g/re2g/internal/progress"
	"github.com/urfave/cli/v2"
)

// commands is filled by the init functions of the files beside this one, one
// file per command group, so that command groups stay independent.
var commands []*cli.Command

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first SIGTERM or Ctrl-C cancels ctx, for a clean stop; after it
	// the default action is restored, so that a second one ends a command
	// that is busy in native code and not looking at ctx.
	go func() {
		<-ctx.Done()
		stop()
	}()
	if err := runTraced(ctx, os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "re2g:", err)
		os.Exit(1)
	}
}

// newApp builds the CLI from the registered commands.
func newApp() *cli.App {
	sort.Slice(commands, func(i, j int) bool { return commands[i].Name < commands[j].Name })
	applyBounds(commands, nil)
	return &cli.App{
		Name:     "re2g",
		Usage:    "retrieve, rerank, generate: answers from a passage corpus",
		Commands: commands,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a Go CPU profile of the command to this file (go tool pprof)"},
			&cli.StringFlag{Name: "progress", Value: "auto", Usage: "progress of long jobs: auto (a bar on a terminal, else a log line every 15 s), bar, log or off"},
		},
		Before: func(c *cli.Context) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(c.String("log-level"))); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})))
			pm, err := progress.ParseMode(c.String("progress"))
			if err != nil {
				return fmt.Errorf("--progress: %w", err)
			}
			progress.SetMode(pm)
			if p := c.String("cpuprofile"); p != "" {
				f, err := os.Create(p)
				if err != nil {
					return fmt.Errorf("--cpuprofile: %w", err)
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					f.Close()
					return fmt.Errorf("--cpuprofile: %w", err)
				}
			}
			return nil
		},
		After: func(c *cli.Context) error {
			if c.String("cpuprofile") != "" {
				pprof.StopCPUProfile()
			}
			return nil
		},
	}
}
