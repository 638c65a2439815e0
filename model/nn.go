package model

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/re2g/re2g/internal/atomicfile"
	"github.com/re2g/re2g/torch"
)

// Linear is y = x·Wᵀ + b (torch.nn.Linear's layout: W is [out, in]).
type Linear struct {
	Weight *torch.Tensor `st:"weight"`
	Bias   *torch.Tensor `st:"bias,optional"`
	In     int64         `st:"-"`
	Out    int64         `st:"-"`
}

// Shapes implements Shaper when In and Out are set.
func (l *Linear) Shapes() map[string][]int64 {
	if l.In == 0 {
		return nil
	}
	return map[string][]int64{"weight": {l.Out, l.In}, "bias": {l.Out}}
}

// Forward applies the layer.
func (l *Linear) Forward(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
	return s.Linear(x, l.Weight, l.Bias)
}

// LayerNorm normalises over the last dimension.
type LayerNorm struct {
	Weight *torch.Tensor `st:"weight"`
	Bias   *torch.Tensor `st:"bias"`
	Eps    float64       `st:"-"`
	Dim    int64         `st:"-"`
}

// Shapes implements Shaper when Dim is set.
func (l *LayerNorm) Shapes() map[string][]int64 {
	if l.Dim == 0 {
		return nil
	}
	return map[string][]int64{"weight": {l.Dim}, "bias": {l.Dim}}
}

// Forward applies the layer.
func (l *LayerNorm) Forward(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
	return s.LayerNorm(x, l.Weight, l.Bias, l.Eps)
}

// Embedding is a lookup table.
type Embedding struct {
	Weight *torch.Tensor `st:"weight"`
	Rows   int64         `st:"-"`
	Dim    int64         `st:"-"`
}

// Shapes implements Shaper when Rows and Dim are set.
func (e *Embedding) Shapes() map[string][]int64 {
	if e.Rows == 0 {
		return nil
	}
	return map[string][]int64{"weight": {e.Rows, e.Dim}}
}

// Forward looks ids up.
func (e *Embedding) Forward(s *torch.Scope, ids *torch.Tensor) *torch.Tensor {
	return s.Embedding(e.Weight, ids, -1)
}

// ForwardInRange is Forward for ids in range by construction
// (torch.Scope.EmbeddingInRange): no read-back of the ids.
func (e *Embedding) ForwardInRange(s *torch.Scope, ids *torch.Tensor) *torch.Tensor {
	return s.EmbeddingInRange(e.Weight, ids, -1)
}

// Activation applies the named activation of a Hugging Face config
// ("gelu", "gelu_new", "relu", "tanh", "silu"...).
func Activation(s *torch.Scope, name string, x *torch.Tensor) *torch.Tensor {
	switch name {
	case "gelu", "gelu_python":
		return s.Gelu(x)
	case "gelu_new", "gelu_pytorch_tanh", "gelu_fast":
		return s.GeluTanh(x)
	case "relu":
		return s.Relu(x)
	case "tanh":
		return s.Tanh(x)
	case "silu", "swish":
		return s.Silu(x)
	}
	s.SetErr(fmt.Errorf("unsupported activation %q", name))
	return x
}

// CheckActivation reports an unsupported activation name at load time.
func CheckActivation(name string) error {
	switch name {
	case "gelu", "gelu_python", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "relu", "tanh", "silu", "swish":
		return nil
	}
	return fmt.Errorf("unsupported activation %q", name)
}

// Parameters lists src's tensors as trainable parameters (named by
// checkpoint name, weight decay by the usual rule) and marks them as
// requiring gradients.
func Parameters(src any, prefix string) ([]torch.Param, error) {
	ts, err := Tensors(src, prefix)
	if err != nil {
		return nil, err
	}
	names := sortedKeys(ts)
	ps := make([]torch.Param, 0, len(names))
	for _, n := range names {
		t := ts[n]
		if err := t.SetRequiresGrad(true); err != nil {
			return nil, fmt.Errorf("parameter %s: %w", n, err)
		}
		ps = append(ps, torch.Param{Name: n, Tensor: t, Decay: torch.DecayByName(n)})
	}
	return ps, nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sortStrings(ks)
	return ks
}

// Save writes a Hugging Face model directory: config (marshalled to
// config.json) and src's tensors (model.safetensors, tied weights once),
// each file atomically. extra files (e.g. generation_config.json) are
// written as given.
func Save(dir string, config any, src any, prefix string, extra map[string]any) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save %s: %w", dir, err)
	}
	ts, err := Tensors(src, prefix)
	if err != nil {
		return err
	}
	if err := torch.SaveSafetensors(filepath.Join(dir, "model.safetensors"), ts, map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("save %s: %w", dir, err)
	}
	files := map[string]any{"config.json": config}
	for k, v := range extra {
		files[k] = v
	}
	for name, v := range files {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return fmt.Errorf("save %s: %s: %w", dir, name, err)
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, name), append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// AdditiveMask turns a [B, L] 0/1 attention mask into the [B, 1, 1, L]
// additive mask of Hugging Face's get_extended_attention_mask: 0 where
// attended, the dtype's smallest finite value where masked.
func AdditiveMask(s *torch.Scope, mask *torch.Tensor, dt torch.DType) *torch.Tensor {
	m := s.ToDType(s.Unsqueeze(s.Unsqueeze(mask, 1), 1), dt)
	return s.MulScalar(s.RSubScalar(m, 1), MinValue(dt))
}

// PaddingMask is AdditiveMask, or nil when mask [B, L] has no padding: as
// transformers does for scaled-dot-product attention, so that the fused
// kernels that take no mask (flash attention on CUDA) can run. It reads one
// value back from the device.
func PaddingMask(s *torch.Scope, mask *torch.Tensor, dt torch.DType) *torch.Tensor {
	if mask == nil {
		return nil
	}
	if v, err := s.Min(mask, false).Item(); err == nil && v == 1 {
		return nil
	}
	return AdditiveMask(s, mask, dt)
}

// MinValue is torch.finfo(dt).min.
func MinValue(dt torch.DType) float64 {
	switch dt {
	case torch.Float16:
		return -65504
	case torch.BFloat16:
		return -3.3895313892515355e38
	case torch.Float64:
		return -math.MaxFloat64
	}
	return -math.MaxFloat32
}

// overlay is raw overlaid with typed's JSON fields.
func overlay(typed any, raw map[string]any) ([]byte, error) {
	b, err := json.Marshal(typed)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	for k, v := range raw {
		out[k] = v
	}
	var fields map[string]any
	if err := json.Unmarshal(b, &fields); err != nil {
		return nil, err
	}
	for k, v := range fields {
		out[k] = v
	}
	return json.Marshal(out)
}
