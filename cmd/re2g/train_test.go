package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTrainFlagsAndConfig: flags override the config file, and bad settings
// are errors naming the setting, before any data is read.
func TestTrainFlagsAndConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.json")
	if err := os.WriteFile(cfg, []byte(`{"e2e": {"query_encoder": "frozen"}, "data": "/nonexistent.json"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"e2e", "--query-encoder", "both"}, "query_encoder"},
		{[]string{"generator", "--objective", "tokens"}, "objective"},
		{[]string{"all", "--preset", "huge"}, "--preset"},
		{[]string{"e2e", "--config", filepath.Join(dir, "missing.json")}, "missing.json"},
		// The file's valid settings pass; its data path is then the error.
		{[]string{"e2e", "--config", cfg}, "nonexistent.json"},
		{[]string{"e2e", "--config", cfg, "--temperature", "-1"}, "temperature"},
	} {
		err := newApp().Run(append([]string{"re2g", "train"}, tc.args...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("train %v: got %v, want an error mentioning %q", tc.args, err, tc.want)
		}
	}
}
