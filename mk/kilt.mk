# KILT evaluation. `make kilt-crosscheck KILT=DIR ROUGE=DIR` compares
# `re2g eval kilt` with KILT's own eval_retrieval.py / eval_downstream.py on
# generated files (and on files built from SQuADShifts); DIR are checkouts of
# facebookresearch/KILT and pltrdy/rouge that the user provides.
.PHONY: kilt-crosscheck
kilt-crosscheck: bin/re2g
	@test -n "$(KILT)" -a -n "$(ROUGE)" || { echo "usage: make kilt-crosscheck KILT=DIR ROUGE=DIR"; exit 2; }
	/usr/bin/python3 scripts/kilt_crosscheck.py --kilt $(KILT) --rouge $(ROUGE) --re2g bin/re2g \
		--squad ../shared/data/squadshifts/new_wiki_v1.0.json
