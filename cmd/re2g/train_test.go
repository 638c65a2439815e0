package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTrainFlagsAndConfig: flags override the config file, and bad settings
// and inputs are errors naming them, before any training.
func TestTrainFlagsAndConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.json")
	if err := os.WriteFile(cfg, []byte(`{"e2e": {"query_encoder": "frozen"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	task := []string{"--train", filepath.Join(dir, "train.jsonl"), "--dev", filepath.Join(dir, "dev.jsonl"), "--index", filepath.Join(dir, "idx"), "--out", filepath.Join(dir, "out")}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"e2e", "--query-mode", "both"}, "query_encoder"},
		{[]string{"generator", "--objective", "tokens"}, "objective"},
		{[]string{"all", "--preset", "huge"}, "--preset"},
		{[]string{"all", "--init", "random"}, "init"},
		{[]string{"all", "--dtype", "float8"}, "dtype"},
		{[]string{"all", "--max-steps", "-3"}, "--max-steps"},
		{[]string{"e2e", "--config", filepath.Join(dir, "missing.json")}, "missing.json"},
		// The file's valid settings pass; the missing index is then the error.
		{[]string{"e2e", "--config", cfg}, "idx"},
		{[]string{"e2e", "--config", cfg, "--temperature", "-1"}, "temperature"},
	} {
		err := newApp().Run(append(append([]string{"re2g", "train"}, tc.args[0]), append(task, tc.args[1:]...)...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("train %v: got %v, want an error mentioning %q", tc.args, err, tc.want)
		}
	}
	if err := newApp().Run([]string{"re2g", "train", "dpr", "--out", dir}); err == nil || !strings.Contains(err.Error(), "train") {
		t.Errorf("no --train/--dev/--index: got %v", err)
	}
}
