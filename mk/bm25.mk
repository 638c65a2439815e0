# BM25 on bleve (bm25/, data/, ireval/): benchmark against Xapian's BM25.
# BENCH_BM25_ARGS passes flags, e.g. BENCH_BM25_ARGS="-set arguana -k 1000".
.PHONY: bench-bm25
bench-bm25: deps
	$(GO) run ./scripts/bench_bm25 $(BENCH_BM25_ARGS)
