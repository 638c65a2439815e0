package torch

/*
#include "re2g_torch.h"
*/
import "C"

import "unsafe"

// op runs one shim call producing one tensor, with the scope's error
// discipline: skipped after an earlier error, error recorded with shapes.
func (s *Scope) op(name string, call func(g C.int, out *C.re2g_t) C.re2g_err, ins ...*Tensor) *Tensor {
	if !s.ready(name, ins...) {
		return invalid()
	}
	var h C.re2g_t
	if !s.check(name, call(s.grad(), &h), ins...) {
		return invalid()
	}
	return s.wrap(h)
}

func (s *Scope) unary(name string, code C.int, a *Tensor) *Tensor {
	return s.op(name, func(g C.int, out *C.re2g_t) C.re2g_err { return C.re2g_unary(g, code, a.h, out) }, a)
}

func (s *Scope) binary(name string, code C.int, a, b *Tensor) *Tensor {
	return s.op(name, func(g C.int, out *C.re2g_t) C.re2g_err { return C.re2g_binary(g, code, a.h, b.h, out) }, a, b)
}

func (s *Scope) scalar(name string, code C.int, a *Tensor, v float64) *Tensor {
	return s.op(name, func(g C.int, out *C.re2g_t) C.re2g_err {
		return C.re2g_scalar(g, code, a.h, C.double(v), out)
	}, a)
}

// Element-wise functions of one tensor.

func (s *Scope) Contiguous(a *Tensor) *Tensor { return s.unary("contiguous", C.RE2G_CONTIGUOUS, a) }
func (s *Scope) Exp(a *Tensor) *Tensor        { return s.unary("exp", C.RE2G_EXP, a) }
func (s *Scope) Log(a *Tensor) *Tensor        { return s.unary("log", C.RE2G_LOG, a) }
func (s *Scope) Tanh(a *Tensor) *Tensor       { return s.unary("tanh", C.RE2G_TANH, a) }
func (s *Scope) Relu(a *Tensor) *Tensor       { return s.unary("relu", C.RE2G_RELU, a) }
func (s *Scope) Sigmoid(a *Tensor) *Tensor    { return s.unary("sigmoid", C.RE2G_SIGMOID, a) }
func (s *Scope) Silu(a *Tensor) *Tensor       { return s.unary("silu", C.RE2G_SILU, a) }
func (s *Scope) Neg(a *Tensor) *Tensor        { return s.unary("neg", C.RE2G_NEG, a) }
func (s *Scope) Sqrt(a *Tensor) *Tensor       { return s.unary("sqrt", C.RE2G_SQRT, a) }
func (s *Scope) Rsqrt(a *Tensor) *Tensor      { return s.unary("rsqrt", C.RE2G_RSQRT, a) }
func (s *Scope) Abs(a *Tensor) *Tensor        { return s.unary("abs", C.RE2G_ABS, a) }
func (s *Scope) LogicalNot(a *Tensor) *Tensor { return s.unary("logical_not", C.RE2G_LOGICAL_NOT, a) }

// Gelu is the exact (erf) GELU, as BERT's and BART's "gelu".
func (s *Scope) Gelu(a *Tensor) *Tensor { return s.unary("gelu", C.RE2G_GELU, a) }

// GeluTanh is the tanh approximation ("gelu_new", "gelu_pytorch_tanh").
func (s *Scope) GeluTanh(a *Tensor) *Tensor { return s.unary("gelu_tanh", C.RE2G_GELU_TANH, a) }

// Detach returns a tensor sharing a's data with no autograd history.
func (s *Scope) Detach(a *Tensor) *Tensor { return s.unary("detach", C.RE2G_DETACH, a) }

// Clone copies a.
func (s *Scope) Clone(a *Tensor) *Tensor { return s.unary("clone", C.RE2G_CLONE, a) }

// Element-wise functions of two tensors, broadcasting.

func (s *Scope) Add(a, b *Tensor) *Tensor     { return s.binary("add", C.RE2G_ADD, a, b) }
func (s *Scope) Sub(a, b *Tensor) *Tensor     { return s.binary("sub", C.RE2G_SUB, a, b) }
func (s *Scope) Mul(a, b *Tensor) *Tensor     { return s.binary("mul", C.RE2G_MUL, a, b) }
func (s *Scope) Div(a, b *Tensor) *Tensor     { return s.binary("div", C.RE2G_DIV, a, b) }
func (s *Scope) Pow(a, b *Tensor) *Tensor     { return s.binary("pow", C.RE2G_POW, a, b) }
func (s *Scope) Maximum(a, b *Tensor) *Tensor { return s.binary("maximum", C.RE2G_MAXIMUM, a, b) }
func (s *Scope) Minimum(a, b *Tensor) *Tensor { return s.binary("minimum", C.RE2G_MINIMUM, a, b) }
func (s *Scope) Eq(a, b *Tensor) *Tensor      { return s.binary("eq", C.RE2G_EQ, a, b) }
func (s *Scope) Ne(a, b *Tensor) *Tensor      { return s.binary("ne", C.RE2G_NE, a, b) }
func (s *Scope) Lt(a, b *Tensor) *Tensor      { return s.binary("lt", C.RE2G_LT, a, b) }
func (s *Scope) Le(a, b *Tensor) *Tensor      { return s.binary("le", C.RE2G_LE, a, b) }
func (s *Scope) Gt(a, b *Tensor) *Tensor      { return s.binary("gt", C.RE2G_GT, a, b) }
func (s *Scope) Ge(a, b *Tensor) *Tensor      { return s.binary("ge", C.RE2G_GE, a, b) }
func (s *Scope) LogicalAnd(a, b *Tensor) *Tensor {
	return s.binary("logical_and", C.RE2G_LOGICAL_AND, a, b)
}
func (s *Scope) LogicalOr(a, b *Tensor) *Tensor {
	return s.binary("logical_or", C.RE2G_LOGICAL_OR, a, b)
}

// Matmul is torch.matmul (batched and broadcasting).
func (s *Scope) Matmul(a, b *Tensor) *Tensor { return s.binary("matmul", C.RE2G_MATMUL, a, b) }

// BMM multiplies batches of matrices: [b,n,m] x [b,m,p].
func (s *Scope) BMM(a, b *Tensor) *Tensor { return s.binary("bmm", C.RE2G_BMM, a, b) }

// Functions of a tensor and a number.

func (s *Scope) AddScalar(a *Tensor, v float64) *Tensor {
	return s.scalar("add_scalar", C.RE2G_ADD_S, a, v)
}
func (s *Scope) SubScalar(a *Tensor, v float64) *Tensor {
	return s.scalar("sub_scalar", C.RE2G_SUB_S, a, v)
}
func (s *Scope) MulScalar(a *Tensor, v float64) *Tensor {
	return s.scalar("mul_scalar", C.RE2G_MUL_S, a, v)
}
func (s *Scope) DivScalar(a *Tensor, v float64) *Tensor {
	return s.scalar("div_scalar", C.RE2G_DIV_S, a, v)
}
func (s *Scope) PowScalar(a *Tensor, v float64) *Tensor {
	return s.scalar("pow_scalar", C.RE2G_POW_S, a, v)
}

// RSubScalar is v - a.
func (s *Scope) RSubScalar(a *Tensor, v float64) *Tensor {
	return s.scalar("rsub_scalar", C.RE2G_RSUB_S, a, v)
}
func (s *Scope) EqScalar(a *Tensor, v float64) *Tensor {
	return s.scalar("eq_scalar", C.RE2G_EQ_S, a, v)
}
func (s *Scope) NeScalar(a *Tensor, v float64) *Tensor {
	return s.scalar("ne_scalar", C.RE2G_NE_S, a, v)
}
func (s *Scope) LtScalar(a *Tensor, v float64) *Tensor {
	return s.scalar("lt_scalar", C.RE2G_LT_S, a, v)
}
func (s *Scope) LeScalar(a *Tensor, v float64) *Tensor {
	return s.scalar("le_scalar", C.RE2G_LE_S, a, v)
}
func (s *Scope) GtScalar(a *Tensor, v float64) *Tensor {
	return s.scalar("gt_scalar", C.RE2G_GT_S, a, v)
}
func (s *Scope) GeScalar(a *Tensor, v float64) *Tensor {
	return s.scalar("ge_scalar", C.RE2G_GE_S, a, v)
}
func (s *Scope) ClampMin(a *Tensor, v float64) *Tensor {
	return s.scalar("clamp_min", C.RE2G_CLAMP_MIN_S, a, v)
}
func (s *Scope) ClampMax(a *Tensor, v float64) *Tensor {
	return s.scalar("clamp_max", C.RE2G_CLAMP_MAX_S, a, v)
}

// Reductions.

func (s *Scope) reduce(name string, code C.int, a *Tensor, keepdim bool, dims []int64) *Tensor {
	kd := C.int(0)
	if keepdim {
		kd = 1
	}
	return s.op(name, func(g C.int, out *C.re2g_t) C.re2g_err {
		return C.re2g_reduce(g, code, a.h, shapePtr(dims), C.int(len(dims)), kd, out)
	}, a)
}

// Sum sums over dims (all of them when none are given).
func (s *Scope) Sum(a *Tensor, keepdim bool, dims ...int64) *Tensor {
	return s.reduce("sum", C.RE2G_SUM, a, keepdim, dims)
}

// Mean averages over dims (all of them when none are given).
func (s *Scope) Mean(a *Tensor, keepdim bool, dims ...int64) *Tensor {
	return s.reduce("mean", C.RE2G_MEAN, a, keepdim, dims)
}

// Max is the maximum over one dim, or over all when none is given.
func (s *Scope) Max(a *Tensor, keepdim bool, dims ...int64) *Tensor {
	return s.reduce("max", C.RE2G_MAX, a, keepdim, dims)
}

// Min is the minimum over one dim, or over all when none is given.
func (s *Scope) Min(a *Tensor, keepdim bool, dims ...int64) *Tensor {
	return s.reduce("min", C.RE2G_MIN, a, keepdim, dims)
}

// LogSumExp is log(sum(exp(a))) over dims, computed stably.
func (s *Scope) LogSumExp(a *Tensor, keepdim bool, dims ...int64) *Tensor {
	return s.reduce("logsumexp", C.RE2G_LOGSUMEXP, a, keepdim, dims)
}

// Argmax is the index of the maximum along dim.
func (s *Scope) Argmax(a *Tensor, dim int64, keepdim bool) *Tensor {
	kd := C.int(0)
	if keepdim {
		kd = 1
	}
	return s.op("argmax", func(g C.int, out *C.re2g_t) C.re2g_err { return C.re2g_argmax(g, a.h, C.int64_t(dim), kd, out) }, a)
}

// Neural-network functions.

// Linear is x·wᵀ + b, with w of shape [out, in]; b may be nil.
func (s *Scope) Linear(x, w, b *Tensor) *Tensor {
	if b == nil {
		return s.op("linear", func(g C.int, out *C.re2g_t) C.re2g_err { return C.re2g_linear(g, x.h, w.h, nil, out) }, x, w)
	}
	return s.op("linear", func(g C.int, out *C.re2g_t) C.re2g_err { return C.re2g_linear(g, x.h, w.h, b.h, out) }, x, w, b)
}

// Softmax along dim.
func (s *Scope) Softmax(a *Tensor, dim int64) *Tensor {
	return s.op("softmax", func(g C.int, out *C.re2g_t) C.re2g_err { return C.re2g_softmax(g, a.h, C.int64_t(dim), 0, out) }, a)
}

// LogSoftmax along dim.
func (s *Scope) LogSoftmax(a *Tensor, dim int64) *Tensor {
	return s.op("log_softmax", func(g C.int, out *C.re2g_t) C.re2g_err { return C.re2g_softmax(g, a.h, C.int64_t(dim), 1, out) }, a)
}

// LayerNorm normalises over the last dimension, then scales by w and shifts
// by b (either may be nil).
func (s *Scope) LayerNorm(a, w, b *Tensor, eps float64) *Tensor {
	ins := []*Tensor{a}
	var wh, bh C.re2g_t
	if w != nil {
		ins = append(ins, w)
		wh = w.h
	}
	if b != nil {
		ins = append(ins, b)
		bh = b.h
	}
	return s.op("layer_norm", func(g C.int, out *C.re2g_t) C.re2g_err {
		return C.re2g_layer_norm(g, a.h, wh, bh, 1, C.double(eps), out)
	}, ins...)
}

// Embedding looks ids up in the rows of weight; ids outside the table are an
// error, not a crash. paddingIdx (or -1) gets no gradient.
func (s *Scope) Embedding(weight, ids *Tensor, paddingIdx int64) *Tensor {
	return s.embedding(weight, ids, paddingIdx, 1)
}

// EmbeddingInRange is Embedding for ids in range by construction (a
// model's own token choices, positions checked on the host): it skips the
// range check and its read-back of the ids. On CUDA an id out of range is
// then a device-side assert, not an error.
func (s *Scope) EmbeddingInRange(weight, ids *Tensor, paddingIdx int64) *Tensor {
	return s.embedding(weight, ids, paddingIdx, 0)
}

func (s *Scope) embedding(weight, ids *Tensor, paddingIdx int64, check C.int) *Tensor {
	return s.op("embedding", func(g C.int, out *C.re2g_t) C.re2g_err {
		return C.re2g_embedding(g, weight.h, ids.h, C.int64_t(paddingIdx), check, out)
	}, weight, ids)
}

// Dropout zeroes elements with probability p and rescales, when train is set;
// otherwise it returns a itself (as a new handle).
func (s *Scope) Dropout(a *Tensor, p float64, train bool) *Tensor {
	tr := C.int(0)
	if train {
		tr = 1
	}
	return s.op("dropout", func(g C.int, out *C.re2g_t) C.re2g_err { return C.re2g_dropout(g, a.h, C.double(p), tr, out) }, a)
}

func (s *Scope) op2(name string, call func(g C.int, v, i *C.re2g_t) C.re2g_err, a *Tensor) (*Tensor, *Tensor) {
	if !s.ready(name, a) {
		return invalid(), invalid()
	}
	var v, i C.re2g_t
	if !s.check(name, call(s.grad(), &v, &i), a) {
		return invalid(), invalid()
	}
	return s.wrap(v), s.wrap(i)
}

// TopK returns the k largest values along dim, sorted, and their indices.
func (s *Scope) TopK(a *Tensor, k, dim int64) (values, indices *Tensor) {
	return s.op2("topk", func(g C.int, v, i *C.re2g_t) C.re2g_err {
		return C.re2g_topk(g, a.h, C.int64_t(k), C.int64_t(dim), 1, v, i)
	}, a)
}

// Sort sorts along dim (stable) and returns values and indices.
func (s *Scope) Sort(a *Tensor, dim int64, descending bool) (values, indices *Tensor) {
	d := C.int(0)
	if descending {
		d = 1
	}
	return s.op2("sort", func(g C.int, v, i *C.re2g_t) C.re2g_err {
		return C.re2g_sort(g, a.h, C.int64_t(dim), d, v, i)
	}, a)
}

// Attention is softmax(q·kᵀ·scale + mask)·v for q, k, v of shape
// [batch, heads, len, dim], with an optional additive mask broadcastable to
// [batch, heads, lenq, lenk], optional causal masking and dropout on the
// weights. scale <= 0 means 1/sqrt(dim). It uses libtorch's fused
// scaled_dot_product_attention where available (libtorch 2.x).
func (s *Scope) Attention(q, k, v, mask *Tensor, dropout float64, causal bool, scale float64) *Tensor {
	c := C.int(0)
	if causal {
		c = 1
	}
	ins := []*Tensor{q, k, v}
	var mh C.re2g_t
	if mask != nil {
		ins = append(ins, mask)
		mh = mask.h
	}
	return s.op("attention", func(g C.int, out *C.re2g_t) C.re2g_err {
		return C.re2g_attention(g, q.h, k.h, v.h, mh, C.double(dropout), c, C.double(scale), out)
	}, ins...)
}

// Shape operations.

// View reshapes without copying (a must be compatible); one dim may be -1.
func (s *Scope) View(a *Tensor, shape ...int64) *Tensor {
	return s.op("view", func(g C.int, out *C.re2g_t) C.re2g_err {
		return C.re2g_view(g, a.h, shapePtr(shape), C.int(len(shape)), 0, out)
	}, a)
}

// Reshape reshapes, copying when a view is impossible.
func (s *Scope) Reshape(a *Tensor, shape ...int64) *Tensor {
	return s.op("reshape", func(g C.int, out *C.re2g_t) C.re2g_err {
		return C.re2g_view(g, a.h, shapePtr(shape), C.int(len(shape)), 1, out)
	}, a)
}

// Permute reorders dimensions.
func (s *Scope) Permute(a *Tensor, dims ...int64) *Tensor {
	return s.op("permute", func(g C.int, out *C.re2g_t) C.re2g_err {
		return C.re2g_permute(g, a.h, shapePtr(dims), C.int(len(dims)), out)
	}, a)
}

// Transpose swaps two dimensions.
func (s *Scope) Transpose(a *Tensor, d0, d1 int64) *Tensor {
	return s.op("transpose", func(g C.int, out *C.re2g_t) C.re2g_err {
		return C.re2g_transpose(g, a.h, C.int64_t(d0), C.int64_t(d1), out)
	}, a)
}

// Expand broadcasts a to shape without copying (-1 keeps a dimension).
func (s *Scope) Expand(a *Tensor, shape ...int64) *Tensor {
	return s.op("expand", func(g C.int, out *C.re2g_t) C.re2g_err {
		return C.re2g_expand(g, a.h, shapePtr(shape), C.int(len(shape)), out)
	}, a)
}

// Unsqueeze inserts a dimension of size 1 at dim.
func (s *Scope) Unsqueeze(a *Tensor, dim int64) *Tensor {
	return s.op("unsqueeze", func(g C.int, out *C.re2g_t) C.re2g_err { return C.re2g_unsqueeze(g, a.h, C.int64_t(dim), out) }, a)
}

// Squeeze removes dimension dim if its size is 1.
func (s *Scope) Squeeze(a *Tensor, dim int64) *Tensor {
	return s.op("squeeze", func(g C.int, out *C.re2g_t) C.re2g_err { return C.re2g_squeeze(g, a.h, C.int64_t(dim), out) }, a)
}

// Slice is a[..., start:end:step, ...] along dim (a view); end may exceed the size.
func (s *Scope) Slice(a *Tensor, dim, start, end, step int64) *Tensor {
	return s.op("slice", func(g C.int, out *C.re2g_t) C.re2g_err {
		return C.re2g_slice(g, a.h, C.int64_t(dim), C.int64_t(start), C.int64_t(end), C.int64_t(step), out)
	}, a)
}

// Select is a[..., index, ...] along dim, removing that dimension.
func (s *Scope) Select(a *Tensor, dim, index int64) *Tensor {
	return s.op("select", func(g C.int, out *C.re2g_t) C.re2g_err {
		return C.re2g_select(g, a.h, C.int64_t(dim), C.int64_t(index), out)
	}, a)
}

func (s *Scope) catStack(name string, dim int64, stack C.int, ts []*Tensor) *Tensor {
	if len(ts) == 0 {
		s.SetErr(&Error{Op: name, Msg: "no tensors"})
		return invalid()
	}
	hs := make([]C.re2g_t, len(ts))
	return s.op(name, func(g C.int, out *C.re2g_t) C.re2g_err {
		for i, t := range ts {
			hs[i] = t.h
		}
		return C.re2g_cat(g, (*C.re2g_t)(unsafe.Pointer(&hs[0])), C.int(len(hs)), C.int64_t(dim), stack, out)
	}, ts...)
}

// Cat concatenates along an existing dimension.
func (s *Scope) Cat(dim int64, ts ...*Tensor) *Tensor { return s.catStack("cat", dim, 0, ts) }

// Stack joins along a new dimension.
func (s *Scope) Stack(dim int64, ts ...*Tensor) *Tensor { return s.catStack("stack", dim, 1, ts) }

// IndexSelect picks the entries of a at index (int64, 1-D) along dim.
func (s *Scope) IndexSelect(a *Tensor, dim int64, index *Tensor) *Tensor {
	return s.op("index_select", func(g C.int, out *C.re2g_t) C.re2g_err {
		return C.re2g_index_select(g, a.h, C.int64_t(dim), index.h, out)
	}, a, index)
}

// Gather is torch.gather: out[i][j] = a[i][index[i][j]] for dim 1.
func (s *Scope) Gather(a *Tensor, dim int64, index *Tensor) *Tensor {
	return s.op("gather", func(g C.int, out *C.re2g_t) C.re2g_err {
		return C.re2g_gather(g, a.h, C.int64_t(dim), index.h, out)
	}, a, index)
}

// MaskedFill sets the elements of a where mask (bool, broadcastable) is true to v.
func (s *Scope) MaskedFill(a, mask *Tensor, v float64) *Tensor {
	return s.op("masked_fill", func(g C.int, out *C.re2g_t) C.re2g_err {
		return C.re2g_masked_fill(g, a.h, mask.h, C.double(v), out)
	}, a, mask)
}

// IndexFill sets the entries of a at index (int64, 1-D) along dim to v.
func (s *Scope) IndexFill(a *Tensor, dim int64, index *Tensor, v float64) *Tensor {
	return s.op("index_fill", func(g C.int, out *C.re2g_t) C.re2g_err {
		return C.re2g_index_fill(g, a.h, C.int64_t(dim), index.h, C.double(v), out)
	}, a, index)
}

// Where picks a where cond is true, else b.
func (s *Scope) Where(cond, a, b *Tensor) *Tensor {
	return s.op("where", func(g C.int, out *C.re2g_t) C.re2g_err { return C.re2g_where(g, cond.h, a.h, b.h, out) }, cond, a, b)
}

// Tril keeps the lower triangle (j <= i + diagonal) of the last two dims.
func (s *Scope) Tril(a *Tensor, diagonal int64) *Tensor {
	return s.op("tril", func(g C.int, out *C.re2g_t) C.re2g_err { return C.re2g_tril(g, a.h, C.int64_t(diagonal), 0, out) }, a)
}

// Triu keeps the upper triangle (j >= i + diagonal) of the last two dims.
func (s *Scope) Triu(a *Tensor, diagonal int64) *Tensor {
	return s.op("triu", func(g C.int, out *C.re2g_t) C.re2g_err { return C.re2g_tril(g, a.h, C.int64_t(diagonal), 1, out) }, a)
}

// RepeatInterleave repeats each slice along dim n times (beam expansion).
func (s *Scope) RepeatInterleave(a *Tensor, n, dim int64) *Tensor {
	return s.op("repeat_interleave", func(g C.int, out *C.re2g_t) C.re2g_err {
		return C.re2g_repeat_interleave(g, a.h, C.int64_t(n), C.int64_t(dim), out)
	}, a)
}

// To moves a to device d (a copy; the same handle's data when already there).
func (s *Scope) To(a *Tensor, d Device) *Tensor {
	return s.op("to", func(g C.int, out *C.re2g_t) C.re2g_err {
		return C.re2g_to(g, a.h, -1, C.int(d.Type), C.int(d.Index), out)
	}, a)
}

// ToDType converts a's elements to dt.
func (s *Scope) ToDType(a *Tensor, dt DType) *Tensor {
	return s.op("to_dtype", func(g C.int, out *C.re2g_t) C.re2g_err { return C.re2g_to(g, a.h, C.int(dt), -1, 0, out) }, a)
}

// Losses.

// Reduction says how a loss combines its per-element values.
type Reduction int

// Loss reductions.
const (
	ReduceNone      Reduction = C.RE2G_RED_NONE
	ReduceMean      Reduction = C.RE2G_RED_MEAN
	ReduceSum       Reduction = C.RE2G_RED_SUM
	ReduceBatchMean Reduction = C.RE2G_RED_BATCHMEAN // KL divergence only
)

// CrossEntropy is torch.nn.functional.cross_entropy over logits [N, C] (or
// [N, C, ...]) and int64 targets [N]; targets equal to ignoreIndex count for
// nothing (and not in the mean's denominator).
func (s *Scope) CrossEntropy(logits, target *Tensor, ignoreIndex int64, red Reduction, labelSmoothing float64) *Tensor {
	return s.op("cross_entropy", func(g C.int, out *C.re2g_t) C.re2g_err {
		return C.re2g_cross_entropy(g, logits.h, target.h, C.int64_t(ignoreIndex), C.int(red), C.double(labelSmoothing), out)
	}, logits, target)
}

// KLDiv is torch.nn.functional.kl_div: input holds log-probabilities; target
// holds probabilities (or log-probabilities when logTarget).
func (s *Scope) KLDiv(input, target *Tensor, red Reduction, logTarget bool) *Tensor {
	lt := C.int(0)
	if logTarget {
		lt = 1
	}
	return s.op("kl_div", func(g C.int, out *C.re2g_t) C.re2g_err {
		return C.re2g_kl_div(g, input.h, target.h, C.int(red), lt, out)
	}, input, target)
}
