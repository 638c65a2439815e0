package torch

/*
#include <stdlib.h>
#include "re2g_torch.h"
*/
import "C"

import (
	"fmt"
	"math"
	"strings"
	"unsafe"
)

// Param is a named trainable tensor.
type Param struct {
	Name   string
	Tensor *Tensor
	// Decay says whether weight decay applies (by convention not to biases
	// and LayerNorm weights).
	Decay bool
}

// AdamWConfig holds AdamW's hyper-parameters (torch.optim.AdamW's names).
type AdamWConfig struct {
	LR          float64
	Beta1       float64
	Beta2       float64
	Eps         float64
	WeightDecay float64
}

// DefaultAdamW is torch's default AdamW with the given learning rate.
func DefaultAdamW(lr float64) AdamWConfig {
	return AdamWConfig{LR: lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01}
}

// AdamW is libtorch's AdamW optimiser over a fixed list of parameters.
type AdamW struct {
	h      C.re2g_adamw_t
	params []Param
	cfg    AdamWConfig
}

// NewAdamW builds an optimiser; every parameter must require grad.
func NewAdamW(params []Param, cfg AdamWConfig) (*AdamW, error) {
	if len(params) == 0 {
		return nil, fmt.Errorf("adamw: no parameters")
	}
	ts := make([]*Tensor, len(params))
	decay := make([]C.int, len(params))
	for i, p := range params {
		ts[i] = p.Tensor
		if p.Decay {
			decay[i] = 1
		}
	}
	hs, err := handles("adamw", ts)
	if err != nil {
		return nil, err
	}
	var h C.re2g_adamw_t
	if err := cErr("adamw", C.re2g_adamw_new((*C.re2g_t)(unsafe.Pointer(&hs[0])), (*C.int)(unsafe.Pointer(&decay[0])),
		C.int(len(hs)), C.double(cfg.LR), C.double(cfg.Beta1), C.double(cfg.Beta2), C.double(cfg.Eps),
		C.double(cfg.WeightDecay), &h)); err != nil {
		return nil, err
	}
	return &AdamW{h: h, params: params, cfg: cfg}, nil
}

// DecayByName applies the usual rule: no weight decay for biases and
// LayerNorm weights.
func DecayByName(name string) bool {
	n := strings.ToLower(name)
	return !(strings.HasSuffix(n, "bias") || strings.Contains(n, "layernorm") || strings.Contains(n, "layer_norm") ||
		strings.Contains(n, "ln_") || strings.HasSuffix(n, "norm.weight"))
}

// Step updates the parameters from their gradients with learning rate lr.
func (o *AdamW) Step(lr float64) error {
	if o.h == nil {
		return fmt.Errorf("adamw: closed")
	}
	return cErr("adamw.step", C.re2g_adamw_step(o.h, C.double(lr)))
}

// ZeroGrad drops the gradients of every parameter.
func (o *AdamW) ZeroGrad() error {
	if o.h == nil {
		return fmt.Errorf("adamw: closed")
	}
	return cErr("adamw.zero_grad", C.re2g_adamw_zero_grad(o.h))
}

// Params are the optimised parameters, in the order given.
func (o *AdamW) Params() []Param { return o.params }

// Close frees the optimiser's state.
func (o *AdamW) Close() {
	if o.h != nil {
		C.re2g_adamw_free(o.h)
		o.h = nil
	}
}

// State returns the optimiser's state as named tensors owned by s
// ("<param>.exp_avg", "<param>.exp_avg_sq") and the per-parameter step
// counts, for checkpoints. Parameters not yet stepped are absent.
func (o *AdamW) State(s *Scope) (map[string]*Tensor, map[string]int64, error) {
	ts := map[string]*Tensor{}
	steps := map[string]int64{}
	for i, p := range o.params {
		var has C.int
		var m, v C.re2g_t
		var step C.int64_t
		if err := cErr("adamw.state", C.re2g_adamw_get_state(o.h, C.int(i), &has, &m, &v, &step)); err != nil {
			return nil, nil, err
		}
		if has == 0 {
			continue
		}
		ts[p.Name+".exp_avg"] = s.wrap(m)
		ts[p.Name+".exp_avg_sq"] = s.wrap(v)
		steps[p.Name] = int64(step)
	}
	return ts, steps, nil
}

// LoadState restores what State returned.
func (o *AdamW) LoadState(ts map[string]*Tensor, steps map[string]int64) error {
	for i, p := range o.params {
		step, ok := steps[p.Name]
		if !ok {
			continue
		}
		m, v := ts[p.Name+".exp_avg"], ts[p.Name+".exp_avg_sq"]
		if !m.Valid() || !v.Valid() {
			return fmt.Errorf("adamw: state of %s is incomplete", p.Name)
		}
		if err := cErr("adamw.load_state", C.re2g_adamw_set_state(o.h, C.int(i), m.h, v.h, C.int64_t(step))); err != nil {
			return fmt.Errorf("adamw: state of %s: %w", p.Name, err)
		}
	}
	return nil
}

// LinearSchedule is the linear warm-up then linear decay to zero of Hugging
// Face's get_linear_schedule_with_warmup.
type LinearSchedule struct {
	Base   float64 // peak learning rate
	Warmup int     // steps of warm-up
	Total  int     // total steps
}

// LR is the learning rate for step (0-based: the rate used by the step-th update).
func (l LinearSchedule) LR(step int) float64 {
	if step < l.Warmup {
		return l.Base * float64(step) / math.Max(1, float64(l.Warmup))
	}
	return l.Base * math.Max(0, float64(l.Total-step)/math.Max(1, float64(l.Total-l.Warmup)))
}
