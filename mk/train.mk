# Training (train/, `re2g train`): the four Re2G phases from scratch on
# SQuADShifts New Wiki. train-small is the 2-core CPU configuration (about
# half an hour for all phases); train-e2e-options adds the other two
# end-to-end query-encoder options for the comparison table; train-eval
# rebuilds the held-out table from the models under TRAIN_OUT.
TRAIN_OUT ?= $(BUILD)/train
TRAIN_FLAGS ?=

.PHONY: train-small train-e2e-options train-eval
train-small: build
	nice -n 10 bin/re2g train all --out $(TRAIN_OUT) $(TRAIN_FLAGS)

train-e2e-options: build
	nice -n 10 bin/re2g train e2e --out $(TRAIN_OUT) --query-encoder frozen $(TRAIN_FLAGS)
	nice -n 10 bin/re2g train e2e --out $(TRAIN_OUT) --query-encoder combined $(TRAIN_FLAGS)

train-eval: build
	bin/re2g train eval --out $(TRAIN_OUT) $(TRAIN_FLAGS)
