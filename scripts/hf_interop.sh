#!/usr/bin/env bash
# Do the models re2g trains load in Hugging Face transformers and compute the
# same thing there? For every model directory under ROOT (config.json with a
# DPR, BertForSequenceClassification or BART architecture), runs `re2g
# encode|rerank|generate` on N real inputs and scripts/hf_interop.py on the
# same inputs with transformers, and compares.
#
#   scripts/hf_interop.sh ROOT CORPUS.jsonl QUESTIONS.jsonl [N]
#   e.g. scripts/hf_interop.sh out/demo/train out/demo/corpus.jsonl out/demo/heldout.jsonl 16
#
# Needs python3 with torch and transformers (the GPU machine; Debian sid's
# python3-transformers) and bin/re2g with its shim on the library path.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$1 CORPUS=$2 QUESTIONS=$3 N=${4:-16}
# token limits (MAXLEN=64 for models with 64 positions, as testdata/hf's)
L=${MAXLEN:-256} P=${MAXLEN:-128}
# NEW=16: generate at most 16 new tokens on both sides (max_new_tokens)
PY=${PYTHON:-python3}
RE2G=${RE2G:-bin/re2g}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Inputs: N questions, N passages, N question/passage pairs, N sources.
$PY - "$CORPUS" "$QUESTIONS" "$N" "$tmp" <<'EOF'
import json, sys
corpus, questions, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
def first(path, n):
    with open(path) as f:
        return [json.loads(l) for _, l in zip(range(n), f)]
ps, qs = first(corpus, n), first(questions, n)
def text(q): return q.get("input") or q.get("question") or q.get("text")
def pid(p): return p.get("_id") or p.get("id") or p.get("pid")
def write(name, rows):
    with open(f"{out}/{name}.jsonl", "w") as f:
        for r in rows: f.write(json.dumps(r) + "\n")
write("questions", [{"id": f"q{i}", "text": text(q)} for i, q in enumerate(qs)])
write("passages", [{"id": pid(p), "title": p.get("title", ""), "text": p["text"]} for p in ps])
write("pairs", [{"id": f"p{i}", "query": text(q), "passage": p["text"]} for i, (q, p) in enumerate(zip(qs, ps))])
write("sources", [{"id": f"s{i}", "source": text(q) + " // " + p["text"]} for i, (q, p) in enumerate(zip(qs, ps))])
EOF

fail=0
for cfg in $(find "$ROOT" -name config.json | sort); do
  dir=$(dirname "$cfg")
  arch=$($PY -c 'import json,sys; print((json.load(open(sys.argv[1])).get("architectures") or ["?"])[0])' "$cfg")
  case $arch in
  DPRQuestionEncoder) cmd=(encode --max-length $L) in=questions py=(--max-length $L) ;;
  DPRContextEncoder) cmd=(encode --max-length $L) in=passages py=(--max-length $L) ;;
  RagTokenForGeneration|RagSequenceForGeneration) cmd=(encode --max-length $L) in=questions py=(--max-length $L) ;;
  BertForSequenceClassification) cmd=(rerank --max-length $P) in=pairs py=(--max-length $P) ;;
  BartForConditionalGeneration) cmd=(generate --num-beams 4 --num-return-sequences 4 --max-length $L ${NEW:+--max-new-tokens $NEW}) in=sources
    py=(--num-beams 4 --max-length $L ${NEW:+--max-new-tokens $NEW}) ;;
  *) continue ;;
  esac
  "$RE2G" "${cmd[@]}" --model "$dir" --in "$tmp/$in.jsonl" --out "$tmp/out.jsonl" 2>"$tmp/err" || { cat "$tmp/err"; fail=1; continue; }
  $PY scripts/hf_interop.py "$dir" "$tmp/$in.jsonl" "$tmp/out.jsonl" "${py[@]}" 2>"$tmp/err" || { grep -v Loading "$tmp/err" | tail -5 || true; fail=1; }
done
exit $fail
