#!/usr/bin/env bash
# Ablation on SQuADShifts New Wiki: each Re2G component's effect, one table.
#
#   scripts/ablation.sh TRAIN_OUT [SPLIT]
#
# TRAIN_OUT is the output folder of `re2g train all` (make train-small:
# build/train): DPR stage 2's encoders, and the reranker and generator of the
# end-to-end phase (frozen query encoder) when it ran, else of their own phases. SPLIT is dev (default: the articles training held
# out) or all. Index: the whole New Wiki corpus (1,581 paragraphs);
# provenance is passage-level.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/ablation.sh TRAIN_OUT [dev|all]}
pick() { for d in "$@"; do [ -f "$d/config.json" ] && { echo "$d"; return; }; done; echo "no model among: $*" >&2; exit 1; }
# run.json (re2g train all) names the DPR phase's output: the stage better on dev
dpr_out() { python3 -c 'import json,sys; print(next(p["outputs"][sys.argv[2]] for p in json.load(open(sys.argv[1]))["phases"] if p["phase"] == "dpr"))' "$out/run.json" "$1"; }
ctx=$(pick "$(dpr_out ctx_encoder)")
# the best of each on dev in re2g train's table: DPR's question encoder (distillation and the
# generation phase lowered its Recall@20), the end-to-end (frozen) reranker and generator
qenc=$(pick "$(dpr_out query_encoder)")
rr=$(pick "$out/e2e-frozen/model/reranker" "$out/e2e-distill/model/reranker" "$out/reranker/model/reranker")
gen=$(pick "$out/e2e-frozen/model/generator" "$out/e2e-distill/model/generator" "$out/generator/model/generator")
split=${2:-dev}
data=../shared/data/squadshifts/new_wiki_v1.0.json
work=${WORK:-out/ablation}
bin=bin/re2g
mkdir -p "$work"
$bin data squad-kilt --in "$data" --out "$work/gold.jsonl" --split "$split" --limit "${LIMIT:-0}"
if [ ! -f "$work/index/manifest.json" ]; then
  rm -rf "$work/index"
  $bin index --corpus "$data" --ctx-encoder "$ctx" --out "$work/index" --max-length 256
fi
q="--query-encoder $qenc"
r="--reranker $rr"
g="--generator $gen"
run() { # name, flags...
  local name=$1; shift
  $bin run --index "$work/index" --in "$work/gold.jsonl" --out "$work/pred-$name.jsonl" --provenance passage "$@" 2>/dev/null
  $bin eval kilt --gold "$work/gold.jsonl" --pred "$work/pred-$name.jsonl" 2>/dev/null | tail -1 > "$work/metrics-$name.json"
}
run bm25 --rerank-k 12
run dpr --no-bm25 $q --rerank-k 12
run merged $q --rerank-k 24
run rerank $q $r
run generate $q $r $g
/usr/bin/python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
rows = [("bm25", "BM25 alone"), ("dpr", "DPR alone"), ("merged", "DPR + BM25, merged order"),
        ("rerank", "merged + reranker (top 5)"), ("generate", "+ generator (full Re2G)")]
print(f"{'configuration':30} {'R-Prec':>7} {'R@5':>7} {'EM':>7} {'F1':>7} {'KILT-EM':>8}")
for key, name in rows:
    m = json.load(open(f"{w}/metrics-{key}.json"))
    r, d, k = m["retrieval"], m.get("downstream") or {}, m.get("kilt") or {}
    f = lambda v: f"{v:7.4f}" if v is not None else "      -"
    print(f"{name:30} {f(r['Rprec'])} {f(r.get('recall@5'))} {f(d.get('em'))} {f(d.get('f1'))} {f(k.get('KILT-em')):>8}")
PY
