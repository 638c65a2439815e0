#!/usr/bin/env bash
# Compile check of the shim's NCCL path without a GPU or a CUDA libtorch:
# libtorch 2.x headers (Debian sid's libtorch-dev, the same c10d headers as a
# CUDA wheel's), CUDA runtime headers (nvidia-cuda-dev, non-free) and nccl.h
# (libnccl-dev, contrib), downloaded as .deb files into build/nccl-check with
# a private apt configuration (the system's sources and packages are not
# touched), then every torch/csrc/*.cpp compiled with -fsyntax-only with
# USE_C10D_NCCL and USE_C10D_GLOO on, as mk/torch.mk compiles the shim
# against a CUDA wheel. It proves the code compiles against those headers, not
# that it links or runs: that needs the GPU machine (scripts/gpu_check.sh).
#
#   scripts/nccl_compile_check.sh      # ~1 GB download the first time
set -euo pipefail
cd "$(dirname "$0")/.."
W=$PWD/build/nccl-check
. scripts/sid_debs.sh
if [ ! -f "$W/include/nccl.h" ]; then
  sid_download "$W" libtorch-dev libnccl-dev nvidia-cuda-dev libcu++-dev
  rm -rf "$W/x" && mkdir -p "$W/x"
  for d in "$W"/debs/*.deb; do dpkg-deb --fsys-tarfile "$d" | tar -x -C "$W/x" --wildcards './usr/include/*'; done
  rm -rf "$W/include" && mv "$W/x/usr/include" "$W/include" && rm -rf "$W/x" "$W/debs"
  # Generated when libtorch is built with CUDA; a CPU build's headers lack it.
  mkdir -p "$W/overlay/c10/cuda/impl"
  printf '#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n' > "$W/overlay/c10/cuda/impl/cuda_cmake_macros.h"
fi
vh=$(ls "$W"/include/torch/headeronly/version.h "$W"/include/torch/csrc/api/include/torch/version.h 2>/dev/null | head -1)
ver=$(grep -E '^#define TORCH_VERSION_(MAJOR|MINOR|PATCH) ' "$vh" | awk '{print $3}' | paste -sd.)
echo "libtorch headers ${ver:-?}, $(grep -m1 -o 'NCCL_VERSION_CODE [0-9]*' "$W/include/nccl.h" || echo 'nccl ?'), CUDA $(grep -m1 -o 'CUDART_VERSION  *[0-9]*' "$W/include/cuda_runtime_api.h" | awk '{print $2}')"
fail=0
for f in torch/csrc/*.cpp; do
  if g++ -std=c++20 -fsyntax-only -Wall -Wno-unused-parameter \
      -DUSE_C10D_NCCL -DRE2G_WITH_NCCL -DUSE_C10D_GLOO -DRE2G_WITH_GLOO \
      -isystem "$W/overlay" -isystem "$W/include" -isystem "$W/include/torch/csrc/api/include" \
      -Itorch/csrc "$f" 2> "$W/$(basename "$f").log"; then
    echo "ok    $f"
  else
    echo "FAIL  $f (build/nccl-check/$(basename "$f").log)"; head -20 "$W/$(basename "$f").log"; fail=1
  fi
done
exit $fail
