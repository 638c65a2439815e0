#!/usr/bin/env bash
# Fine-tunes every Re2G phase from the checkpoints transformers made
# (testdata/hf: DPR, BertModel, 1- and 2-label cross-encoders, BART with
# byte-level BPE, RAG-Token and RAG-Sequence; safetensors and
# pytorch_model.bin) on a real KILT task (SQuADShifts New Wiki with page +
# paragraph provenance, IBM's passage split, `make train-data`), each phase
# with `re2g train <phase>` as a user would, in float32 and bfloat16; then
# asks the result a question with `re2g ask`. Prints each phase's first and
# last loss and dev metrics (docs/results/finetune.md has a run).
#
#   scripts/finetune_fixtures.sh [OUT] [STEPS]
#
# The fixtures are minute (hidden 32, vocabularies of a few hundred tokens):
# this shows the procedure and that each loss falls, not Re2G's accuracy.
# With scripts/hf_interop.sh OUT ... the outputs are then checked in
# transformers.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-build/finetune-fixtures}
STEPS=${2:-40}
DATA=${TRAIN_DATA:-build/train-data}
B=bin/re2g
H=testdata/hf
make --no-print-directory train-data TRAIN_DATA="$DATA" >/dev/null
task=(--train "$DATA/train.jsonl" --dev "$DATA/dev.jsonl" --max-train 400 --max-dev 60 --max-steps "$STEPS" --quiet
  --config scripts/finetune_fixtures.json)
summary() { tail -1 | python3 -c '
import json, sys
for r in json.load(sys.stdin)["reports"]:
    m = {k: round(v, 3) for k, v in r["metrics"].items()}
    print("  %-14s loss %.4f -> %.4f  %s" % (r["phase"], r["first_loss"], r["last_loss"], m))'; }
for dtype in float32 bfloat16; do
  o=$OUT/$dtype
  echo "== $dtype"
  echo "dpr: DPRQuestionEncoder (safetensors) + BertModel as context encoder (pytorch_model.bin)"
  $B train dpr "${task[@]}" --dtype $dtype --index "$DATA/index" --query-encoder $H/dpr-question/safetensors \
    --ctx-encoder $H/bert/bin --out "$o/dpr" | summary
  echo "generator: RagTokenForGeneration (pytorch_model.bin), its question encoder"
  $B train generator "${task[@]}" --dtype $dtype --index "$o/dpr/index" --query-encoder "$o/dpr/stage1/model/question_encoder" \
    --generator $H/rag-token/bin --out "$o/generator" | summary
  echo "generator: BartForConditionalGeneration, byte-level BPE (safetensors)"
  $B train generator "${task[@]}" --dtype $dtype --index "$o/dpr/index" --query-encoder "$o/dpr/stage1/model/question_encoder" \
    --generator $H/bart/safetensors --out "$o/generator-bart" | summary
  for rr in cross-encoder-1/bin cross-encoder-2/safetensors; do
    echo "reranker: $rr"
    $B train reranker "${task[@]}" --dtype $dtype --index "$o/dpr/index" --query-encoder "$o/generator/model/question_encoder" \
      --reranker $H/$rr --out "$o/reranker-${rr%%/*}" | summary
  done
  echo "e2e (distill): the generation phase's RAG directory, the 2-label reranker"
  $B train e2e "${task[@]}" --dtype $dtype --index "$o/dpr/index" --query-encoder "$o/generator/model/question_encoder" \
    --reranker "$o/reranker-cross-encoder-2/model/reranker" --generator "$o/generator/model/rag" --out "$o/e2e" | summary
done
echo "== all (safetensors: DPR, RAG-Token, 1-label cross-encoder), float32"
$B train all "${task[@]}" --index "$DATA/index" --query-encoder $H/dpr-question/safetensors --ctx-encoder $H/bert/safetensors \
  --reranker $H/cross-encoder-1/safetensors --generator $H/rag-token/safetensors --out "$OUT/all" >/dev/null
python3 - "$OUT/all/run.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
for p in m["phases"]:
    for r in p["reports"]:
        print(f"  {r['phase']:<14} loss {r['first_loss']:.4f} -> {r['last_loss']:.4f}")
print("final:", m["final"])
EOF
f=$OUT/float32
$B ask --index "$f/dpr/index" --query-encoder "$f/e2e/model/question_encoder" --reranker "$f/e2e/model/reranker" \
  --generator "$f/e2e/model/rag" "who elects the delegates of the national ecclesiastical assembly?" | head -5
