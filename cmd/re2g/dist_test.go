package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/re2g/re2g/internal/proctest"
)

// torchrun is Debian's torch.distributed.run (torch 1.13), or a skip.
func torchrun(t *testing.T) []string {
	t.Helper()
	const py = "/usr/bin/python3"
	if out, err := exec.Command(py, "-c", "import torch.distributed.run").CombinedOutput(); err != nil {
		t.Skipf("%s cannot import torch.distributed.run (install python3-torch): %v %s", py, err, out)
	}
	// 1.13 spells it --no_python (2.x takes --no-python too); on Python 3.11
	// it fails with "'NoneType' object has no attribute 'get'" unless -r and
	// -t are given as mappings.
	return []string{py, "-m", "torch.distributed.run", "--no_python", "--nproc_per_node", "2",
		"--master_addr", "127.0.0.1", "--master_port", strconv.Itoa(proctest.FreePort(t)),
		"--log_dir", filepath.Join(t.TempDir(), "logs"), "-r", "0:1,1:1", "-t", "0:1,1:1"}
}

// runTorchrun runs the test binary as re2g with args on every rank of
// launcher (torchrun's command line), env added to their environment, and
// returns the output of torchrun and the ranks.
func runTorchrun(launcher, env []string, args ...string) ([]byte, error) {
	argv := append(slices.Clone(launcher), append([]string{os.Args[0]}, args...)...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(append(os.Environ(), "RE2G_MAIN=1"), env...)
	return cmd.CombinedOutput()
}

// TestDistCheckUnderTorchrun runs `re2g dist check` as torchrun runs it:
// two ranks, torchrun's agent hosting the store, real Gloo.
func TestDistCheckUnderTorchrun(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	launcher := torchrun(t)
	start := time.Now()
	out, err := runTorchrun(launcher, []string{"RE2G_DIST_BACKEND="}, "dist", "check", "--size-mb", "4", "--iters", "2", "--timeout", "60s")
	if err != nil {
		t.Fatalf("torchrun: %v\n%s", err, out)
	}
	for r := 0; r < 2; r++ {
		want := "rank " + strconv.Itoa(r) + " of 2 (local " + strconv.Itoa(r) + " of 2)"
		line := ""
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, want) {
				line = l
			}
		}
		if line == "" || !strings.Contains(line, "backend gloo, device cpu, launcher torchrun") ||
			!strings.Contains(line, "all_reduce, average, all_gather, broadcast, barrier, store ok; all_reduce of 4 MB:") {
			t.Errorf("rank %d: no check line in\n%s", r, out)
		}
	}
	t.Logf("%v\n%s", time.Since(start).Round(time.Millisecond), out)

	// A launch that cannot work fails on every rank, and torchrun with it.
	out, err = runTorchrun(torchrun(t), nil, "dist", "check", "--backend", "nccl")
	if err == nil || !strings.Contains(string(out), "the nccl backend needs a CUDA device") {
		t.Errorf("dist check --backend nccl on the CPU: %v\n%s", err, out)
	}
}

// TestDistCheckEnvErrors: a malformed launch environment stops re2g dist
// check with exit status 1 and the variable named.
func TestDistCheckEnvErrors(t *testing.T) {
	for _, c := range []struct{ env, want string }{
		{"RANK=2 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500", `RANK="2": want 0 to 1 (WORLD_SIZE=2)`},
		{"RANK=0 WORLD_SIZE=2 MASTER_PORT=29500", "MASTER_ADDR is not set"},
		{"RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=http", `MASTER_PORT="http": want a TCP port`},
		{"RANK=0 WORLD_SIZE=2 LOCAL_RANK=first MASTER_ADDR=127.0.0.1 MASTER_PORT=29500", `LOCAL_RANK="first": not a whole number`},
	} {
		for _, k := range []string{"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID"} {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
		for _, kv := range strings.Fields(c.env) {
			k, v, _ := strings.Cut(kv, "=")
			t.Setenv(k, v)
		}
		code, out := re2g(t, "dist", "check")
		if code != 1 || !strings.Contains(out, "dist: environment: "+c.want) {
			t.Errorf("%s: exit %d, output %q; want 1 and %q", c.env, code, out, c.want)
		}
	}
}
