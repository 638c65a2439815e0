// Tensor operations: element-wise, reductions, linear algebra, shape, losses.
#include <torch/version.h>

#include <cmath>
#include <vector>

#include "internal.h"

using namespace re2g;

namespace {

int64_t reduction_code(int r) {
  switch (r) {
    case RE2G_RED_NONE: return at::Reduction::None;
    case RE2G_RED_MEAN: return at::Reduction::Mean;
    case RE2G_RED_SUM: return at::Reduction::Sum;
  }
  throw std::invalid_argument("unknown reduction " + std::to_string(r));
}

}  // namespace

extern "C" {

re2g_err re2g_unary(int grad, int op, re2g_t ha, re2g_t *out) {
  RE2G_TRY(grad)
  const at::Tensor &a = T(ha);
  at::Tensor r;
  switch (op) {
    case RE2G_CONTIGUOUS: r = a.contiguous(); break;
    case RE2G_EXP: r = a.exp(); break;
    case RE2G_LOG: r = a.log(); break;
    case RE2G_TANH: r = a.tanh(); break;
    case RE2G_RELU: r = a.relu(); break;
    case RE2G_GELU: r = at::gelu(a, "none"); break;
    case RE2G_GELU_TANH: r = at::gelu(a, "tanh"); break;
    case RE2G_SIGMOID: r = a.sigmoid(); break;
    case RE2G_NEG: r = a.neg(); break;
    case RE2G_SQRT: r = a.sqrt(); break;
    case RE2G_RSQRT: r = a.rsqrt(); break;
    case RE2G_ABS: r = a.abs(); break;
    case RE2G_DETACH: r = a.detach(); break;
    case RE2G_CLONE: r = a.clone(); break;
    case RE2G_LOGICAL_NOT: r = a.logical_not(); break;
    case RE2G_SILU: r = at::silu(a); break;
    default: throw std::invalid_argument("unknown unary op " + std::to_string(op));
  }
  *out = wrap(std::move(r));
  RE2G_CATCH
}

re2g_err re2g_binary(int grad, int op, re2g_t ha, re2g_t hb, re2g_t *out) {
  RE2G_TRY(grad)
  const at::Tensor &a = T(ha);
  const at::Tensor &b = T(hb);
  at::Tensor r;
  switch (op) {
    case RE2G_ADD: r = a.add(b); break;
    case RE2G_SUB: r = a.sub(b); break;
    case RE2G_MUL: r = a.mul(b); break;
    case RE2G_DIV: r = a.div(b); break;
    case RE2G_MATMUL: r = a.matmul(b); break;
    case RE2G_BMM: r = a.bmm(b); break;
    case RE2G_MAXIMUM: r = at::maximum(a, b); break;
    case RE2G_MINIMUM: r = at::minimum(a, b); break;
    case RE2G_EQ: r = a.eq(b); break;
    case RE2G_NE: r = a.ne(b); break;
    case RE2G_LT: r = a.lt(b); break;
    case RE2G_LE: r = a.le(b); break;
    case RE2G_GT: r = a.gt(b); break;
    case RE2G_GE: r = a.ge(b); break;
    case RE2G_POW: r = a.pow(b); break;
    case RE2G_LOGICAL_AND: r = a.logical_and(b); break;
    case RE2G_LOGICAL_OR: r = a.logical_or(b); break;
    default: throw std::invalid_argument("unknown binary op " + std::to_string(op));
  }
  *out = wrap(std::move(r));
  RE2G_CATCH
}

re2g_err re2g_scalar(int grad, int op, re2g_t ha, double s, re2g_t *out) {
  RE2G_TRY(grad)
  const at::Tensor &a = T(ha);
  at::Tensor r;
  switch (op) {
    case RE2G_ADD_S: r = a.add(s); break;
    case RE2G_SUB_S: r = a.sub(s); break;
    case RE2G_MUL_S: r = a.mul(s); break;
    case RE2G_DIV_S: r = a.div(s); break;
    case RE2G_POW_S: r = a.pow(s); break;
    case RE2G_RSUB_S: r = at::rsub(a, s); break;
    case RE2G_EQ_S: r = a.eq(s); break;
    case RE2G_NE_S: r = a.ne(s); break;
    case RE2G_LT_S: r = a.lt(s); break;
    case RE2G_LE_S: r = a.le(s); break;
    case RE2G_GT_S: r = a.gt(s); break;
    case RE2G_GE_S: r = a.ge(s); break;
    case RE2G_CLAMP_MIN_S: r = a.clamp_min(s); break;
    case RE2G_CLAMP_MAX_S: r = a.clamp_max(s); break;
    default: throw std::invalid_argument("unknown scalar op " + std::to_string(op));
  }
  *out = wrap(std::move(r));
  RE2G_CATCH
}

re2g_err re2g_reduce(int grad, int op, re2g_t ha, const int64_t *d, int nd, int keepdim, re2g_t *out) {
  RE2G_TRY(grad)
  const at::Tensor &a = T(ha);
  at::Tensor r;
  bool all = nd == 0;
  std::vector<int64_t> alld;
  if (all) {
    for (int64_t i = 0; i < a.dim(); i++) alld.push_back(i);
  }
  at::IntArrayRef ds = all ? at::IntArrayRef(alld) : dims(d, nd);
  bool kd = keepdim != 0;
  switch (op) {
    // Sum and logsumexp in float32 under autocast, as CUDA autocast does.
    case RE2G_SUM: {
      at::Tensor a32 = autocast_fp32(a);
      r = all && !kd ? a32.sum() : a32.sum(ds, kd);
      break;
    }
    case RE2G_MEAN: r = all && !kd ? a.mean() : a.mean(ds, kd); break;
    case RE2G_LOGSUMEXP: r = autocast_fp32(a).logsumexp(ds, kd); break;
    case RE2G_MAX:
    case RE2G_MIN:
    case RE2G_PROD:
      if (all && !kd) {
        r = op == RE2G_MAX ? a.max() : op == RE2G_MIN ? a.min() : a.prod();
      } else {
        if (ds.size() != 1) throw std::invalid_argument("max/min/prod reduce one dimension or all");
        if (op == RE2G_MAX) r = std::get<0>(a.max(ds[0], kd));
        else if (op == RE2G_MIN) r = std::get<0>(a.min(ds[0], kd));
        else r = a.prod(ds[0], kd);
      }
      break;
    default: throw std::invalid_argument("unknown reduce op " + std::to_string(op));
  }
  *out = wrap(std::move(r));
  RE2G_CATCH
}

re2g_err re2g_argmax(int grad, re2g_t ha, int64_t dim, int keepdim, re2g_t *out) {
  RE2G_TRY(grad)
  *out = wrap(T(ha).argmax(dim, keepdim != 0));
  RE2G_CATCH
}

re2g_err re2g_linear(int grad, re2g_t x, re2g_t w, re2g_t b, re2g_t *out) {
  RE2G_TRY(grad)
  c10::optional<at::Tensor> bias;
  if (b != nullptr) bias = T(b);
  *out = wrap(at::linear(T(x), T(w), bias));
  RE2G_CATCH
}

re2g_err re2g_softmax(int grad, re2g_t ha, int64_t dim, int log, re2g_t *out) {
  RE2G_TRY(grad)
  at::Tensor a = autocast_fp32(T(ha));
  *out = wrap(log ? at::log_softmax(a, dim) : at::softmax(a, dim));
  RE2G_CATCH
}

re2g_err re2g_layer_norm(int grad, re2g_t ha, re2g_t w, re2g_t b, int normalized_ndim, double eps,
                         re2g_t *out) {
  RE2G_TRY(grad)
  at::Tensor a = autocast_fp32(T(ha));
  if (normalized_ndim < 1 || normalized_ndim > a.dim())
    throw std::invalid_argument("layer_norm: normalized_ndim " + std::to_string(normalized_ndim) +
                                " for a tensor of " + std::to_string(a.dim()) + " dims");
  auto shape = a.sizes().slice(a.dim() - normalized_ndim);
  c10::optional<at::Tensor> wt, bt;
  // Under autocast the weights follow the input to float32 (a no-op for
  // float32 master weights).
  if (w != nullptr) wt = autocast_fp32(T(w));
  if (b != nullptr) bt = autocast_fp32(T(b));
  *out = wrap(at::layer_norm(a, shape, wt, bt, eps));
  RE2G_CATCH
}

re2g_err re2g_embedding(int grad, re2g_t weight, re2g_t ids, int64_t padding_idx, int check, re2g_t *out) {
  RE2G_TRY(grad)
  const at::Tensor &w = T(weight);
  const at::Tensor &i = T(ids);
  // An id outside the table is an error here, not a device-side assert on
  // CUDA; the check reads the ids' range back (one host transfer), so
  // callers whose ids are in range by construction pass check 0.
  if (check && i.numel() > 0) {
    count_host_read();
    auto range = at::stack({i.min(), i.max()}).to(at::kCPU);
    int64_t mn = range[0].item<int64_t>(), mx = range[1].item<int64_t>();
    if (mn < 0 || mx >= w.size(0))
      throw std::out_of_range("embedding: ids range [" + std::to_string(mn) + ", " + std::to_string(mx) +
                              "] outside a table of " + std::to_string(w.size(0)) + " rows");
  }
  *out = wrap(at::embedding(w, i, padding_idx));
  RE2G_CATCH
}

re2g_err re2g_dropout(int grad, re2g_t ha, double p, int train, re2g_t *out) {
  RE2G_TRY(grad)
  *out = wrap(at::dropout(T(ha), p, train != 0));
  RE2G_CATCH
}

re2g_err re2g_topk(int grad, re2g_t ha, int64_t k, int64_t dim, int largest, re2g_t *values,
                   re2g_t *indices) {
  RE2G_TRY(grad)
  auto r = T(ha).topk(k, dim, largest != 0, /*sorted=*/true);
  *values = wrap(std::get<0>(r));
  *indices = wrap(std::get<1>(r));
  RE2G_CATCH
}

re2g_err re2g_sort(int grad, re2g_t ha, int64_t dim, int descending, re2g_t *values, re2g_t *indices) {
  RE2G_TRY(grad)
  auto r = T(ha).sort(/*stable=*/true, dim, descending != 0);
  *values = wrap(std::get<0>(r));
  *indices = wrap(std::get<1>(r));
  RE2G_CATCH
}

re2g_err re2g_attention(int grad, re2g_t hq, re2g_t hk, re2g_t hv, re2g_t hmask, double dropout_p, int causal,
                        double scale, re2g_t *out) {
  RE2G_TRY(grad)
  const at::Tensor &q = T(hq);
  const at::Tensor &k = T(hk);
  const at::Tensor &v = T(hv);
  if (q.dim() != 4 || k.dim() != 4 || v.dim() != 4)
    throw std::invalid_argument("attention: q, k, v must be [batch, heads, len, dim]");
  double sc = scale > 0 ? scale : 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  at::Tensor mask;
  if (hmask != nullptr) mask = T(hmask);
  // Causal masking: a one-token query (a cached decode step) sees every key
  // and needs no mask; a square one without another mask goes to the fused
  // kernel as is_causal, which CUDA runs without materialising a mask.
  int64_t lq = q.size(2), lk = k.size(2);
  bool fused_causal = false;
  if (causal && lq > 1) {
    if (!mask.defined() && lq == lk) {
      fused_causal = true;
    } else {
      auto keep = at::ones({lq, lk}, q.options().dtype(at::kBool)).tril(lk - lq);
      auto cm = at::zeros({lq, lk}, q.options()).masked_fill(keep.logical_not(), -std::numeric_limits<float>::infinity());
      mask = mask.defined() ? mask + cm : cm;
    }
  }
#if TORCH_VERSION_MAJOR >= 2
  // The fused kernel, except on the CPU in 16-bit floats: there libtorch's
  // fused CPU kernel (2.6 and 2.14 measured) is ~30x slower than the plain
  // matmul-softmax-matmul below, which runs on the CPU's bf16 matrix units.
  // Under CPU autocast its inputs would be cast to bfloat16: the same.
  if (q.is_cuda() || !(autocast_on(q) || q.scalar_type() == at::kBFloat16 || q.scalar_type() == at::kHalf)) {
    c10::optional<at::Tensor> m;
    if (mask.defined()) m = mask.to(q.scalar_type());
    *out = wrap(at::scaled_dot_product_attention(q, k, v, m, dropout_p, fused_causal, sc));
    return nullptr;
  }
#endif
  if (fused_causal) {
    auto keep = at::ones({lq, lk}, q.options().dtype(at::kBool)).tril(0);
    mask = at::zeros({lq, lk}, q.options()).masked_fill(keep.logical_not(), -std::numeric_limits<float>::infinity());
  }
  // Under autocast the products run in its 16-bit type (autocast casts
  // them) and the softmax in float32, as CUDA autocast does.
  at::Tensor s = at::matmul(q, k.transpose(-2, -1)).mul(sc);
  if (mask.defined()) s = s + mask;
  at::Tensor p = at::softmax(autocast_fp32(s), -1);
  if (dropout_p > 0) p = at::dropout(p, dropout_p, true);
  *out = wrap(at::matmul(p, v));
  RE2G_CATCH
}

re2g_err re2g_view(int grad, re2g_t ha, const int64_t *shape, int ndim, int reshape, re2g_t *out) {
  RE2G_TRY(grad)
  *out = wrap(reshape ? T(ha).reshape(dims(shape, ndim)) : T(ha).view(dims(shape, ndim)));
  RE2G_CATCH
}

re2g_err re2g_permute(int grad, re2g_t ha, const int64_t *d, int nd, re2g_t *out) {
  RE2G_TRY(grad)
  *out = wrap(T(ha).permute(dims(d, nd)));
  RE2G_CATCH
}

re2g_err re2g_transpose(int grad, re2g_t ha, int64_t d0, int64_t d1, re2g_t *out) {
  RE2G_TRY(grad)
  *out = wrap(T(ha).transpose(d0, d1));
  RE2G_CATCH
}

re2g_err re2g_expand(int grad, re2g_t ha, const int64_t *shape, int ndim, re2g_t *out) {
  RE2G_TRY(grad)
  *out = wrap(T(ha).expand(dims(shape, ndim)));
  RE2G_CATCH
}

re2g_err re2g_unsqueeze(int grad, re2g_t ha, int64_t dim, re2g_t *out) {
  RE2G_TRY(grad)
  *out = wrap(T(ha).unsqueeze(dim));
  RE2G_CATCH
}

re2g_err re2g_squeeze(int grad, re2g_t ha, int64_t dim, re2g_t *out) {
  RE2G_TRY(grad)
  *out = wrap(T(ha).squeeze(dim));
  RE2G_CATCH
}

re2g_err re2g_slice(int grad, re2g_t ha, int64_t dim, int64_t start, int64_t end, int64_t step, re2g_t *out) {
  RE2G_TRY(grad)
  *out = wrap(T(ha).slice(dim, start, end, step));
  RE2G_CATCH
}

re2g_err re2g_select(int grad, re2g_t ha, int64_t dim, int64_t index, re2g_t *out) {
  RE2G_TRY(grad)
  *out = wrap(T(ha).select(dim, index));
  RE2G_CATCH
}

re2g_err re2g_cat(int grad, const re2g_t *ts, int n, int64_t dim, int stack, re2g_t *out) {
  RE2G_TRY(grad)
  std::vector<at::Tensor> v;
  v.reserve(n);
  for (int i = 0; i < n; i++) v.push_back(T(ts[i]));
  *out = wrap(stack ? at::stack(v, dim) : at::cat(v, dim));
  RE2G_CATCH
}

re2g_err re2g_index_select(int grad, re2g_t ha, int64_t dim, re2g_t index, re2g_t *out) {
  RE2G_TRY(grad)
  *out = wrap(T(ha).index_select(dim, T(index)));
  RE2G_CATCH
}

re2g_err re2g_gather(int grad, re2g_t ha, int64_t dim, re2g_t index, re2g_t *out) {
  RE2G_TRY(grad)
  *out = wrap(T(ha).gather(dim, T(index)));
  RE2G_CATCH
}

re2g_err re2g_masked_fill(int grad, re2g_t ha, re2g_t mask, double value, re2g_t *out) {
  RE2G_TRY(grad)
  *out = wrap(T(ha).masked_fill(T(mask), value));
  RE2G_CATCH
}

re2g_err re2g_index_fill(int grad, re2g_t ha, int64_t dim, re2g_t index, double value, re2g_t *out) {
  RE2G_TRY(grad)
  *out = wrap(T(ha).index_fill(dim, T(index), value));
  RE2G_CATCH
}

re2g_err re2g_where(int grad, re2g_t cond, re2g_t ha, re2g_t hb, re2g_t *out) {
  RE2G_TRY(grad)
  *out = wrap(at::where(T(cond), T(ha), T(hb)));
  RE2G_CATCH
}

re2g_err re2g_tril(int grad, re2g_t ha, int64_t diagonal, int upper, re2g_t *out) {
  RE2G_TRY(grad)
  *out = wrap(upper ? T(ha).triu(diagonal) : T(ha).tril(diagonal));
  RE2G_CATCH
}

re2g_err re2g_repeat_interleave(int grad, re2g_t ha, int64_t repeats, int64_t dim, re2g_t *out) {
  RE2G_TRY(grad)
  *out = wrap(T(ha).repeat_interleave(repeats, dim));
  RE2G_CATCH
}

re2g_err re2g_cross_entropy(int grad, re2g_t logits, re2g_t target, int64_t ignore_index, int reduction,
                            double label_smoothing, re2g_t *out) {
  RE2G_TRY(grad)
  *out = wrap(at::cross_entropy_loss(autocast_fp32(T(logits)), T(target), {}, reduction_code(reduction),
                                     ignore_index, label_smoothing));
  RE2G_CATCH
}

re2g_err re2g_kl_div(int grad, re2g_t input, re2g_t target, int reduction, int log_target, re2g_t *out) {
  RE2G_TRY(grad)
  at::Tensor in = autocast_fp32(T(input));
  at::Tensor tg = autocast_fp32(T(target));
  at::Tensor r;
  if (reduction == RE2G_RED_BATCHMEAN) {
    // batchmean: the sum divided by the batch size, as torch.nn.functional.kl_div.
    r = at::kl_div(in, tg, at::Reduction::Sum, log_target != 0);
    if (in.dim() > 0) r = r / in.size(0);
  } else {
    r = at::kl_div(in, tg, reduction_code(reduction), log_target != 0);
  }
  *out = wrap(std::move(r));
  RE2G_CATCH
}

}  // extern "C"
