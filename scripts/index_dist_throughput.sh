#!/usr/bin/env bash
# Throughput of distributed corpus encoding on this machine's CPU: ArguAna's
# corpus (8,674 passages) encoded by a small random BERT (2 layers × 128,
# scripts/tinymodels) as 1 rank × 2 threads (OpenMP's default waiting, and
# passive), 1 rank × 1 thread, and 2 ranks × 1 thread under Debian's
# torchrun (Gloo on 127.0.0.1), alternated ROUNDS times. Every run resumes a
# build whose passage store and BM25 index are done, so that it encodes the
# whole corpus and builds the HNSW index, nothing else; the figure is the
# encoding's wall time (one process: its "chunks encoded" line; several
# ranks: rank 0's "every rank's chunks encoded", from the passage store's
# publication to the last rank's last chunk). Prints a Markdown table
# (docs/results/distributed.md has a run).
#
#   scripts/index_dist_throughput.sh [ROUNDS]
#
# CHUNK (256) is the passages per chunk; OUT (build/index-dist-throughput)
# where everything goes.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
CHUNK=${CHUNK:-256}
OUT=${OUT:-build/index-dist-throughput}
PY=${PYTHON:-/usr/bin/python3}
DATA=${DATA:-../shared/data}
make --no-print-directory build >/dev/null
mkdir -p "$OUT"
ENC="$OUT/models/ctx-encoder"
[ -f "$ENC/tokenizer.json" ] || go run ./scripts/tinymodels -size small -out "$OUT/models" >/dev/null
CORPUS="$OUT/arguana.jsonl"
[ -s "$CORPUS" ] || zcat "$DATA/arguana/corpus.jsonl.gz" >"$CORPUS"
# The passage store and BM25 index, once (a BM25-only build of the corpus).
BASE="$OUT/base"
[ -f "$BASE/manifest.json" ] || { rm -rf "$BASE"; bin/re2g --progress off index --corpus "$CORPUS" --out "$BASE"; }

# state DIR: DIR is a build of the corpus stopped after its BM25 index.
state() {
	rm -rf "$1"
	mkdir -p "$1"
	cp -r "$BASE/passages" "$BASE/bm25" "$1/"
	"$PY" - "$BASE/manifest.json" "$CHUNK" >"$1/progress.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
print(json.dumps({"corpus_sha256": m["corpus_sha256"], "store_done": True, "passages": m["passages"],
                  "chunk": int(sys.argv[2]), "bm25_done": True, "dense_done": False}))
EOF
}

secs() { sed -n "s/.*msg=\"$1\".* seconds=\([0-9.]*\).*/\1/p" "$2" | tail -n 1; }

port=$((29700 + RANDOM % 200))
echo "| round | config | encode s | passages/s | load before → after |"
echo "|---:|---|---:|---:|---|"
for i in $(seq 1 "$ROUNDS"); do
	for cfg in 1x2 1x2-passive 1x1 2x1; do
		dir="$OUT/run-$cfg-$i"
		log="$OUT/run-$cfg-$i.log"
		state "$dir"
		load0=$(cut -d' ' -f1 /proc/loadavg)
		args=(--progress log index --corpus "$CORPUS" --ctx-encoder "$ENC" --out "$dir" --chunk "$CHUNK" --resume)
		case $cfg in
		1x2) bin/re2g "${args[@]}" --threads 2 >"$log" 2>&1 ;;
		1x2-passive) OMP_WAIT_POLICY=PASSIVE bin/re2g "${args[@]}" --threads 2 >"$log" 2>&1 ;;
		1x1) bin/re2g "${args[@]}" --threads 1 >"$log" 2>&1 ;;
		2x1)
			port=$((port + 1))
			"$PY" -m torch.distributed.run --no_python --nproc_per_node 2 --master_addr 127.0.0.1 --master_port $port \
				--log_dir "$OUT/torchrun-$i" -r 0:1,1:1 -t 0:1,1:1 bin/re2g "${args[@]}" --threads 1 >"$log" 2>&1
			;;
		esac
		case $cfg in
		2x1) s=$(secs "every rank's chunks encoded" "$log") ;;
		*) s=$(secs "chunks encoded" "$log") ;;
		esac
		n=$(grep -o '"passages": [0-9]*' "$dir/manifest.json" | head -n 1 | grep -o '[0-9]*')
		printf '| %d | %s | %.1f | %.0f | %s → %s |\n' "$i" "$cfg" "$s" "$(echo "$n / $s" | bc -l)" "$load0" "$(cut -d' ' -f1 /proc/loadavg)"
	done
done
