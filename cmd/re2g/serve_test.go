package main

import (
	"flag"
	"os"
	"path/filepath"
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
