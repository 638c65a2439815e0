/*
 * re2g_torch.h: the C ABI of re2g's libtorch shim.
 *
 * C++ inside, extern "C" outside: every function catches every C++ exception
 * and returns it as an error string (NULL on success; free it with
 * re2g_free_err). Tensors are opaque handles owned by the caller and freed
 * with re2g_free. Functions that compute take `grad` first: flags for the
 * call, bit 0 whether autograd records the operation (RE2G_GRAD), the next
 * bits whether the call runs under autocast and to which type
 * (RE2G_AUTOCAST_BF16, RE2G_AUTOCAST_F16). Grad and autocast modes are
 * thread-local in libtorch and Go moves goroutines between threads, so they
 * are set on every call, and restored when it returns, instead of once.
 */
#ifndef RE2G_TORCH_H
#define RE2G_TORCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct re2g_tensor *re2g_t;
typedef struct re2g_adamw *re2g_adamw_t;
typedef char *re2g_err;

enum re2g_dtype { RE2G_F32 = 0, RE2G_F16 = 1, RE2G_BF16 = 2, RE2G_I64 = 3, RE2G_BOOL = 4, RE2G_F64 = 5, RE2G_I32 = 6 };
enum re2g_devtype { RE2G_CPU = 0, RE2G_CUDA = 1 };

/* The flags of a computing call's first argument. Plain 0 and 1 mean no grad
 * and grad, without autocast. Autocast to bfloat16 applies on the CPU and on
 * CUDA; to float16 on CUDA only (CPU tensors then compute as without
 * autocast). The autocast weight-cast cache is off during such calls. */
#define RE2G_GRAD 1
#define RE2G_AUTOCAST_BF16 2
#define RE2G_AUTOCAST_F16 4
#define RE2G_AUTOCAST_MASK (RE2G_AUTOCAST_BF16 | RE2G_AUTOCAST_F16)

enum re2g_unary_op {
  RE2G_CONTIGUOUS, RE2G_EXP, RE2G_LOG, RE2G_TANH, RE2G_RELU, RE2G_GELU, RE2G_GELU_TANH,
  RE2G_SIGMOID, RE2G_NEG, RE2G_SQRT, RE2G_RSQRT, RE2G_ABS, RE2G_DETACH, RE2G_CLONE,
  RE2G_LOGICAL_NOT, RE2G_SILU
};
enum re2g_binary_op {
  RE2G_ADD, RE2G_SUB, RE2G_MUL, RE2G_DIV, RE2G_MATMUL, RE2G_BMM, RE2G_MAXIMUM, RE2G_MINIMUM,
  RE2G_EQ, RE2G_NE, RE2G_LT, RE2G_LE, RE2G_GT, RE2G_GE, RE2G_POW, RE2G_LOGICAL_AND, RE2G_LOGICAL_OR
};
enum re2g_scalar_op {
  RE2G_ADD_S, RE2G_SUB_S, RE2G_MUL_S, RE2G_DIV_S, RE2G_POW_S, RE2G_RSUB_S,
  RE2G_EQ_S, RE2G_NE_S, RE2G_LT_S, RE2G_LE_S, RE2G_GT_S, RE2G_GE_S, RE2G_CLAMP_MIN_S, RE2G_CLAMP_MAX_S
};
enum re2g_reduce_op { RE2G_SUM, RE2G_MEAN, RE2G_MAX, RE2G_MIN, RE2G_LOGSUMEXP, RE2G_PROD };
enum re2g_reduction { RE2G_RED_NONE = 0, RE2G_RED_MEAN = 1, RE2G_RED_SUM = 2, RE2G_RED_BATCHMEAN = 3 };

/* library */
void re2g_free(re2g_t t);
void re2g_free_err(re2g_err e);
const char *re2g_torch_version(void);
int re2g_cuda_available(void);
int re2g_cuda_device_count(void);
void re2g_set_num_threads(int n);
int re2g_get_num_threads(void);
void re2g_manual_seed(uint64_t seed);
re2g_err re2g_cuda_synchronize(int device);

/* autocast: the calling thread's state (bit 0 CPU on, bit 1 CUDA on, bit 2
 * cache on) and target types, for tests; keep_cache (tests only) makes
 * autocast calls keep libtorch's weight-cast cache on, the unsafe setting
 * that the shim avoids; turning it off clears the calling thread's cache. */
int re2g_autocast_state(int *cpu_dtype, int *cuda_dtype);
void re2g_autocast_keep_cache(int keep);

/* creation */
re2g_err re2g_from_data(const void *data, int dtype, const int64_t *shape, int ndim, re2g_t *out);
re2g_err re2g_from_blob_to(const void *data, int dtype, const int64_t *shape, int ndim, int to_dtype,
                           int dev_type, int dev_index, re2g_t *out);
re2g_err re2g_full(const int64_t *shape, int ndim, double value, int dtype, int dev_type, int dev_index,
                   re2g_t *out);
re2g_err re2g_arange(int64_t start, int64_t end, int64_t step, int dtype, int dev_type, int dev_index,
                     re2g_t *out);
re2g_err re2g_rand(const int64_t *shape, int ndim, int normal, int dtype, int dev_type, int dev_index,
                   re2g_t *out);

/* introspection and read-back */
int re2g_ndim(re2g_t t);
void re2g_shape(re2g_t t, int64_t *out);
int re2g_dtype(re2g_t t);
void re2g_device(re2g_t t, int *type, int *index);
int64_t re2g_numel(re2g_t t);
int re2g_defined(re2g_t t);
re2g_err re2g_copy_out(re2g_t t, void *dst, size_t nbytes);
re2g_err re2g_item(re2g_t t, double *out);

/* conversion */
re2g_err re2g_to(int grad, re2g_t t, int dtype, int dev_type, int dev_index, re2g_t *out);

/* element-wise and linear algebra */
re2g_err re2g_unary(int grad, int op, re2g_t a, re2g_t *out);
re2g_err re2g_binary(int grad, int op, re2g_t a, re2g_t b, re2g_t *out);
re2g_err re2g_scalar(int grad, int op, re2g_t a, double s, re2g_t *out);
re2g_err re2g_reduce(int grad, int op, re2g_t a, const int64_t *dims, int ndims, int keepdim, re2g_t *out);
re2g_err re2g_argmax(int grad, re2g_t a, int64_t dim, int keepdim, re2g_t *out);
re2g_err re2g_linear(int grad, re2g_t x, re2g_t w, re2g_t b /* nullable */, re2g_t *out);
re2g_err re2g_softmax(int grad, re2g_t a, int64_t dim, int log, re2g_t *out);
re2g_err re2g_layer_norm(int grad, re2g_t a, re2g_t w, re2g_t b, int normalized_ndim, double eps, re2g_t *out);
re2g_err re2g_embedding(int grad, re2g_t weight, re2g_t ids, int64_t padding_idx, int check, re2g_t *out);
re2g_err re2g_dropout(int grad, re2g_t a, double p, int train, re2g_t *out);
re2g_err re2g_topk(int grad, re2g_t a, int64_t k, int64_t dim, int largest, re2g_t *values, re2g_t *indices);
re2g_err re2g_sort(int grad, re2g_t a, int64_t dim, int descending, re2g_t *values, re2g_t *indices);
re2g_err re2g_attention(int grad, re2g_t q, re2g_t k, re2g_t v, re2g_t mask /* nullable, additive */,
                        double dropout_p, int causal, double scale, re2g_t *out);

/* shape */
re2g_err re2g_view(int grad, re2g_t a, const int64_t *shape, int ndim, int reshape, re2g_t *out);
re2g_err re2g_permute(int grad, re2g_t a, const int64_t *dims, int ndim, re2g_t *out);
re2g_err re2g_transpose(int grad, re2g_t a, int64_t d0, int64_t d1, re2g_t *out);
re2g_err re2g_expand(int grad, re2g_t a, const int64_t *shape, int ndim, re2g_t *out);
re2g_err re2g_unsqueeze(int grad, re2g_t a, int64_t dim, re2g_t *out);
re2g_err re2g_squeeze(int grad, re2g_t a, int64_t dim, re2g_t *out);
re2g_err re2g_slice(int grad, re2g_t a, int64_t dim, int64_t start, int64_t end, int64_t step, re2g_t *out);
re2g_err re2g_select(int grad, re2g_t a, int64_t dim, int64_t index, re2g_t *out);
re2g_err re2g_cat(int grad, const re2g_t *ts, int n, int64_t dim, int stack, re2g_t *out);
re2g_err re2g_index_select(int grad, re2g_t a, int64_t dim, re2g_t index, re2g_t *out);
re2g_err re2g_gather(int grad, re2g_t a, int64_t dim, re2g_t index, re2g_t *out);
re2g_err re2g_masked_fill(int grad, re2g_t a, re2g_t mask, double value, re2g_t *out);
re2g_err re2g_index_fill(int grad, re2g_t a, int64_t dim, re2g_t index, double value, re2g_t *out);
re2g_err re2g_where(int grad, re2g_t cond, re2g_t a, re2g_t b, re2g_t *out);
re2g_err re2g_tril(int grad, re2g_t a, int64_t diagonal, int upper, re2g_t *out);
re2g_err re2g_repeat_interleave(int grad, re2g_t a, int64_t repeats, int64_t dim, re2g_t *out);

/* losses */
re2g_err re2g_cross_entropy(int grad, re2g_t logits, re2g_t target, int64_t ignore_index, int reduction,
                            double label_smoothing, re2g_t *out);
re2g_err re2g_kl_div(int grad, re2g_t input, re2g_t target, int reduction, int log_target, re2g_t *out);

/* autograd */
re2g_err re2g_set_requires_grad(re2g_t t, int flag);
int re2g_requires_grad(re2g_t t);
re2g_err re2g_backward(re2g_t t, re2g_t grad_output /* nullable */, int retain_graph);
re2g_err re2g_grad(re2g_t t, re2g_t *out); /* *out NULL when no gradient */
re2g_err re2g_zero_grad(re2g_t t);
re2g_err re2g_copy_(re2g_t dst, re2g_t src); /* in place, without recording */
re2g_err re2g_clip_grad_norm(const re2g_t *params, int n, double max_norm, double *total_norm);

/* AdamW */
re2g_err re2g_adamw_new(const re2g_t *params, const int *decay, int n, double lr, double beta1, double beta2,
                        double eps, double weight_decay, re2g_adamw_t *out);
void re2g_adamw_free(re2g_adamw_t o);
re2g_err re2g_adamw_step(re2g_adamw_t o, double lr);
re2g_err re2g_adamw_zero_grad(re2g_adamw_t o);
/* The state of parameter i (exp_avg, exp_avg_sq, step); *has is 0 before the first step. */
re2g_err re2g_adamw_get_state(re2g_adamw_t o, int i, int *has, re2g_t *exp_avg, re2g_t *exp_avg_sq,
                              int64_t *step);
re2g_err re2g_adamw_set_state(re2g_adamw_t o, int i, re2g_t exp_avg, re2g_t exp_avg_sq, int64_t step);

/* distributed collectives (c10d process groups; Go package torch/dist).
 * A store is the rendezvous (a TCPStore, hosted by rank 0 or by torchrun's
 * agent, or a FileStore), a process group (pg) runs collectives with Gloo or
 * NCCL, and every collective returns a work handle at once: the caller waits
 * for it in slices (re2g_work_wait) so that it can give up between them. A
 * work holds its own references to the tensors it reads and writes: freeing
 * the caller's handles, or the work, while it runs is safe. A failed
 * collective (an error, a timeout the caller reports with re2g_pg_fail, or a
 * peer that went away) marks the group failed: later collectives are refused
 * with that error, since the ranks can no longer be assumed in step. */
typedef struct re2g_store *re2g_store_t;
typedef struct re2g_pg *re2g_pg_t;
typedef struct re2g_work *re2g_work_t;
enum re2g_dist_backend { RE2G_GLOO = 1, RE2G_NCCL = 2 };
enum re2g_dist_op { RE2G_DIST_SUM = 0, RE2G_DIST_AVG = 1, RE2G_DIST_MAX = 2, RE2G_DIST_MIN = 3 };

int re2g_dist_backends(void); /* the backends this shim was built with: RE2G_GLOO | RE2G_NCCL bits */
re2g_err re2g_store_tcp(const char *host, int port, int is_server, int world, int64_t timeout_ms,
                        const char *prefix, re2g_store_t *out);
re2g_err re2g_store_file(const char *path, int world, int64_t timeout_ms, const char *prefix, re2g_store_t *out);
void re2g_store_free(re2g_store_t s);
re2g_err re2g_store_set(re2g_store_t s, const char *key, const void *data, size_t n);
/* get does not wait: a missing key is an error (check first). *data is
 * malloc'ed (free with re2g_free_buf), NULL for an empty value. */
re2g_err re2g_store_get(re2g_store_t s, const char *key, void **data, size_t *n);
re2g_err re2g_store_add(re2g_store_t s, const char *key, int64_t delta, int64_t *out);
re2g_err re2g_store_check(re2g_store_t s, const char *key, int *exists);
re2g_err re2g_store_delete(re2g_store_t s, const char *key, int *deleted);
void re2g_free_buf(void *p);

/* A group over store s (its keys under prefix). gloo_iface/gloo_host (either
 * may be empty) pick the network device Gloo binds: an interface name, a host
 * name or address, or neither for the host name's address. */
re2g_err re2g_pg_new(re2g_store_t s, const char *prefix, int rank, int size, int backend, int64_t timeout_ms,
                     const char *gloo_iface, const char *gloo_host, re2g_pg_t *out);
/* Closes the group (Gloo waits for work in flight, at most its timeout) and
 * releases the caller's reference; autograd graphs may hold others. */
void re2g_pg_free(re2g_pg_t g);
void re2g_pg_fail(re2g_pg_t g, const char *why);
int re2g_pg_failed(re2g_pg_t g);
/* In place on ts; tensors are packed into buckets of at most bucket_bytes
 * by type and device. RE2G_DIST_AVG sums and divides by the world size. */
re2g_err re2g_pg_allreduce(re2g_pg_t g, const re2g_t *ts, int n, int op, int64_t bucket_bytes, int64_t timeout_ms,
                           re2g_work_t *out);
re2g_err re2g_pg_broadcast(re2g_pg_t g, const re2g_t *ts, int n, int root, int64_t bucket_bytes, int64_t timeout_ms,
                           re2g_work_t *out);
/* t's rows, counts[r] of them on rank r, concatenated over ranks into the
 * work's result (re2g_work_result). */
re2g_err re2g_pg_allgather(re2g_pg_t g, re2g_t t, const int64_t *counts, int64_t timeout_ms, re2g_work_t *out);
/* Averages the gradients of params over ranks: present[i] says whether any
 * rank has a gradient for params[i] (ranks without one add zeros and get the
 * average as theirs); params with present[i] == 0 are skipped. */
re2g_err re2g_pg_allreduce_grads(re2g_pg_t g, const re2g_t *params, const uint8_t *present, int n,
                                 int64_t bucket_bytes, int64_t timeout_ms, re2g_work_t *out);
/* Waits up to slice_ms; *done is 1 once the work and its copies back are finished. */
re2g_err re2g_work_wait(re2g_work_t w, int64_t slice_ms, int *done);
re2g_err re2g_work_result(re2g_work_t w, re2g_t *out);
void re2g_work_free(re2g_work_t w);
/* Autograd for an all-gather done by re2g_pg_allgather: *out is gathered
 * (its rows offset.. of local's rows are this rank's), recorded so that its
 * backward sums the incoming gradient over ranks (an all-reduce within the
 * backward pass, bounded by timeout_ms) and passes rows offset.. to local. */
re2g_err re2g_dist_gather_grad(int grad, re2g_pg_t g, re2g_t local, re2g_t gathered, int64_t offset,
                               int64_t timeout_ms, re2g_t *out);

// Host transfers so far in this process: copies of tensor values to host
// memory (reads: copy_out, item) and tensors made from host memory (writes).
void re2g_host_transfers(int64_t *reads, int64_t *writes);

#ifdef __cplusplus
}
#endif
#endif
