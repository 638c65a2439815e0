#!/bin/sh
# real_vectors.sh: the two real vector sets of docs/results/faiss-ip-as-l2.md,
# each a re2g vector store and its query vectors, then faiss_ipl2 on each.
#
#   dpr:  a DPR trained here from scratch (re2g train dpr --preset small:
#         BERT 128-d, 2 layers) on SQuADShifts New Wiki's training questions;
#         corpus: its 1,549 KILT passages + ArguAna + SciFact + CACM (18,610
#         passages); queries: the 1,158 held-out dev questions.
#   tiny: the test fixture testdata/hf/dpr-ctx (random weights, 16-d) over
#         SQuADShifts' 1,581 paragraphs; queries: its first 1,000 questions,
#         encoded with the same encoder.
#
# Steps whose output exists are skipped. About 10 minutes on 2 cores, most of
# it training. Run from the repository root after `make build`:
#
#   sh scripts/faiss_ipl2/real_vectors.sh [OUT]     (default build/ipl2)
set -eu
OUT=${1:-build/ipl2}
SHARED=../shared/data
mkdir -p "$OUT"
go build -o bin/faiss_ipl2 ./scripts/faiss_ipl2

make train-data
if [ ! -d "$OUT/dpr/stage2/model/ctx_encoder" ]; then
	nice -n 10 bin/re2g train dpr --preset small --init scratch --train build/train-data/train.jsonl \
		--dev build/train-data/dev.jsonl --index build/train-data/index --out "$OUT/dpr" --quiet
fi
[ -f "$OUT/scifact/corpus.jsonl" ] || bin/re2g data convert --from scifact --in $SHARED/scifact/scifact_hf_csv.zip --out "$OUT/scifact"
[ -f "$OUT/cacm/corpus.jsonl" ] || bin/re2g data convert --from cacm --in $SHARED/cacm/cacm.tar.gz --out "$OUT/cacm"
/usr/bin/python3 - "$OUT" "$SHARED" <<'EOF'
import gzip, json, os, sys
out, shared = sys.argv[1], sys.argv[2]
with open(os.path.join(out, "corpus.jsonl"), "w") as f:
    def put(i, t, x):
        f.write(json.dumps({"_id": i, "title": t, "text": x}) + "\n")
    for l in open("build/train-data/passages.jsonl"):
        r = json.loads(l); put("sq:" + r["pid"], r["title"], r["text"])
    for l in gzip.open(os.path.join(shared, "arguana/corpus.jsonl.gz"), "rt"):
        r = json.loads(l); put("ar:" + r["_id"], r.get("title", ""), r["text"])
    for src in ("scifact", "cacm"):
        for l in open(os.path.join(out, src, "corpus.jsonl")):
            r = json.loads(l); put(src[:2] + ":" + r["_id"], r.get("title", ""), r["text"])
with open(os.path.join(out, "dpr-queries.jsonl"), "w") as f:
    for l in open("build/train-data/dev.jsonl"):
        r = json.loads(l); f.write(json.dumps({"id": r["id"], "text": r["input"]}) + "\n")
d = json.load(open(os.path.join(shared, "squadshifts/new_wiki_v1.0.json")))
qs = [qa for a in d["data"] for p in a["paragraphs"] for qa in p["qas"]][:1000]
with open(os.path.join(out, "tiny-queries.jsonl"), "w") as f:
    for qa in qs:
        f.write(json.dumps({"id": qa["id"], "text": qa["question"]}) + "\n")
EOF
[ -f "$OUT/dpr-idx/manifest.json" ] || { rm -rf "$OUT/dpr-idx"; nice -n 10 bin/re2g index --corpus "$OUT/corpus.jsonl" \
	--ctx-encoder "$OUT/dpr/stage2/model/ctx_encoder" --out "$OUT/dpr-idx" --max-length 128; }
bin/re2g encode --model "$OUT/dpr/stage2/model/question_encoder" --in "$OUT/dpr-queries.jsonl" --out "$OUT/dpr-queries.vec.jsonl"
[ -f "$OUT/tiny-idx/manifest.json" ] || { rm -rf "$OUT/tiny-idx"; bin/re2g index --corpus $SHARED/squadshifts/new_wiki_v1.0.json \
	--ctx-encoder testdata/hf/dpr-ctx/safetensors --out "$OUT/tiny-idx"; }
bin/re2g encode --model testdata/hf/dpr-ctx/safetensors --in "$OUT/tiny-queries.jsonl" --out "$OUT/tiny-queries.vec.jsonl"

nice -n 10 bin/faiss_ipl2 -store "$OUT/dpr-idx/dense" -queries "$OUT/dpr-queries.vec.jsonl" -nq 1158
nice -n 10 bin/faiss_ipl2 -store "$OUT/tiny-idx/dense" -queries "$OUT/tiny-queries.vec.jsonl" -nq 1000 -ef 16,32,64,128,256,1024
nice -n 10 bin/faiss_ipl2 -store "$OUT/tiny-idx/dense" -queries "$OUT/tiny-queries.vec.jsonl" -nq 1000 -ef 16,256,1024 -efc 200
