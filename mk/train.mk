# Training (train/, `re2g train`) on a real KILT task: SQuADShifts New Wiki as
# a KILT knowledge source (articles as pages), split into passages as IBM's
# reference does, questions with page + paragraph provenance, split by
# article. train-small trains the four Re2G phases from scratch (no
# pretrained weights can be had here) on 2 CPU cores; with checkpoints, pass
# them: make train-small TRAIN_FLAGS='--preset finetune --init checkpoint
# --query-encoder dpr-q/ --ctx-encoder dpr-ctx/ --reranker rr/ --generator rag/'.
# train-e2e-options adds the other two end-to-end query-encoder options.
TRAIN_OUT ?= $(BUILD)/train
TRAIN_DATA ?= $(BUILD)/train-data
TRAIN_FLAGS ?=
SQUADSHIFTS ?= ../shared/data/squadshifts/new_wiki_v1.0.json
TRAIN_TASK := --train $(TRAIN_DATA)/train.jsonl --dev $(TRAIN_DATA)/dev.jsonl

.PHONY: train-data train-small train-e2e-options
train-data: build
	@mkdir -p $(TRAIN_DATA)
	@[ -f $(TRAIN_DATA)/index/manifest.json ] || { \
	  bin/re2g data squad-kilt --in $(SQUADSHIFTS) --pages $(TRAIN_DATA)/pages.jsonl --out $(TRAIN_DATA)/train.jsonl --split train && \
	  bin/re2g data squad-kilt --in $(SQUADSHIFTS) --pages $(TRAIN_DATA)/pages.jsonl --out $(TRAIN_DATA)/dev.jsonl --split dev && \
	  bin/re2g data kilt-passages --in $(TRAIN_DATA)/pages.jsonl --out $(TRAIN_DATA)/passages.jsonl && \
	  rm -rf $(TRAIN_DATA)/index && bin/re2g index --corpus $(TRAIN_DATA)/passages.jsonl --out $(TRAIN_DATA)/index; }

train-small: train-data
	nice -n 10 bin/re2g train all --preset small --init scratch $(TRAIN_TASK) --index $(TRAIN_DATA)/index --out $(TRAIN_OUT) $(TRAIN_FLAGS)

train-e2e-options: train-data
	for m in frozen combined; do \
	  nice -n 10 bin/re2g train e2e --preset small --init scratch $(TRAIN_TASK) --index $(TRAIN_OUT)/dpr/index \
	    --query-encoder $(TRAIN_OUT)/generator/model/question_encoder --reranker $(TRAIN_OUT)/reranker/model/reranker \
	    --generator $(TRAIN_OUT)/generator/model/generator --query-mode $$m --out $(TRAIN_OUT)/e2e-$$m $(TRAIN_FLAGS) || exit 1; \
	done
