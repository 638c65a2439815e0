#!/usr/bin/env bash
# Throughput of data-parallel training on this machine's CPU: a phase of
# `re2g train` (the small preset, models made from scratch, on `make
# train-data`) as 1 rank × T threads and as N ranks × T/N threads under
# Debian's torchrun (Gloo on 127.0.0.1), the same global batch, alternated
# ROUNDS times. Prints a Markdown table of each run's examples/s (every
# rank's examples, over the loop's wall time) and the seconds rank 0 spent in
# the gradient all-reduce (docs/results/distributed.md has a run).
#
#   scripts/ddp_throughput.sh [PHASE] [STEPS] [ROUNDS]
#
# PHASE is dpr (default) or reranker; THREADS (2) and RANKS (2) are read from
# the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
PHASE=${1:-dpr}
STEPS=${2:-30}
ROUNDS=${3:-2}
THREADS=${THREADS:-2}
RANKS=${RANKS:-2}
DATA=${TRAIN_DATA:-build/train-data}
OUT=${OUT:-build/ddp-throughput}
PY=${PYTHON:-/usr/bin/python3}
make --no-print-directory train-data TRAIN_DATA="$DATA" >/dev/null
mkdir -p "$OUT"
# No stage 2, no dev evaluation inside the timed loop.
cat >"$OUT/config.json" <<'EOF'
{"dpr": {"stage2": {"epochs": 0, "max_steps": 0}, "stage1": {"eval_every": 0, "checkpoint_every": 0}},
 "reranker": {"eval_every": 0, "checkpoint_every": 0}}
EOF
common=(--preset small --init scratch --tokenizer ../shared/data/tokenizers/bert-base-uncased
  --train "$DATA/train.jsonl" --dev "$DATA/dev.jsonl" --max-dev 50 --quiet --config "$OUT/config.json")
args=(train "$PHASE" "${common[@]}" --max-steps "$STEPS")
index=$DATA/index
if [ "$PHASE" = reranker ]; then
  # the reranker's lists need a dense index and its question encoder: a short DPR run's
  [ -f "$OUT/dpr-in/index/manifest.json" ] || bin/re2g train dpr "${common[@]}" --max-steps 5 --index "$index" \
    --threads "$THREADS" --out "$OUT/dpr-in" >/dev/null 2>&1
  args+=(--query-encoder "$OUT/dpr-in/stage1/model/question_encoder")
  index=$OUT/dpr-in/index
fi
# torchrun 1.13 on Python 3.11 needs -r and -t as mappings (rank:streams), of one stream
redirects=$(for i in $(seq 0 $((RANKS - 1))); do printf '%d:1,' "$i"; done)
redirects=${redirects%,}
ckpt=checkpoint
[ "$PHASE" = dpr ] && ckpt=stage1/checkpoint
row() { # name dir
  python3 - "$1" "$2/$ckpt/state.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[2]))
print(f"| {sys.argv[1]} | {s['step']} | {s['examples']} | {s['seconds']:.1f} | {s['examples_per_second']:.1f} | {s.get('all_reduce_seconds', 0):.2f} |")
EOF
}
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| run | updates | examples | loop s | examples/s | gradient all-reduce s (rank 0) |"
echo "|---|---:|---:|---:|---:|---:|"
for r in $(seq "$ROUNDS"); do
  rm -rf "$OUT/one-$r" "$OUT/many-$r"
  bin/re2g "${args[@]}" --index "$index" --threads "$THREADS" --out "$OUT/one-$r" >"$OUT/one-$r.log" 2>&1
  row "1 rank × $THREADS threads" "$OUT/one-$r"
  port=$((29500 + RANDOM % 1000))
  "$PY" -m torch.distributed.run --no_python --nproc_per_node "$RANKS" --master_addr 127.0.0.1 --master_port "$port" \
    --log_dir "$OUT/logs-$r" -r "$redirects" -t "$redirects" \
    bin/re2g "${args[@]}" --index "$index" --threads $((THREADS / RANKS > 0 ? THREADS / RANKS : 1)) --out "$OUT/many-$r" \
    >"$OUT/many-$r.log" 2>&1
  row "$RANKS ranks × $((THREADS / RANKS > 0 ? THREADS / RANKS : 1)) thread(s)" "$OUT/many-$r"
done
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
