// Internal helpers shared by the shim's translation units.
#pragma once

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/cuda.h>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#include "re2g_torch.h"

struct re2g_tensor {
  at::Tensor t;
};

namespace re2g {

// The intra-op thread count set by re2g_set_num_threads. OpenMP keeps its
// thread count per OS thread, and Go runs calls on any of its threads, so
// every call makes sure the calling thread uses the configured count.
extern std::atomic<int> g_threads;
void sync_threads();

// AutocastGuard sets the calling thread's autocast state from a call's flags
// (RE2G_AUTOCAST_*) for the guard's lifetime and restores the state it found:
// autocast on the CPU and on CUDA, their target types, and the weight-cast
// cache, which is off while autocast is on (see autocast.cpp). With no
// autocast flag and autocast already off, as on every thread between calls,
// it reads two thread-locals and does nothing else.
class AutocastGuard {
 public:
  explicit AutocastGuard(int flags);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard &) = delete;
  AutocastGuard &operator=(const AutocastGuard &) = delete;

 private:
  bool active_ = false;
  bool cpu_on_ = false, cuda_on_ = false, cache_on_ = true;
  at::ScalarType cpu_dtype_ = at::kBFloat16, cuda_dtype_ = at::kHalf;
};

// autocast_fp32 is t in float32 when t is a 16-bit float tensor and autocast
// is on for its device, t itself otherwise. The shim applies it to the inputs
// of the ops that CUDA autocast runs in float32 (layer_norm, softmax,
// log_softmax, logsumexp, sum, the losses), so that they compute in float32
// under autocast on the CPU too, whose autocast leaves them in bfloat16 (or
// fails, as layer_norm of a bfloat16 input with float32 weights in 1.13).
at::Tensor autocast_fp32(const at::Tensor &t);

// autocast_on reports whether autocast is on for t's device on this thread.
bool autocast_on(const at::Tensor &t);

// count_host_read counts a read-back the shim makes for its own checks
// (re2g_host_transfers).
void count_host_read();

inline re2g_err make_err(const char *msg) {
  size_t n = std::strlen(msg);
  char *s = static_cast<char *>(std::malloc(n + 1));
  if (s) std::memcpy(s, msg, n + 1);
  return s;
}

inline re2g_t wrap(at::Tensor t) { return new re2g_tensor{std::move(t)}; }

inline at::ScalarType to_scalar(int dtype) {
  switch (dtype) {
    case RE2G_F32: return at::kFloat;
    case RE2G_F16: return at::kHalf;
    case RE2G_BF16: return at::kBFloat16;
    case RE2G_I64: return at::kLong;
    case RE2G_BOOL: return at::kBool;
    case RE2G_F64: return at::kDouble;
    case RE2G_I32: return at::kInt;
  }
  throw std::invalid_argument("unknown dtype code " + std::to_string(dtype));
}

inline int from_scalar(at::ScalarType s) {
  switch (s) {
    case at::kFloat: return RE2G_F32;
    case at::kHalf: return RE2G_F16;
    case at::kBFloat16: return RE2G_BF16;
    case at::kLong: return RE2G_I64;
    case at::kBool: return RE2G_BOOL;
    case at::kDouble: return RE2G_F64;
    case at::kInt: return RE2G_I32;
    default: return -1;
  }
}

inline at::Device to_device(int type, int index) {
  switch (type) {
    case RE2G_CPU: return at::Device(at::kCPU);
    case RE2G_CUDA: {
      int n = static_cast<int>(torch::cuda::device_count());
      if (n == 0)
        throw std::invalid_argument(
            "no CUDA device: this libtorch has no CUDA support or sees no GPU (use a libre2gtorch.so built "
            "against a CUDA libtorch, found first on LD_LIBRARY_PATH)");
      if (index < 0 || index >= n)
        throw std::invalid_argument("no CUDA device " + std::to_string(index) + ": " + std::to_string(n) +
                                    " visible");
      return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(index));
    }
  }
  throw std::invalid_argument("unknown device type " + std::to_string(type));
}

inline const at::Tensor &T(re2g_t h) {
  if (h == nullptr) throw std::invalid_argument("null tensor handle");
  return h->t;
}

inline at::IntArrayRef dims(const int64_t *p, int n) { return at::IntArrayRef(p, static_cast<size_t>(n)); }

}  // namespace re2g

// RE2G_TRY/RE2G_CATCH wrap a function body: grad mode (flag bit 0) and
// autocast (RE2G_AUTOCAST_*) are set for the call and restored after it, and
// every exception becomes an error string (without libtorch's C++ backtrace).
#define RE2G_TRY(flags)                                      \
  try {                                                      \
    re2g::sync_threads();                                    \
    c10::AutoGradMode re2g_grad_guard_(((flags) & RE2G_GRAD) != 0); \
    re2g::AutocastGuard re2g_autocast_guard_(flags);

#define RE2G_TRY_NOGRAD try {

#define RE2G_CATCH                                                   \
  }                                                                  \
  catch (const c10::Error &e) {                                      \
    return re2g::make_err(e.what_without_backtrace());               \
  }                                                                  \
  catch (const std::exception &e) {                                  \
    return re2g::make_err(e.what());                                 \
  }                                                                  \
  catch (...) {                                                      \
    return re2g::make_err("unknown C++ exception");                  \
  }                                                                  \
  return nullptr;
