package dist_test

import (
	"context"
	"fmt"

	"github.com/re2g/re2g/torch"
	"github.com/re2g/re2g/torch/dist"
)

// A data-parallel training step with DPR's in-batch negatives across
// ranks. Run alone (no launcher), the group has one rank and every
// collective returns at once; under torchrun the same code trains on every
// rank's share of the batch.
func Example_dataParallel() {
	ctx := context.Background()
	g, err := dist.FromEnv(ctx, dist.Options{Device: torch.CPUDevice})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer g.Close()

	params := torch.NewScope()
	defer params.Close()
	w := params.FromFloat32([]float32{0.1, 0.2, 0.3, 0.4}, 2, 2)
	w.SetRequiresGrad(true)
	// Every rank starts from rank 0's weights.
	if err := g.Broadcast(ctx, 0, w); err != nil {
		fmt.Println(err)
		return
	}

	s := torch.NewScope()
	defer s.Close()
	// This rank's questions and passages (here the same two on every rank).
	q := s.Matmul(s.FromFloat32([]float32{1, 0, 0, 1}, 2, 2), w)
	p := s.Matmul(s.FromFloat32([]float32{0, 1, 1, 0}, 2, 2), w)
	all, counts, err := g.AllGatherGrad(ctx, s, p) // every rank's passages
	if err != nil {
		fmt.Println(err)
		return
	}
	off := counts.Offset(g.Rank())
	scores := s.Matmul(q, s.Transpose(all, 0, 1))
	target := s.Arange(off, off+2, 1, torch.Int64, torch.CPUDevice)
	// This rank's share of the batch mean, times the world size: the
	// gradients are averaged over ranks next.
	loss := s.MulScalar(s.CrossEntropy(scores, target, -100, torch.ReduceSum, 0), float64(g.Size())/float64(counts.Total()))
	s.Backward(loss)
	if err := s.Err(); err != nil {
		fmt.Println(err)
		return
	}
	if err := g.AllReduceGrads(ctx, []*torch.Tensor{w}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("rank %d of %d, %d passages in the batch, gradient %v\n", g.Rank(), g.Size(), counts.Total(), s.Grad(w).Shape())
	// Output: rank 0 of 1, 2 passages in the batch, gradient [2 2]
}
