# Tokenizer parity fixtures and throughput against HF tokenizers (Rust, via
# its node bindings from npm, installed under build/, which git ignores).
HF_TOKENIZERS_NPM := tokenizers@0.23.2
HF_NODE := $(BUILD)/hf-tokenizers

.PHONY: bench-tokenizer tokenizer-fixtures

$(HF_NODE)/node_modules/tokenizers/package.json:
	mkdir -p $(HF_NODE)
	cd $(HF_NODE) && npm init -y >/dev/null && npm install --no-audit --no-fund $(HF_TOKENIZERS_NPM)

bench-tokenizer: $(HF_NODE)/node_modules/tokenizers/package.json
	nice -n 10 $(GO) run ./scripts/bench_tokenizer -node-modules $(abspath $(HF_NODE))/node_modules

tokenizer-fixtures: $(HF_NODE)/node_modules/tokenizers/package.json
	NODE_PATH=$(abspath $(HF_NODE))/node_modules node scripts/tokenizer_reference.js ../shared/data testdata/tokenizer
	$(GO) run ./tokenizer/internal/unigen
