# Corpus scale (cmd/re2g/bench_scale.go): every stage's cost against corpus
# size, resumable per size and stage under $(SCALE_WORK).
#   make bench-scale                                   # 10k, 100k, 1M passages
#   make bench-scale SCALE_SIZES=10000,100000 SCALE_FLAGS='--updates 0'
# (the default flags build HNSWFlat, HNSW-SQ8 alone and compact up to 100k only:
# at 1M each takes hours here)
SCALE_SIZES ?= 10000,100000,1000000
SCALE_WORK ?= $(BUILD)/scale
SCALE_FLAGS ?= --flat-max 100000 --sq8-max 100000 --compact-max 100000

.PHONY: bench-scale
bench-scale: bin/re2g
	nice -n 15 bin/re2g --progress log bench scale --sizes $(SCALE_SIZES) --work $(SCALE_WORK) $(SCALE_FLAGS)
