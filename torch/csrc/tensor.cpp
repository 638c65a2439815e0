// Library state, tensor creation, introspection and read-back.
#include <atomic>
#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/utils.h>
#include <torch/version.h>

#include "internal.h"

using namespace re2g;

// Host transfers: tensors made from host memory (writes) and copies of
// tensor values back to host memory (reads). On a GPU each is a copy that
// waits for the device stream; counting them on any device lets tests hold
// the number a decode step makes (re2g_host_transfers).
static std::atomic<int64_t> host_reads{0}, host_writes{0};

namespace re2g {
std::atomic<int> g_threads{0};

void sync_threads() {
  thread_local int mine = 0;
  int want = g_threads.load(std::memory_order_relaxed);
  if (want > 0 && mine != want) {
    at::set_num_threads(want);
    mine = want;
  }
}
void count_host_read() { host_reads.fetch_add(1, std::memory_order_relaxed); }

}  // namespace re2g

extern "C" {

void re2g_free(re2g_t t) { delete t; }
void re2g_free_err(re2g_err e) { std::free(e); }
const char *re2g_torch_version(void) { return TORCH_VERSION; }

int re2g_cuda_available(void) {
  try {
    return torch::cuda::is_available() ? 1 : 0;
  } catch (...) {
    return 0;
  }
}

int re2g_cuda_device_count(void) {
  try {
    return static_cast<int>(torch::cuda::device_count());
  } catch (...) {
    return 0;
  }
}

void re2g_set_num_threads(int n) {
  if (n > 0) {
    g_threads.store(n);
    sync_threads();
  }
}
int re2g_get_num_threads(void) { return at::get_num_threads(); }
void re2g_manual_seed(uint64_t seed) { torch::manual_seed(seed); }

re2g_err re2g_cuda_synchronize(int device) {
  RE2G_TRY_NOGRAD
  torch::cuda::synchronize(device);
  RE2G_CATCH
}


void re2g_host_transfers(int64_t *reads, int64_t *writes) {
  *reads = host_reads.load(std::memory_order_relaxed);
  *writes = host_writes.load(std::memory_order_relaxed);
}

re2g_err re2g_from_data(const void *data, int dtype, const int64_t *shape, int ndim, re2g_t *out) {
  RE2G_TRY(0)
  host_writes.fetch_add(1, std::memory_order_relaxed);
  auto opts = at::TensorOptions().dtype(to_scalar(dtype));
  at::Tensor t = at::empty(dims(shape, ndim), opts);
  if (t.numel() > 0) {
    if (data == nullptr) throw std::invalid_argument("from_data: null data for a non-empty tensor");
    std::memcpy(t.data_ptr(), data, t.numel() * t.element_size());
  }
  *out = wrap(std::move(t));
  RE2G_CATCH
}

re2g_err re2g_from_blob_to(const void *data, int dtype, const int64_t *shape, int ndim, int to_dtype,
                           int dev_type, int dev_index, re2g_t *out) {
  RE2G_TRY(0)
  host_writes.fetch_add(1, std::memory_order_relaxed);
  auto opts = at::TensorOptions().dtype(to_scalar(dtype));
  at::Tensor view = at::from_blob(const_cast<void *>(data), dims(shape, ndim), opts);
  at::Tensor t = view.to(to_device(dev_type, dev_index), to_scalar(to_dtype), /*non_blocking=*/false,
                         /*copy=*/true);
  *out = wrap(std::move(t));
  RE2G_CATCH
}

re2g_err re2g_full(const int64_t *shape, int ndim, double value, int dtype, int dev_type, int dev_index,
                   re2g_t *out) {
  RE2G_TRY(0)
  auto opts = at::TensorOptions().dtype(to_scalar(dtype)).device(to_device(dev_type, dev_index));
  *out = wrap(at::full(dims(shape, ndim), value, opts));
  RE2G_CATCH
}

re2g_err re2g_arange(int64_t start, int64_t end, int64_t step, int dtype, int dev_type, int dev_index,
                     re2g_t *out) {
  RE2G_TRY(0)
  auto opts = at::TensorOptions().dtype(to_scalar(dtype)).device(to_device(dev_type, dev_index));
  *out = wrap(at::arange(start, end, step, opts));
  RE2G_CATCH
}

re2g_err re2g_rand(const int64_t *shape, int ndim, int normal, int dtype, int dev_type, int dev_index,
                   re2g_t *out) {
  RE2G_TRY(0)
  auto opts = at::TensorOptions().dtype(to_scalar(dtype)).device(to_device(dev_type, dev_index));
  *out = wrap(normal ? at::randn(dims(shape, ndim), opts) : at::rand(dims(shape, ndim), opts));
  RE2G_CATCH
}

int re2g_ndim(re2g_t t) { return static_cast<int>(t->t.dim()); }
void re2g_shape(re2g_t t, int64_t *out) {
  auto s = t->t.sizes();
  for (size_t i = 0; i < s.size(); i++) out[i] = s[i];
}
int re2g_dtype(re2g_t t) { return from_scalar(t->t.scalar_type()); }
void re2g_device(re2g_t t, int *type, int *index) {
  auto d = t->t.device();
  *type = d.is_cuda() ? RE2G_CUDA : RE2G_CPU;
  *index = d.has_index() ? d.index() : 0;
}
int64_t re2g_numel(re2g_t t) { return t->t.numel(); }
int re2g_defined(re2g_t t) { return t != nullptr && t->t.defined() ? 1 : 0; }

re2g_err re2g_copy_out(re2g_t h, void *dst, size_t nbytes) {
  RE2G_TRY(0)
  host_reads.fetch_add(1, std::memory_order_relaxed);
  at::Tensor t = T(h).detach().to(at::kCPU).contiguous();
  size_t need = static_cast<size_t>(t.numel()) * t.element_size();
  if (need != nbytes)
    throw std::invalid_argument("copy_out: tensor holds " + std::to_string(need) + " bytes, buffer has " +
                                std::to_string(nbytes));
  if (need > 0) std::memcpy(dst, t.data_ptr(), need);
  RE2G_CATCH
}

re2g_err re2g_item(re2g_t h, double *out) {
  RE2G_TRY(0)
  host_reads.fetch_add(1, std::memory_order_relaxed);
  *out = T(h).item().toDouble();
  RE2G_CATCH
}

re2g_err re2g_to(int grad, re2g_t h, int dtype, int dev_type, int dev_index, re2g_t *out) {
  RE2G_TRY(grad)
  const at::Tensor &t = T(h);
  at::ScalarType st = dtype < 0 ? t.scalar_type() : to_scalar(dtype);
  at::Device dev = dev_type < 0 ? t.device() : to_device(dev_type, dev_index);
  *out = wrap(t.to(dev, st));
  RE2G_CATCH
}

}  // extern "C"
