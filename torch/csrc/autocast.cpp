// Autocast (mixed precision) for one shim call: see AutocastGuard in internal.h.
//
// libtorch keeps autocast state per thread, like grad mode, and Go runs a
// goroutine's calls on any of its threads, so each call sets the state it
// needs and puts back what it found.
//
// Autocast's cache of weight casts (a leaf's bf16 copy, made once per forward
// pass and reused) is safe only within one forward region: PyTorch clears it
// when the outermost `with autocast()` exits. A shim call cannot know where a
// region ends, and a cache kept across calls would keep serving the casts of
// weights that the optimiser has since updated in place (the cache is keyed by
// the TensorImpl). So the cache is off while autocast is on: every use of a
// weight casts it anew, which costs one cast per use of an fp32 weight.
#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include "internal.h"

namespace {

// Tests only: keep the cache on under autocast, to show that the tests catch
// the stale casts it serves.
std::atomic<bool> g_keep_cache{false};

// libtorch 2.4 made the autocast API device-generic and deprecated the
// per-device functions (which warn on use there and may go away later);
// before 2.4 (1.10 to 2.3) only the per-device ones exist.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
bool enabled(at::DeviceType d) { return at::autocast::is_autocast_enabled(d); }
void set_enabled(at::DeviceType d, bool on) { at::autocast::set_autocast_enabled(d, on); }
at::ScalarType get_dtype(at::DeviceType d) { return at::autocast::get_autocast_dtype(d); }
void set_dtype(at::DeviceType d, at::ScalarType t) { at::autocast::set_autocast_dtype(d, t); }
#else
bool enabled(at::DeviceType d) {
  return d == at::kCPU ? at::autocast::is_cpu_enabled() : at::autocast::is_enabled();
}
void set_enabled(at::DeviceType d, bool on) {
  if (d == at::kCPU) at::autocast::set_cpu_enabled(on);
  else at::autocast::set_enabled(on);
}
at::ScalarType get_dtype(at::DeviceType d) {
  return d == at::kCPU ? at::autocast::get_autocast_cpu_dtype() : at::autocast::get_autocast_gpu_dtype();
}
void set_dtype(at::DeviceType d, at::ScalarType t) {
  if (d == at::kCPU) at::autocast::set_autocast_cpu_dtype(t);
  else at::autocast::set_autocast_gpu_dtype(t);
}
#endif

}  // namespace

namespace re2g {

AutocastGuard::AutocastGuard(int flags) {
  int mode = flags & RE2G_AUTOCAST_MASK;
  bool cpu = enabled(at::kCPU), cuda = enabled(at::kCUDA);
  if (mode == 0 && !cpu && !cuda) return;
  if (mode == RE2G_AUTOCAST_MASK) throw std::invalid_argument("autocast: both the bfloat16 and float16 flags are set");
  cpu_on_ = cpu;
  cuda_on_ = cuda;
  cpu_dtype_ = get_dtype(at::kCPU);
  cuda_dtype_ = get_dtype(at::kCUDA);
  cache_on_ = at::autocast::is_autocast_cache_enabled();
  active_ = true;
  // bfloat16 on both devices; float16 on CUDA only, as PyTorch before 2.x
  // supported it on the CPU only in name (CPU kernels lack float16 matmuls).
  bool want_cpu = mode == RE2G_AUTOCAST_BF16;
  bool want_cuda = mode != 0;
  at::autocast::set_autocast_cache_enabled(mode != 0 && g_keep_cache.load(std::memory_order_relaxed));
  if (want_cpu) set_dtype(at::kCPU, at::kBFloat16);
  if (want_cuda) set_dtype(at::kCUDA, mode == RE2G_AUTOCAST_F16 ? at::kHalf : at::kBFloat16);
  set_enabled(at::kCPU, want_cpu);
  set_enabled(at::kCUDA, want_cuda);
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
  set_enabled(at::kCPU, cpu_on_);
  set_enabled(at::kCUDA, cuda_on_);
  set_dtype(at::kCPU, cpu_dtype_);
  set_dtype(at::kCUDA, cuda_dtype_);
  at::autocast::set_autocast_cache_enabled(cache_on_);
}

bool autocast_on(const at::Tensor &t) {
  if (!t.defined()) return false;
  if (t.is_cpu()) return enabled(at::kCPU);
  if (t.is_cuda()) return enabled(at::kCUDA);
  return false;
}

at::Tensor autocast_fp32(const at::Tensor &t) {
  if (t.defined() && (t.scalar_type() == at::kBFloat16 || t.scalar_type() == at::kHalf) && autocast_on(t))
    return t.to(at::kFloat);
  return t;
}

}  // namespace re2g

extern "C" {

int re2g_autocast_state(int *cpu_dtype, int *cuda_dtype) {
  int r = 0;
  if (enabled(at::kCPU)) r |= 1;
  if (enabled(at::kCUDA)) r |= 2;
  if (at::autocast::is_autocast_cache_enabled()) r |= 4;
  if (cpu_dtype) *cpu_dtype = re2g::from_scalar(get_dtype(at::kCPU));
  if (cuda_dtype) *cuda_dtype = re2g::from_scalar(get_dtype(at::kCUDA));
  return r;
}

void re2g_autocast_keep_cache(int keep) {
  g_keep_cache.store(keep != 0);
  if (!keep) at::autocast::clear_cache();
}

}  // extern "C"
