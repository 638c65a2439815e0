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
	"slices"
	"sort"
	"strconv"
	"strings"
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
			if err := checkLauncher(c.Args().Slice(), os.Getenv); err != nil {
				return err
			}
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

// distributedCommands are the commands whose ranks split the work under a
// launcher (torchrun, a PyTorchJob: RANK and WORLD_SIZE set).
var distributedCommands = []string{"index", "train", "dist check"}

// checkLauncher refuses, under a launcher with more than one rank, a
// command that would run whole in every rank (each one encoding, answering
// or updating the same things, racing for the same output): args are the
// command line after the global flags. Help is always given.
func checkLauncher(args []string, getenv func(string) string) error {
	ws, err := strconv.Atoi(getenv("WORLD_SIZE"))
	if err != nil || ws <= 1 || getenv("RANK") == "" || len(args) == 0 {
		return nil
	}
	if slices.ContainsFunc(args, func(a string) bool { return a == "-h" || a == "--help" || a == "help" }) {
		return nil
	}
	cmd := args[0]
	if len(args) > 1 && (cmd == "index" || cmd == "dist") && !strings.HasPrefix(args[1], "-") {
		cmd += " " + args[1]
	}
	if slices.Contains(distributedCommands, cmd) {
		return nil
	}
	return fmt.Errorf("re2g %s runs in one process, and this one is rank %s of %d under a launcher (WORLD_SIZE=%d): "+
		"run it without the launcher; under one, re2g %s split their work across the ranks",
		cmd, getenv("RANK"), ws, ws, strings.Join(distributedCommands, ", re2g "))
}
