#!/usr/bin/env bash
# GPU check: the same bin/re2g, built on the Debian machine against the CPU
# shim, runs on CUDA once a shim built against a CUDA libtorch is found first
# on the library path.
#
#   scripts/gpu_check.sh prepare   # here (Debian): build bin/re2g, collect the
#                                  # Debian shared libraries it needs into build/carry
#   scripts/gpu_check.sh run       # on the GPU machine (CUDA PyTorch, g++, no Go):
#                                  # build the shim against that libtorch, run checks
#
# For the device tool: carry `bin` and `build/carry`; the command is
# `bash scripts/gpu_check.sh run`.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
prepare)
  make build
  # The device tool carries at most 64 MiB: a stripped binary, and netlib's
  # reference BLAS/LAPACK (10 MB) instead of the OpenBLAS (36 MB) that
  # Debian's libblas.so.3 and liblapack.so.3 resolve to here; FAISS needs them
  # only for what these checks do not time.
  go build -trimpath -ldflags='-s -w' -o bin/re2g ./cmd/re2g
  rm -rf build/carry && mkdir -p build/carry
  deb=$(mktemp -d)
  (cd "$deb" && apt-get download -qq libblas3 liblapack3)
  for d in "$deb"/*.deb; do dpkg-deb -x "$d" "$deb/x"; done
  cp -L "$deb"/x/usr/lib/x86_64-linux-gnu/blas/libblas.so.3 "$deb"/x/usr/lib/x86_64-linux-gnu/lapack/liblapack.so.3 build/carry/
  rm -rf "$deb"
  # bin/re2g's own libraries besides the shim, libtorch's and glibc's (OpenMP
  # for FAISS), and the reference BLAS/LAPACK's (gfortran), with theirs.
  skip='libre2gtorch|libtorch|libc10|/libc\.so|/libm\.so|ld-linux|libpthread|libdl\.so|librt\.so|libstdc\+\+|libgcc_s|libblas|liblapack|libopenblas'
  libs=$(for need in $(readelf -d bin/re2g | awk '/NEEDED/{gsub(/[\[\]]/,"",$5); print $5}'); do
    ldd bin/re2g | awk -v n="$need" '$1==n{print $3}'
  done; for f in build/carry/libblas.so.3 build/carry/liblapack.so.3; do ldd "$f" | awk '/=> \//{print $3}'; done)
  for path in $(printf '%s\n' $libs | grep -vE "$skip" | sort -u || true); do
    cp -L "$path" build/carry/
    ldd "$path" | awk '/=> \//{print $3}' | { grep -vE "$skip" || true; } | xargs -r -I{} cp -L {} build/carry/
  done
  # The real corpora and tokenizer for bench batching on the GPU machine.
  mkdir -p build/carry/data/squadshifts build/carry/data/scifact build/carry/data/arguana build/carry/data/tokenizers/bert-base-uncased
  cp ../shared/data/squadshifts/new_wiki_v1.0.json build/carry/data/squadshifts/
  cp ../shared/data/scifact/scifact_hf_csv.zip build/carry/data/scifact/
  cp ../shared/data/arguana/corpus.jsonl.gz build/carry/data/arguana/
  cp ../shared/data/tokenizers/bert-base-uncased/tokenizer.json build/carry/data/tokenizers/bert-base-uncased/
  ls -la build/carry
  total=$(du -cb bin build/carry | tail -1 | cut -f1)
  echo "carry: $((total / 1048576)) MiB of 64"
  [ "$total" -le $((64 * 1048576)) ] || { echo "gpu_check: bin and build/carry exceed the 64 MiB the device tool carries" >&2; exit 1; }
  ;;
run)
  PY=${PYTHON:-python3}
  DEV=${DEVICE:-cuda}  # DEVICE=cpu rehearses the run on a machine without a GPU
  TORCH_PREFIX=$($PY -c 'import torch, os; print(os.path.dirname(torch.__file__))')
  TORCH_ABI=$($PY -c 'import torch; print(int(torch.compiled_with_cxx11_abi()))')
  echo "== torch $($PY -c 'import torch; print(torch.__version__, torch.version.cuda)') at $TORCH_PREFIX (cxx11 abi $TORCH_ABI)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  t0=$(date +%s)
  make --no-print-directory -j"$(nproc)" torch-shim BUILD=build TORCH_PREFIX="$TORCH_PREFIX" TORCH_ABI="$TORCH_ABI" TORCH_OUT=build/lib-cuda
  echo "== shim built in $(( $(date +%s) - t0 )) s"
  # which distributed backends it has (NCCL: nccl.h from the nvidia-nccl wheel; Gloo: not from a wheel)
  make --no-print-directory torch-dist-info BUILD=build TORCH_PREFIX="$TORCH_PREFIX"
  export LD_LIBRARY_PATH="$PWD/build/lib-cuda:$TORCH_PREFIX/lib:$PWD/build/carry${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  missing=$(ldd bin/re2g | grep 'not found' || true)
  if [ -n "$missing" ]; then echo "missing shared libraries:"; echo "$missing"; exit 1; fi
  ldd bin/re2g | grep -E 're2gtorch|libtorch' || true
  bin/re2g dist check --device "$DEV"  # one process: the shim's dist symbols resolve; no process group
  bin/re2g device --device "$DEV" --size 4096 --parity testdata/parity
  bin/re2g device --device "$DEV" --size 1024 --parity testdata/parity --dtype bfloat16 || true
  # transformers' own check of the fixtures with the installed version (5.x there)
  $PY scripts/make_parity_fixtures.py --verify testdata/parity || true
  # throughput against transformers on the same GPU, same weights
  bin/re2g bench encoder --device "$DEV" --dtype bfloat16 --python "$PY" --iters 10 || true
  bin/re2g bench generate --device "$DEV" --dtype bfloat16 --python "$PY" --iters 3 || true
  # DPR passage encoding of the real corpora, length-sorted batches vs transformers in corpus order
  bin/re2g bench batching --device "$DEV" --dtype bfloat16 --layers 12 --hidden 768 --heads 12 --batch 64 --sample 0 \
    --data build/carry/data --tokenizer-json build/carry/data/tokenizers/bert-base-uncased/tokenizer.json --python "$PY" --iters 3 || true
  ;;
*)
  echo "usage: $0 prepare|run" >&2
  exit 2
  ;;
esac
