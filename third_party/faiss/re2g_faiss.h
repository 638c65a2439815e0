/*
 * re2g_faiss.h: the few HNSW operations that FAISS 1.7.3's C API lacks
 * (HNSW constructors and parameters, per-call OpenMP thread count). Compiled into build/faiss/lib/libfaiss_c.a beside the C API.
 *
 * Every function catches all C++ exceptions. Functions returning char*
 * return NULL on success, or a malloc'd error message the caller frees:
 * unlike faiss_get_last_error (thread-local), this survives a Go goroutine
 * moving between OS threads.
 */
#ifndef RE2G_FAISS_H
#define RE2G_FAISS_H

#include <stdint.h>
#include <faiss/c_api/faiss_c.h>
#include <faiss/c_api/Index_c.h>

#ifdef __cplusplus
extern "C" {
#endif

/* re2g_index_hnsw creates an HNSW index over d-dim vectors with M links per
 * node, storing vectors as float32 (sq8 == 0) or 8-bit scalar-quantised
 * (sq8 != 0, needs training), wrapped in an IndexIDMap for int64 ids.
 * metric is FAISS's MetricType (0: inner product, 1: L2). */
char* re2g_index_hnsw(int d, int M, int sq8, int metric, int ef_construction,
                      int ef_search, FaissIndex** out);

/* re2g_index_flat creates an exact (brute-force) index wrapped in an
 * IndexIDMap. */
char* re2g_index_flat(int d, int metric, FaissIndex** out);

/* re2g_hnsw_params reads the HNSW parameters of idx (possibly wrapped in
 * an IndexIDMap); *kind is 0 for not HNSW, 1 for HNSWFlat, 2 for HNSWSQ. */
char* re2g_hnsw_params(const FaissIndex* idx, int* kind, int* M,
                       int* ef_construction, int* ef_search);

/* re2g_hnsw_set_params sets efConstruction / the default efSearch (values
 * <= 0 are left unchanged). Not safe concurrently with searches. */
char* re2g_hnsw_set_params(FaissIndex* idx, int ef_construction,
                           int ef_search);

/* re2g_train trains idx (scalar quantiser ranges) on n vectors. */
char* re2g_train(FaissIndex* idx, int64_t n, const float* x, int nthreads);

/* re2g_add adds n vectors with ids (ids may be NULL for sequential ids when
 * idx is not an IndexIDMap). */
char* re2g_add(FaissIndex* idx, int64_t n, const float* x, const int64_t* ids,
               int nthreads);

/* re2g_search searches n queries for their k nearest neighbours (HNSW with
 * the index's current efSearch). nthreads sets OpenMP's thread count for
 * this call on the calling OS thread only (OpenMP's nthreads-var is per
 * thread). */
char* re2g_search(const FaissIndex* idx, int64_t n, const float* x, int64_t k,
                  int nthreads, float* distances, int64_t* labels);

/* re2g_omp_max_threads reports OpenMP's default thread count. */
int re2g_omp_max_threads(void);

/* re2g_index_description names the index's structure, e.g.
 * "IDMap(HNSWFlat)". */
char* re2g_index_description(const FaissIndex* idx, char* buf, int len);

#ifdef __cplusplus
}
#endif

#endif
