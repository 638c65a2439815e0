package main

import (
	"log/slog"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/re2g/re2g/internal/progress"
	"github.com/re2g/re2g/torch"
	"github.com/re2g/re2g/torch/dist"
)

// indexGroup forms the group of a distributed re2g index (under torchrun,
// srun, a PyTorchJob). The ranks exchange only a few numbers and keys (the
// vectors go through the shared directory), so the group is Gloo's on the
// CPU whatever --device encodes on. On ranks > 0 every log record names the
// rank, and progress is off: rank 0 shows the job's.
func indexGroup(c *cli.Context, env dist.Env) (*dist.Group, error) {
	timeout := c.Duration("dist-timeout")
	if _, ok := os.LookupEnv("RE2G_DIST_TIMEOUT"); ok && !c.IsSet("dist-timeout") {
		timeout = 0 // the package reads it
	}
	g, err := dist.New(c.Context, env, dist.Options{Device: torch.CPUDevice, Backend: dist.Gloo, Timeout: timeout})
	if err != nil {
		return nil, err
	}
	if g.Rank() > 0 {
		slog.SetDefault(slog.Default().With("rank", g.Rank()))
		progress.SetMode(progress.Off)
	}
	return g, nil
}
