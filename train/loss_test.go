package train

import (
	"math"
	"testing"

	"github.com/re2g/re2g/torch"
)

func scalar(t *testing.T, s *torch.Scope, x *torch.Tensor) float64 {
	t.Helper()
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	v, err := x.Item()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func approx(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-9 {
		t.Fatalf("%s = %.12f, want %.12f", what, got, want)
	}
}

func TestDPRLoss(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	q := s.FromFloat64([]float64{1, 0, 0, 1}, 2, 2)
	c := s.FromFloat64([]float64{1, 0, 0, 2, 1, 1, 0, 0}, 4, 2)
	e := math.E
	want := ((math.Log(2*e+2) - 1) + (math.Log(1+e*e+e+1) - 2)) / 2
	approx(t, "dpr loss", scalar(t, s, DPRLoss(s, q, c, []int64{0, 1})), want)
}

func TestRerankLoss(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	z := s.FromFloat64([]float64{1, 2, 3}, 3)
	lz := math.Log(math.Exp(1) + math.Exp(2) + math.Exp(3))
	approx(t, "rerank loss", scalar(t, s, RerankLoss(s, z, []int64{0, 2})), -((1 - lz) + (3 - lz)))
	if RerankLoss(s, z, nil) != nil {
		t.Fatal("a list without gold candidates must be skipped")
	}
}

func TestSequenceLogLikIgnoresPadding(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	logits := s.FromFloat64([]float64{0, 0, 0, 1, 2, 3}, 1, 2, 3)
	labels := s.FromInt64([]int64{2, -100}, 1, 2)
	approx(t, "log-likelihood", scalar(t, s, SequenceLogLik(s, logits, labels)), math.Log(1.0/3))
}

func TestRAGLosses(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	doc := s.FromFloat64([]float64{0, math.Log(3)}, 1, 2) // p(z) = .25, .75
	ll := s.FromFloat64([]float64{math.Log(0.5), math.Log(0.1)}, 1, 2)
	approx(t, "rag-sequence", scalar(t, s, RAGSequenceLoss(s, doc, ll)), -math.Log(0.25*0.5+0.75*0.1))

	// two passages, two steps (the second is padding), vocabulary of two
	logits := s.FromFloat64([]float64{
		0, 0, 5, 5, // passage 0: p = .5 .5 at step 1
		math.Log(3), 0, 5, 5, // passage 1: p = .75 .25
	}, 2, 2, 2)
	labels := s.FromInt64([]int64{1, -100}, 1, 2)
	approx(t, "rag-token", scalar(t, s, RAGTokenLoss(s, doc, logits, labels)), -math.Log(0.25*0.5+0.75*0.25))
}

func TestDistillLoss(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	dpr := s.FromFloat64([]float64{0, 0}, 1, 2)
	rr := s.FromFloat64([]float64{math.Log(3), 0}, 1, 2)
	approx(t, "kl T=1", scalar(t, s, DistillLoss(s, dpr, rr, 1)), 0.75*math.Log(1.5)+0.25*math.Log(0.5))
	r3 := math.Sqrt(3)
	p0, p1 := r3/(r3+1), 1/(r3+1)
	approx(t, "kl T=2", scalar(t, s, DistillLoss(s, dpr, rr, 2)), 4*(p0*math.Log(p0/0.5)+p1*math.Log(p1/0.5)))

	// the teacher gets no gradient, the student does
	dg := s.FromFloat64([]float64{0.3, -0.2}, 1, 2)
	dg.SetRequiresGrad(true)
	rg := s.FromFloat64([]float64{1, 0}, 1, 2)
	rg.SetRequiresGrad(true)
	s.Backward(DistillLoss(s, dg, rg, 10))
	if s.Grad(dg) == nil || s.Grad(rg) != nil {
		t.Fatal("distillation must train the student (DPR) only")
	}
}
