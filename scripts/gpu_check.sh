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
  rm -rf build/carry && mkdir -p build/carry
  # The libraries bin/re2g itself needs besides the shim and glibc (BLAS, LAPACK,
  # OpenMP for FAISS), with their own dependencies. libtorch's come from the wheel.
  skip='libre2gtorch|libtorch|libc10|/libc\.so|/libm\.so|ld-linux|libpthread|libdl\.so|librt\.so|libstdc\+\+|libgcc_s'
  for need in $(readelf -d bin/re2g | awk '/NEEDED/{gsub(/[\[\]]/,"",$5); print $5}'); do
    echo "$need" | grep -qE "$skip" && continue
    path=$(ldd bin/re2g | awk -v n="$need" '$1==n{print $3}')
    [ -n "$path" ] || continue
    cp -L "$path" build/carry/
    ldd "$path" | awk '/=> \//{print $3}' | grep -vE "$skip" | xargs -r -I{} cp -L {} build/carry/
  done
  ls -la build/carry
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
  export LD_LIBRARY_PATH="$PWD/build/lib-cuda:$TORCH_PREFIX/lib:$PWD/build/carry${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  missing=$(ldd bin/re2g | grep 'not found' || true)
  if [ -n "$missing" ]; then echo "missing shared libraries:"; echo "$missing"; exit 1; fi
  ldd bin/re2g | grep -E 're2gtorch|libtorch' || true
  bin/re2g device --device "$DEV" --size 4096 --parity testdata/parity
  bin/re2g device --device "$DEV" --size 1024 --parity testdata/parity --dtype bfloat16 || true
  # transformers' own check of the fixtures with the installed version (5.x there)
  $PY scripts/make_parity_fixtures.py --verify testdata/parity || true
  # throughput against transformers on the same GPU, same weights
  bin/re2g bench encoder --device "$DEV" --dtype bfloat16 --python "$PY" --iters 10 || true
  bin/re2g bench generate --device "$DEV" --dtype bfloat16 --python "$PY" --iters 3 || true
  ;;
*)
  echo "usage: $0 prepare|run" >&2
  exit 2
  ;;
esac
