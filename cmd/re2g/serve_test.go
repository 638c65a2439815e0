package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

func serveContext(t *testing.T, args ...string) *cli.Context {
	t.Helper()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	for _, f := range serveFlags() {
		if err := f.Apply(fs); err != nil {
			t.Fatal(err)
		}
	}
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return cli.NewContext(newApp(), fs, nil)
}

func TestServerConfigFromFlags(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("  abc123\n"), 0o600)
	cfg, err := serverConfig(serveContext(t, "--max-batch", "8", "--max-wait", "0", "--no-batching", "--auth-token-file", tok, "--timeout", "3s"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxBatch != 8 || cfg.MaxWait >= 0 || !cfg.NoBatching || cfg.AuthToken != "abc123" || cfg.Timeout != 3*time.Second {
		t.Fatalf("config %+v", cfg)
	}
	two := filepath.Join(dir, "two")
	os.WriteFile(two, []byte("0123456789abcdef\nfedcba9876543210\n"), 0o600)
	if _, err := serverConfig(serveContext(t, "--auth-token-file", two)); err == nil || !strings.Contains(err.Error(), "--auth-token-file") {
		t.Fatalf("a two-line token file: %v", err)
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte(" \n"), 0o600)
	if _, err := serverConfig(serveContext(t, "--auth-token-file", empty)); err == nil {
		t.Fatal("an empty token file was accepted")
	}
	if _, err := serverConfig(serveContext(t, "--auth-token-file", filepath.Join(dir, "missing"))); err == nil {
		t.Fatal("a missing token file was accepted")
	}
	for host, want := range map[string]bool{"127.0.0.1": true, "::1": true, "localhost": true, "0.0.0.0": false, "": false, "10.1.2.3": false} {
		if isLoopback(host) != want {
			t.Errorf("isLoopback(%q) = %v", host, !want)
		}
	}
}

// Numeric flags out of range are refused with the flag's name, not
// replaced by the defaults.
func TestServeFlagBounds(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--max-body", "0"}, "--max-body 0: must be positive"},
		{[]string{"--max-body", "-1"}, "--max-body -1: must be positive"},
		{[]string{"--max-body", "4294967296"}, "--max-body 4294967296: must be at most"},
		{[]string{"--max-query-len", "0"}, "--max-query-len 0"},
		{[]string{"--max-passages", "-3"}, "--max-passages -3"},
		{[]string{"--max-passage-len", "0"}, "--max-passage-len 0"},
		{[]string{"--max-items", "0"}, "--max-items 0"},
		{[]string{"--max-batch", "0"}, "--max-batch 0"},
		{[]string{"--max-batch", "1000000"}, "--max-batch 1000000: must be at most"},
		{[]string{"--queue", "-1"}, "--queue -1"},
		{[]string{"--queue", "100000000"}, "--queue 100000000: must be at most"},
		{[]string{"--workers", "0"}, "--workers 0"},
		{[]string{"--timeout", "-1s"}, "--timeout -1s: must be positive"},
		{[]string{"--timeout", "0s"}, "--timeout 0s"},
		{[]string{"--timeout", "100h"}, "--timeout 100h0m0s: must be at most"},
		{[]string{"--read-header-timeout", "0s"}, "--read-header-timeout 0s"},
		{[]string{"--read-timeout", "-5s"}, "--read-timeout -5s"},
		{[]string{"--idle-timeout", "0s"}, "--idle-timeout 0s"},
		{[]string{"--shutdown-timeout", "-1s"}, "--shutdown-timeout -1s"},
		{[]string{"--max-wait", "-1ms"}, "--max-wait -1ms: must not be negative"},
		{[]string{"--max-wait", "2s", "--timeout", "1s"}, "--max-wait 2s: must be under --timeout (1s)"},
	} {
		_, err := serverConfig(serveContext(t, c.args...))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error with %q", c.args, err, c.want)
		}
	}
	// the defaults, and --max-wait 0 (no waiting), pass
	for _, args := range [][]string{nil, {"--max-wait", "0"}, {"--max-body", "1", "--timeout", "1ms", "--max-wait", "0"}} {
		if _, err := serverConfig(serveContext(t, args...)); err != nil {
			t.Errorf("%v: %v", args, err)
		}
	}
}
