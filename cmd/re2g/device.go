package main

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/re2g/re2g/model/parity"
	"github.com/re2g/re2g/torch"
	"github.com/urfave/cli/v2"
)

func init() {
	commands = append(commands, &cli.Command{
		Name:  "device",
		Usage: "check that libtorch works on a device: a matmul and training steps, compared with the CPU",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "device", Value: "cuda", Usage: "device to check against the CPU (cpu, cuda, cuda:N)"},
			&cli.IntFlag{Name: "threads", Value: 0, Usage: "libtorch CPU threads (0: one per core)"},
			&cli.IntFlag{Name: "size", Value: 1024, Usage: "matmul size"},
			&cli.StringFlag{Name: "parity", Usage: "also check the models against the transformers fixtures in this directory (testdata/parity)"},
			&cli.StringFlag{Name: "dtype", Value: "float32", Usage: "dtype of the parity check (float32: within 1e-4; bfloat16/float16: within 10% of the output scale)"},
		},
		Action: func(c *cli.Context) error {
			if err := torch.SetNumThreads(c.Int("threads")); err != nil {
				return fmt.Errorf("--threads: %w", err)
			}
			dev, err := torch.ParseDevice(c.String("device"))
			if err != nil {
				return err
			}
			fmt.Printf("libtorch %s, %d CPU threads, CUDA available: %v (%d devices)\n",
				torch.Version(), torch.NumThreads(), torch.CUDAAvailable(), torch.CUDADeviceCount())
			if err := deviceCheck(dev, c.Int("size")); err != nil {
				return err
			}
			if dir := c.String("parity"); dir != "" {
				dt, err := torch.ParseDType(c.String("dtype"))
				if err != nil {
					return err
				}
				return parityCheck(c.Context, dir, dev, dt)
			}
			return nil
		},
	})
}

// deviceCheck runs the same matmul and the same training steps on the CPU
// and on dev and reports the largest differences and the timings.
func deviceCheck(dev torch.Device, n int) error {
	s := torch.NewScope()
	defer s.Close()
	torch.ManualSeed(1234)
	a := s.Randn(torch.Float32, torch.CPUDevice, int64(n), int64(n))
	b := s.Randn(torch.Float32, torch.CPUDevice, int64(n), int64(n))
	t0 := time.Now()
	cpu := s.Matmul(a, b)
	if err := s.Err(); err != nil {
		return err
	}
	cpuTime := time.Since(t0)
	ad, bd := s.To(a, dev), s.To(b, dev)
	if err := s.Err(); err != nil {
		return fmt.Errorf("moving tensors to %v: %w", dev, err)
	}
	s.Matmul(ad, bd) // warm-up (kernel selection)
	torch.Synchronize(dev)
	t0 = time.Now()
	on := s.Matmul(ad, bd)
	if err := torch.Synchronize(dev); err != nil {
		return err
	}
	devTime := time.Since(t0)
	diff, err := maxRelDiff(s, cpu, s.To(on, torch.CPUDevice))
	if err != nil {
		return err
	}
	fmt.Printf("matmul %dx%d: cpu %v, %v %v, max relative difference %.2e\n", n, n, cpuTime.Round(time.Microsecond), dev, devTime.Round(time.Microsecond), diff)
	if diff > 1e-3 {
		return fmt.Errorf("matmul on %v differs from cpu by %.2e", dev, diff)
	}

	lc, pc, err := trainSteps(torch.CPUDevice)
	if err != nil {
		return err
	}
	ld, pd, err := trainSteps(dev)
	if err != nil {
		return err
	}
	worst := 0.0
	for i := range lc {
		fmt.Printf("train step %d: loss cpu %.6f  %v %.6f\n", i+1, lc[i], dev, ld[i])
		worst = math.Max(worst, math.Abs(lc[i]-ld[i])/math.Max(1e-6, math.Abs(lc[i])))
	}
	for i := range pc {
		worst = math.Max(worst, math.Abs(float64(pc[i]-pd[i])))
	}
	fmt.Printf("training: max difference (losses relative, parameters absolute) %.2e\n", worst)
	if worst > 1e-3 {
		return fmt.Errorf("training on %v differs from cpu by %.2e", dev, worst)
	}
	fmt.Println("device check passed")
	return nil
}

func maxRelDiff(s *torch.Scope, a, b *torch.Tensor) (float64, error) {
	av, err := a.Float32s()
	if err != nil {
		return 0, err
	}
	bv, err := b.Float32s()
	if err != nil {
		return 0, err
	}
	scale, d := 0.0, 0.0
	for i := range av {
		scale = math.Max(scale, math.Abs(float64(av[i])))
		d = math.Max(d, math.Abs(float64(av[i]-bv[i])))
	}
	return d / math.Max(scale, 1e-12), nil
}

// trainSteps trains a two-layer network for five AdamW steps on dev from a
// fixed initialisation and returns the losses and the final parameters.
func trainSteps(dev torch.Device) ([]float64, []float32, error) {
	root := torch.NewScope()
	defer root.Close()
	torch.ManualSeed(99)
	init := root.NoGrad()
	defer init.Close()
	mk := func(shape ...int64) *torch.Tensor {
		t := root.To(init.MulScalar(init.Randn(torch.Float32, torch.CPUDevice, shape...), 0.1), dev)
		t.SetRequiresGrad(true)
		return t
	}
	w1, b1, w2 := mk(64, 32), mk(64), mk(4, 64)
	x := root.To(init.Randn(torch.Float32, torch.CPUDevice, 16, 32), dev)
	y := root.To(init.FromInt64([]int64{0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3}, 16), dev)
	if err := root.Err(); err != nil {
		return nil, nil, fmt.Errorf("%v: %w", dev, err)
	}
	opt, err := torch.NewAdamW([]torch.Param{{Name: "w1", Tensor: w1, Decay: true}, {Name: "b1", Tensor: b1}, {Name: "w2", Tensor: w2, Decay: true}}, torch.DefaultAdamW(1e-2))
	if err != nil {
		return nil, nil, err
	}
	defer opt.Close()
	var losses []float64
	for i := 0; i < 5; i++ {
		s := root.Child()
		loss := s.CrossEntropy(s.Linear(s.Gelu(s.Linear(x, w1, b1)), w2, nil), y, -100, torch.ReduceMean, 0)
		s.Backward(loss)
		if err := s.Err(); err != nil {
			s.Close()
			return nil, nil, fmt.Errorf("%v: %w", dev, err)
		}
		l, _ := loss.Item()
		losses = append(losses, l)
		if _, err := torch.ClipGradNorm([]*torch.Tensor{w1, b1, w2}, 1.0); err != nil {
			return nil, nil, err
		}
		if err := opt.Step(1e-2); err != nil {
			return nil, nil, err
		}
		opt.ZeroGrad()
		s.Close()
	}
	p, err := w2.Float32s()
	return losses, p, err
}

// parityCheck compares every model with the transformers fixtures on dev in
// dt, by parity.Rule(dt).
func parityCheck(ctx context.Context, dir string, dev torch.Device, dt torch.DType) error {
	checks, err := parity.Run(ctx, dir, dev, dt)
	if err != nil {
		return err
	}
	bad := 0
	fmt.Printf("parity with transformers on %v %v (fixtures %s; %s):\n", dev, dt, dir, parity.Rule(dt))
	for _, c := range checks {
		mark := "ok"
		if !c.Pass(dt) {
			mark = "DIFFERS"
			bad++
		}
		fmt.Printf("  %-8s %v\n", mark, c)
	}
	if bad > 0 {
		return fmt.Errorf("%d of %d parity checks on %v %v differ from transformers (%s)", bad, len(checks), dev, dt, parity.Rule(dt))
	}
	return nil
}
