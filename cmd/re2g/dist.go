package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/re2g/re2g/torch"
	"github.com/re2g/re2g/torch/dist"
	"github.com/urfave/cli/v2"
)

func init() {
	subcommand("dist", "distributed runs: check a launch", &cli.Command{
		Name:  "check",
		Usage: "form the process group the launcher's environment describes, run each collective against known results, time an all-reduce; run it as the launcher runs re2g (torchrun --no-python --nproc_per_node N re2g dist check)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "device", Value: "cpu", Usage: "device of the tensors: cpu, or cuda (this rank's GPU, cuda:LOCAL_RANK) or cuda:N"},
			&cli.StringFlag{Name: "backend", Usage: "gloo or nccl (default: RE2G_DIST_BACKEND, else gloo for cpu and nccl for cuda)"},
			&cli.DurationFlag{Name: "timeout", Value: 2 * time.Minute, Usage: "bound on the rendezvous and on each collective"},
			&cli.IntFlag{Name: "size-mb", Value: 16, Usage: "size of the timed all-reduce, MB"},
			&cli.BoolFlag{Name: "bench", Usage: "also time all-reduce of 1, 4, 16, 64 and 100 MB and print a table (rank 0)"},
			&cli.IntFlag{Name: "iters", Value: 5, Usage: "timed all-reduces per size (the median is reported)"},
		},
		Action: func(c *cli.Context) error {
			dev, err := torch.ParseDevice(c.String("device"))
			if err != nil {
				return fmt.Errorf("--device: %w", err)
			}
			if c.String("device") == "cuda" {
				dev.Index = -1 // this rank's local GPU
			}
			var backend dist.Backend
			if b := c.String("backend"); b != "" {
				if backend, err = dist.ParseBackend(b); err != nil {
					return fmt.Errorf("--backend: %w", err)
				}
			}
			return distCheck(c.Context, dist.Options{Device: dev, Backend: backend, Timeout: c.Duration("timeout")},
				c.Int("size-mb"), c.Bool("bench"), c.Int("iters"))
		},
	})
}

// distCheck runs every collective once against values each rank can
// compute, then times all-reduces. Each rank prints one line; rank 0 prints
// the table.
func distCheck(ctx context.Context, opts dist.Options, sizeMB int, bench bool, iters int) error {
	t0 := time.Now()
	g, err := dist.FromEnv(ctx, opts)
	if err != nil {
		return err
	}
	defer g.Close()
	joined := time.Since(t0)
	W, r := g.Size(), g.Rank()
	dev := g.Device()
	s := torch.NewScope().NoGrad()
	defer s.Close()
	var checks []string
	check := func(name string, ok bool, detail string) error {
		if !ok {
			return fmt.Errorf("dist check: %s on rank %d of %d: %s", name, r, W, detail)
		}
		checks = append(checks, name)
		return nil
	}
	// all-reduce: rank r gives r+1, the sum is W(W+1)/2, the average (W+1)/2
	x := s.To(s.Full(float64(r+1), torch.Float32, torch.CPUDevice, 1024), dev)
	y := s.To(s.Full(float64(r+1), torch.Float32, torch.CPUDevice, 3), dev)
	if err := s.Err(); err != nil {
		return err
	}
	if err := g.AllReduce(ctx, dist.Sum, x); err != nil {
		return err
	}
	if err := g.AllReduce(ctx, dist.Average, y); err != nil {
		return err
	}
	xs, err := s.To(x, torch.CPUDevice).Float64s()
	if err != nil {
		return err
	}
	ys, err := s.To(y, torch.CPUDevice).Float64s()
	if err != nil {
		return err
	}
	if err := check("all_reduce", xs[0] == float64(W*(W+1)/2) && xs[1023] == xs[0], fmt.Sprintf("sum %v, want %d", xs[0], W*(W+1)/2)); err != nil {
		return err
	}
	if err := check("average", ys[0] == float64(W+1)/2, fmt.Sprintf("average %v, want %v", ys[0], float64(W+1)/2)); err != nil {
		return err
	}
	// all-gather: rank k gives k+1 rows of the value k
	z := s.To(s.Full(float64(r), torch.Float32, torch.CPUDevice, int64(r+1), 2), dev)
	all, counts, err := g.AllGather(ctx, s, z)
	if err != nil {
		return err
	}
	av, err := s.To(all, torch.CPUDevice).Float64s()
	if err != nil {
		return err
	}
	var want []float64
	for k := 0; k < W; k++ {
		for i := 0; i < 2*(k+1); i++ {
			want = append(want, float64(k))
		}
	}
	if err := check("all_gather", slices.Equal(av, want), fmt.Sprintf("got %v (counts %v), want %v", av, counts, want)); err != nil {
		return err
	}
	// broadcast from the last rank
	b := s.To(s.Full(float64(r), torch.Float32, torch.CPUDevice, 4), dev)
	if err := g.Broadcast(ctx, W-1, b); err != nil {
		return err
	}
	bv, err := s.To(b, torch.CPUDevice).Float64s()
	if err != nil {
		return err
	}
	if err := check("broadcast", bv[0] == float64(W-1), fmt.Sprintf("got %v from rank %d", bv[0], W-1)); err != nil {
		return err
	}
	if err := g.Barrier(ctx); err != nil {
		return err
	}
	checks = append(checks, "barrier")
	host, _ := os.Hostname()
	msg, err := g.BroadcastBytes(ctx, 0, []byte(host))
	if err != nil {
		return err
	}
	if err := check("store", r != 0 || string(msg) == host, fmt.Sprintf("rank 0 sent %q", msg)); err != nil {
		return err
	}
	backend := string(g.Backend())
	if backend == "" {
		backend = "none (one process)"
	}
	launcher := g.Launcher()
	if launcher == "" {
		launcher = "none"
	}
	timing := "one process: nothing to time"
	if W > 1 {
		ms, err := timeAllReduce(ctx, g, s, dev, sizeMB, iters)
		if err != nil {
			return err
		}
		timing = fmt.Sprintf("all_reduce of %d MB: %.1f ms (%.0f MB/s)", sizeMB, ms, float64(sizeMB)/(ms/1000))
	}
	fmt.Printf("rank %d of %d (local %d of %d) on %s: backend %s, device %v, launcher %s, joined in %v; %s ok; %s\n",
		r, W, g.LocalRank(), g.LocalSize(), host, backend, dev, launcher, joined.Round(time.Millisecond),
		strings.Join(checks, ", "), timing)
	if !bench || W == 1 {
		return nil
	}
	type row struct {
		mb int
		ms float64
	}
	var rows []row
	for _, mb := range []int{1, 4, 16, 64, 100} {
		ms, err := timeAllReduce(ctx, g, s, dev, mb, iters)
		if err != nil {
			return err
		}
		rows = append(rows, row{mb, ms})
	}
	if r == 0 {
		fmt.Printf("\nall_reduce (sum, float32) on %d ranks, %s, %v, median of %d:\n\n", W, backend, dev, iters)
		fmt.Println("| MB | ms | algbw MB/s | busbw MB/s |")
		fmt.Println("|---:|---:|---:|---:|")
		for _, x := range rows {
			alg := float64(x.mb) / (x.ms / 1000)
			// bus bandwidth, as nccl-tests: what each link carries in a ring all-reduce
			bus := alg * 2 * float64(W-1) / float64(W)
			fmt.Printf("| %d | %.1f | %.0f | %.0f |\n", x.mb, x.ms, alg, bus)
		}
	}
	return g.Barrier(ctx)
}

// timeAllReduce returns the median milliseconds of iters all-reduces of mb
// MB of float32 (after one untimed), synchronised by a barrier before each.
func timeAllReduce(ctx context.Context, g *dist.Group, s *torch.Scope, dev torch.Device, mb, iters int) (float64, error) {
	c := s.Child()
	defer c.Close()
	n := int64(mb) << 20 / 4
	x := c.Ones(torch.Float32, dev, n)
	if err := c.Err(); err != nil {
		return 0, err
	}
	if err := g.AllReduce(ctx, dist.Sum, x); err != nil {
		return 0, err
	}
	var times []float64
	for i := 0; i < iters; i++ {
		if err := g.Barrier(ctx); err != nil {
			return 0, err
		}
		t := time.Now()
		if err := g.AllReduce(ctx, dist.Sum, x); err != nil {
			return 0, err
		}
		if err := torch.Synchronize(dev); err != nil {
			return 0, err
		}
		times = append(times, float64(time.Since(t).Microseconds())/1000)
	}
	if len(times) == 0 {
		return 0, errors.New("dist check: no iterations")
	}
	slices.Sort(times)
	return times[len(times)/2], nil
}
