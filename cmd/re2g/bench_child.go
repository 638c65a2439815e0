package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/re2g/re2g/internal/procstat"
)

// childRun is what runChild measured of a child process.
type childRun struct {
	Seconds float64 `json:"seconds"`       // wall time, start to exit
	PeakKB  int64   `json:"peak_rss_kib"`  // VmHWM, its last reading
	AnonKB  int64   `json:"peak_anon_kib"` // the largest RssAnon sampled
}

// runChild runs bin with args, its output to out (nil: this process's
// stderr), and samples its memory every 20 ms until it exits: a child's
// peak is its own, apart from the benchmark's. ctx kills it.
func runChild(ctx context.Context, bin string, args []string, out io.Writer) (childRun, error) {
	var r childRun
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if out == nil {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return r, fmt.Errorf("%s: %w", strings.Join(cmd.Args, " "), err)
	}
	stop := make(chan struct{})
	sampled := make(chan [2]int64)
	go func() { sampled <- peakMemory(cmd.Process.Pid, stop) }()
	err := cmd.Wait()
	r.Seconds = time.Since(start).Seconds()
	close(stop)
	peaks := <-sampled
	r.PeakKB, r.AnonKB = peaks[0], peaks[1]
	if err != nil {
		return r, fmt.Errorf("%s: %w", strings.Join(cmd.Args, " "), err)
	}
	return r, nil
}

// peakMemory samples /proc/PID/status every 20 ms until stop closes, and
// returns the last VmHWM and the largest RssAnon, in KiB. (The child's
// rusage maxrss will not do: Linux counts in it the parent's resident set
// at the fork.)
func peakMemory(pid int, stop <-chan struct{}) [2]int64 {
	var peak [2]int64
	for {
		if m, err := procstat.Read(pid); err == nil {
			peak[0], peak[1] = max(peak[0], m.Peak), max(peak[1], m.Anon)
		}
		select {
		case <-stop:
			return peak
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// dirSize is the bytes of the regular files under dir (or of the file dir).
func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}
