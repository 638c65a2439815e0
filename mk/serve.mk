# re2g serve: load test, batching against no batching in the same run.
# BENCH_SERVE_ARGS passes flags, e.g. BENCH_SERVE_ARGS="--endpoint encode --models dpr".
.PHONY: bench-serve
bench-serve: bin/re2g
	nice -n 10 bin/re2g bench serve $(BENCH_SERVE_ARGS)
