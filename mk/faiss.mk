# FAISS: the C API (built from Debian's faiss source package) plus re2g's
# HNSW shim, as one static library that the faiss/ Go package links.
FAISS_LIB := $(BUILD)/faiss/lib/libfaiss_c.a
NATIVE += $(FAISS_LIB)

$(FAISS_LIB): third_party/faiss/build.sh third_party/faiss/re2g_faiss.cpp third_party/faiss/re2g_faiss.h
	@rm -f $@
	@JOBS=$(JOBS) bash third_party/faiss/build.sh

.PHONY: bench-faiss
# BENCH_FAISS_N: comma-separated corpus sizes; BENCH_FAISS_FLAGS: more flags,
# e.g. the 1M run (hours on 2 cores; Python build timing stops at 100k):
#   make bench-faiss BENCH_FAISS_N=1000000 BENCH_FAISS_FLAGS='-variants hnsw-ip -out build/bench_faiss_1m'
BENCH_FAISS_N ?= 10000,100000
BENCH_FAISS_FLAGS ?=
bench-faiss: natives
	$(GO) build -o bin/bench_faiss ./scripts/bench_faiss
	nice -n 10 bin/bench_faiss -n $(BENCH_FAISS_N) -out $(BUILD)/bench_faiss $(BENCH_FAISS_FLAGS)
