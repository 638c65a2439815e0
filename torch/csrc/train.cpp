// Autograd, gradient clipping and the AdamW optimiser from libtorch.
#include <torch/optim/adamw.h>

#include <memory>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "internal.h"

namespace {

// stateKey is the key libtorch's optimisers file a parameter's state under: the
// printed TensorImpl address in libtorch 1.x, the address itself in 2.x.
template <typename Map>
typename Map::key_type stateKey(const Map &, const at::Tensor &p) {
  using Key = typename Map::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream s;
    s << p.unsafeGetTensorImpl();
    return s.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
}

}  // namespace

using namespace re2g;

struct re2g_adamw {
  std::unique_ptr<torch::optim::AdamW> opt;
  std::vector<at::Tensor> params;  // in the caller's order
};

extern "C" {

re2g_err re2g_set_requires_grad(re2g_t h, int flag) {
  RE2G_TRY_NOGRAD
  if (h == nullptr) throw std::invalid_argument("null tensor handle");
  h->t.set_requires_grad(flag != 0);
  RE2G_CATCH
}

int re2g_requires_grad(re2g_t h) { return h != nullptr && h->t.requires_grad() ? 1 : 0; }

re2g_err re2g_backward(re2g_t h, re2g_t grad_output, int retain_graph) {
  RE2G_TRY(1)
  const at::Tensor &t = T(h);
  if (!t.requires_grad()) throw std::invalid_argument("backward: tensor does not require grad (no graph was recorded)");
  at::Tensor g;
  if (grad_output != nullptr) g = T(grad_output);
  else if (t.numel() != 1)
    throw std::invalid_argument("backward: grad can be implicitly created only for scalar outputs, got " +
                                std::to_string(t.numel()) + " elements");
  t.backward(g, retain_graph != 0, false);
  RE2G_CATCH
}

re2g_err re2g_grad(re2g_t h, re2g_t *out) {
  RE2G_TRY_NOGRAD
  const at::Tensor &g = T(h).grad();
  *out = g.defined() ? wrap(g) : nullptr;
  RE2G_CATCH
}

re2g_err re2g_zero_grad(re2g_t h) {
  RE2G_TRY_NOGRAD
  T(h).mutable_grad().reset();
  RE2G_CATCH
}

re2g_err re2g_copy_(re2g_t dst, re2g_t src) {
  RE2G_TRY(0)
  T(dst).copy_(T(src));
  RE2G_CATCH
}

re2g_err re2g_clip_grad_norm(const re2g_t *params, int n, double max_norm, double *total_norm) {
  RE2G_TRY(0)
  // As torch.nn.utils.clip_grad_norm_ with the 2-norm: one norm over all
  // gradients, each scaled by max_norm / (norm + 1e-6) when that is below 1.
  std::vector<at::Tensor> grads, norms;
  for (int i = 0; i < n; i++) {
    const at::Tensor &g = T(params[i]).grad();
    if (!g.defined()) continue;
    grads.push_back(g);
    norms.push_back(g.detach().to(at::kFloat).norm(2));
  }
  *total_norm = 0;
  if (grads.empty()) return nullptr;
  at::Tensor total = at::stack(norms).norm(2);
  *total_norm = total.item<double>();
  at::Tensor coef = (max_norm / (total + 1e-6)).clamp_max(1.0);
  for (auto &g : grads) g.mul_(coef.to(g.device(), g.scalar_type()));
  RE2G_CATCH
}

re2g_err re2g_adamw_new(const re2g_t *params, const int *decay, int n, double lr, double beta1, double beta2,
                        double eps, double weight_decay, re2g_adamw_t *out) {
  RE2G_TRY(0)
  std::vector<at::Tensor> with, without, all;
  for (int i = 0; i < n; i++) {
    const at::Tensor &p = T(params[i]);
    if (!p.requires_grad()) throw std::invalid_argument("adamw: parameter " + std::to_string(i) + " does not require grad");
    (decay[i] ? with : without).push_back(p);
    all.push_back(p);
  }
  auto opts = torch::optim::AdamWOptions(lr).betas({beta1, beta2}).eps(eps).weight_decay(weight_decay);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (!with.empty()) groups.emplace_back(with, std::make_unique<torch::optim::AdamWOptions>(opts));
  if (!without.empty()) {
    auto no = std::make_unique<torch::optim::AdamWOptions>(opts);
    no->weight_decay(0.0);
    groups.emplace_back(without, std::move(no));
  }
  auto o = std::make_unique<re2g_adamw>();
  o->opt = std::make_unique<torch::optim::AdamW>(groups, opts);
  o->params = std::move(all);
  *out = o.release();
  RE2G_CATCH
}

void re2g_adamw_free(re2g_adamw_t o) { delete o; }

re2g_err re2g_adamw_step(re2g_adamw_t o, double lr) {
  RE2G_TRY(0)
  for (auto &g : o->opt->param_groups()) static_cast<torch::optim::AdamWOptions &>(g.options()).lr(lr);
  o->opt->step();
  RE2G_CATCH
}

re2g_err re2g_adamw_zero_grad(re2g_adamw_t o) {
  RE2G_TRY(0)
  for (auto &p : o->params) p.mutable_grad().reset();
  RE2G_CATCH
}

re2g_err re2g_adamw_get_state(re2g_adamw_t o, int i, int *has, re2g_t *exp_avg, re2g_t *exp_avg_sq,
                              int64_t *step) {
  RE2G_TRY(0)
  if (i < 0 || i >= static_cast<int>(o->params.size()))
    throw std::out_of_range("adamw: parameter index " + std::to_string(i) + " out of range");
  auto &state = o->opt->state();
  auto key = stateKey(state, o->params[i]);
  auto it = state.find(key);
  *has = 0;
  if (it == state.end()) return nullptr;
  auto &s = static_cast<torch::optim::AdamWParamState &>(*it->second);
  *has = 1;
  *exp_avg = wrap(s.exp_avg());
  *exp_avg_sq = wrap(s.exp_avg_sq());
  *step = static_cast<int64_t>(s.step());
  RE2G_CATCH
}

re2g_err re2g_adamw_set_state(re2g_adamw_t o, int i, re2g_t exp_avg, re2g_t exp_avg_sq, int64_t step) {
  RE2G_TRY(0)
  if (i < 0 || i >= static_cast<int>(o->params.size()))
    throw std::out_of_range("adamw: parameter index " + std::to_string(i) + " out of range");
  const at::Tensor &p = o->params[i];
  const at::Tensor &m = T(exp_avg);
  const at::Tensor &v = T(exp_avg_sq);
  if (!m.sizes().equals(p.sizes()) || !v.sizes().equals(p.sizes()))
    throw std::invalid_argument("adamw: state shape does not match parameter " + std::to_string(i));
  auto s = std::make_unique<torch::optim::AdamWParamState>();
  s->step(step);
  s->exp_avg(m.to(p.options()).clone());
  s->exp_avg_sq(v.to(p.options()).clone());
  auto &state = o->opt->state();
  state[stateKey(state, p)] = std::move(s);
  RE2G_CATCH
}

}  // extern "C"
