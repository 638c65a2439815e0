// Distributed collectives on libtorch's c10d: stores, process groups (Gloo
// for CPU tensors, NCCL for CUDA ones) and the work handles the Go package
// torch/dist waits on. See re2g_torch.h for the contract.
//
// Built with RE2G_WITH_GLOO (and USE_C10D_GLOO, without which c10d's Gloo
// header is empty) where Gloo's headers are found, and with RE2G_WITH_NCCL
// (and USE_C10D_NCCL) where the libtorch is a CUDA one with NCCL's headers
// (mk/torch.mk decides); without them the group constructors say what is
// missing. libtorch 1.x derives the backends from c10d::ProcessGroup, 2.x
// from c10d::Backend; the collectives' signatures are the same in both.
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>
#include <torch/autograd.h>
#include <torch/version.h>

#if TORCH_VERSION_MAJOR >= 2
#include <torch/csrc/distributed/c10d/Backend.hpp>
#else
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#endif
#ifdef RE2G_WITH_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef RE2G_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <algorithm>
#include <cctype>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "internal.h"

using namespace re2g;
using std::chrono::milliseconds;

namespace {

#if TORCH_VERSION_MAJOR >= 2
using BackendT = c10d::Backend;
#else
using BackendT = c10d::ProcessGroup;
#endif


}  // namespace

struct re2g_store {
  c10::intrusive_ptr<c10d::Store> store;  // the rendezvous store, under the job's prefix
  std::mutex mu;                          // a TCPStore client is one socket
};

// re2g_pg is reference-counted: the Go handle holds one reference and every
// autograd node of an all-gather holds another, so that a backward pass after
// Close finds a closed group rather than freed memory.
struct re2g_pg : torch::CustomClassHolder {
  int rank = 0, size = 1, backend = RE2G_GLOO;
  milliseconds timeout{0};
  std::mutex mu;
  c10::intrusive_ptr<BackendT> pg;  // null once closed
  std::string failed;               // why the group can no longer be used

  // get returns the backend for one collective, or throws when the group is
  // closed or has failed.
  c10::intrusive_ptr<BackendT> get() {
    std::lock_guard<std::mutex> l(mu);
    if (!failed.empty()) throw std::runtime_error("the group failed earlier (" + failed + ")");
    if (!pg) throw std::runtime_error("the group is closed");
    return pg;
  }
  void fail(const std::string &why) {
    std::lock_guard<std::mutex> l(mu);
    if (failed.empty()) failed = why;
  }
};

struct re2g_work {
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  std::function<void()> finish;  // copies back once every work succeeded
  at::Tensor result;
  c10::intrusive_ptr<re2g_pg> group;
  bool poll = false;  // wait by polling isCompleted (NCCL) rather than Work::wait(timeout)
  size_t next = 0;
  bool finished = false;
};

namespace {

// wire_type is the type a tensor travels in: Gloo has no bfloat16 (1.13),
// so bfloat16 is summed in float32 and cast back.
at::ScalarType wire_type(const re2g_pg &g, at::ScalarType t) {
  if (g.backend == RE2G_GLOO && t == at::kBFloat16) return at::kFloat;
  return t;
}

void check_type(const char *op, const re2g_pg &g, const at::Tensor &t, int reduce) {
  auto st = t.scalar_type();
  if (st == at::kBool) throw std::invalid_argument(std::string(op) + ": bool tensors are not supported");
  if (reduce == RE2G_DIST_AVG && !at::isFloatingType(st))
    throw std::invalid_argument(std::string(op) + ": average of " + std::string(c10::toString(st)) +
                                " tensors (want a floating-point type)");
  if (g.backend == RE2G_NCCL && !t.is_cuda())
    throw std::invalid_argument(std::string(op) + ": the NCCL backend reduces CUDA tensors, not " +
                                t.device().str() + " ones (use the Gloo backend for CPU tensors)");
}

c10d::ReduceOp reduce_op(int op) {
  switch (op) {
    case RE2G_DIST_SUM:
    case RE2G_DIST_AVG: return c10d::ReduceOp::SUM;
    case RE2G_DIST_MAX: return c10d::ReduceOp::MAX;
    case RE2G_DIST_MIN: return c10d::ReduceOp::MIN;
  }
  throw std::invalid_argument("unknown reduce op " + std::to_string(op));
}

// A bucket is one flat buffer that travels in one collective, and the
// tensors whose elements it carries.
struct Bucket {
  std::vector<at::Tensor> members;
  at::Tensor flat;
  bool in_place = false;  // flat is the single member itself
};

// buckets packs ts, in order, into buckets of one type and device, each of
// at most bucket_bytes unless one tensor is larger. A lone contiguous tensor
// of a type the backend carries travels in place.
std::vector<Bucket> make_buckets(const re2g_pg &g, const std::vector<at::Tensor> &ts, int64_t bucket_bytes) {
  std::vector<Bucket> out;
  size_t i = 0;
  while (i < ts.size()) {
    Bucket b;
    int64_t bytes = 0;
    const at::Tensor &first = ts[i];
    while (i < ts.size() && ts[i].scalar_type() == first.scalar_type() && ts[i].device() == first.device()) {
      int64_t nb = ts[i].numel() * static_cast<int64_t>(ts[i].element_size());
      if (!b.members.empty() && bytes + nb > bucket_bytes) break;
      b.members.push_back(ts[i]);
      bytes += nb;
      i++;
    }
    auto wt = wire_type(g, first.scalar_type());
    if (b.members.size() == 1 && b.members[0].is_contiguous() && wt == first.scalar_type()) {
      b.flat = b.members[0];
      b.in_place = true;
    } else {
      std::vector<at::Tensor> parts;
      for (auto &m : b.members) parts.push_back(m.reshape({-1}));
      b.flat = at::cat(parts).to(wt);
    }
    out.push_back(std::move(b));
  }
  return out;
}

// unpack copies a bucket's flat buffer back into its members.
void unpack(Bucket &b) {
  if (b.in_place) return;
  int64_t off = 0;
  for (auto &m : b.members) {
    int64_t n = m.numel();
    m.copy_(b.flat.narrow(0, off, n).view(m.sizes()));
    off += n;
  }
}

std::vector<at::Tensor> tensors(const re2g_t *hs, int n) {
  std::vector<at::Tensor> ts;
  ts.reserve(n);
  for (int i = 0; i < n; i++) ts.push_back(T(hs[i]).detach());
  return ts;
}

re2g_work *new_work(const c10::intrusive_ptr<re2g_pg> &g) {
  auto w = new re2g_work;
  w->group = g;
  w->poll = g->backend == RE2G_NCCL;
  return w;
}

c10::intrusive_ptr<re2g_pg> group_ref(re2g_pg_t g) {
  if (g == nullptr) throw std::invalid_argument("null process group");
  return c10::intrusive_ptr<re2g_pg>::unsafe_reclaim_from_nonowning(g);
}

// wait_slice waits up to slice for w's works, in order, and runs its finish
// once they have all succeeded; it reports whether w is done. A work that
// failed rethrows its error.
bool wait_slice(re2g_work *w, milliseconds slice) {
  auto deadline = std::chrono::steady_clock::now() + slice;
  while (w->next < w->works.size()) {
    auto &k = w->works[w->next];
    while (!k->isCompleted()) {
      auto left = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      if (w->poll) {
        std::this_thread::sleep_for(std::chrono::microseconds(100));
        continue;
      }
      try {
        k->wait(left);  // returns at completion; throws at the end of the slice
      } catch (...) {
        if (!k->isCompleted()) return false;
      }
    }
    k->wait();  // rethrows the work's error; on CUDA, orders the current stream after it
    w->next++;
  }
  if (!w->finished) {
    at::NoGradGuard no_grad;
    if (w->finish) w->finish();
    w->finished = true;
  }
  return true;
}

// wait_all waits for w up to timeout: for the backward pass, which cannot
// return to Go between slices.
void wait_all(re2g_work *w, milliseconds timeout) {
  if (!wait_slice(w, timeout))
    throw std::runtime_error("timed out after " + std::to_string(timeout.count()) +
                             " ms waiting for the other ranks");
}

// explain says what a native failure of a collective means, as the Go side
// does for the collectives it waits on (torch/dist's classify).
std::string explain(const std::string &msg, milliseconds timeout) {
  std::string low(msg);
  std::transform(low.begin(), low.end(), low.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const char *m : {"connection closed by peer", "connection reset by peer", "broken pipe", "remote process exited"})
    if (low.find(m) != std::string::npos) return "a peer went away (another rank exited or was killed): " + msg;
  if (low.rfind("timed out after", 0) == 0) return msg;  // wait_all's own
  if (low.find("timed out") != std::string::npos)
    return "timed out after " + std::to_string(timeout.count()) + " ms waiting for the other ranks (" + msg + ")";
  return msg;
}

// All-gather of a tensor's rows for the backward pass: the incoming gradient
// of the gathered tensor is summed over ranks, and this rank's rows of the
// sum are its input's gradient. Every rank's loss must use the gathered
// tensor, so that every rank runs this backward and its all-reduce.
struct GatherGrad : public torch::autograd::Function<GatherGrad> {
  static at::Tensor forward(torch::autograd::AutogradContext *ctx, const at::Tensor &local,
                            const at::Tensor &gathered, c10::intrusive_ptr<re2g_pg> g, int64_t offset,
                            int64_t timeout_ms) {
    ctx->saved_data["group"] = c10::IValue::make_capsule(g);
    ctx->saved_data["offset"] = offset;
    ctx->saved_data["rows"] = local.size(0);
    ctx->saved_data["timeout"] = timeout_ms;
    ctx->saved_data["sizes"] = gathered.sizes().vec();
    ctx->saved_data["dtype"] = static_cast<int64_t>(local.scalar_type());
    return gathered;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext *ctx,
                                                 torch::autograd::variable_list grads) {
    auto g = c10::static_intrusive_pointer_cast<re2g_pg>(ctx->saved_data["group"].toCapsule());
    int64_t offset = ctx->saved_data["offset"].toInt();
    int64_t rows = ctx->saved_data["rows"].toInt();
    milliseconds timeout(ctx->saved_data["timeout"].toInt());
    auto dtype = static_cast<at::ScalarType>(ctx->saved_data["dtype"].toInt());
    at::Tensor grad = grads[0];
    if (!grad.defined()) grad = at::zeros(ctx->saved_data["sizes"].toIntVector(), at::TensorOptions().dtype(dtype));
    std::string what = "all_gather backward (all-reduce of the gradient) on rank " + std::to_string(g->rank) +
                       " of " + std::to_string(g->size);
    try {
      auto pg = g->get();
      // A copy: the all-reduce writes in place, and the incoming gradient
      // may be shared with other uses of the gathered tensor.
      at::Tensor buf = grad.detach().to(wire_type(*g, grad.scalar_type()), false, true).contiguous();
      std::vector<at::Tensor> v{buf};
      c10d::AllreduceOptions o;
      o.reduceOp = c10d::ReduceOp::SUM;
      o.timeout = timeout;
      std::unique_ptr<re2g_work> w(new_work(g));
      w->works.push_back(pg->allreduce(v, o));
      wait_all(w.get(), timeout);
      return {buf.narrow(0, offset, rows).to(dtype), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    } catch (const c10::Error &e) {
      std::string msg = what + ": " + explain(e.what_without_backtrace(), timeout);
      g->fail(msg);
      throw std::runtime_error("dist: " + msg);
    } catch (const std::exception &e) {
      std::string msg = what + ": " + explain(e.what(), timeout);
      g->fail(msg);
      throw std::runtime_error("dist: " + msg);
    }
  }
};

}  // namespace

extern "C" {

int re2g_dist_backends(void) {
  int b = 0;
#ifdef RE2G_WITH_GLOO
  b |= RE2G_GLOO;
#endif
#ifdef RE2G_WITH_NCCL
  b |= RE2G_NCCL;
#endif
  return b;
}

re2g_err re2g_store_tcp(const char *host, int port, int is_server, int world, int64_t timeout_ms,
                        const char *prefix, re2g_store_t *out) {
  RE2G_TRY_NOGRAD
  if (port <= 0 || port > 65535) throw std::invalid_argument("port " + std::to_string(port) + " out of range");
  c10d::TCPStoreOptions o;
  o.port = static_cast<std::uint16_t>(port);
  o.isServer = is_server != 0;
  // As PyTorch's own rendezvous: every client counts itself in, and the host
  // waits (in its constructor, up to the timeout) for every rank's client,
  // its own included. (A client that does not count itself in leaves libtorch
  // 1.13's Gloo rendezvous over this store waiting until its timeout.)
  o.numWorkers = static_cast<std::size_t>(world);
  o.waitWorkers = true;
  o.timeout = milliseconds(timeout_ms);
  auto tcp = c10::make_intrusive<c10d::TCPStore>(std::string(host), o);
  auto s = std::make_unique<re2g_store>();
  s->store = c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), tcp);
  *out = s.release();
  RE2G_CATCH
}

re2g_err re2g_store_file(const char *path, int world, int64_t timeout_ms, const char *prefix, re2g_store_t *out) {
  RE2G_TRY_NOGRAD
  auto f = c10::make_intrusive<c10d::FileStore>(std::string(path), world);
  f->setTimeout(milliseconds(timeout_ms));
  auto s = std::make_unique<re2g_store>();
  s->store = c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), f);
  *out = s.release();
  RE2G_CATCH
}

void re2g_store_free(re2g_store_t s) { delete s; }
void re2g_free_buf(void *p) { std::free(p); }

re2g_err re2g_store_set(re2g_store_t s, const char *key, const void *data, size_t n) {
  RE2G_TRY_NOGRAD
  std::lock_guard<std::mutex> l(s->mu);
  const uint8_t *p = static_cast<const uint8_t *>(data);
  s->store->set(key, std::vector<uint8_t>(p, p + n));
  RE2G_CATCH
}

re2g_err re2g_store_get(re2g_store_t s, const char *key, void **data, size_t *n) {
  RE2G_TRY_NOGRAD
  std::lock_guard<std::mutex> l(s->mu);
  if (!s->store->check({key})) throw std::invalid_argument(std::string("no key ") + key);
  auto v = s->store->get(key);
  *data = nullptr;
  *n = v.size();
  if (!v.empty()) {
    *data = std::malloc(v.size());
    if (*data == nullptr) throw std::bad_alloc();
    std::memcpy(*data, v.data(), v.size());
  }
  RE2G_CATCH
}

re2g_err re2g_store_add(re2g_store_t s, const char *key, int64_t delta, int64_t *out) {
  RE2G_TRY_NOGRAD
  std::lock_guard<std::mutex> l(s->mu);
  *out = s->store->add(key, delta);
  RE2G_CATCH
}

re2g_err re2g_store_check(re2g_store_t s, const char *key, int *exists) {
  RE2G_TRY_NOGRAD
  std::lock_guard<std::mutex> l(s->mu);
  *exists = s->store->check({key}) ? 1 : 0;
  RE2G_CATCH
}

re2g_err re2g_store_delete(re2g_store_t s, const char *key, int *deleted) {
  RE2G_TRY_NOGRAD
  std::lock_guard<std::mutex> l(s->mu);
  *deleted = s->store->deleteKey(key) ? 1 : 0;
  RE2G_CATCH
}

re2g_err re2g_pg_new(re2g_store_t s, const char *prefix, int rank, int size, int backend, int64_t timeout_ms,
                     const char *gloo_iface, const char *gloo_host, re2g_pg_t *out) {
  RE2G_TRY_NOGRAD
  if (s == nullptr) throw std::invalid_argument("null store");
  auto g = c10::make_intrusive<re2g_pg>();
  g->rank = rank;
  g->size = size;
  g->backend = backend;
  g->timeout = milliseconds(timeout_ms);
  auto store = c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), s->store);
  std::lock_guard<std::mutex> l(s->mu);
  switch (backend) {
    case RE2G_GLOO: {
#ifdef RE2G_WITH_GLOO
      auto o = c10d::ProcessGroupGloo::Options::create(g->timeout);
      std::string iface(gloo_iface ? gloo_iface : ""), host(gloo_host ? gloo_host : "");
      if (!iface.empty()) o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(iface));
      else if (!host.empty()) o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(host));
      else o->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      g->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, o);
#else
      throw std::invalid_argument(
          "this libre2gtorch was built without Gloo (libtorch " TORCH_VERSION
          ": no Gloo headers were found; PyTorch wheels do not ship them: build with GLOO_INCLUDE=DIR)");
#endif
      break;
    }
    case RE2G_NCCL: {
#ifdef RE2G_WITH_NCCL
      auto o = c10d::ProcessGroupNCCL::Options::create();
      o->timeout = g->timeout;
      g->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, o);
#else
      throw std::invalid_argument("this libre2gtorch was built without NCCL (libtorch " TORCH_VERSION
                                  ", a CPU-only build or no NCCL headers): use the gloo backend");
#endif
      break;
    }
    default: throw std::invalid_argument("unknown backend " + std::to_string(backend));
  }
  *out = g.release();
  RE2G_CATCH
}

void re2g_pg_free(re2g_pg_t g) {
  if (g == nullptr) return;
  auto ref = c10::intrusive_ptr<re2g_pg>::reclaim(g);
  c10::intrusive_ptr<BackendT> pg;
  {
    std::lock_guard<std::mutex> l(ref->mu);
    pg = std::move(ref->pg);  // later uses find the group closed
  }
  try {
    pg.reset();  // Gloo: waits for work in flight (at most its timeout), closes the connections
  } catch (...) {
  }
}

int re2g_pg_failed(re2g_pg_t g) {
  if (g == nullptr) return 0;
  std::lock_guard<std::mutex> l(g->mu);
  return g->failed.empty() ? 0 : 1;
}

void re2g_pg_fail(re2g_pg_t g, const char *why) {
  if (g != nullptr) g->fail(why ? why : "failed");
}

re2g_err re2g_pg_allreduce(re2g_pg_t hg, const re2g_t *ts, int n, int op, int64_t bucket_bytes, int64_t timeout_ms,
                           re2g_work_t *out) {
  RE2G_TRY_NOGRAD
  at::NoGradGuard no_grad;
  auto g = group_ref(hg);
  auto pg = g->get();
  auto in = tensors(ts, n);
  for (auto &t : in) check_type("all_reduce", *g, t, op);
  auto buckets = std::make_shared<std::vector<Bucket>>(make_buckets(*g, in, bucket_bytes));
  std::unique_ptr<re2g_work> w(new_work(g));
  c10d::AllreduceOptions o;
  o.reduceOp = reduce_op(op);
  o.timeout = milliseconds(timeout_ms);
  for (auto &b : *buckets) {
    std::vector<at::Tensor> v{b.flat};
    w->works.push_back(pg->allreduce(v, o));
  }
  int size = g->size;
  w->finish = [buckets, op, size]() {
    for (auto &b : *buckets) {
      if (op == RE2G_DIST_AVG) b.flat.div_(size);
      unpack(b);
    }
  };
  *out = w.release();
  RE2G_CATCH
}

re2g_err re2g_pg_broadcast(re2g_pg_t hg, const re2g_t *ts, int n, int root, int64_t bucket_bytes, int64_t timeout_ms,
                           re2g_work_t *out) {
  RE2G_TRY_NOGRAD
  at::NoGradGuard no_grad;
  auto g = group_ref(hg);
  auto pg = g->get();
  if (root < 0 || root >= g->size)
    throw std::invalid_argument("broadcast root " + std::to_string(root) + " out of range (world size " +
                                std::to_string(g->size) + ")");
  auto in = tensors(ts, n);
  for (auto &t : in) check_type("broadcast", *g, t, RE2G_DIST_SUM);
  auto buckets = std::make_shared<std::vector<Bucket>>(make_buckets(*g, in, bucket_bytes));
  std::unique_ptr<re2g_work> w(new_work(g));
  c10d::BroadcastOptions o;
  o.rootRank = root;
  o.rootTensor = 0;
  o.timeout = milliseconds(timeout_ms);
  for (auto &b : *buckets) {
    std::vector<at::Tensor> v{b.flat};
    w->works.push_back(pg->broadcast(v, o));
  }
  bool is_root = g->rank == root;
  w->finish = [buckets, is_root]() {
    if (is_root) return;
    for (auto &b : *buckets) unpack(b);
  };
  *out = w.release();
  RE2G_CATCH
}

re2g_err re2g_pg_allgather(re2g_pg_t hg, re2g_t ht, const int64_t *counts, int64_t timeout_ms, re2g_work_t *out) {
  RE2G_TRY_NOGRAD
  at::NoGradGuard no_grad;
  auto g = group_ref(hg);
  auto pg = g->get();
  at::Tensor x = T(ht).detach();
  if (x.dim() == 0) throw std::invalid_argument("all_gather: want a tensor of at least one dimension, got a scalar");
  check_type("all_gather", *g, x, RE2G_DIST_SUM);
  std::vector<int64_t> cs(counts, counts + g->size);
  if (cs[g->rank] != x.size(0))
    throw std::invalid_argument("all_gather: counts say " + std::to_string(cs[g->rank]) + " rows on rank " +
                                std::to_string(g->rank) + ", the tensor has " + std::to_string(x.size(0)));
  int64_t maxn = *std::max_element(cs.begin(), cs.end());
  auto sizes = x.sizes().vec();
  std::unique_ptr<re2g_work> w(new_work(g));
  auto dtype = x.scalar_type();
  if (maxn == 0) {
    w->result = at::empty(sizes, x.options());
    *out = w.release();
    return nullptr;
  }
  // Gloo's all-gather wants one size on every rank: rows are padded to the
  // largest count and the padding dropped after.
  sizes[0] = maxn;
  auto wire = x.options().dtype(wire_type(*g, dtype));
  at::Tensor in = at::zeros(sizes, wire);
  if (x.size(0) > 0) in.narrow(0, 0, x.size(0)).copy_(x);
  auto outs = std::make_shared<std::vector<std::vector<at::Tensor>>>(1);
  for (int r = 0; r < g->size; r++) (*outs)[0].push_back(at::empty(sizes, wire));
  std::vector<at::Tensor> ins{in};
  c10d::AllgatherOptions o;
  o.timeout = milliseconds(timeout_ms);
  w->works.push_back(pg->allgather(*outs, ins, o));
  re2g_work *wp = w.get();
  w->finish = [outs, cs, dtype, wp]() {
    std::vector<at::Tensor> parts;
    for (size_t r = 0; r < cs.size(); r++) parts.push_back((*outs)[0][r].narrow(0, 0, cs[r]));
    wp->result = at::cat(parts).to(dtype);
  };
  *out = w.release();
  RE2G_CATCH
}

re2g_err re2g_pg_allreduce_grads(re2g_pg_t hg, const re2g_t *params, const uint8_t *present, int n,
                                 int64_t bucket_bytes, int64_t timeout_ms, re2g_work_t *out) {
  RE2G_TRY_NOGRAD
  at::NoGradGuard no_grad;
  auto g = group_ref(hg);
  auto pg = g->get();
  std::vector<at::Tensor> ps, grads;
  std::vector<bool> made;  // a zero gradient stands in for one this rank lacks
  for (int i = 0; i < n; i++) {
    if (!present[i]) continue;
    const at::Tensor &p = T(params[i]);
    at::Tensor gr = p.grad();
    made.push_back(!gr.defined());
    if (!gr.defined()) gr = at::zeros_like(p);
    check_type("all_reduce_grads", *g, gr, RE2G_DIST_AVG);
    ps.push_back(p);
    grads.push_back(gr);
  }
  auto buckets = std::make_shared<std::vector<Bucket>>(make_buckets(*g, grads, bucket_bytes));
  std::unique_ptr<re2g_work> w(new_work(g));
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp::SUM;
  o.timeout = milliseconds(timeout_ms);
  for (auto &b : *buckets) {
    std::vector<at::Tensor> v{b.flat};
    w->works.push_back(pg->allreduce(v, o));
  }
  int size = g->size;
  w->finish = [buckets, size, ps, grads, made]() mutable {
    for (auto &b : *buckets) {
      b.flat.div_(size);
      unpack(b);
    }
    for (size_t i = 0; i < ps.size(); i++)
      if (made[i]) ps[i].mutable_grad() = grads[i];
  };
  *out = w.release();
  RE2G_CATCH
}

re2g_err re2g_work_wait(re2g_work_t w, int64_t slice_ms, int *done) {
  RE2G_TRY_NOGRAD
  *done = 0;
  try {
    *done = wait_slice(w, milliseconds(std::max<int64_t>(slice_ms, 0))) ? 1 : 0;
  } catch (const c10::Error &e) {
    w->group->fail(e.what_without_backtrace());
    throw;
  } catch (const std::exception &e) {
    w->group->fail(e.what());
    throw;
  }
  RE2G_CATCH
}

re2g_err re2g_work_result(re2g_work_t w, re2g_t *out) {
  RE2G_TRY_NOGRAD
  if (!w->finished && w->works.size() > 0) throw std::logic_error("work is not finished");
  if (!w->result.defined()) throw std::logic_error("work has no result");
  *out = wrap(w->result);
  RE2G_CATCH
}

void re2g_work_free(re2g_work_t w) { delete w; }

re2g_err re2g_dist_gather_grad(int grad, re2g_pg_t hg, re2g_t local, re2g_t gathered, int64_t offset,
                               int64_t timeout_ms, re2g_t *out) {
  RE2G_TRY(grad)
  auto g = group_ref(hg);
  const at::Tensor &x = T(local);
  const at::Tensor &all = T(gathered);
  if (x.dim() == 0 || all.dim() != x.dim() || offset < 0 || offset + x.size(0) > all.size(0))
    throw std::invalid_argument("gather_grad: local rows do not fit the gathered tensor at offset " +
                                std::to_string(offset));
  if (!x.requires_grad() || !c10::GradMode::is_enabled()) {
    *out = wrap(all);
    return nullptr;
  }
  *out = wrap(GatherGrad::apply(x, all, g, offset, timeout_ms));
  RE2G_CATCH
}

}  // extern "C"
