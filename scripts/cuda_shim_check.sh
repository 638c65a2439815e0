#!/usr/bin/env bash
# Build the libtorch shim, NCCL and Gloo included, against Debian sid's CUDA
# libtorch (libtorch-cuda-2.6, contrib), with the project's own recipe
# (make torch-shim TORCH_PREFIX=...), on a machine without a GPU: the .deb
# files are downloaded into build/cuda-check with a private apt configuration
# (the system's sources and packages are not touched) and unpacked into a
# wheel-like prefix (include/, lib/). Then every symbol the shim imports must
# be one that the libraries it links export (so it would load and bind on a
# GPU machine with the same libtorch). It proves that the NCCL path compiles
# and links against a CUDA libtorch; running it needs a GPU
# (scripts/gpu_check.sh).
#
#   scripts/cuda_shim_check.sh      # ~500 MB download the first time
set -euo pipefail
cd "$(dirname "$0")/.."
W=$PWD/build/cuda-check
P=$W/prefix
. scripts/sid_debs.sh
if [ ! -f "$P/lib/libtorch_cuda.so" ]; then
  sid_download "$W" libtorch-cuda-2.6 libtorch-cuda-dev libnccl-dev libnccl2 \
      nvidia-cuda-dev libcu++-dev libgloo-cuda-dev libgloo-cuda-0
  rm -rf "$W/x" "$P" && mkdir -p "$W/x" "$P/lib"
  for d in "$W"/debs/*.deb; do dpkg-deb -x "$d" "$W/x"; done
  mv "$W/x/usr/include" "$P/include"
  # the libraries, by their link names (the -dev symlinks point into /usr)
  for so in "$W"/x/usr/lib/x86_64-linux-gnu/*.so.* "$W"/x/usr/lib/*.so.*; do
    [ -L "$so" ] && continue
    base=$(basename "$so"); link=${base%%.so.*}.so
    cp "$so" "$P/lib/$base"; ln -sf "$base" "$P/lib/$link"
  done
  # Generated when libtorch is built with CUDA; Debian's CUDA headers carry it.
  [ -f "$P/include/c10/cuda/impl/cuda_cmake_macros.h" ] || {
    mkdir -p "$P/include/c10/cuda/impl"
    printf '#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n' > "$P/include/c10/cuda/impl/cuda_cmake_macros.h"; }
  rm -rf "$W/x" "$W/debs"
fi
ver=$(grep -hE '^#define TORCH_VERSION_(MAJOR|MINOR|PATCH) ' "$P"/include/torch/csrc/api/include/torch/version.h | awk '{print $3}' | paste -sd.)
echo "libtorch $ver (CUDA), $(grep -m1 -o 'NCCL_VERSION_CODE [0-9]*' "$P/include/nccl.h"), CUDA runtime $(grep -m1 -o 'CUDART_VERSION  *[0-9]*' "$P/include/cuda_runtime_api.h" | awk '{print $2}')"
M=(TORCH_PREFIX="$P" TORCH_ABI=1 GLOO_INCLUDE="$P/include" NCCL_INCLUDE="$P/include" CUDA_INCLUDE="$P/include")
make -s torch-dist-info "${M[@]}"
rm -rf "$W/lib"
# Debian's CUDA libtorch links gloo as a library of its own (libgloo-cuda-0's libgloo).
make torch-shim "${M[@]}" TORCH_OUT="$W/lib" BUILD="$W/build" DIST_EXTRA_LIB=-lgloo
shim=$W/lib/libre2gtorch.so
echo "built $shim: $(stat -c %s "$shim") bytes; needs: $(readelf -d "$shim" | awk '/NEEDED/{gsub(/[][]/,"",$5); printf "%s ", $5}')"
# every symbol the shim imports (weak ones aside), against what its libraries
# and the C/C++ runtime export
sys=/usr/lib/x86_64-linux-gnu
nm -D --defined-only "$P"/lib/lib{torch,torch_cpu,torch_cuda,c10,c10_cuda,gloo}.so \
    $sys/libstdc++.so.6 $sys/libc.so.6 $sys/libm.so.6 $sys/libgcc_s.so.1 $sys/ld-linux-x86-64.so.2 2>/dev/null | awk 'NF>=3{print $3}' | sed 's/@.*//' | sort -u > "$W/exported"
nm -D --undefined-only "$shim" | awk '$1=="U"{print $2}' | sed 's/@.*//' | sort -u > "$W/imported"
missing=$(comm -23 "$W/imported" "$W/exported")
nccl=$(grep -c 'ProcessGroupNCCL' "$W/imported" || true)
echo "$(wc -l < "$W/imported") symbols imported, $nccl of c10d::ProcessGroupNCCL"
if [ -n "$missing" ]; then
  echo "not exported by the libraries linked:"; echo "$missing" | head -20 | c++filt; exit 1
fi
[ "$nccl" -gt 0 ] || { echo "the shim was built without NCCL"; exit 1; }
echo "ok: every libtorch symbol the shim imports is exported by Debian's CUDA libtorch $ver"
