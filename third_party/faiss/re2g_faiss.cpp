// re2g_faiss.cpp: implementation of re2g_faiss.h over FAISS's C++ API.
#include "re2g_faiss.h"

#include <omp.h>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <string>

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexScalarQuantizer.h>
#include <faiss/impl/HNSW.h>

namespace {

char* dup_error(const char* msg) {
    char* s = strdup(msg ? msg : "unknown error");
    return s;
}

template <typename F>
char* guarded(F&& f) {
    try {
        f();
        return nullptr;
    } catch (std::exception& e) {
        return dup_error(e.what());
    } catch (...) {
        return dup_error("unknown C++ exception in FAISS");
    }
}

faiss::Index* cast(FaissIndex* p) {
    return reinterpret_cast<faiss::Index*>(p);
}
const faiss::Index* cast(const FaissIndex* p) {
    return reinterpret_cast<const faiss::Index*>(p);
}

// inner unwraps an IndexIDMap (if any).
const faiss::Index* inner(const faiss::Index* idx) {
    if (auto m = dynamic_cast<const faiss::IndexIDMap*>(idx)) {
        return m->index;
    }
    return idx;
}

faiss::IndexHNSW* hnsw_of(faiss::Index* idx) {
    return dynamic_cast<faiss::IndexHNSW*>(const_cast<faiss::Index*>(inner(idx)));
}

// ThreadScope sets OpenMP's thread count for the calling OS thread and
// restores it afterwards.
struct ThreadScope {
    int prev;
    explicit ThreadScope(int n) : prev(omp_get_max_threads()) {
        if (n > 0) omp_set_num_threads(n);
    }
    ~ThreadScope() { omp_set_num_threads(prev); }
};

faiss::MetricType metric_of(int m) {
    return m == 0 ? faiss::METRIC_INNER_PRODUCT : faiss::METRIC_L2;
}

}  // namespace

extern "C" {

char* re2g_index_hnsw(int d, int M, int sq8, int metric, int ef_construction,
                      int ef_search, FaissIndex** out) {
    return guarded([&] {
        if (d <= 0) throw std::invalid_argument("dimension must be positive");
        if (M < 2) throw std::invalid_argument("HNSW M must be at least 2");
        std::unique_ptr<faiss::IndexHNSW> h;
        if (sq8) {
            h.reset(new faiss::IndexHNSWSQ(
                    d, faiss::ScalarQuantizer::QT_8bit, M, metric_of(metric)));
        } else {
            h.reset(new faiss::IndexHNSWFlat(d, M, metric_of(metric)));
        }
        if (ef_construction > 0) h->hnsw.efConstruction = ef_construction;
        if (ef_search > 0) h->hnsw.efSearch = ef_search;
        auto m = new faiss::IndexIDMap(h.release());
        m->own_fields = true;
        *out = reinterpret_cast<FaissIndex*>(static_cast<faiss::Index*>(m));
    });
}

char* re2g_index_flat(int d, int metric, FaissIndex** out) {
    return guarded([&] {
        if (d <= 0) throw std::invalid_argument("dimension must be positive");
        auto m = new faiss::IndexIDMap(new faiss::IndexFlat(d, metric_of(metric)));
        m->own_fields = true;
        *out = reinterpret_cast<FaissIndex*>(static_cast<faiss::Index*>(m));
    });
}

char* re2g_hnsw_params(const FaissIndex* idx, int* kind, int* M,
                       int* ef_construction, int* ef_search) {
    return guarded([&] {
        *kind = 0;
        auto h = dynamic_cast<const faiss::IndexHNSW*>(inner(cast(idx)));
        if (!h) return;
        *kind = dynamic_cast<const faiss::IndexHNSWSQ*>(h) ? 2 : 1;
        // level 0 has 2*M neighbours, upper levels M.
        *M = h->hnsw.nb_neighbors(1);
        *ef_construction = h->hnsw.efConstruction;
        *ef_search = h->hnsw.efSearch;
    });
}

char* re2g_hnsw_set_params(FaissIndex* idx, int ef_construction,
                           int ef_search) {
    return guarded([&] {
        auto h = hnsw_of(cast(idx));
        if (!h) throw std::invalid_argument("index is not HNSW");
        if (ef_construction > 0) h->hnsw.efConstruction = ef_construction;
        if (ef_search > 0) h->hnsw.efSearch = ef_search;
    });
}

char* re2g_train(FaissIndex* idx, int64_t n, const float* x, int nthreads) {
    return guarded([&] {
        ThreadScope ts(nthreads);
        cast(idx)->train(n, x);
    });
}

char* re2g_add(FaissIndex* idx, int64_t n, const float* x, const int64_t* ids,
               int nthreads) {
    return guarded([&] {
        ThreadScope ts(nthreads);
        auto i = cast(idx);
        if (!i->is_trained) throw std::invalid_argument("index is not trained");
        if (ids) {
            i->add_with_ids(n, x, ids);
        } else {
            i->add(n, x);
        }
    });
}

char* re2g_search(const FaissIndex* idx, int64_t n, const float* x, int64_t k,
                  int nthreads, float* distances, int64_t* labels) {
    return guarded([&] {
        ThreadScope ts(nthreads);
        cast(idx)->search(n, x, k, distances, labels);
    });
}

int re2g_omp_max_threads(void) {
    return omp_get_max_threads();
}

char* re2g_index_description(const FaissIndex* idx, char* buf, int len) {
    return guarded([&] {
        const faiss::Index* top = cast(idx);
        std::string s;
        bool idmap = dynamic_cast<const faiss::IndexIDMap*>(top) != nullptr;
        const faiss::Index* i = inner(top);
        if (dynamic_cast<const faiss::IndexHNSWSQ*>(i)) {
            s = "HNSWSQ8";
        } else if (dynamic_cast<const faiss::IndexHNSWFlat*>(i)) {
            s = "HNSWFlat";
        } else if (dynamic_cast<const faiss::IndexHNSW*>(i)) {
            s = "HNSW";
        } else if (dynamic_cast<const faiss::IndexFlat*>(i)) {
            s = "Flat";
        } else {
            s = "Other";
        }
        if (idmap) s = "IDMap(" + s + ")";
        std::strncpy(buf, s.c_str(), len - 1);
        buf[len - 1] = 0;
    });
}

}  // extern "C"
